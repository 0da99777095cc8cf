"""The Python SDK client against a real SdkHost on a real RedisStore."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from fleetmatch.backends.redis.embedded import free_port
from fleetmatch.models import GameServer, GameServerState, Health, ObjectMeta
from fleetmatch.store import modify
from sdk_sidecar import SDK, GameServerInfo, SdkError
from tests.integration.sdkenv import Env, running_host

S = GameServerState


@pytest.fixture
async def env(redis_client: aioredis.Redis) -> AsyncIterator[Env]:
    async with running_host(redis_client) as e:
        yield e


async def sdk_for(env: Env, name: str = "gs-1", *, health: Health | None = None, state: S = S.SCHEDULED) -> SDK:
    gs, _ = await env.add(name, health=health, state=state)
    port = env.host.port_of(gs.name)
    assert port is not None
    return SDK(port=port, timeout=5)


async def test_get_gameserver(env: Env) -> None:
    async with await sdk_for(env, health=Health(period_seconds=3, failure_threshold=2)) as sdk:
        await sdk.connect(timeout=5)
        info = await sdk.get_gameserver()
    stored = await env.store.get("gs-1")
    assert (info.name, info.namespace, info.uid, info.state, info.address) == (
        "gs-1",
        "default",
        stored.metadata.uid,
        "Scheduled",
        "10.0.0.5",
    )
    assert dict(info.ports) == {"default": 7001}
    assert dict(info.labels) == {"agones.dev/fleet": "f"} and dict(info.annotations) == {}
    assert (info.health_disabled, info.health_period_seconds) == (False, 3)
    assert info.resource_version == stored.metadata.resource_version
    assert info.raw["object_meta"]["generation"] == "1"


async def test_calls_reach_the_store(env: Env) -> None:
    async with await sdk_for(env) as sdk:
        await sdk.set_label("mode", "ctf")
        await sdk.set_annotation("map", "dust")
        await sdk.ready()
        gs = await env.stored("gs-1", lambda g: g.state is S.REQUEST_READY)
        assert gs.metadata.labels["agones.dev/sdk-mode"] == "ctf"
        assert gs.metadata.annotations["agones.dev/sdk-map"] == "dust"
        await sdk.allocate()
        await env.stored("gs-1", lambda g: g.state is S.ALLOCATED)
        await sdk.reserve(30)
        gs = await env.stored("gs-1", lambda g: g.state is S.RESERVED)
        assert gs.status.reserved_until is not None and gs.status.reserved_until > time.time() + 20
        await sdk.health()
        await sdk.shutdown()
        await env.stored("gs-1", lambda g: g.state is S.SHUTDOWN)


async def test_refusals_raise_sdk_error(env: Env) -> None:
    async with await sdk_for(env) as sdk:
        with pytest.raises(SdkError) as info:
            await sdk.set_label("not valid", "v")
    err = info.value
    assert (err.status, err.code) == (400, 3)
    assert err.message.startswith("invalid label key 'agones.dev/sdk-not valid'")


async def test_connect_waits_for_a_sidecar_that_starts_late(env: Env) -> None:
    port = free_port()
    async with SDK(port=port, timeout=5) as sdk:
        connecting = asyncio.create_task(sdk.connect(timeout=20))
        await asyncio.sleep(0.5)
        assert not connecting.done()
        gs = await env.store.create(GameServer(metadata=ObjectMeta(name="late")))
        await env.host.add(gs, port=port)
        await asyncio.wait_for(connecting, 20)
        assert (await sdk.get_gameserver()).name == "late"


async def test_connect_gives_up_after_its_timeout() -> None:
    async with SDK(port=free_port(), timeout=1) as sdk:
        with pytest.raises(SdkError) as info:
            await sdk.connect(timeout=0.5)
        assert (info.value.status, info.value.code) == (0, 14)
        with pytest.raises(SdkError) as info:
            await sdk.ready()
        assert info.value.status == 0


async def test_watch_yields_current_state_then_updates(env: Env) -> None:
    async with await sdk_for(env) as sdk, contextlib.aclosing(sdk.watch_gameserver()) as updates:
        first = await asyncio.wait_for(anext(updates), 10)
        assert (first.name, first.state) == ("gs-1", "Scheduled")
        await sdk.set_label("mode", "ctf")
        second = await asyncio.wait_for(anext(updates), 10)
        assert second.labels["agones.dev/sdk-mode"] == "ctf"
        await modify(env.store.inner, "gs-1", lambda g: g.with_status(state=S.ALLOCATED))
        third = await asyncio.wait_for(anext(updates), 10)
        assert third.state == "Allocated"


async def test_watch_reconnects_when_the_stream_drops(env: Env) -> None:
    async with await sdk_for(env) as sdk, contextlib.aclosing(sdk.watch_gameserver()) as updates:
        first = await asyncio.wait_for(anext(updates), 10)
        port = sdk.port
        gs = await env.store.get("gs-1")
        await env.host.remove("gs-1")  # the stream ends; the sidecar is gone for a moment
        await modify(env.store.inner, "gs-1", lambda g: g.with_status(state=S.READY))
        await asyncio.sleep(0.3)
        await env.host.add(await env.store.get("gs-1"), port=port)
        again = await asyncio.wait_for(anext(updates), 10)
        assert again.state == "Ready" and again.resource_version != first.resource_version
        assert gs.metadata.resource_version == first.resource_version


async def test_health_loop_keeps_the_server_healthy_until_cancelled(env: Env) -> None:
    health = Health(period_seconds=1, failure_threshold=2, initial_delay_seconds=0)
    async with await sdk_for(env, state=S.READY, health=health) as sdk:
        pinging = asyncio.create_task(sdk.health_loop())  # every 0.5 s: half the period
        try:
            await asyncio.sleep(3.0)
            assert (await env.store.get("gs-1")).state is S.READY
            assert not env.host.sessions["gs-1"].health_tracker.unhealthy
        finally:
            pinging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinging
        await env.stored("gs-1", lambda g: g.state is S.UNHEALTHY)


async def test_health_loop_tolerates_a_missing_sidecar() -> None:
    async with SDK(port=free_port(), timeout=0.5) as sdk:
        pinging = asyncio.create_task(sdk.health_loop(interval=0.05))
        await asyncio.sleep(0.3)
        assert not pinging.done()
        pinging.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pinging


def test_port_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGONES_SDK_HTTP_PORT", "12345")
    assert SDK().port == 12345
    assert SDK(port=1).port == 1
    monkeypatch.delenv("AGONES_SDK_HTTP_PORT")
    assert SDK().port == 9358
    assert SDK().host == "127.0.0.1"


def test_gameserver_info_tolerates_missing_parts() -> None:
    info = GameServerInfo.from_json({"status": {"state": "Ready", "ports": [{"name": "game", "port": 7777}]}})
    assert (info.name, info.state, dict(info.ports), info.health_period_seconds) == ("", "Ready", {"game": 7777}, 5)
    assert dict(info.labels) == {} and info.resource_version == ""
