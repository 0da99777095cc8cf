"""Two director processes fill forty running 4v4 matches (two players left each) from tickets that
keep arriving; one director is SIGKILLed mid-run. Every slot ends filled exactly once: each ticket
matched once or still queued, each newcomer on one server only, in its List and its token
annotation, no server over its teams' sizes, no player left on a server without a ticket (a fill
the dead director wrote but never committed is taken off again)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from pathlib import Path

import pytest

from fleetmatch.backends.redis.embedded import EmbeddedRedis, free_port
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.models import GameServer, GameServerState, ListStatus, ObjectMeta, PortStatus
from matchmaker.backfill import MATCH_PROFILE_ANNOTATION, PLAYER_TEAMS_ANNOTATION, PLAYERS_LIST, MatchProfile
from matchmaker.director import MATCH_ID_ANNOTATION, PLAYER_TOKENS_ANNOTATION, QUEUE_ANNOTATION, token_hash
from matchmaker.models import Player, TicketState
from matchmaker.tickets import RedisTicketStore
from tests.e2e.harness import open_tickets, stack_env, start, stop
from tests.waiting import eventually

TOKEN = "e2e-backfill-token-0123456789"
SERVERS = 40
SLOTS = 2 * SERVERS
QUEUE = """\
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: 4v4}
spec:
  teams: {count: 2, maxSize: 4}
  ticketTTLSeconds: 600
  tickSeconds: 0.05
  rules:
    - {name: skill, type: distance, attribute: skill, maxDistance: 100}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
"""
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


async def running_matches(gameservers: RedisStore[GameServer]) -> None:
    """``SERVERS`` Allocated 4v4 matches, each missing one player per team (``m{i}-3``, ``m{i}-7``)."""
    for i in range(SERVERS):
        players = [f"m{i}-{k}" for k in range(8)]
        notes = {
            MATCH_ID_ANNOTATION: f"match-{i}",
            QUEUE_ANNOTATION: "4v4",
            PLAYER_TOKENS_ANNOTATION: json.dumps({p: token_hash(p) for p in players}),
            PLAYER_TEAMS_ANNOTATION: json.dumps({p: k // 4 for k, p in enumerate(players)}),
            MATCH_PROFILE_ANNOTATION: MatchProfile("", {"skill": 1500.0}).encode(),
        }
        listed = ListStatus(8, tuple(p for p in players if p[-1] not in "37"))
        gs = GameServer(metadata=ObjectMeta(name=f"arena-{i:03d}", annotations=notes))
        await gameservers.create(
            gs.with_status(
                state=GameServerState.ALLOCATED,
                address="10.0.0.1",
                ports=(PortStatus("default", 7000 + i),),
                lists={PLAYERS_LIST: listed},
            )
        )


async def test_two_directors_one_killed_mid_fill(redis_server: EmbeddedRedis, redis_client, tmp_path: Path) -> None:
    gameservers = RedisStore(redis_client, GameServer)
    await running_matches(gameservers)
    tickets = RedisTicketStore(redis_client)
    queues = tmp_path / "queues.yaml"
    queues.write_text(QUEUE)
    port = free_port()
    env = stack_env(redis_server.url, tmp_path, port, TOKEN, FLEETMATCH_TICKET_LEASE_SECONDS="1")
    procs = [start(["allocator", "--port", str(port)], env)]
    ids: list[str] = []
    try:
        directors = [start(["matchmaker", "--no-api", "--queues", str(queues)], env) for _ in range(2)]
        procs += directors

        async def arrive() -> None:  # two players every 20 ms while the directors fill
            for n in range(0, SLOTS, 2):
                parties = [[Player(f"new-{n + k}", attributes={"skill": 1500.0})] for k in range(2)]
                ids.extend(await open_tickets(tickets, "4v4", parties))
                await asyncio.sleep(0.02)

        arrivals = asyncio.create_task(arrive())

        async def some_filled() -> bool:
            states = await asyncio.gather(*(tickets.get(t) for t in list(ids)))
            return sum(t.state is TicketState.MATCHED for t in states) >= 20

        await eventually(some_filled, within=60)
        directors[0].send_signal(signal.SIGKILL)  # mid-run: claims, server writes and commits in flight
        directors[0].wait()
        await arrivals

        async def all_filled() -> bool:
            states = Counter(t.state for t in await asyncio.gather(*(tickets.get(t) for t in ids)))
            return states[TicketState.MATCHED] == SLOTS

        await eventually(all_filled, within=90)
        await asyncio.sleep(1.5)  # past any lease the dead director held: a lapsed fill is swept by now
    finally:
        await stop(procs)

    final = await asyncio.gather(*(tickets.get(t) for t in ids))
    assert all(t.state is TicketState.MATCHED for t in final)
    servers = {g.name: g for g in (await gameservers.list())[0]}
    listed_on: dict[str, list[str]] = {}
    for gs in servers.values():
        values = gs.status.lists[PLAYERS_LIST].values
        teams = json.loads(gs.metadata.annotations[PLAYER_TEAMS_ANNOTATION])
        assert len(values) == 8, (gs.name, values)  # every slot filled, none twice
        assert Counter(teams[p] for p in values) == {0: 4, 1: 4}, (gs.name, values)
        for player in values:
            listed_on.setdefault(player, []).append(gs.name)
    for ticket in final:
        a = ticket.assignment
        assert a is not None and a.backfill_id
        player = ticket.players[0].id
        assert listed_on.get(player) == [a.game_server]  # on its server, and on no other
        hashes = json.loads(servers[a.game_server].metadata.annotations[PLAYER_TOKENS_ANNOTATION])
        assert hashes[player] == token_hash(a.tokens[player])
    newcomers = {p for p in listed_on if p.startswith("new-")}
    assert newcomers == {t.players[0].id for t in final}  # nobody on a server without a ticket
