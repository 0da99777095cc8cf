"""An allocator process stalled (SIGSTOP) with requests in flight whose clients time out and hang
up, then resumed (SIGCONT): nothing is claimed for the clients that gave up, no server is handed
out twice, and their retries with the same idempotency key, to the resumed allocator or another
one, get one server each, the same every time."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from fleetmatch.allocation import ALLOCATION_KEY_ANNOTATION
from fleetmatch.backends.redis.embedded import EmbeddedRedis, free_port
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.models import FLEET_LABEL, GameServer, GameServerState, ObjectMeta, PortStatus
from tests.faults.world import World
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
TOKEN = "fault-allocator-stall-token-0123456789"
SERVERS = 10
STALLED = 4
CLIENT_TIMEOUT = 1.5
STALL_SECONDS = 4.0
BODY = {"spec": {"selectors": [{"matchLabels": {FLEET_LABEL: "arena"}}]}}


@pytest.fixture
async def world(redis_server: EmbeddedRedis, redis_client: aioredis.Redis, tmp_path: Path) -> AsyncIterator[World]:
    world = World(redis_server.url, tmp_path, FLEETMATCH_ALLOCATOR_TOKEN=TOKEN)
    try:
        yield world
    finally:
        for proc in world.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        await asyncio.to_thread(world.stop_all)


async def ready_records(store: RedisStore[GameServer], n: int) -> None:
    """Ready GameServers as records only (no game processes): all an allocator needs."""
    for i in range(n):
        gs = GameServer(metadata=ObjectMeta(name=f"arena-{i:02d}", labels={FLEET_LABEL: "arena"}))
        created = await store.create(gs)
        status = replace(created.status, state=GameServerState.READY, address="127.0.0.1")
        await store.update(replace(created, status=replace(status, ports=(PortStatus("default", 7000 + i),))))


async def allocate(http: aiohttp.ClientSession, url: str, key: str, patience: float = 10.0) -> tuple[int, str | None]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": key}
    async with http.post(
        f"{url}/v1/allocations", json=BODY, headers=headers, timeout=aiohttp.ClientTimeout(total=patience)
    ) as resp:
        doc = await resp.json()
        return resp.status, doc["status"]["gameServerName"] if resp.status == 201 else None


async def test_a_stalled_allocator_claims_nothing_for_clients_that_gave_up(
    world: World, redis_client: aioredis.Redis
) -> None:
    store = RedisStore(redis_client, GameServer)
    await ready_records(store, SERVERS)
    ports = [free_port(), free_port()]
    stalled, _ = (world.start("allocator", "--port", str(port)) for port in ports)
    urls = [f"http://127.0.0.1:{port}" for port in ports]

    async with aiohttp.ClientSession() as http:

        async def ready(url: str) -> bool:
            try:
                async with http.get(f"{url}/readyz") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        for url in urls:
            await eventually(lambda url=url: ready(url), within=30)

        stalled.send_signal(signal.SIGSTOP)
        try:
            gave_up = await asyncio.gather(
                *(allocate(http, urls[0], f"match-{i}", patience=CLIENT_TIMEOUT) for i in range(STALLED)),
                return_exceptions=True,
            )
            assert all(isinstance(r, TimeoutError) for r in gave_up), gave_up  # every client hung up
            await asyncio.sleep(STALL_SECONDS - CLIENT_TIMEOUT)
        finally:
            stalled.send_signal(signal.SIGCONT)

        await eventually(lambda: ready(urls[0]), within=30)
        await asyncio.sleep(1.0)  # the requests it found on resuming are answered by now (to nobody)
        items, _ = await store.list()
        assert [g.name for g in items if g.state is GameServerState.ALLOCATED] == []

        # The clients retry with their keys, on both allocators at once, twice.
        retries = await asyncio.gather(*(allocate(http, url, f"match-{i}") for i in range(STALLED) for url in urls * 2))
        by_key: dict[str, set[str | None]] = {}
        for n, (status, name) in enumerate(retries):
            assert status in (201, 409), (status, name)  # 409: its twin is being served; retry
            if status == 201:
                by_key.setdefault(f"match-{n // 4}", set()).add(name)
        for i in range(STALLED):  # settle the 409s: every key now answers, always with one server
            for url in urls:
                status, name = await allocate(http, url, f"match-{i}")
                assert status == 201
                by_key.setdefault(f"match-{i}", set()).add(name)
        assert all(len(names) == 1 for names in by_key.values()), by_key
        assert len({next(iter(names)) for names in by_key.values()}) == STALLED  # a server per key

    items, _ = await store.list()
    claimed = {
        g.name: g.metadata.annotations.get(ALLOCATION_KEY_ANNOTATION)
        for g in items
        if g.state is GameServerState.ALLOCATED
    }
    assert sorted(str(key) for key in claimed.values()) == [
        f"match-{i}" for i in range(STALLED)
    ]  # none twice, none for nobody
    assert {
        f"match-{i}": {name} for name, key in claimed.items() for i in range(STALLED) if key == f"match-{i}"
    } == by_key
