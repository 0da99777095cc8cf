"""What a director sends the allocation API, on the wire: the match id as ``Idempotency-Key`` and as
the ``fleetmatch.dev/match-id`` annotation; and the release it asks for (``DELETE
/v1/allocations/{match id}``) against an allocator that offers it and against today's, which does
not (a 404 the director reports once and does not retry). The real allocator releases."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from allocator.app import serve_allocator
from fleetmatch.allocation import (
    AllocationState,
    GameServerAllocationSpec,
    GameServerAllocationStatus,
    GameServerSelector,
)
from fleetmatch.allocator_client import AllocatorClient, AllocatorError
from fleetmatch.backends.base import Backend
from fleetmatch.codec import to_wire
from fleetmatch.models import FLEET_LABEL, GameServer, GameServerState, ObjectMeta, PlayerStatus, PortStatus
from fleetmatch.settings import AllocatorSettings
from matchmaker.director import MATCH_ID_ANNOTATION, Director
from matchmaker.matching import find_matches
from matchmaker.models import Player, Proposal, Ticket, TicketState, new_ticket_id
from matchmaker.rules import parse_queues
from matchmaker.tickets import RedisTicketStore
from tests.waiting import eventually

TOKEN = "stub-allocator-token-0123456789"
(DUEL,) = parse_queues(
    """\
kind: Queue
metadata: {name: duel}
spec:
  teams: {count: 2, maxSize: 1}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
