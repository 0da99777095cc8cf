"""A store outage that no read of the node heartbeats sees fail, against a real Redis: the store
pauses (``CLIENT PAUSE``) for longer than the node lease, so a poll in flight just answers late, as
a redis-py client retrying a lost connection does across a short restart. No node could renew
meanwhile: the allocator and the node controller must give every node a fresh lease, not fence
them (or mark their servers Unhealthy) all at once. The allocator did: an allocation right after
an external Redis came back was answered 429."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest
import redis.asyncio as aioredis

from allocator.allocation import Allocator
from allocator.controllers.nodes import NodeController
from fleetmatch.backends.base import Backend
from fleetmatch.models import FLEET_LABEL, GameServer, GameServerState, ObjectMeta, PortStatus
from fleetmatch.nodes import NODE_BOOT_ANNOTATION
from fleetmatch.tasks import cancel_and_wait
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)
LEASE = 2.0
PAUSE = 5.0


async def a_server_on_node_a(backend: Backend) -> None:
    assert backend.nodes is not None
    await backend.nodes.heartbeat("node-a", boot="b1", address="127.0.0.1", capacity=10)
    meta = ObjectMeta(name="a-1", labels={FLEET_LABEL: "arena"}, annotations={NODE_BOOT_ANNOTATION: "b1"})
    created = await backend.gameservers.create(GameServer(metadata=meta))
    ready = created.with_status(
        state=GameServerState.READY, node_name="node-a", address="127.0.0.1", ports=(PortStatus("default", 7000),)
    )
    await backend.gameservers.update(replace(created, status=ready.status))


async def test_a_heartbeat_read_that_spans_a_store_pause_gives_every_node_a_fresh_lease(
    backend: Backend, redis_client: aioredis.Redis
) -> None:
    assert backend.nodes is not None
    await a_server_on_node_a(backend)
    informer = backend.informer(GameServer)
    allocator = Allocator(backend.gameservers, informer, nodes=backend.nodes, node_lease=LEASE)
    tasks = [asyncio.create_task(allocator.follow_nodes(period=0.1))]
    try:
        await eventually(lambda: allocator.ready and "a-1" in allocator.index.servers, within=10)
        await backend.nodes.heartbeat("node-a", boot="b1", address="127.0.0.1", capacity=10)
        await redis_client.client_pause(int(PAUSE * 1000), all=True)
        paused_at = time.monotonic()
        fenced_at = None
        # From the pause until half a lease after it: the node's record is PAUSE seconds old, but
        # nobody could have renewed it; only a silence after the store answers again counts.
        while time.monotonic() < paused_at + PAUSE + LEASE / 2:
            if "a-1" in allocator.index.fenced and fenced_at is None:
                fenced_at = time.monotonic() - paused_at
            await asyncio.sleep(0.02)
        assert fenced_at is None, f"node-a fenced {fenced_at:.2f}s after the store paused"
        # The grace is one lease from the store's return, not forever: a silent node is fenced then.
        await eventually(lambda: "a-1" in allocator.index.fenced, within=2 * LEASE + 2)
    finally:
        await cancel_and_wait(*tasks)


async def test_the_node_controller_evicts_nobody_for_a_store_pause(
    backend: Backend, redis_client: aioredis.Redis
) -> None:
    assert backend.nodes is not None
    await a_server_on_node_a(backend)
    controller = NodeController(backend, lease_seconds=LEASE, resync_seconds=0.1)
    task = asyncio.create_task(controller.run())

    async def state() -> GameServerState:
        return (await backend.gameservers.get("a-1")).state

    try:
        await eventually(lambda: "a-1" in controller.informer.cache, within=10)
        await asyncio.sleep(0.5)  # a few reconciles: the node is live
        await backend.nodes.heartbeat("node-a", boot="b1", address="127.0.0.1", capacity=10)
        await redis_client.client_pause(int(PAUSE * 1000), all=True)
        paused_at = time.monotonic()
        while time.monotonic() < paused_at + PAUSE + LEASE / 2:  # a read blocks until the pause ends
            seen = await state()
            assert seen is GameServerState.READY, f"{seen} {time.monotonic() - paused_at:.2f}s after the pause began"
            await asyncio.sleep(0.05)
        await eventually(lambda: _is(state, GameServerState.UNHEALTHY), within=2 * LEASE + 2)  # a lease later
    finally:
        await cancel_and_wait(task)


async def _is(state: Callable[[], Awaitable[GameServerState]], expected: GameServerState) -> bool:
    return await state() is expected
