"""A node agent SIGKILLed with its games (a host lost): its servers stop being allocated once its
heartbeat lapses, are marked Unhealthy with the reason, and the fleet replaces them on a live node.
A node agent that restarts (a new boot) never gets the dead run's servers handed out either."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from allocator.app import AllocatorService, serve_allocator
from allocator.fleetops import apply_fleet
from fleetmatch.allocation import AllocationState, GameServerAllocationSpec, GameServerSelector
from fleetmatch.backends.base import Backend
from fleetmatch.backends.redis.embedded import EmbeddedRedis
from fleetmatch.models import ERROR_ANNOTATION, GameServer, GameServerState
from fleetmatch.settings import AllocatorSettings
from tests.faults.world import REPO, World, ready_on, udp_fleet, wait_for
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]
LEASE = "2"
SPEC = GameServerAllocationSpec(selectors=(GameServerSelector.for_fleet("arena"),))


@pytest.fixture
async def world(redis_server: EmbeddedRedis, redis_client: aioredis.Redis, tmp_path: Path) -> AsyncIterator[World]:
    world = World(redis_server.url, tmp_path, FLEETMATCH_NODE_LEASE_SECONDS=LEASE)
    try:
        yield world
    finally:
        await asyncio.to_thread(world.stop_all)


@pytest.fixture
async def allocator(backend: Backend) -> AsyncIterator[AllocatorService]:
    """The allocation API in this process, following node heartbeats with the same lease."""
    async with serve_allocator(backend, AllocatorSettings(port=0), "t" * 16, node_lease=float(LEASE)) as service:
        yield service


async def test_a_lost_nodes_servers_are_not_allocated(
    world: World, backend: Backend, allocator: AllocatorService
) -> None:
    """No node controller runs here: only the allocator's own view of the heartbeats protects players."""
    await apply_fleet(backend.fleets, udp_fleet("arena", 3))
    fleet_controller = world.start("controller", FLEETMATCH_NODE_LEASE_SECONDS="3600")  # never evicts
    node_a = world.node_agent("node-a", "7800-7819")
    items = await wait_for(backend.gameservers, lambda gs: len(ready_on(gs, "node-a")) == 3)
    doomed = {g.name for g in ready_on(items, "node-a")}
    await eventually(lambda: len(allocator.allocator.index.in_state(GameServerState.READY)) == 3)

    world.kill_with_games(node_a)
    await eventually(lambda: doomed <= set(allocator.allocator.index.fenced), within=15, what=lambda: "fenced")
    results = [await allocator.allocator.allocate(SPEC) for _ in range(5)]
    assert {r.state for r in results} == {AllocationState.UNALLOCATED}  # the dead servers were not handed out
    stored = {g.name: g for g in (await backend.gameservers.list())[0]}
    assert all(stored[n].state is GameServerState.READY for n in doomed)  # nobody evicted them: fencing did it
    fleet_controller.kill()


async def test_a_lost_node_is_marked_not_ready_its_servers_replaced_elsewhere(
    world: World, backend: Backend, allocator: AllocatorService
) -> None:
    await apply_fleet(backend.fleets, udp_fleet("arena", 3))
    world.start("controller")
    node_a = world.node_agent("node-a", "7800-7819")
    items = await wait_for(backend.gameservers, lambda gs: len(ready_on(gs, "node-a")) == 3)
    doomed = {g.name for g in ready_on(items, "node-a")}
    world.node_agent("node-b", "7820-7839")

    world.kill_with_games(node_a)
    after = await wait_for(backend.gameservers, lambda gs: len(ready_on(gs, "node-b")) == 3)
    for gs in after:
        assert gs.name not in doomed or gs.state is GameServerState.UNHEALTHY
    # The store has them Ready; the allocator learns it from its watch, a moment later.
    await eventually(lambda: len(allocator.allocator.index.on_node("node-b", GameServerState.READY)) == 3)
    claims = [await allocator.allocator.allocate(SPEC) for _ in range(3)]
    assert [(c.state, c.node_name) for c in claims] == [(AllocationState.ALLOCATED, "node-b")] * 3

    assert backend.events is not None
    node_events = await backend.events.list("Node", "node-a")
    assert [e.reason for e in node_events] == ["NodeNotReady"]
    evicted = [e for e in await backend.events.list(GameServer.KIND) if e.name in doomed]
    assert {e.name for e in evicted} == doomed and all("heartbeat" in e.message for e in evicted)

    listing = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "fleetmatch", "node", "list", "-o", "json"],
        cwd=REPO,
        env=world.env,
        capture_output=True,
        text=True,
        check=True,
    )
    nodes = {n["name"]: n for n in json.loads(listing.stdout)["items"]}
    assert not nodes["node-a"]["ready"] and nodes["node-b"]["ready"]
    assert nodes["node-b"]["gameServers"] == {"Allocated": 3}  # the three claims above


async def test_a_restarted_node_agents_old_servers_are_never_handed_out(
    world: World, backend: Backend, allocator: AllocatorService
) -> None:
    """SIGKILL and restart at once (well within the lease): the heartbeat never lapses, but the new
    run's boot id differs, so once it has announced itself the old run's servers are fenced until
    the new run deals with them. (Between the kill and that first heartbeat nothing can know the
    games died: that window is the lease's, covered by the tests above.)"""
    await apply_fleet(backend.fleets, udp_fleet("arena", 3))
    world.start("controller")
    node_a = world.node_agent("node-a", "7800-7819")
    items = await wait_for(backend.gameservers, lambda gs: len(ready_on(gs, "node-a")) == 3)
    dead = {g.name for g in ready_on(items, "node-a")}

    assert backend.nodes is not None
    (before,), _ = await backend.nodes.list()
    world.kill_with_games(node_a)
    world.node_agent("node-a", "7800-7819")

    async def new_boot_seen() -> bool:
        assert backend.nodes is not None
        (record,), _ = await backend.nodes.list()
        index = allocator.allocator.index
        return record.boot != before.boot and not dead & set(index.in_state(GameServerState.READY))

    await eventually(new_boot_seen, within=30, what=lambda: "the restarted agent announced itself")
    claims = []
    async with asyncio.timeout(60):
        while True:
            claim = await allocator.allocator.allocate(SPEC)
            if claim.state is AllocationState.ALLOCATED:
                claims.append(claim)
                if len(claims) == 3:
                    break
            await asyncio.sleep(0.05)
    assert not dead & {c.game_server_name for c in claims}
    stored = {g.name: g for g in (await backend.gameservers.list())[0]}
    for name in dead & set(stored):
        assert stored[name].state is GameServerState.UNHEALTHY
        assert "lost" in stored[name].metadata.annotations[ERROR_ANNOTATION]
