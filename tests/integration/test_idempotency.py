"""Idempotent allocations across allocator processes, and requests whose client went away.

Allocators here are separate instances on one Redis, each with its own connection, informer and
reservation holder, as separate processes would be. The stale ones read the store once and stopped
watching: the worst case, where no allocator ever sees the other's claim and only the key's
reservation keeps them from both claiming.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis

from allocator.allocation import Allocator, KeyReservations, LeaseReservations
from allocator.errors import ClientGoneError, KeyInUseError
from fleetmatch.allocation import (
    ALLOCATION_KEY_ANNOTATION,
    AllocationKey,
    AllocationState,
    GameServerAllocationSpec,
    GameServerAllocationStatus,
    GameServerSelector,
    request_digest,
)
from fleetmatch.backends.redis.client import connect
from fleetmatch.backends.redis.embedded import EmbeddedRedis
from fleetmatch.backends.redis.lease import RedisLease
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.informer import Informer
from fleetmatch.models import FLEET_LABEL, GameServer, GameServerState, ObjectMeta, TemplateMeta
from fleetmatch.tasks import cancel_and_wait
from tests.waiting import eventually

SPEC = GameServerAllocationSpec(selectors=(GameServerSelector.for_fleet("arena"),))
KEY = AllocationKey("match-1", request_digest({"selectors": [{"matchLabels": {FLEET_LABEL: "arena"}}]}))


async def ready(store: RedisStore[GameServer], n: int) -> None:
    for i in range(n):
        gs = GameServer(metadata=ObjectMeta(name=f"gs-{i}", labels={FLEET_LABEL: "arena"}))
        await store.create(gs.with_status(state=GameServerState.READY, node_name="n1", address="10.0.0.1"))


@asynccontextmanager
async def allocator(url: str, holder: str, *, stale: bool, reserve: bool = True) -> AsyncIterator[Allocator]:
    """An allocator with its own connection and reservation holder (a process of its own); a stale
    one read the store once and stopped watching."""
    client = connect(url, name=holder)
    store = RedisStore(client, GameServer)
    informer = Informer(store)
    reservations: KeyReservations | None = None
    if reserve:
        reservations = LeaseReservations(lambda name, ttl: RedisLease(client, name, holder, ttl=ttl))
    alloc = Allocator(store, informer, rng=random.Random(holder), reservations=reservations, key_wait=0.3)
    task = asyncio.create_task(informer.run())
    await informer.synced.wait()
    if stale:
        await cancel_and_wait(task)
    try:
        yield alloc
    finally:
        await cancel_and_wait(task)
        alloc.close()
        await client.aclose()


async def outcome(alloc: Allocator, key: AllocationKey = KEY) -> GameServerAllocationStatus | str:
    try:
        return await alloc.allocate(SPEC, key=key)
    except KeyInUseError:
        return "in use"


async def allocated(store: RedisStore[GameServer]) -> list[GameServer]:
    items, _ = await store.list()
    return [g for g in items if g.state is GameServerState.ALLOCATED]


@pytest.mark.parametrize("round_", range(5))
async def test_two_stale_allocators_racing_one_key_claim_once(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis, round_: int
) -> None:
    store = RedisStore(redis_client, GameServer)
    await ready(store, 4)
    async with (
        allocator(redis_server.url, f"a{round_}", stale=True) as a,
        allocator(redis_server.url, f"b{round_}", stale=True) as b,
    ):
        results = await asyncio.gather(outcome(a), outcome(b))
    claimed = await allocated(store)
    assert len(claimed) == 1, [g.name for g in claimed]
    assert claimed[0].metadata.annotations[ALLOCATION_KEY_ANNOTATION] == "match-1"
    won = [r for r in results if isinstance(r, GameServerAllocationStatus)]
    assert [r.game_server_name for r in won] == [claimed[0].name]
    assert results.count("in use") == 1  # the other saw no claim (stale) and said so: retry


async def test_live_allocators_racing_one_key_all_get_the_same_server(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    store = RedisStore(redis_client, GameServer)
    await ready(store, 6)
    async with (
        allocator(redis_server.url, "a", stale=False) as a,
        allocator(redis_server.url, "b", stale=False) as b,
        allocator(redis_server.url, "c", stale=False) as c,
    ):
        results = await asyncio.gather(*(outcome(x) for _ in range(4) for x in (a, b, c)))
        claimed = await allocated(store)
        assert len(claimed) == 1
        answered = {r.game_server_name for r in results if isinstance(r, GameServerAllocationStatus)}
        assert answered == {claimed[0].name}
        # Later retries, from any of them, get that server too.
        for x in (a, b, c):
            again = await x.allocate(SPEC, key=KEY)
            assert again.state is AllocationState.ALLOCATED and again.game_server_name == claimed[0].name
    assert len(await allocated(store)) == 1


async def test_one_key_with_another_request_body_is_refused(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    store = RedisStore(redis_client, GameServer)
    await ready(store, 2)
    async with allocator(redis_server.url, "a", stale=False) as a:
        await a.allocate(SPEC, key=KEY)
        with pytest.raises(Exception) as info:
            await a.allocate(SPEC, key=AllocationKey(KEY.value, "another-digest"))
        assert getattr(info.value, "field", None) == "Idempotency-Key"


async def test_high_density_keeps_the_keys_of_every_room(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    store = RedisStore(redis_client, GameServer)
    await ready(store, 2)
    rooms = GameServerAllocationSpec(
        selectors=(
            GameServerSelector(match_labels={FLEET_LABEL: "arena"}, game_server_state=GameServerState.ALLOCATED),
            GameServerSelector.for_fleet("arena"),
        )
    )
    async with allocator(redis_server.url, "a", stale=False) as a:
        first = await a.allocate(rooms, key=AllocationKey("room-1", "d"))
        second = await a.allocate(rooms, key=AllocationKey("room-2", "d"))
        assert first.game_server_name == second.game_server_name  # the second room on the same server
        assert (await a.allocate(rooms, key=AllocationKey("room-1", "d"))).game_server_name == first.game_server_name
    gs = await store.get(first.game_server_name)
    assert gs.metadata.annotations[ALLOCATION_KEY_ANNOTATION] == "room-2 room-1"


async def test_a_request_whose_client_is_gone_claims_nothing_and_frees_its_key(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    store = RedisStore(redis_client, GameServer)
    await ready(store, 2)
    async with (
        allocator(redis_server.url, "a", stale=False) as a,
        allocator(redis_server.url, "b", stale=False) as b,
    ):
        with pytest.raises(ClientGoneError):
            await a.allocate(SPEC, key=KEY, abandoned=lambda: True)
        assert await allocated(store) == []
        # The key's reservation went with it: a retry elsewhere is served at once, not after its TTL.
        retried = await b.allocate(SPEC, key=KEY)
        assert retried.state is AllocationState.ALLOCATED
        await eventually(lambda: a._replay(KEY) is not None)
        assert (await a.allocate(SPEC, key=KEY)).game_server_name == retried.game_server_name
    assert len(await allocated(store)) == 1


async def test_a_server_back_in_ready_no_longer_answers_its_old_key(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    store = RedisStore(redis_client, GameServer)
    await ready(store, 1)
    async with allocator(redis_server.url, "a", stale=False) as a:
        first = await a.allocate(SPEC, key=KEY)
        gs = await store.get(first.game_server_name)
        await store.update(gs.with_status(state=GameServerState.READY))  # the game made itself Ready again
        await eventually(lambda: a._replay(KEY) is None)
        again = await a.allocate(
            GameServerAllocationSpec(selectors=SPEC.selectors, metadata=TemplateMeta(labels={"m": "2"})),
            key=AllocationKey("match-2", "d2"),
        )
        assert again.state is AllocationState.ALLOCATED
    stored = await store.get(first.game_server_name)
    assert stored.metadata.annotations[ALLOCATION_KEY_ANNOTATION] == "match-2"  # the old key is gone
