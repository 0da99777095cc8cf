"""Allocation leases end to end on Redis: the allocation API stamps them, the loop recycles the
allocations no game confirmed, and leaves the confirmed ones alone."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import aiohttp
from prometheus_client import REGISTRY

from allocator.allocation_lease import AllocationLeaseLoop
from allocator.app import serve_allocator
from fleetmatch.backends.base import Backend
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.models import FLEET_LABEL, GameServer, GameServerState
from fleetmatch.settings import AllocatorSettings
from fleetmatch.tasks import cancel_and_wait
from tests.integration.test_allocator_api import TOKEN, ready_servers
from tests.waiting import eventually


def expired_total() -> float:
    return REGISTRY.get_sample_value("fleetmatch_allocation_leases_expired_total") or 0.0


async def test_unconfirmed_allocations_are_recycled_and_confirmed_ones_kept(
    gs_store: RedisStore[GameServer], backend: Backend
) -> None:
    await ready_servers(gs_store, 3)
    settings = AllocatorSettings(port=0, allocation_lease_seconds=0.5)
    before = expired_total()
    loop = AllocationLeaseLoop.on(backend, max_sleep=0.1)
    running = asyncio.create_task(loop.run())
    try:
        async with serve_allocator(backend, settings, TOKEN) as service, aiohttp.ClientSession() as http:
            await eventually(lambda: len(service.allocator.index) >= 3)
            names = []
            for _ in range(2):
                body = {"spec": {"selectors": [{"matchLabels": {FLEET_LABEL: "arena"}}]}}
                headers = {"Authorization": f"Bearer {TOKEN}"}
                async with http.post(f"{service.url}/v1/allocations", json=body, headers=headers) as resp:
                    assert resp.status == 201
                    names.append((await resp.json())["status"]["gameServerName"])
            confirmed, abandoned = names
            # The first one's game hears of its allocation and a player connects (as the sidecar writes it).
            gs = await gs_store.get(confirmed)
            await gs_store.update(replace(gs, metadata=replace(gs.metadata, labels={**gs.metadata.labels, "p": "1"})))

            async def recycled() -> bool:
                return (await gs_store.get(abandoned)).state is GameServerState.SHUTDOWN

            await eventually(recycled, within=10)
            assert (await gs_store.get(confirmed)).state is GameServerState.ALLOCATED
            assert expired_total() == before + 1
            events = await backend.events.list("GameServer", abandoned) if backend.events is not None else []
            assert any(e.reason == "AllocationLeaseExpired" for e in events)
            await asyncio.sleep(0.8)  # well past the first one's lease: still kept
            assert (await gs_store.get(confirmed)).state is GameServerState.ALLOCATED
    finally:
        await cancel_and_wait(running)
