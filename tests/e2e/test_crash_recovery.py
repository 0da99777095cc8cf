"""Components are separate processes here, and we SIGKILL them mid-work: nothing is lost, nothing
runs twice, and the fleet converges once they come back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psutil
import pytest

from allocator.fleetops import apply_fleet
from fleetmatch.backends.redis.embedded import EmbeddedRedis
from fleetmatch.backends.redis.keys import lease_key
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.models import (
    Fleet,
    FleetSpec,
    GameServer,
    GameServerSpec,
    GameServerState,
    GameServerTemplate,
    ObjectMeta,
    ProcessTemplate,
)
from tests.faults.world import World

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]


@pytest.fixture
async def world(redis_server: EmbeddedRedis, redis_client, tmp_path: Path) -> AsyncIterator[World]:
    components = World(redis_server.url, tmp_path, FLEETMATCH_PORT_RANGE="7800-7849", FLEETMATCH_LOG_LEVEL="INFO")
    try:
        yield components
    finally:
        await asyncio.to_thread(components.stop_all)


def demo_fleet(replicas: int) -> Fleet:
    process = ProcessTemplate(("python", "-m", "examples.udp_game.server"), working_dir=str(REPO))
    spec = FleetSpec(replicas=replicas, template=GameServerTemplate(spec=GameServerSpec(process=process)))
    return Fleet(metadata=ObjectMeta(name="arena"), spec=spec)


async def wait_for(
    store: RedisStore[GameServer], predicate: Callable[[list[GameServer]], bool], within: float = 60
) -> list[GameServer]:
    async with asyncio.timeout(within):
        while True:
            items, _ = await store.list()
            if predicate(items):
                return items
            await asyncio.sleep(0.1)


def ready(items: list[GameServer]) -> list[GameServer]:
    return [g for g in items if g.state is GameServerState.READY]


async def test_sigkilled_node_agent_loses_nothing(world: World, redis_client) -> None:
    gameservers = RedisStore(redis_client, GameServer)
    await apply_fleet(RedisStore(redis_client, Fleet), demo_fleet(2))
    world.start("controller")
    agent = world.start("node-agent")
    before = ready(await wait_for(gameservers, lambda gs: len(ready(gs)) == 2))
    games = psutil.Process(agent.pid).children(recursive=True)
    assert len(games) == 2

    agent.kill()  # SIGKILL: no cleanup code runs in the agent
    agent.wait()
    _gone, alive = psutil.wait_procs(games, timeout=10)
    assert alive == []  # the game processes died with their agent (PDEATHSIG)

    world.start("node-agent")
    old = {g.name for g in before}
    after = await wait_for(gameservers, lambda gs: len(ready(gs)) == 2 and not old & {g.name for g in gs})
    assert len(after) == 2  # replaced, not duplicated


async def test_sigkilled_controller_mid_scale_up_converges_exactly(world: World, redis_client) -> None:
    gameservers = RedisStore(redis_client, GameServer)
    fleets = RedisStore(redis_client, Fleet)
    await apply_fleet(fleets, demo_fleet(1))
    controller = world.start("controller")
    world.start("node-agent")
    await wait_for(gameservers, lambda gs: len(ready(gs)) == 1)

    await apply_fleet(fleets, demo_fleet(8))
    await wait_for(gameservers, lambda gs: len(gs) >= 3, within=30)  # mid scale-up
    controller.kill()
    controller.wait()
    world.start("controller")
    items = await wait_for(gameservers, lambda gs: len(ready(gs)) == 8)
    await asyncio.sleep(1.5)  # a few more controller passes: still exactly 8
    items, _ = await gameservers.list()
    assert len(items) == 8 and len(ready(items)) == 8


async def test_standby_controller_takes_over_without_double_creating(world: World, redis_client) -> None:
    """Two controllers run; only the lease holder acts. Kill it: the standby finishes the job."""
    gameservers = RedisStore(redis_client, GameServer)
    fleets = RedisStore(redis_client, Fleet)
    world.env["FLEETMATCH_LEASE_SECONDS"] = "2"
    added: list[str] = []

    async def record() -> None:
        async for event in gameservers.watch("0-0"):
            if event.type.value == "ADDED":
                added.append(event.object.name)

    recorder = asyncio.create_task(record())
    try:
        await apply_fleet(fleets, demo_fleet(3))
        controllers = {p.pid: p for p in (world.start("controller"), world.start("controller"))}
        world.start("node-agent")
        await wait_for(gameservers, lambda gs: len(ready(gs)) == 3)
        await asyncio.sleep(1.0)  # several passes of both controllers
        assert len(added) == 3
        holder = await redis_client.get(lease_key("default", "controllers"))
        leader = controllers[int(holder.decode().rpartition("/")[2])]
        leader.kill()
        leader.wait()

        await apply_fleet(fleets, demo_fleet(5))
        items = await wait_for(gameservers, lambda gs: len(ready(gs)) == 5)
        await asyncio.sleep(1.0)
        assert len(items) == 5 and len(added) == 5  # nobody created a server twice
    finally:
        recorder.cancel()
