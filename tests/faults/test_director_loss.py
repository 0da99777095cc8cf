"""Directors lost mid-match, against a real Redis and a real allocator: three directors share a
queue; one holds ticket leases with servers already allocated for them when it is killed
(cancelled) or stalls (a hung call: it renews its leases only for ``max_hold_seconds``). No
ticket is matched twice or lost: its tickets return to the pool when the leases run out and the
other directors match them; and no server stays Allocated to a match nobody got: the director
that notices releases it (``StoreReleaser``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace

import pytest
import redis.asyncio as aioredis

from allocator.app import AllocatorService, serve_allocator
from fleetmatch.allocation import ALLOCATION_KEY_ANNOTATION, GameServerAllocationSpec, GameServerAllocationStatus
from fleetmatch.allocator_client import AllocatorClient
from fleetmatch.backends.base import Backend
from fleetmatch.models import FLEET_LABEL, GameServer, GameServerState, ObjectMeta, PortStatus
from fleetmatch.settings import AllocatorSettings
from fleetmatch.tasks import cancel_and_wait
from matchmaker.director import (
    MATCH_ID_ANNOTATION,
    PLAYER_TOKENS_ANNOTATION,
    Allocating,
    Director,
    Matcher,
    StoreReleaser,
)
from matchmaker.matching import find_matches
from matchmaker.models import Player, Proposal, Ticket, TicketState, new_ticket_id
from matchmaker.rules import Queue, parse_queues
from matchmaker.tickets import RedisTicketStore
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(120)
TOKEN = "director-loss-token-0123456789"
LEASE = 1.0
HOLD = 3.0  # how long the stalled director keeps renewing its leases
TICKETS = 24  # 12 duels: the lost director takes all of them first
(DUEL,) = parse_queues(
    """\
