"""The backend seam: one shared informer per kind for every component of a process, leases, engines."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from allocator.app import serve_allocator
from allocator.controllers.autoscaler import AutoscalerController
from allocator.controllers.fleet import FleetController
from allocator.nodeagent import NodeAgent
from fleetmatch.backends import open_backend
from fleetmatch.backends.base import Backend
from fleetmatch.backends.memory import MemoryLease
from fleetmatch.backends.redis.embedded import EmbeddedRedis
from fleetmatch.errors import ConfigError
from fleetmatch.models import FLEET_LABEL, GameServer, GameServerState, ObjectMeta
from fleetmatch.settings import AllocatorSettings, NodeSettings, RedisSettings, Settings
from fleetmatch.store import EventType, WatchEvent
from fleetmatch.tasks import cancel_and_wait
from sdk_sidecar import SdkHost
from tests.waiting import eventually


async def xread_clients(client: aioredis.Redis) -> int:
    """Connections blocked in (or last running) XREAD: one per watch."""
    clients = await client.client_list()
    return sum(1 for c in clients if c.get("cmd") == "xread")


def watches(client: aioredis.Redis, expected: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await xread_clients(client) == expected

    return check


async def test_every_component_of_a_process_shares_one_watch_per_kind(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path, redis=RedisSettings(url=redis_server.url), node=NodeSettings(port_min=7600, port_max=7610)
    )
    async with open_backend(settings, client_name="one-process") as backend:
        host = SdkHost(backend.gameservers, settings.sdk)
        agent = NodeAgent(backend, settings, host, environ=dict(os.environ))
        tasks = [
            asyncio.create_task(agent.run(), name="test.agent"),
            asyncio.create_task(FleetController(backend).run(), name="test.fleets"),
            asyncio.create_task(AutoscalerController(backend).run(), name="test.autoscaler"),
        ]
        try:
            async with serve_allocator(backend, AllocatorSettings(port=0), "t" * 16):
                # GameServers, Fleets, FleetAutoscalers: three watches for five components.
                await eventually(watches(redis_client, 3), what=lambda: "three watches")
                await asyncio.sleep(0.3)
                assert await xread_clients(redis_client) == 3
        finally:
            await cancel_and_wait(*tasks)
    await eventually(watches(redis_client, 0), what=lambda: "no watch left")


async def test_a_late_handler_sees_what_the_informer_has_then_every_change(backend: Backend) -> None:
    await backend.gameservers.create(GameServer(metadata=ObjectMeta(name="early", labels={FLEET_LABEL: "a"})))
    informer = backend.informer(GameServer)
    assert backend.informer(GameServer) is informer
    await informer.synced.wait()
    seen: list[tuple[EventType, str]] = []

    def record(event: WatchEvent[GameServer]) -> None:
        seen.append((event.type, event.object.name))

    remove = informer.add_handler(record)
    assert seen == [(EventType.ADDED, "early")]
    late = await backend.gameservers.create(GameServer(metadata=ObjectMeta(name="late")))
    await eventually(lambda: (EventType.ADDED, "late") in seen)
    remove()
    await backend.gameservers.update(late.with_status(state=GameServerState.READY))
    await eventually(lambda: informer.cache["late"].state is GameServerState.READY)
    assert seen == [(EventType.ADDED, "early"), (EventType.ADDED, "late")]


async def test_closing_the_backend_stops_its_informers(backend: Backend) -> None:
    informer = backend.informer(GameServer)
    await informer.synced.wait()
    await backend.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        backend.informer(GameServer)


async def test_engines_by_settings(tmp_path: Path) -> None:
    async with open_backend(Settings(data_dir=tmp_path, backend="memory")) as memory:
        created = await memory.gameservers.create(GameServer(metadata=ObjectMeta(name="m")))
        assert (await memory.gameservers.get("m")) == created
        ours = memory.lease("controllers")
        assert isinstance(ours, MemoryLease)
        theirs = MemoryLease(ours.server, "controllers", "another-process")
        assert await ours.acquire() and not await theirs.acquire()
        await ours.release()
        assert await theirs.acquire()
    with pytest.raises(ConfigError, match="REDIS_URL"):
        async with open_backend(Settings(data_dir=tmp_path, backend="redis")):
            pass


async def test_taken_tells_whether_anyone_holds_a_lease(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    """``Lease.taken`` (one read, no write) on Redis and on the memory engine: free, held by another
    process, released, and lapsed after its TTL without renewal."""
    settings = Settings(data_dir=tmp_path, redis=RedisSettings(url=redis_server.url))
    async with open_backend(settings) as redis_backend, open_backend(replace(settings, backend="memory")) as memory:
        for backend in (redis_backend, memory):
            ours = backend.lease("allocator-slot-7", ttl=0.3)
            theirs = backend._leases("allocator-slot-7", "another-process", 0.3)
            assert not await theirs.taken()
            assert await ours.acquire()
            assert await theirs.taken() and await ours.taken()
            await ours.release()
            assert not await theirs.taken()
            assert await theirs.acquire()
            await asyncio.sleep(0.45)  # not renewed: lapsed
            assert not await ours.taken(), backend.engine
