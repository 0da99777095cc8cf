"""Three director processes on one queue with 1,000 tickets; one is SIGKILLed mid-run. Every
ticket ends matched exactly once or back in the queue: none in two matches, none lost, and no
game server given to two matches."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from fleetmatch.backends.redis.embedded import EmbeddedRedis, free_port
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.models import FLEET_LABEL, GameServer, GameServerState, ObjectMeta, PortStatus
from matchmaker.models import Player, Ticket, TicketState, new_ticket_id
from matchmaker.tickets import RedisTicketStore
from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
TOKEN = "e2e-directors-token-0123456789"
TICKETS = 1000
SERVERS = 300  # fewer than the 500 matches the tickets could make: the rest wait, in place
QUEUE = """\
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: duel}
spec:
  teams: {count: 2, maxSize: 1}
  ticketTTLSeconds: 600
  tickSeconds: 0.05
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
"""
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "fleetmatch", *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_three_directors_one_killed(redis_server: EmbeddedRedis, redis_client, tmp_path: Path) -> None:
    gameservers = RedisStore(redis_client, GameServer)
    for i in range(SERVERS):
        gs = GameServer(metadata=ObjectMeta(name=f"arena-{i:03d}", labels={FLEET_LABEL: "arena"}))
        await gameservers.create(
            gs.with_status(state=GameServerState.READY, address="10.0.0.1", ports=(PortStatus("default", 7000 + i),))
        )
    tickets = RedisTicketStore(redis_client)
    now = time.time()
    ids = []
    for i in range(TICKETS):
        tid = new_ticket_id("duel", now + i / 1000)
        player = Player(f"player-{i}", attributes={"skill": 1500.0})
        await tickets.create(
            Ticket(tid, "duel", player.id, (player,), created_at=now, enqueued_at=now + i / 1000, expires_at=now + 600),
            max_open_per_player=1,
        )
        ids.append(tid)

    queues = tmp_path / "queues.yaml"
    queues.write_text(QUEUE)
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "FLEETMATCH_DATA_DIR": str(tmp_path),
        "FLEETMATCH_METRICS_PORT": "0",
        "FLEETMATCH_ALLOCATOR_TOKEN": TOKEN,
        "FLEETMATCH_ALLOCATOR_URL": f"http://127.0.0.1:{port}",
        "FLEETMATCH_TICKET_LEASE_SECONDS": "2",
        "FLEETMATCH_LOG_LEVEL": "WARNING",
    }
    procs = [start(["allocator", "--port", str(port)], env)]
    try:
        directors = [start(["matchmaker", "--no-api", "--queues", str(queues)], env) for _ in range(3)]
        procs += directors

        async def matched_count() -> int:
            states = await asyncio.gather(*(tickets.get(t) for t in ids[:200]))
            return sum(t.state is TicketState.MATCHED for t in states)

        async def some_matched() -> bool:
            return await matched_count() >= 20

        await eventually(some_matched, within=60)
        directors[0].send_signal(signal.SIGKILL)  # mid-run: claims, allocations and assignments in flight
        directors[0].wait()

        async def settled() -> bool:
            items, _ = await gameservers.list()
            ready = sum(g.state is GameServerState.READY for g in items)
            states = Counter(t.state for t in await asyncio.gather(*(tickets.get(t) for t in ids)))
            # Settled: no server is free any more (allocated, or released for an abandoned match),
            # or nothing is waiting; and no lease is outstanding.
            return states[TicketState.LEASED] == 0 and (ready == 0 or states[TicketState.QUEUED] == 0)

        await eventually(settled, within=60)

        async def nothing_allocated_for_nobody() -> bool:
            """The killed director's abandoned matches were released by the survivors."""
            items, _ = await gameservers.list()
            assigned = {t.assignment.game_server for t in await asyncio.gather(*(tickets.get(t) for t in ids))
                        if t.assignment is not None}  # fmt: skip
            return not {g.name for g in items if g.state is GameServerState.ALLOCATED} - assigned

        await eventually(nothing_allocated_for_nobody, within=60)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.to_thread(proc.wait, 30)
            except subprocess.TimeoutExpired:
                proc.kill()

    final = await asyncio.gather(*(tickets.get(t) for t in ids))
    states = Counter(t.state for t in final)
    assert set(states) <= {TicketState.MATCHED, TicketState.QUEUED}, states  # none lost, none stuck
    assert states[TicketState.MATCHED] + states[TicketState.QUEUED] == TICKETS
    matches: dict[str, list[Ticket]] = {}
    for ticket in final:
        if ticket.state is TicketState.MATCHED:
            assert ticket.assignment is not None
            matches.setdefault(ticket.assignment.match_id, []).append(ticket)
    assert all(len(members) == 2 for members in matches.values())  # 1v1: two tickets per match, never three
    servers = Counter(members[0].assignment.game_server for members in matches.values() if members[0].assignment)
    assert max(servers.values()) == 1  # no server in two matches
    items, _ = await gameservers.list()
    allocated = {g.name for g in items if g.state is GameServerState.ALLOCATED}
    assert set(servers) <= allocated
    # The killed director's in-flight matches allocated servers nobody got: released (Shutdown).
    assert allocated == set(servers)
    queued = [t for t in final if t.state is TicketState.QUEUED]
    assert [t.id for t in queued] == sorted(t.id for t in queued)  # still in line, in order
    assert states[TicketState.MATCHED] == 2 * len(matches)
