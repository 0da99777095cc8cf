"""Components on an external Redis (``REDIS_URL``) that dies and comes back a few seconds later on
its data: each process reports not-ready meanwhile, reconnects by itself, and the fleet carries on
(no server lost, none replaced for the outage, allocations served again)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from allocator.fleetops import apply_fleet
from fleetmatch.backends.redis.backend import redis_backend_on
from fleetmatch.backends.redis.client import connect
from fleetmatch.backends.redis.embedded import EmbeddedRedis, free_port
from fleetmatch.models import GameServerState
from tests.faults.world import REPO, World, udp_fleet, wait_for
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
TOKEN = "t" * 16


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(), persist=True)
    server.start()
    yield server
    server.stop()


async def ready_status(http: aiohttp.ClientSession, url: str) -> int:
    try:
        async with http.get(url) as resp:
            return resp.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def test_components_reconnect_to_an_external_redis_that_comes_back(redis: EmbeddedRedis, tmp_path: Path) -> None:
    client = connect(redis.url, name="test")
    backend = redis_backend_on(client)
    world = World(redis.url, tmp_path, FLEETMATCH_NODE_LEASE_SECONDS="10")
    allocator_port = free_port()
    try:
        await apply_fleet(backend.fleets, udp_fleet("arena", 2))
        world.start("controller")
        world.node_agent("node-a", "7890-7899")
        world.start("allocator", FLEETMATCH_ALLOCATOR_TOKEN=TOKEN, FLEETMATCH_ALLOCATOR_PORT=str(allocator_port))
        before = await wait_for(backend.gameservers, lambda gs: sum(g.state is GameServerState.READY for g in gs) == 2)
        readyz = f"http://127.0.0.1:{allocator_port}/readyz"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            await eventually(lambda: is_status(http, readyz, 200), within=30, what=lambda: "allocator ready")

            assert redis.process is not None
            redis.process.send_signal(signal.SIGKILL)  # the external Redis dies...
            redis.process.wait()
            await eventually(lambda: is_status(http, readyz, 503), within=15, what=lambda: "allocator not ready")
            await asyncio.sleep(3.0)
            redis.start()  # ...and comes back on its port and data
            await eventually(lambda: is_status(http, readyz, 200), within=30, what=lambda: "allocator ready again")
            body = {"spec": {"selectors": [{"matchLabels": {"agones.dev/fleet": "arena"}}]}}
            async with http.post(
                f"http://127.0.0.1:{allocator_port}/v1/allocations",
                json=body,
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as resp:
                assert resp.status == 201, f"{await resp.text()}\n{world.logs()}"
        after = await wait_for(backend.gameservers, lambda gs: len(gs) == 2 and all(g.state in (
            GameServerState.READY, GameServerState.ALLOCATED) for g in gs))  # fmt: skip
        assert {g.name for g in after} == {g.name for g in before}  # nobody was replaced for the outage
        listing = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "fleetmatch", "node", "list", "-o", "json"],
            cwd=REPO, env=world.env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert '"ready": true' in listing.stdout  # the node agent heartbeats again
    finally:
        await asyncio.to_thread(world.stop_all)
        await backend.aclose()
        await client.aclose()


async def is_status(http: aiohttp.ClientSession, url: str, status: int) -> bool:
    return await ready_status(http, url) == status