kind: Queue
metadata: {name: duel}
spec:
  teams: {count: 2, maxSize: 1}
  ticketTTLSeconds: 600
  tickSeconds: 0.05
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
"""
).values()
S = GameServerState


def matcher(queue: Queue) -> Matcher:
    def match(pool: Sequence[Ticket], now: float) -> list[Proposal]:
        return find_matches(pool, queue, now)

    return match


@dataclass
class Stuck:
    """An allocator client that allocates for real, then never returns: a director stuck (or
    killed) between the allocation and the assignment, holding its leases. ``go`` lets it on."""

    client: AllocatorClient
    matches: list[str] = field(default_factory=list)
    landed: asyncio.Event = field(default_factory=asyncio.Event)
    go: asyncio.Event = field(default_factory=asyncio.Event)

    async def allocate(self, spec: GameServerAllocationSpec, *, idempotency_key: str) -> GameServerAllocationStatus:
        status = await self.client.allocate(spec, idempotency_key=idempotency_key)
        self.matches.append(idempotency_key)
        if len(self.matches) == TICKETS // 2:
            self.landed.set()
        await self.go.wait()
        return status


@dataclass
class World:
    tickets: RedisTicketStore
    ids: list[str]
    gameservers: StoreReleaser
    backend: Backend
    allocator: AllocatorService
    client: AllocatorClient
    redis: aioredis.Redis

    def director(self, allocator: Allocating, lease: float = LEASE) -> Director:
        return Director(
            self.tickets,
            DUEL,
            matcher(DUEL),
            allocator,
            lease_seconds=lease,
            max_hold_seconds=HOLD,
            releaser=self.gameservers,
        )

    async def servers(self) -> dict[str, GameServer]:
        items, _ = await self.backend.gameservers.list()
        return {gs.name: gs for gs in items}

    async def all_tickets(self) -> list[Ticket]:
        return list(await asyncio.gather(*(self.tickets.get(t) for t in self.ids)))

    async def orphans(self) -> int:
        return int(await self.redis.zcard(self.tickets.keys("duel").orphans))


@pytest.fixture
async def world(redis_client: aioredis.Redis, backend: Backend) -> AsyncIterator[World]:
    for i in range(2 * TICKETS):  # room for every match twice: the lost director's, then the real ones
        gs = GameServer(metadata=ObjectMeta(name=f"arena-{i:03d}", labels={FLEET_LABEL: "arena"}))
        created = await backend.gameservers.create(gs)
        ready = gs.with_status(state=S.READY, address="127.0.0.1", ports=(PortStatus("default", 7000 + i),))
        await backend.gameservers.update(replace(created, status=ready.status))
    tickets = RedisTicketStore(redis_client, block_ms=1000)
    now, ids = time.time(), []
    for i in range(TICKETS):
        p = Player(f"player-{i}", {"skill": 1500.0})
        at = now + i / 1000
        ticket = Ticket(new_ticket_id("duel", at), "duel", p.id, (p,), enqueued_at=at, expires_at=now + 600)
        ids.append((await tickets.create(ticket, max_open_per_player=1)).id)
    settings = AllocatorSettings(port=0)
    async with (
        serve_allocator(backend, settings, TOKEN) as service,
        AllocatorClient(service.url, TOKEN) as client,
    ):
        await eventually(lambda: len(service.allocator.index) >= 2 * TICKETS, within=10)
        yield World(tickets, ids, StoreReleaser(backend.gameservers), backend, service, client, redis_client)


@contextlib.asynccontextmanager
async def running(*directors: Director) -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks = [asyncio.create_task(d.run(), name=f"director-{i}") for i, d in enumerate(directors)]
    try:
        yield tasks
    finally:
        await cancel_and_wait(*tasks)


@pytest.mark.parametrize("fate", ["killed", "stalled"])
async def test_a_director_lost_mid_match_loses_nothing_and_leaks_no_server(world: World, fate: str) -> None:
    lost = Stuck(world.client)
    victim = asyncio.create_task(world.director(lost).tick())  # the pass it never finishes
    try:
        async with asyncio.timeout(30):
            await lost.landed.wait()  # every ticket leased by it, a server allocated for each match
        servers = await world.servers()
        held = {
            gs.metadata.annotations[MATCH_ID_ANNOTATION]: gs.name for gs in servers.values() if gs.state is S.ALLOCATED
        }
        assert sorted(held) == sorted(lost.matches) and len(held) == TICKETS // 2
        for match_id, name in held.items():  # the allocator took the match id as the allocation's key
            assert servers[name].metadata.annotations[ALLOCATION_KEY_ANNOTATION].split() == [match_id]
        assert Counter(t.state for t in await world.all_tickets()) == {TicketState.LEASED: TICKETS}
        if fate == "killed":
            await cancel_and_wait(victim)

        async with running(world.director(world.client), world.director(world.client)):

            async def all_matched() -> bool:
                return all(t.state is TicketState.MATCHED for t in await world.all_tickets())

            await eventually(all_matched, within=60)

            async def released() -> bool:
                servers = await world.servers()
                return all(servers[name].state is S.SHUTDOWN for name in held.values())

            await eventually(released, within=30)
            if fate == "stalled":  # it wakes up: every assignment fails, and it lists its matches again
                lost.go.set()
                report = await victim
                assert (report.matched, report.failed) == (0, TICKETS // 2)

            async def no_orphans_left() -> bool:  # ... which the running directors release (nothing left)
                return await world.orphans() == 0

            await eventually(no_orphans_left, within=30)
    finally:
        await cancel_and_wait(victim)

    tickets = await world.all_tickets()
    assert Counter(t.state for t in tickets) == {TicketState.MATCHED: TICKETS}  # none lost, none stuck
    matches: dict[str, list[Ticket]] = {}
    for t in tickets:
        assert t.assignment is not None
        matches.setdefault(t.assignment.match_id, []).append(t)
    assert all(len(members) == 2 for members in matches.values()), "a ticket in two matches, or a match of one"
    assert not set(matches) & set(lost.matches), "the lost director's matches never happened"
    servers = await world.servers()
    played = set()
    for match_id, members in matches.items():
        (name,) = {m.assignment.game_server for m in members if m.assignment is not None}
        assert (
            servers[name].state is S.ALLOCATED and servers[name].metadata.annotations[MATCH_ID_ANNOTATION] == match_id
        )
        played.add(name)
    allocated = {gs.name for gs in servers.values() if gs.state is S.ALLOCATED}
    assert allocated == played, "a server Allocated to a match nobody got"
    assert {servers[name].state for name in held.values()} == {S.SHUTDOWN}


async def test_a_failed_assignment_gives_its_server_back(world: World) -> None:
    """A player cancels after the claim, while the server is being allocated: the match is off,
    the other ticket goes back in place, and the server allocated for it is released."""
    cancelled: list[str] = []

    @dataclass
    class CancelsOne:
        client: AllocatorClient

        async def allocate(self, spec: GameServerAllocationSpec, *, idempotency_key: str) -> GameServerAllocationStatus:
            status = await self.client.allocate(spec, idempotency_key=idempotency_key)
            if not cancelled:  # one player of this (the first allocated) match leaves
                player = sorted(json.loads(spec.metadata.annotations[PLAYER_TOKENS_ANNOTATION]))[0]
                cancelled.append(player)  # before any await: the matches are allocated concurrently
                (ticket,) = [t for t in await world.all_tickets() if t.players[0].id == player]
                await world.tickets.cancel(ticket.id)
            return status

    director = world.director(CancelsOne(world.client), lease=30)
    report = await director.tick()
    assert (report.matched, report.failed) == (TICKETS // 2 - 1, 1)
    (lost,) = [
        gs for gs in (await world.servers()).values() if gs.state is S.ALLOCATED and not await assigned(world, gs)
    ]
    assert await world.orphans() == 1
    await director.tick()  # the next pass releases it
    assert (await world.backend.gameservers.get(lost.name)).state is S.SHUTDOWN
    assert await world.orphans() == 0
    states = Counter(t.state for t in await world.all_tickets())
    assert states == {TicketState.MATCHED: TICKETS - 2, TicketState.CANCELLED: 1, TicketState.QUEUED: 1}


async def assigned(world: World, gs: GameServer) -> bool:
    match_id = gs.metadata.annotations.get(MATCH_ID_ANNOTATION)
    return any(t.assignment is not None and t.assignment.match_id == match_id for t in await world.all_tickets())
