"""Only its own game may use a game server's SDK: another local process is refused (REST 403, gRPC
PERMISSION_DENIED), while the game itself (Ready, health pings) is served as before."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
import redis.asyncio as aioredis

from allocator.fleetops import apply_fleet
from fleetmatch.models import GameServerState, ProcessTemplate
from sdk_sidecar import peers
from sdk_sidecar.grpc_gen import sdk_pb2, sdk_pb2_grpc
from tests.integration.fleetenv import REPO, Stack, make_fleet, running_stack

pytestmark = [pytest.mark.skipif(not peers.supported(), reason="the platform does not say who calls (no /proc)")]

GAME = ProcessTemplate(("python", "-m", "examples.udp_game.server"), working_dir=str(REPO))


@pytest.fixture
async def stack(redis_client: aioredis.Redis, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(redis_client, tmp_path, first_port=7980) as s:
        yield s


async def test_another_process_cannot_use_a_games_sdk(stack: Stack) -> None:
    await apply_fleet(stack.fleets, make_fleet("iso", 1, GAME))
    (gs,) = await stack.ready("iso", 1)
    local = next(agent.local[gs.name] for agent in stack.agents if gs.name in agent.local)
    rest = f"http://127.0.0.1:{local.sdk_port}"
    async with aiohttp.ClientSession() as http:
        for method, path in (("POST", "/allocate"), ("POST", "/shutdown"), ("GET", "/gameserver")):
            async with http.request(method, rest + path, data=b"{}") as resp:
                assert resp.status == 403, (path, resp.status)
                assert json.loads(await resp.read())["code"] == 7  # PERMISSION_DENIED
    async with grpc.aio.insecure_channel(f"127.0.0.1:{local.grpc_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await sdk_pb2_grpc.SDKStub(channel).Allocate(sdk_pb2.Empty())
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    await asyncio.sleep(3.0)  # the game itself keeps pinging its health: still Ready, never Allocated
    assert (await stack.gameservers.get(gs.name)).state is GameServerState.READY
