"""``python -m sdk_sidecar --gameserver NAME``: one game server's SDK in its own process, as Agones
runs its sidecar, used by the Python SDK (both transports) and by the official Node.js SDK."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from fleetmatch.backends.redis.embedded import EmbeddedRedis, free_port
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.models import GameServer, GameServerState
from sdk_sidecar.client import SDK, CounterInfo
from tests.compat.harness import finish_node, full_gameserver, node_binary, node_client
from tests.waiting import eventually

S = GameServerState
REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@contextlib.asynccontextmanager
async def sidecar(redis_url: str, name: str, http_port: int, grpc_port: int) -> AsyncIterator[Process]:
    """The standalone sidecar; on the way out SIGTERM, and it must exit 0 (killed after 20 s)."""
    env = {**os.environ, "REDIS_URL": redis_url, "FLEETMATCH_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sdk_sidecar",
        "--gameserver",
        name,
        "--http-port",
        str(http_port),
        "--grpc-port",
        str(grpc_port),
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(20):
                    _, err = await proc.communicate()
            except TimeoutError:
                proc.kill()
                _, err = await proc.communicate()
                raise AssertionError(f"the sidecar ignored SIGTERM: {err.decode()}") from None
            assert proc.returncode == 0, err.decode()


async def listening(proc: asyncio.subprocess.Process) -> str:
    """The sidecar's announcement line, once both ports listen."""
    assert proc.stderr is not None
    async with asyncio.timeout(20):
        while line := (await proc.stderr.readline()).decode():
            if line.startswith("sdk sidecar "):
                return line.strip()
    raise AssertionError(f"the sidecar exited ({await proc.wait()}) without listening")


async def test_standalone_sidecar_over_both_transports(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    store = RedisStore(redis_client, GameServer)
    http_port, grpc_port = free_port(), free_port()
    async with sidecar(redis_server.url, "solo", http_port, grpc_port) as proc:
        await asyncio.sleep(0.5)
        assert proc.returncode is None  # waits for its GameServer to exist
        await store.create(full_gameserver("solo"))
        line = await listening(proc)
        assert line == f"sdk sidecar solo: REST 127.0.0.1:{http_port} gRPC 127.0.0.1:{grpc_port}"
        async with (
            SDK(port=http_port, transport="http") as rest,
            SDK(grpc_port=grpc_port, transport="grpc") as rpc,
        ):
            await rpc.connect(timeout=10)
            assert (await rest.get_gameserver()).name == (await rpc.get_gameserver()).name == "solo"
            await rpc.set_label("mode", "ctf")
            assert await rest.increment_counter("rooms", 2) == CounterInfo("rooms", 3, 10)
            await rpc.ready()

            async def ready() -> bool:
                return (await store.get("solo")).state is S.READY  # promoted by the sidecar

            await eventually(ready)
            await rest.shutdown()  # written before the process exits on SIGTERM
    gs = await store.get("solo")
    assert (gs.state, gs.metadata.labels["agones.dev/sdk-mode"], gs.status.counters["rooms"].count) == (
        S.SHUTDOWN,
        "ctf",
        3,
    )


@pytest.mark.skipif(node_binary() is None, reason="node (Node.js) is not on PATH")
async def test_node_sdk_started_before_the_standalone_sidecar(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    """The Agones pod start-up race: the game connects first, the sidecar comes up 3 s later."""
    store = RedisStore(redis_client, GameServer)
    await store.create(full_gameserver("pod"))
    grpc_port = free_port()
    async with node_client("late", grpc_port) as node:
        await asyncio.sleep(3.0)
        assert node.returncode is None
        async with sidecar(redis_server.url, "pod", free_port(), grpc_port):
            run = await finish_node(node)

            async def ready() -> bool:
                return (await store.get("pod")).state is S.READY

            await eventually(ready)
    assert run.returncode == 0, run.describe()
    assert run.result("connect.waited_ms") >= 2500 and run.result("getGameServer")["name"] == "pod"
    assert run.result("health")["status"] == 0
