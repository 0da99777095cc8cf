"""Helpers of the compatibility tests: a hosted game server that uses every SDK feature, a stand-in
for the node agent's RequestReady -> Ready promotion that also records the states the store went
through, and running the official Node.js SDK (``node_sdk_client.js``) as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.models import (
    CounterStatus,
    GameServer,
    GameServerPort,
    GameServerSpec,
    GameServerState,
    GameServerStatus,
    Health,
    ListStatus,
    ObjectMeta,
    PlayersSpec,
    PortStatus,
    initial_status,
)
from fleetmatch.store import EventType, modify
from fleetmatch.tasks import cancel_and_wait
from tests.integration.sdkenv import Env

S = GameServerState
COMPAT = Path(__file__).resolve().parent
NODE_SCRIPT = COMPAT / "node_sdk_client.js"
NODE_SDK = COMPAT / "node_modules" / "@google-cloud" / "agones-sdk"

HEALTH = Health(period_seconds=2, failure_threshold=3, initial_delay_seconds=10)
"""Health checked (a silent game would turn Unhealthy), loosely enough for a loaded machine."""


def node_binary() -> str | None:
    return shutil.which("node")


def full_gameserver(name: str) -> GameServer:
    """A Scheduled GameServer declaring a counter ``rooms`` (1/10), a list ``players`` (capacity 100)
    and player tracking (capacity 0), with health checking on."""
    spec = GameServerSpec(
        ports=(GameServerPort(name="default", host_port=7001),),
        health=HEALTH,
        counters={"rooms": CounterStatus(count=1, capacity=10)},
        lists={"players": ListStatus(capacity=100)},
        players=PlayersSpec(initial_capacity=0),
    )
    status = GameServerStatus(
        state=S.SCHEDULED, address="10.0.0.5", ports=(PortStatus("default", 7001),), node_name="local"
    )
    return GameServer(
        metadata=ObjectMeta(name=name, labels={"agones.dev/fleet": "f"}),
        spec=spec,
        status=initial_status(spec, status),
    )


async def host_gameserver(env: Env, name: str, *, port: int = 0, grpc_port: int = 0) -> GameServer:
    """Store ``full_gameserver(name)`` and host its SDK (REST on ``port``, gRPC on ``grpc_port``)."""
    gs = await env.store.create(full_gameserver(name))
    await env.host.add(gs, port=port, grpc_port=grpc_port)
    return gs


def _promote(gs: GameServer) -> GameServer | None:
    return gs.with_status(state=S.READY) if gs.state is S.REQUEST_READY else None


@dataclass
class StoreRecorder:
    """Does the node agent's part (RequestReady -> Ready) and records each stored version of one server."""

    store: RedisStore[GameServer]
    name: str
    history: list[GameServer] = field(default_factory=list)

    @property
    def states(self) -> list[str]:
        """Stored states, consecutive repeats folded."""
        out: list[str] = []
        for gs in self.history:
            if not out or out[-1] != gs.state.value:
                out.append(gs.state.value)
        return out

    async def run(self, since: str) -> None:
        async for event in self.store.watch(since):
            gs = event.object
            if gs.name != self.name or event.type is EventType.DELETED:
                continue
            self.history.append(gs)
            if gs.state is S.REQUEST_READY:
                await modify(self.store, self.name, _promote)


@contextlib.asynccontextmanager
async def recording(store: RedisStore[GameServer], name: str) -> AsyncIterator[StoreRecorder]:
    recorder = StoreRecorder(store, name)
    _, since = await store.list()
    task = asyncio.create_task(recorder.run(since), name=f"compat.recorder[{name}]")
    try:
        yield recorder
    finally:
        await cancel_and_wait(task)


@dataclass
class NodeRun:
    """What ``node_sdk_client.js`` printed: its steps by name (in order) and its exit code."""

    returncode: int
    lines: list[dict[str, Any]]
    stderr: str

    @property
    def steps(self) -> list[str]:
        return [str(line["step"]) for line in self.lines]

    def result(self, step: str) -> Any:
        line = self.line(step)
        assert "result" in line, f"{step} failed: {line}"
        return line["result"]

    def error(self, step: str) -> dict[str, Any]:
        line = self.line(step)
        assert "error" in line, f"{step} was expected to fail: {line}"
        error: dict[str, Any] = line["error"]
        return error

    def line(self, step: str) -> dict[str, Any]:
        found = [line for line in self.lines if line["step"] == step]
        assert len(found) == 1, f"step {step!r} printed {len(found)} times; steps: {self.steps}\n{self.stderr}"
        return found[0]

    def describe(self) -> str:
        return "\n".join(json.dumps(line) for line in self.lines) + "\n--- stderr ---\n" + self.stderr


@contextlib.asynccontextmanager
async def node_client(mode: str, grpc_port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    """The Node.js SDK client running (killed on the way out if still running); fails, never skips,
    when the npm packages are not installed."""
    node = node_binary()
    assert node is not None
    assert NODE_SDK.is_dir(), f"{NODE_SDK} is missing: run `npm ci --prefix tests/compat` first"
    env = {**os.environ, "AGONES_SDK_GRPC_PORT": str(grpc_port)}
    env.pop("AGONES_SDK_HTTP_PORT", None)
    proc = await asyncio.create_subprocess_exec(
        node,
        str(NODE_SCRIPT),
        mode,
        cwd=COMPAT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()


async def finish_node(proc: asyncio.subprocess.Process, within: float = 90.0) -> NodeRun:
    """Wait for the client to exit (killed after ``within`` seconds) and parse what it printed."""
    try:
        async with asyncio.timeout(within):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip().startswith("{")]
    assert proc.returncode is not None
    return NodeRun(proc.returncode, lines, err.decode())
