"""Claims racing on purpose: allocators whose views are stale all go for the same servers at
once. Exactly one claim per server lands; the losers retry elsewhere or answer UnAllocated."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from allocator.allocation import Allocator
from allocator.index import Share
from allocator.roster import Roster
from fleetmatch.allocation import AllocationState, GameServerAllocationSpec, GameServerSelector, decode_allocation
from fleetmatch.backends.redis.client import connect
from fleetmatch.backends.redis.embedded import EmbeddedRedis
from fleetmatch.backends.redis.lease import RedisLease
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.codec import evolve
from fleetmatch.errors import BackendError
from fleetmatch.informer import Informer
from fleetmatch.models import (
    FLEET_LABEL,
    CounterStatus,
    GameServer,
    GameServerSpec,
    GameServerState,
    ObjectMeta,
    TemplateMeta,
    initial_status,
)
from fleetmatch.store import WatchEvent
from fleetmatch.tasks import cancel_and_wait
from tests.waiting import eventually


async def ready(store: RedisStore[GameServer], n: int) -> None:
    for i in range(n):
        gs = GameServer(metadata=ObjectMeta(name=f"gs-{i}", labels={FLEET_LABEL: "arena"}))
        await store.create(gs.with_status(state=GameServerState.READY, node_name="n1", address="10.0.0.1"))


@asynccontextmanager
async def stale_allocator(url: str, seed: int, share: Share | None = None) -> AsyncIterator[Allocator]:
    """An allocator (own connection) that read the store once and then stopped watching it."""
    client = connect(url, name=f"stale-{seed}")
    store = RedisStore(client, GameServer)
    informer = Informer(store)
    allocator = Allocator(store, informer, rng=random.Random(seed), share=share)
    task = asyncio.create_task(informer.run())
    await informer.synced.wait()
    await cancel_and_wait(task)
    try:
        yield allocator
    finally:
        await client.aclose()


def spec(label: str) -> GameServerAllocationSpec:
    return GameServerAllocationSpec(
        selectors=(GameServerSelector.for_fleet("arena"),), metadata=TemplateMeta(labels={"winner": label})
    )


async def test_two_stale_allocators_one_server(redis_server: EmbeddedRedis, redis_client: aioredis.Redis) -> None:
    store = RedisStore(redis_client, GameServer)
    await ready(store, 1)
    async with stale_allocator(redis_server.url, 1) as a, stale_allocator(redis_server.url, 2) as b:
        first, second = await asyncio.gather(a.allocate(spec("a")), b.allocate(spec("b")))
    results = sorted([first.state, second.state])
    assert results == [AllocationState.ALLOCATED, AllocationState.UNALLOCATED]
    winner = "a" if first.state is AllocationState.ALLOCATED else "b"
    assert (await store.get("gs-0")).metadata.labels["winner"] == winner


async def test_many_stale_allocators_many_requests(redis_server: EmbeddedRedis, redis_client: aioredis.Redis) -> None:
    store = RedisStore(redis_client, GameServer)
    await ready(store, 6)
    async with (
        stale_allocator(redis_server.url, 1) as a,
        stale_allocator(redis_server.url, 2) as b,
        stale_allocator(redis_server.url, 3) as c,
        stale_allocator(redis_server.url, 4) as d,
    ):
        results = await asyncio.gather(
            *(allocator.allocate(spec(f"{i}")) for i in range(5) for allocator in (a, b, c, d))
        )
    won = [r.game_server_name for r in results if r.state is AllocationState.ALLOCATED]
    assert sorted(won) == [f"gs-{i}" for i in range(6)]  # each server exactly once, all taken
    assert all(
        r.state in (AllocationState.ALLOCATED, AllocationState.UNALLOCATED, AllocationState.CONTENTION) for r in results
    )
    items, _ = await store.list()
    assert all(g.state is GameServerState.ALLOCATED for g in items)


def conflicts() -> float:
    return REGISTRY.get_sample_value("fleetmatch_allocation_claim_conflicts_total") or 0.0


async def test_workers_with_shares_do_not_race_for_servers(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    """Two workers of ``--workers 2``, neither seeing the other's claims, on one node of 100 servers:
    each takes its own share (``allocator.index.Share``), so no claim loses a race. Without shares
    the same two, seeded alike, lose dozens."""
    store = RedisStore(redis_client, GameServer)
    await ready(store, 100)
    shares = [Share(0, 2), Share(1, 2)]
    each = min(sum(share.holds(f"gs-{i}") for i in range(100)) for share in shares) - 5
    before = conflicts()
    async with (
        stale_allocator(redis_server.url, 1, shares[0]) as a,
        stale_allocator(redis_server.url, 2, shares[1]) as b,
    ):
        results = await asyncio.gather(
            *(w.allocate(spec(str(slot))) for slot, w in enumerate((a, b)) for _ in range(each))
        )
    assert conflicts() == before
    assert all(r.state is AllocationState.ALLOCATED for r in results)
    won = [r.game_server_name for r in results]
    assert len(set(won)) == 2 * each
    for slot, share in enumerate(shares):
        assert all(share.holds(name) for name in won[slot * each : (slot + 1) * each])


async def test_a_worker_leaves_a_node_to_the_worker_claiming_there(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    """Worker 0's share of the busiest node is all taken; once worker 1's claims there reach worker
    0's watch, worker 0 takes its own share of the next node instead of racing worker 1 for the rest
    of the busiest one. Before that (nobody else claiming there) it packs the busiest node."""
    store = RedisStore(redis_client, GameServer)
    zero, one = Share(0, 2), Share(1, 2)
    for i in range(40):
        node = "busy" if i < 20 else "next"
        gs = GameServer(metadata=ObjectMeta(name=f"gs-{i}", labels={FLEET_LABEL: "arena"}))
        state = GameServerState.ALLOCATED if node == "busy" and zero.holds(gs.name) else GameServerState.READY
        await store.create(gs.with_status(state=state, node_name=node, address="10.0.0.1"))
    client = connect(redis_server.url, name="live-worker-0")
    live = RedisStore(client, GameServer)
    informer = Informer(live)
    watching = asyncio.create_task(informer.run())
    try:
        await informer.synced.wait()
        worker0 = Allocator(live, informer, rng=random.Random(1), share=zero)
        first = await worker0.allocate(spec("before"))
        assert first.node_name == "busy" and not zero.holds(first.game_server_name)  # packs the busy node
        async with stale_allocator(redis_server.url, 2, one) as worker1:
            claimed = await worker1.allocate(spec("worker-1"))
        assert claimed.node_name == "busy" and one.holds(claimed.game_server_name)
        await eventually(lambda: worker0.index.servers[claimed.game_server_name].state is GameServerState.ALLOCATED)
        after = await worker0.allocate(spec("after"))
        assert after.node_name == "next" and zero.holds(after.game_server_name)
    finally:
        await cancel_and_wait(watching)
        await client.aclose()


async def test_separate_allocators_split_the_servers_by_slot_leases(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    """Two allocator processes' worth, started with no share and neither seeing the other's claims:
    their slot leases in Redis (``allocator.roster``) give each a share, and no claim loses a race.
    Without the rosters (or with their shares not applied) the same two lose dozens, as above."""
    store = RedisStore(redis_client, GameServer)
    await ready(store, 100)
    before = conflicts()
    async with (
        stale_allocator(redis_server.url, 1) as a,
        stale_allocator(redis_server.url, 2) as b,
    ):

        def leases(who: str) -> Callable[[str, float], RedisLease]:
            return lambda name, ttl: RedisLease(redis_client, name, who, ttl=ttl)

        rosters = [Roster(leases(who), w.set_share) for who, w in (("host/1", a), ("host/2", b))]
        for _ in range(2):
            for roster in rosters:
                await roster.step()
        shares = [roster.share for roster in rosters]
        assert shares == [Share(0, 2), Share(1, 2)]
        assert [w.index.share for w in (a, b)] == shares
        each = min(sum(s.holds(f"gs-{i}") for i in range(100)) for s in (Share(0, 2), Share(1, 2))) - 5
        results = await asyncio.gather(
            *(w.allocate(spec(str(slot))) for slot, w in enumerate((a, b)) for _ in range(each))
        )
        for roster in rosters:
            await roster.leave()
    assert conflicts() == before
    assert all(r.state is AllocationState.ALLOCATED for r in results)
    won = [r.game_server_name for r in results]
    assert len(set(won)) == 2 * each
    for slot in range(2):
        assert all(Share(slot, 2).holds(name) for name in won[slot * each : (slot + 1) * each])
    assert not await redis_client.keys("*leases:allocator-slot-*")  # both released


class GatedStore:
    """The real store, its updates held at a gate (then passed on, or failed without reaching Redis):
    a claim caught in flight."""

    def __init__(self, store: RedisStore[GameServer]) -> None:
        self._store = store
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.failure: Exception | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def update(self, obj: GameServer) -> GameServer:
        self.entered.set()
        await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return await self._store.update(obj)


@asynccontextmanager
async def gated_allocator(url: str) -> AsyncIterator[tuple[Allocator, GatedStore]]:
    """A live allocator (its informer follows the store) whose claims wait at a gate."""
    client = connect(url, name="gated")
    store = RedisStore(client, GameServer)
    gated = GatedStore(store)
    informer = Informer(store)
    allocator = Allocator(cast(Any, gated), informer, rng=random.Random(7))
    task = asyncio.create_task(informer.run())
    try:
        await allocator.wait_ready()
        yield allocator, gated
    finally:
        allocator.close()
        await cancel_and_wait(task)
        await client.aclose()


async def test_a_server_being_claimed_is_out_of_the_index_until_the_claim_lands(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    """Concurrent requests do not keep probing the servers this process is claiming: a server is held
    out of the index while its claim is in flight, and comes back Allocated when it lands."""
    await ready(RedisStore(redis_client, GameServer), 3)
    async with gated_allocator(redis_server.url) as (allocator, gated):
        claim = asyncio.create_task(allocator.allocate(spec("a")))
        await gated.entered.wait()
        (held,) = {f"gs-{i}" for i in range(3)} - set(allocator.index.servers)
        assert allocator.index.count(GameServerState.READY) == 2
        gated.gate.set()
        status = await claim
        assert status.game_server_name == held
        assert allocator.index.servers[held].state is GameServerState.ALLOCATED


async def test_a_claim_that_fails_without_a_verdict_puts_its_server_back(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    """The store did not answer (the write may or may not have landed): the server goes back into the
    index as it was chosen, for the watch to correct if the write did land."""
    await ready(RedisStore(redis_client, GameServer), 1)
    async with gated_allocator(redis_server.url) as (allocator, gated):
        chosen = allocator.index.servers["gs-0"]
        gated.failure = BackendError("redis: connection lost")
        gated.gate.set()
        with pytest.raises(BackendError):
            await allocator.allocate(spec("a"))
        assert allocator.index.servers.get("gs-0") is chosen
        assert allocator.index.count(GameServerState.READY) == 1


async def test_a_server_deleted_during_its_claim_is_not_put_back(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    """A change that reached the watch while the claim was in flight stands: a server deleted
    meanwhile is not put back into the index when the claim then fails."""
    store = RedisStore(redis_client, GameServer)
    await ready(store, 1)
    async with gated_allocator(redis_server.url) as (allocator, gated):
        claim = asyncio.create_task(allocator.allocate(spec("a")))
        await gated.entered.wait()
        await store.delete("gs-0")
        await eventually(lambda: "gs-0" not in allocator.informer.cache, within=5)
        gated.failure = BackendError("redis: connection lost")
        gated.gate.set()
        with pytest.raises(BackendError):
            await claim
        assert "gs-0" not in allocator.index.servers
        assert allocator.index.count(GameServerState.READY) == 0


class LaggingStore:
    """The real store, its watch delivering one change per permit once ``lagging``: a watch slower
    than the allocator's own claims, deterministically."""

    def __init__(self, store: RedisStore[GameServer]) -> None:
        self._store = store
        self.lagging = False
        self.permits = asyncio.Semaphore(0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def watch(self, since: str) -> AsyncIterator[WatchEvent[GameServer]]:
        async for event in self._store.watch(since):
            if self.lagging:
                await self.permits.acquire()
            yield event


def room_spec() -> GameServerAllocationSpec:
    """High density: an Allocated server with a free room, else a Ready one; take a room."""
    fleet = {FLEET_LABEL: "arena"}
    rooms = {"rooms": {"minAvailable": 1}}
    return decode_allocation(
        {
            "spec": {
                "selectors": [
                    {"matchLabels": fleet, "gameServerState": "Allocated", "counters": rooms},
                    {"matchLabels": fleet, "counters": rooms},
                ],
                "counters": {"rooms": {"action": "Increment", "amount": 1}},
            }
        }
    ).spec


async def test_a_late_echo_of_an_earlier_claim_does_not_undo_a_later_one(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    """Two rooms claimed on one server before the watch brought the first claim back: when it does,
    the index keeps the second claim (it used to go back to the first one's counters, and the third
    room's claim then lost to this process's own second one: a 429 with a room free)."""
    client = connect(redis_server.url, name="lagging")
    store = RedisStore(client, GameServer)
    spec = GameServerSpec(counters={"rooms": CounterStatus(count=0, capacity=3)})
    created = await store.create(
        GameServer(metadata=ObjectMeta(name="arena-a", labels={FLEET_LABEL: "arena"}), spec=spec)
    )
    status = initial_status(spec, created.status)
    ready = evolve(status, state=GameServerState.READY, node_name="n1", address="10.0.0.1")
    await store.update(evolve(created, status=ready))
    lagging = LaggingStore(store)
    informer = Informer(cast(Any, lagging))
    allocator = Allocator(store, informer, rng=random.Random(3))
    task = asyncio.create_task(informer.run())
    try:
        await allocator.wait_ready()
        await eventually(lambda: allocator.index.count(GameServerState.READY) == 1, within=5)
        lagging.lagging = True
        first = await allocator.allocate(room_spec())
        second = await allocator.allocate(room_spec())
        assert first.state is second.state is AllocationState.ALLOCATED
        assert second.counters["rooms"].count == 2
        lagging.permits.release()  # the first claim comes back, late
        await eventually(lambda: informer.cache["arena-a"].status.counters["rooms"].count == 1, within=5)
        assert allocator.index.servers["arena-a"].status.counters["rooms"].count == 2
        third = await allocator.allocate(room_spec())
        assert third.state is AllocationState.ALLOCATED, third
        assert third.counters["rooms"].count == 3
        for _ in range(4):
            lagging.permits.release()
        await eventually(lambda: informer.cache["arena-a"].status.counters["rooms"].count == 3, within=5)
        assert allocator.index.servers["arena-a"].status.counters["rooms"].count == 3
        assert (await allocator.allocate(room_spec())).state is AllocationState.UNALLOCATED  # all three taken
    finally:
        allocator.close()
        await cancel_and_wait(task)
        await client.aclose()
