"""A local fleet on the real Redis store, in-process: node agents + SDK hosts + the fleet controller,
running real game processes. Shared by the lifecycle and fleet-update tests; each test module picks
its own port range so no two modules' games ever compete for a port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

from allocator.controllers.fleet import FleetController
from allocator.nodeagent import NodeAgent
from fleetmatch.backends.redis.backend import redis_backend_on
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.models import (
    Fleet,
    FleetSpec,
    FleetStatus,
    FleetStrategy,
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
PORTS_PER_NODE = 50


def example_game(**env: str) -> ProcessTemplate:
    return ProcessTemplate(("python", "-m", "examples.udp_game.server"), env=env, working_dir=str(REPO))


def misbehaving(mode: str, delay: float = 0.5) -> ProcessTemplate:
    return ProcessTemplate(
        ("python", "-m", "tests.games.misbehaving"),
        env={"GAME_MODE": mode, "GAME_DELAY": str(delay)},
        working_dir=str(REPO),
        termination_grace_seconds=2,
    )


def make_fleet(
    name: str,
    replicas: int,
    process: ProcessTemplate,
    health: Health | None = None,
    strategy: FleetStrategy | None = None,
) -> Fleet:
    spec = GameServerSpec(process=process, health=health or Health(period_seconds=2, initial_delay_seconds=2))
    return Fleet(
        metadata=ObjectMeta(name=name),
        spec=FleetSpec(replicas=replicas, strategy=strategy or FleetStrategy(), template=GameServerTemplate(spec=spec)),
    )


@dataclass
class Stack:
    gameservers: RedisStore[GameServer]
    fleets: RedisStore[Fleet]
    agents: list[NodeAgent]
    events: list[WatchEvent[GameServer]]
    """Every GameServer change since the store was empty, in store order (a recorder appends)."""

    async def wait(self, predicate: Callable[[list[GameServer]], bool], within: float = 45) -> list[GameServer]:
        """The servers once ``predicate`` holds, with ``events`` caught up to them (the recorder's
        watch may lag the list that satisfied the predicate)."""
        async with asyncio.timeout(within):
            while True:
                items, _ = await self.gameservers.list()
                if predicate(items):
                    await self.caught_up()
                    return items
                await asyncio.sleep(0.05)

    async def ready(self, fleet: str, n: int) -> list[GameServer]:
        items = await self.wait(lambda gs: sum(g.fleet == fleet and g.state is S.READY for g in gs) == n)
        return [g for g in items if g.fleet == fleet and g.state is S.READY]

    async def caught_up(self, within: float = 5) -> None:
        """Wait until ``events`` holds every change the store has made so far."""
        _, version = await self.gameservers.list()
        async with asyncio.timeout(within):
            while True:
                if self.events and _stream_id(self.events[-1].object.metadata.resource_version) >= _stream_id(version):
                    return
                await asyncio.sleep(0.02)

    async def fleet_status(
        self, name: str, predicate: Callable[[FleetStatus], bool], within: float = 10
    ) -> FleetStatus:
        """The fleet's status once ``predicate`` holds (the controller writes it after acting)."""
        async with asyncio.timeout(within):
            while True:
                status = (await self.fleets.get(name)).status
                if predicate(status):
                    return status
                await asyncio.sleep(0.05)

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


def _stream_id(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("-"))


def settings_for(tmp: Path, node: str, ports: tuple[int, int]) -> Settings:
    return Settings(
        data_dir=tmp,
        node=NodeSettings(name=node, port_min=ports[0], port_max=ports[1], grace_seconds=2),
        sdk=SdkSettings(write_interval=0.05, health_tick=0.1),
    )


@contextlib.asynccontextmanager
async def running_stack(
    redis_client: aioredis.Redis, tmp_path: Path, *, first_port: int, nodes: int = 1
) -> AsyncIterator[Stack]:
    """Node agents ``node-0``.. (``PORTS_PER_NODE`` game ports each from ``first_port`` on), the
    fleet controller and an event recorder, all stopped on exit."""
    gameservers = RedisStore(redis_client, GameServer)
    fleets = RedisStore(redis_client, Fleet)
    agents = []
    tasks = []
    backends = []  # one per component, as if each ran in its own process
    for i in range(nodes):
        low = first_port + PORTS_PER_NODE * i
        settings = settings_for(tmp_path, f"node-{i}", (low, low + PORTS_PER_NODE - 1))
        backends.append(redis_backend_on(redis_client))
        host = SdkHost(backends[-1].gameservers, settings.sdk)
        agent = NodeAgent(backends[-1], settings, host, environ=dict(os.environ), resync_seconds=0.5)
        agents.append(agent)
        tasks.append(asyncio.create_task(agent.run(), name=f"test.agent{i}"))
    backends.append(redis_backend_on(redis_client))
    controller = FleetController(backends[-1], resync_seconds=0.5)
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
        for backend in backends:
            await backend.aclose()


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
