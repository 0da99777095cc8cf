"""The local fleet on a real Redis, in-process: node agent + SDK host + fleet controller, running
real game processes. Health failure, SIGKILL, Shutdown and exits each end in a replacement;
scale-down never touches an Allocated server; two agents never run one server twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from allocator.backends.redis import RedisStore
from allocator.controllers.fleet import FleetController
from allocator.fleetops import apply_fleet
from allocator.nodeagent import ERROR_ANNOTATION, NodeAgent
from fleetmatch.models import (
    Fleet,
    FleetSpec,
    GameServer,
    GameServerSpec,
    GameServerState,
    GameServerTemplate,
    Health,
    ObjectMeta,
    ProcessTemplate,
)
from fleetmatch.settings import NodeSettings, SdkSettings, Settings
from fleetmatch.store import EventType, WatchEvent
from fleetmatch.tasks import cancel_and_wait
from sdk_sidecar import SdkHost

REPO = Path(__file__).resolve().parents[2]
S = GameServerState
pytestmark = pytest.mark.timeout(90)


def example_game(**env: str) -> ProcessTemplate:
    return ProcessTemplate(("python", "-m", "examples.udp_game.server"), env=env, working_dir=str(REPO))


def misbehaving(mode: str, delay: float = 0.5) -> ProcessTemplate:
    return ProcessTemplate(
        ("python", "-m", "tests.games.misbehaving"),
        env={"GAME_MODE": mode, "GAME_DELAY": str(delay)},
        working_dir=str(REPO),
        termination_grace_seconds=2,
    )


def make_fleet(name: str, replicas: int, process: ProcessTemplate, health: Health | None = None) -> Fleet:
    spec = GameServerSpec(process=process, health=health or Health(period_seconds=2, initial_delay_seconds=2))
    return Fleet(
        metadata=ObjectMeta(name=name),
        spec=FleetSpec(replicas=replicas, template=GameServerTemplate(spec=spec)),
    )


@dataclass
class Stack:
    gameservers: RedisStore[GameServer]
    fleets: RedisStore[Fleet]
    agents: list[NodeAgent]
    events: list[WatchEvent[GameServer]]

    async def wait(self, predicate: Callable[[list[GameServer]], bool], within: float = 45) -> list[GameServer]:
        async with asyncio.timeout(within):
            while True:
                items, _ = await self.gameservers.list()
                if predicate(items):
                    return items
                await asyncio.sleep(0.05)

    async def ready(self, fleet: str, n: int) -> list[GameServer]:
        items = await self.wait(lambda gs: sum(g.fleet == fleet and g.state is S.READY for g in gs) == n)
        return [g for g in items if g.fleet == fleet and g.state is S.READY]

    def states_of(self, name: str) -> list[GameServerState | str]:
        return [
            e.object.state if e.type is not EventType.DELETED else "DELETED"
            for e in self.events
            if e.object.name == name
        ]

    def pid_of(self, name: str) -> int:
        for agent in self.agents:
            local = agent.local.get(name)
            if local is not None and local.process is not None:
                return local.process.pid
        raise AssertionError(f"{name} runs nowhere")


def settings_for(tmp: Path, node: str, ports: tuple[int, int]) -> Settings:
    return Settings(
        data_dir=tmp,
        node=NodeSettings(name=node, port_min=ports[0], port_max=ports[1], grace_seconds=2),
        sdk=SdkSettings(write_interval=0.05, health_tick=0.1),
    )


@pytest.fixture
async def stack(redis_client, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    nodes: int = getattr(request, "param", 1)
    gameservers = RedisStore(redis_client, GameServer)
    fleets = RedisStore(redis_client, Fleet)
    agents = []
    tasks = []
    for i in range(nodes):
        settings = settings_for(tmp_path, f"node-{i}", (7700 + 50 * i, 7749 + 50 * i))
        host = SdkHost(gameservers, settings.sdk)
        agent = NodeAgent(gameservers, settings, host, environ=dict(os.environ), resync_seconds=0.5)
        agents.append(agent)
        tasks.append(asyncio.create_task(agent.run(), name=f"test.agent{i}"))
    controller = FleetController(gameservers, fleets, resync_seconds=0.5)
    tasks.append(asyncio.create_task(controller.run(), name="test.controller"))
    events: list[WatchEvent[GameServer]] = []

    async def record() -> None:
        async for event in gameservers.watch("0-0"):
            events.append(event)

    tasks.append(asyncio.create_task(record(), name="test.recorder"))
    try:
        yield Stack(gameservers, fleets, agents, events)
    finally:
        await cancel_and_wait(*tasks)


def udp_ask(port: int, message: dict[str, object]) -> dict[str, object]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        for _ in range(5):
            sock.sendto(json.dumps(message).encode(), ("127.0.0.1", port))
            try:
                reply: dict[str, object] = json.loads(sock.recvfrom(65535)[0])
                return reply
            except TimeoutError:
                continue
    raise AssertionError(f"no answer on UDP port {port}")


async def test_fleet_of_example_games_becomes_ready_and_answers(stack: Stack) -> None:
    await apply_fleet(stack.fleets, make_fleet("arena", 2, example_game()))
    ready = await stack.ready("arena", 2)
    for gs in ready:
        assert gs.status.node_name == "node-0" and gs.status.address == "127.0.0.1"
        reply = await asyncio.to_thread(udp_ask, gs.status.ports[0].port, {"t": "ping"})
        assert reply["t"] == "pong" and reply["server"] == gs.name
        # The game went through the real lifecycle: Creating → Scheduled → RequestReady → Ready.
        assert stack.states_of(gs.name)[:4] == [S.CREATING, S.SCHEDULED, S.REQUEST_READY, S.READY]
    assert len({g.status.ports[0].port for g in ready}) == 2
    fleet = await stack.fleets.get("arena")
    assert (fleet.status.replicas, fleet.status.ready_replicas) == (2, 2)


async def test_sigkilled_game_turns_unhealthy_and_is_replaced(stack: Stack) -> None:
    await apply_fleet(stack.fleets, make_fleet("arena", 2, example_game()))
    victim = (await stack.ready("arena", 2))[0]
    os.kill(stack.pid_of(victim.name), signal.SIGKILL)
    items = await stack.wait(
        lambda gs: victim.name not in {g.name for g in gs} and sum(g.state is S.READY for g in gs) == 2
    )
    assert stack.states_of(victim.name)[-2:] == [S.UNHEALTHY, "DELETED"]
    unhealthy = next(e.object for e in stack.events if e.object.name == victim.name and e.object.state is S.UNHEALTHY)
    assert "killed by SIGKILL" in unhealthy.metadata.annotations[ERROR_ANNOTATION]
    assert len(items) == 2


async def test_health_failure_turns_unhealthy_and_is_replaced(stack: Stack) -> None:
    health = Health(period_seconds=1, failure_threshold=2, initial_delay_seconds=1)
    await apply_fleet(stack.fleets, make_fleet("quiet", 1, misbehaving("silent"), health))
    first = await stack.wait(lambda gs: any(g.state is S.READY for g in gs))
    name = next(g.name for g in first if g.state is S.READY)
    await stack.wait(lambda gs: name not in {g.name for g in gs} and len(gs) == 1)
    assert S.UNHEALTHY in stack.states_of(name)
    assert stack.states_of(name)[-1] == "DELETED"


@pytest.mark.parametrize(
    ("mode", "final"),
    [("shutdown", S.SHUTDOWN), ("exit-before-shutdown-lands", S.SHUTDOWN), ("exit", S.UNHEALTHY)],
)
async def test_game_ending_is_recorded_and_replaced(stack: Stack, mode: str, final: GameServerState) -> None:
    await apply_fleet(stack.fleets, make_fleet("ends", 1, misbehaving(mode, delay=0.3)))
    first = await stack.wait(lambda gs: any(g.state is S.READY for g in gs))
    name = next(g.name for g in first if g.state is S.READY)
    await stack.wait(lambda gs: name not in {g.name for g in gs} and any(g.state is S.READY for g in gs))
    states = stack.states_of(name)
    assert final in states and S.UNHEALTHY not in states[: states.index(final)]
    if final is S.SHUTDOWN:
        assert S.UNHEALTHY not in states  # a game that asked to stop is not reported as failed


async def test_scale_down_keeps_allocated_servers_running(stack: Stack) -> None:
    await apply_fleet(stack.fleets, make_fleet("arena", 3, example_game()))
    ready = await stack.ready("arena", 3)
    chosen = ready[1]
    others = [stack.pid_of(g.name) for g in ready if g.name != chosen.name]
    await stack.gameservers.update(chosen.with_status(state=S.ALLOCATED))
    fleet = await stack.fleets.get("arena")
    await apply_fleet(stack.fleets, replace(fleet, spec=replace(fleet.spec, replicas=0)))
    items = await stack.wait(lambda gs: len(gs) == 1)
    assert [g.name for g in items] == [chosen.name] and items[0].state is S.ALLOCATED
    for _ in range(200):  # deleted servers' processes stop (SIGTERM, then the agent lets go)
        if list(stack.agents[0].local) == [chosen.name]:
            break
        await asyncio.sleep(0.05)
    assert list(stack.agents[0].local) == [chosen.name]
    for pid in others:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    reply = await asyncio.to_thread(udp_ask, chosen.status.ports[0].port, {"t": "ping"})
    assert reply["server"] == chosen.name


@pytest.mark.parametrize("stack", [2], indirect=True)
async def test_two_agents_never_run_one_server_twice(stack: Stack) -> None:
    await apply_fleet(stack.fleets, make_fleet("wide", 6, example_game()))
    ready = await stack.ready("wide", 6)
    running = [name for agent in stack.agents for name in agent.local]
    assert sorted(running) == sorted(g.name for g in ready)  # each server runs on exactly one node
    for gs in ready:
        assert gs.name in stack.agents[int(gs.status.node_name[-1])].local
    endpoints = [(g.status.node_name, g.status.ports[0].port) for g in ready]
    assert len(set(endpoints)) == 6
    scheduled = [e for e in stack.events if e.object.state is S.SCHEDULED]
    assert len(scheduled) == 6  # one successful claim per server


async def test_agent_stop_marks_its_servers_unhealthy(stack: Stack) -> None:
    await apply_fleet(stack.fleets, make_fleet("arena", 1, example_game()))
    (gs,) = await stack.ready("arena", 1)
    pid = stack.pid_of(gs.name)
    agent_task = next(t for t in asyncio.all_tasks() if t.get_name() == "test.agent0")
    await cancel_and_wait(agent_task)
    await asyncio.sleep(0.2)  # let the recorder see the last write
    marked = [e.object for e in stack.events if e.object.name == gs.name and e.object.state is S.UNHEALTHY]
    assert marked and marked[0].metadata.annotations[ERROR_ANNOTATION] == "node agent stopped"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