"""
).values()


@dataclass
class StubAllocator:
    """An allocation API that records what it is sent and gives every match the same server."""

    url: str = ""
    delay: float = 0.0
    """Seconds each allocation takes (a slow allocator)."""
    posts: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)

    async def allocate(self, request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        doc = await request.json()
        self.posts.append((request.headers.get("Idempotency-Key"), doc))
        await asyncio.sleep(self.delay)
        status = GameServerAllocationStatus(
            AllocationState.ALLOCATED, "arena-001", "127.0.0.1", (PortStatus("default", 7001),)
        )
        return web.json_response({**doc, "status": to_wire(status)}, status=201)

    async def release(self, request: web.Request) -> web.Response:
        self.deletes.append(request.match_info["key"])
        return web.json_response({"released": ["arena-001"]})


@pytest.fixture
async def stub() -> AsyncIterator[StubAllocator]:
    stub = StubAllocator()
    app = web.Application()
    app.router.add_post("/v1/allocations", stub.allocate)
    app.router.add_delete("/v1/allocations/{key}", stub.release)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stub.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        yield stub
    finally:
        await runner.cleanup()


async def test_the_match_id_travels_as_idempotency_key_and_annotation(
    stub: StubAllocator, redis_client: aioredis.Redis
) -> None:
    tickets = RedisTicketStore(redis_client, block_ms=1000)
    now, ids = time.time(), []
    for i in range(2):
        p = Player(f"p{i}")
        ticket = Ticket(new_ticket_id("duel", now + i), "duel", p.id, (p,), enqueued_at=now + i)
        ids.append((await tickets.create(ticket, max_open_per_player=1)).id)

    def match(pool: Sequence[Ticket], at: float) -> list[Proposal]:
        return find_matches(pool, DUEL, at)

    async with AllocatorClient(stub.url, TOKEN) as client:
        report = await Director(tickets, DUEL, match, client).tick()
    assert report.matched == 1
    ((key, doc),) = stub.posts
    assert key is not None and doc["spec"]["metadata"]["annotations"][MATCH_ID_ANNOTATION] == key
    matched = [await tickets.get(t) for t in ids]
    assert {t.assignment.match_id if t.assignment else None for t in matched} == {key}


async def open_duel(tickets: RedisTicketStore) -> list[str]:
    now, ids = time.time(), []
    for i in range(2):
        p = Player(f"p{i}")
        ticket = Ticket(new_ticket_id("duel", now + i), "duel", p.id, (p,), enqueued_at=now + i)
        ids.append((await tickets.create(ticket, max_open_per_player=1)).id)
    return ids


def duel(pool: Sequence[Ticket], at: float) -> list[Proposal]:
    return find_matches(pool, DUEL, at)


async def test_an_allocation_slower_than_the_lease_still_makes_the_match(
    stub: StubAllocator, redis_client: aioredis.Redis
) -> None:
    """The director renews its leases while the allocator takes its time: the lease bounds how long
    a dead director holds tickets, not how long an allocation may take."""
    tickets = RedisTicketStore(redis_client, block_ms=1000)
    ids = await open_duel(tickets)
    stub.delay = 1.0
    async with AllocatorClient(stub.url, TOKEN) as client:
        director = Director(tickets, DUEL, duel, client, lease_seconds=0.3, releaser=client)
        report = await director.tick()
    assert report.matched == 1, report
    assert [(await tickets.get(t)).state for t in ids] == [TicketState.MATCHED] * 2
    assert stub.deletes == []


async def test_a_director_stopped_mid_allocation_puts_the_tickets_back_at_once(
    stub: StubAllocator, redis_client: aioredis.Redis
) -> None:
    tickets = RedisTicketStore(redis_client, block_ms=1000)
    ids = await open_duel(tickets)
    stub.delay = 3.0  # the client gives up first: the director is stopped while it waits
    async with AllocatorClient(stub.url, TOKEN) as client:
        director = Director(tickets, DUEL, duel, client, lease_seconds=60.0, releaser=client)
        task = asyncio.create_task(director.tick())

        async def allocating() -> bool:
            return bool(stub.posts)

        await eventually(allocating, within=10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [(await tickets.get(t)).state for t in ids] == [TicketState.QUEUED] * 2, "not leased for 60 s"
    assert await tickets.take_orphans("duel", limit=10) == [stub.posts[0][0]], "its server is to be released"


async def test_release_match_asks_for_the_allocation_by_its_key(stub: StubAllocator) -> None:
    async with AllocatorClient(stub.url, TOKEN) as client:
        assert await client.release_match("m/1 2") == ("arena-001",)
    assert stub.deletes == ["m/1 2"]  # quoted on the way, whole on arrival


async def test_the_allocator_releases_an_abandoned_match_and_refuses_its_key_afterwards(backend: Backend) -> None:
    """Two servers allocated under match m1, a player on one: the release gives back the other
    (Shutdown), keeps the one in use, and a late allocation with m1 is refused."""
    for name in ("arena-1", "arena-2", "arena-3"):
        gs = GameServer(metadata=ObjectMeta(name=name, labels={FLEET_LABEL: "arena"}))
        await backend.gameservers.create(gs.with_status(state=GameServerState.READY, node_name="n", address="10.0.0.1"))
    spec = GameServerAllocationSpec(selectors=(GameServerSelector.for_fleet("arena"),))
    async with (
        serve_allocator(backend, AllocatorSettings(port=0), TOKEN) as service,
        AllocatorClient(service.url, TOKEN) as client,
    ):
        first = await client.allocate(spec, idempotency_key="m1")
        again = await client.allocate(spec, idempotency_key="m1")
        assert first.state is AllocationState.ALLOCATED and again.game_server_name == first.game_server_name
        other = await client.allocate(spec, idempotency_key="m2")
        in_use = await backend.gameservers.get(other.game_server_name)
        players = PlayerStatus(count=1, capacity=4, ids=("p1",))
        await backend.gameservers.update(in_use.with_status(players=players))
        assert await client.release_match("m1") == (first.game_server_name,)
        assert await client.release_match("m2") == ()  # a player is on it: kept
        with pytest.raises(AllocatorError) as late:
            await client.allocate(spec, idempotency_key="m1")
        assert (late.value.status, late.value.code) == (409, "AllocationReleased")
    released = await backend.gameservers.get(first.game_server_name)
    assert released.state is GameServerState.SHUTDOWN
    assert (await backend.gameservers.get(other.game_server_name)).state is GameServerState.ALLOCATED
