"""Three director processes on one queue with 1,000 tickets; one is SIGKILLed mid-run. Every
ticket ends matched exactly once or back in the queue: none in two matches, none lost, and no
game server given to two matches."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from fleetmatch.backends.redis.embedded import EmbeddedRedis, free_port
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.models import GameServer, GameServerState
from matchmaker.models import Player, Ticket, TicketState
from matchmaker.tickets import RedisTicketStore
from tests.e2e.harness import allocated, open_tickets, ready_servers, stack_env, start, stop
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


async def test_three_directors_one_killed(redis_server: EmbeddedRedis, redis_client, tmp_path: Path) -> None:
    gameservers = RedisStore(redis_client, GameServer)
    await ready_servers(gameservers, SERVERS)
    tickets = RedisTicketStore(redis_client)
    ids = await open_tickets(
        tickets, "duel", [[Player(f"player-{i}", attributes={"skill": 1500.0})] for i in range(TICKETS)]
    )

    queues = tmp_path / "queues.yaml"
    queues.write_text(QUEUE)
    port = free_port()
    env = stack_env(redis_server.url, tmp_path, port, TOKEN, FLEETMATCH_TICKET_LEASE_SECONDS="2")
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
        await stop(procs)

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
    taken = {g.name for g in await allocated(gameservers)}
    assert set(servers) <= taken
    # The killed director's in-flight matches allocated servers nobody got: released (Shutdown).
    assert taken == set(servers)
    queued = [t for t in final if t.state is TicketState.QUEUED]
    assert [t.id for t in queued] == sorted(t.id for t in queued)  # still in line, in order
    assert states[TicketState.MATCHED] == 2 * len(matches)


ACCEPT_QUEUE = QUEUE.replace("tickSeconds: 0.05", "tickSeconds: 0.05\n  acceptance: {timeoutSeconds: 3}")
ACCEPT_TICKETS = 40


def never_accepts(player: str) -> bool:
    return int(player.rsplit("-", 1)[1]) % 4 == 3


async def test_a_director_killed_during_acceptance_loses_and_duplicates_nothing(
    redis_server: EmbeddedRedis, redis_client, tmp_path: Path
) -> None:
    """A director on a queue with acceptance is SIGKILLed while its proposals await their players;
    another director starts. Players answer afterwards (every fourth never does): the other director
    allocates what was accepted and times out the rest, so every accepting player ends matched once (or still queued,
    the odd one out), every silent one cancelled, and no server is allocated for a match nobody got."""
    gameservers = RedisStore(redis_client, GameServer)
    await ready_servers(gameservers, ACCEPT_TICKETS)
    tickets = RedisTicketStore(redis_client)
    ids = await open_tickets(tickets, "duel", [[Player(f"player-{i}")] for i in range(ACCEPT_TICKETS)])
    queues = tmp_path / "queues.yaml"
    queues.write_text(ACCEPT_QUEUE)
    port = free_port()
    env = stack_env(redis_server.url, tmp_path, port, TOKEN, FLEETMATCH_TICKET_LEASE_SECONDS="2")
    procs = [start(["allocator", "--port", str(port)], env)]
    matches_seen: dict[str, set[str]] = {}  # ticket id -> every match id proposed to it
    try:
        first = start(["matchmaker", "--no-api", "--queues", str(queues)], env)
        procs.append(first)

        async def current() -> list[Ticket]:
            return list(await asyncio.gather(*(tickets.get(t) for t in ids)))

        async def mostly_proposed() -> bool:
            return sum(t.state is TicketState.PROPOSED for t in await current()) >= ACCEPT_TICKETS // 2

        await eventually(mostly_proposed, within=60)
        first.send_signal(signal.SIGKILL)  # every proposal is its own, still waiting for every answer
        first.wait()
        assert not await allocated(gameservers), "a server before anyone accepted"
        procs.append(start(["matchmaker", "--no-api", "--queues", str(queues)], env))  # the survivor

        async def settled() -> bool:
            for ticket in await current():
                if ticket.proposal is not None:
                    matches_seen.setdefault(ticket.id, set()).add(ticket.proposal.match_id)
                    if not ticket.proposal.accepted and not never_accepts(ticket.players[0].id):
                        await tickets.accept(ticket.id, lease_seconds=2)
            final = await current()
            silent = [t for t in final if never_accepts(t.players[0].id)]
            waiting = [t for t in final if t.state is TicketState.QUEUED]
            in_flight = [t for t in final if t.state in (TicketState.PROPOSED, TicketState.LEASED)]
            return all(t.state is TicketState.CANCELLED for t in silent) and len(waiting) <= 1 and not in_flight

        await eventually(settled, within=90)
    finally:
        await stop(procs)

    final = await asyncio.gather(*(tickets.get(t) for t in ids))
    check_accepted_outcome(final, matches_seen, await allocated(gameservers))


def check_accepted_outcome(
    final: Sequence[Ticket], matches_seen: dict[str, set[str]], allocated: Sequence[GameServer]
) -> None:
    for ticket in final:
        if never_accepts(ticket.players[0].id):
            assert ticket.state is TicketState.CANCELLED and ticket.assignment is None, ticket
        else:
            assert ticket.state in (TicketState.MATCHED, TicketState.QUEUED), ticket  # never cancelled, none lost
    matches: dict[str, list[Ticket]] = {}
    for ticket in final:
        if ticket.assignment is not None:
            matches.setdefault(ticket.assignment.match_id, []).append(ticket)
            assert ticket.assignment.match_id in matches_seen.get(ticket.id, {ticket.assignment.match_id})
    assert len(matches) == (ACCEPT_TICKETS - ACCEPT_TICKETS // 4) // 2  # every accepting pair matched
    assert all(len(members) == 2 for members in matches.values())  # never a ticket in two matches
    servers = Counter(m[0].assignment.game_server for m in matches.values() if m[0].assignment)
    assert max(servers.values()) == 1
    # Only accepted matches got servers: exactly one each, none for a proposal that fell through.
    assert {g.name for g in allocated} == set(servers)
