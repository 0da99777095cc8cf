"""Claims racing on purpose: allocators whose views are stale all go for the same servers at
once. Exactly one claim per server lands; the losers retry elsewhere or answer UnAllocated."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from allocator.allocation import Allocator
from fleetmatch.allocation import AllocationState, GameServerAllocationSpec, GameServerSelector
from fleetmatch.backends.redis.client import connect
from fleetmatch.backends.redis.embedded import EmbeddedRedis
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.informer import Informer
from fleetmatch.models import FLEET_LABEL, GameServer, GameServerState, ObjectMeta, TemplateMeta
from fleetmatch.tasks import cancel_and_wait


async def ready(store: RedisStore[GameServer], n: int) -> None:
    for i in range(n):
        gs = GameServer(metadata=ObjectMeta(name=f"gs-{i}", labels={FLEET_LABEL: "arena"}))
        await store.create(gs.with_status(state=GameServerState.READY, node_name="n1", address="10.0.0.1"))


@asynccontextmanager
async def stale_allocator(url: str, seed: int) -> AsyncIterator[Allocator]:
    """An allocator (own connection) that read the store once and then stopped watching it."""
    client = connect(url, name=f"stale-{seed}")
    store = RedisStore(client, GameServer)
    informer = Informer(store)
    allocator = Allocator(store, informer, rng=random.Random(seed))
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
