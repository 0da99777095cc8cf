"""fleetmatch's Python SDK (``sdk_sidecar.client``) over both transports, REST and gRPC, against a real
SdkHost on a real RedisStore: lifecycle, metadata, watch, health, counters, lists, players."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest
import redis.asyncio as aioredis

from fleetmatch.backends.redis.embedded import free_port
from fleetmatch.models import GameServerState
from fleetmatch.store import modify
from sdk_sidecar import metrics
from sdk_sidecar.client import (
    SDK,
    CounterInfo,
    GameServerInfo,
    ListInfo,
    PlayersInfo,
    SdkError,
    Transport,
    grpc_available,
)
from tests.compat.harness import HEALTH, host_gameserver
from tests.integration.sdkenv import Env, running_host
from tests.waiting import eventually

S = GameServerState
TRANSPORTS: list[Transport] = ["http", "grpc"]


@pytest.fixture
async def env(redis_client: aioredis.Redis) -> AsyncIterator[Env]:
    async with running_host(redis_client) as e:
        yield e


@contextlib.asynccontextmanager
async def hosted_sdk(env: Env, transport: Transport, name: str = "gs-1") -> AsyncIterator[SDK]:
    """A hosted GameServer with counter ``rooms`` (1/10), list ``players`` (capacity 100), player
    tracking, and an SDK client to it over ``transport``."""
    await host_gameserver(env, name)
    port, grpc_port = env.host.port_of(name), env.host.grpc_port_of(name)
    assert port is not None and grpc_port is not None
    async with SDK(port=port, grpc_port=grpc_port, transport=transport) as sdk:
        assert sdk.transport == transport
        await sdk.connect(timeout=10)
        yield sdk


def test_grpc_is_available() -> None:
    assert grpc_available()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_lifecycle_metadata_and_typed_gameserver(env: Env, transport: Transport) -> None:
    async with hosted_sdk(env, transport) as sdk:
        info = await sdk.get_gameserver()
        stored = await env.store.get("gs-1")
        assert (info.name, info.uid, info.state, info.address, dict(info.ports)) == (
            "gs-1",
            stored.metadata.uid,
            "Scheduled",
            "10.0.0.5",
            {"default": 7001},
        )
        assert info.creation_timestamp == int(stored.metadata.creation_timestamp or 0) > 0
        assert (info.generation, info.resource_version) == (1, stored.metadata.resource_version)
        assert (info.health_disabled, info.health_period_seconds) == (False, HEALTH.period_seconds)
        assert dict(info.counters) == {"rooms": CounterInfo("rooms", 1, 10)}
        assert dict(info.lists) == {"players": ListInfo("players", 100, ())}
        assert info.players == PlayersInfo(0, 0, ())
        await sdk.set_label("mode", "ctf")
        await sdk.set_annotation("map", "dust")
        await sdk.ready()
        gs = await env.stored("gs-1", lambda g: g.state is S.REQUEST_READY)
        assert gs.metadata.labels["agones.dev/sdk-mode"] == "ctf"
        assert gs.metadata.annotations["agones.dev/sdk-map"] == "dust"
        await sdk.allocate()
        await env.stored("gs-1", lambda g: g.state is S.ALLOCATED)
        await sdk.reserve(30)
        await env.stored("gs-1", lambda g: g.state is S.RESERVED)
        await sdk.shutdown()
        await env.stored("gs-1", lambda g: g.state is S.SHUTDOWN)
        with pytest.raises(SdkError) as refused:
            await sdk.set_label("not valid", "v")
        assert (refused.value.status, refused.value.code) == (400, 3)
        assert refused.value.message.startswith("invalid label key 'agones.dev/sdk-not valid'")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_counters(env: Env, transport: Transport) -> None:
    async with hosted_sdk(env, transport) as sdk:
        assert await sdk.get_counter("rooms") == CounterInfo("rooms", 1, 10)
        assert await sdk.increment_counter("rooms", 4) == CounterInfo("rooms", 5, 10)
        assert await sdk.decrement_counter("rooms") == CounterInfo("rooms", 4, 10)
        assert await sdk.set_counter_capacity("rooms", 20) == CounterInfo("rooms", 4, 20)
        assert await sdk.set_counter_count("rooms", 15) == CounterInfo("rooms", 15, 20)
        assert await sdk.update_counter("rooms", count=2, capacity=3) == CounterInfo("rooms", 2, 3)
        for bad in (sdk.set_counter_count("rooms", 4), sdk.get_counter("nope"), sdk.set_counter_capacity("rooms", -1)):
            with pytest.raises(SdkError) as refused:
                await bad
            assert refused.value.status >= 400 and refused.value.code != 0
        gs = await env.stored("gs-1", lambda g: g.status.counters["rooms"].count == 2)
        assert gs.status.counters["rooms"].capacity == 3


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_lists(env: Env, transport: Transport) -> None:
    async with hosted_sdk(env, transport) as sdk:
        assert await sdk.get_list("players") == ListInfo("players", 100, ())
        assert await sdk.add_list_value("players", "a") == ListInfo("players", 100, ("a",))
        assert (await sdk.add_list_value("players", "b")).values == ("a", "b")
        assert await sdk.list_contains("players", "b") and not await sdk.list_contains("players", "z")
        assert await sdk.remove_list_value("players", "a") == ListInfo("players", 100, ("b",))
        assert await sdk.set_list_capacity("players", 3) == ListInfo("players", 3, ("b",))
        assert await sdk.update_list("players", values=["x", "y"]) == ListInfo("players", 3, ("x", "y"))
        assert await sdk.update_list("players", capacity=1) == ListInfo("players", 1, ("x",))  # truncated
        listed = await sdk.get_list("players")
        assert "x" in listed and len(listed) == 1
        for bad in (
            sdk.add_list_value("players", "x"),
            sdk.remove_list_value("players", "nope"),
            sdk.get_list("nope"),
            sdk.add_list_value("players", "full"),
        ):
            with pytest.raises(SdkError) as refused:
                await bad
            assert refused.value.status >= 400 and refused.value.code != 0
        gs = await env.stored("gs-1", lambda g: g.status.lists["players"].values == ("x",))
        assert gs.status.lists["players"].capacity == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_players(env: Env, transport: Transport) -> None:
    async with hosted_sdk(env, transport) as sdk:
        await sdk.set_player_capacity(2)
        assert await sdk.get_player_capacity() == 2
        assert [await sdk.player_connect(p) for p in ("p1", "p1", "p2")] == [True, False, True]
        with pytest.raises(SdkError) as full:
            await sdk.player_connect("p3")
        assert (full.value.status, full.value.code) == (500, 2)
        assert await sdk.get_player_count() == 2
        assert sorted(await sdk.get_connected_players()) == ["p1", "p2"]
        assert await sdk.is_player_connected("p1") and not await sdk.is_player_connected("p3")
        assert [await sdk.player_disconnect("p2"), await sdk.player_disconnect("p2")] == [True, False]
        assert await sdk.get_connected_players() == ("p1",)
        gs = await env.stored("gs-1", lambda g: g.status.players is not None and g.status.players.ids == ("p1",))
        assert gs.status.players is not None and gs.status.players.capacity == 2
        info = await sdk.get_gameserver()
        assert info.players == PlayersInfo(1, 2, ("p1",))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_watch_yields_current_state_then_updates(env: Env, transport: Transport) -> None:
    async with hosted_sdk(env, transport) as sdk, contextlib.aclosing(sdk.watch_gameserver()) as updates:
        first = await asyncio.wait_for(anext(updates), 10)
        assert (first.name, first.state) == ("gs-1", "Scheduled")
        await sdk.increment_counter("rooms")
        second = await asyncio.wait_for(anext(updates), 10)
        assert second.counters["rooms"].count == 2
        await modify(env.store.inner, "gs-1", lambda g: g.with_status(state=S.ALLOCATED))
        third = await asyncio.wait_for(anext(updates), 10)
        assert third.state == "Allocated"
    await eventually(lambda: env.host.sessions["gs-1"].watch_count == 0, what=lambda: "watch stream still open")


async def test_watch_over_grpc_reconnects_when_the_sidecar_restarts(env: Env) -> None:
    async with hosted_sdk(env, "grpc") as sdk, contextlib.aclosing(sdk.watch_gameserver()) as updates:
        first = await asyncio.wait_for(anext(updates), 10)
        grpc_port = sdk.grpc_port
        await env.host.remove("gs-1")
        await modify(env.store.inner, "gs-1", lambda g: g.with_status(state=S.READY))
        await asyncio.sleep(0.3)
        await env.host.add(await env.store.get("gs-1"), grpc_port=grpc_port)
        again = await asyncio.wait_for(anext(updates), 15)
        assert again.state == "Ready" and again.resource_version != first.resource_version


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_health_loop_keeps_the_server_healthy(env: Env, transport: Transport) -> None:
    pings = metrics.SDK_CALLS.labels(method="Health")._value.get()
    async with hosted_sdk(env, transport) as sdk:
        await modify(env.store.inner, "gs-1", lambda g: g.with_status(state=S.READY))
        pinging = asyncio.create_task(sdk.health_loop(interval=0.05))
        try:
            await eventually(lambda: metrics.SDK_CALLS.labels(method="Health")._value.get() >= pings + 10)
        finally:
            pinging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinging
        assert (await env.store.get("gs-1")).state is S.READY
        assert not env.host.sessions["gs-1"].health_tracker.unhealthy


async def test_grpc_health_pings_share_one_stream(env: Env) -> None:
    pings = metrics.SDK_CALLS.labels(method="Health")._value.get()
    async with hosted_sdk(env, "grpc") as sdk:
        for _ in range(50):
            await sdk.health()
        stream = sdk._grpc._health_call if sdk._grpc is not None else None
        assert stream is not None and not stream.done()
    # close() half-closed the stream and waited for the answer: every ping was counted.
    assert stream.done() and await stream.code() is grpc.StatusCode.OK
    assert metrics.SDK_CALLS.labels(method="Health")._value.get() == pings + 50


async def test_auto_prefers_grpc_from_the_environment(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    await host_gameserver(env, "gs-1")
    port, grpc_port = env.host.port_of("gs-1"), env.host.grpc_port_of("gs-1")
    monkeypatch.setenv("AGONES_SDK_HTTP_PORT", str(port))
    monkeypatch.setenv("AGONES_SDK_GRPC_PORT", str(grpc_port))
    async with SDK() as sdk:
        assert (sdk.transport, sdk.port, sdk.grpc_port) == ("grpc", port, grpc_port)
        await sdk.connect(timeout=10)
        assert sdk.transport == "grpc" and (await sdk.get_gameserver()).name == "gs-1"
    async with SDK(port=port) as sdk:  # an explicit REST port: REST, as before
        assert sdk.transport == "http"
        assert (await sdk.get_gameserver()).name == "gs-1"


async def test_auto_falls_back_to_rest_when_grpc_does_not_answer(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    await host_gameserver(env, "gs-1")
    monkeypatch.setenv("AGONES_SDK_HTTP_PORT", str(env.host.port_of("gs-1")))
    monkeypatch.setenv("AGONES_SDK_GRPC_PORT", str(free_port()))  # nothing listens there
    async with SDK() as sdk:
        assert sdk.transport == "grpc"
        await sdk.connect(timeout=10)
        assert sdk.transport == "http"
        assert await sdk.increment_counter("rooms") == CounterInfo("rooms", 2, 10)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_unreachable_sidecar(transport: Transport) -> None:
    async with SDK(port=free_port(), grpc_port=free_port(), timeout=1, transport=transport) as sdk:
        with pytest.raises(SdkError) as info:
            await sdk.connect(timeout=0.5)
        assert (info.value.status, info.value.code) == (0, 14)
        with pytest.raises(SdkError) as info:
            await sdk.get_counter("rooms")
        assert (info.value.status, info.value.code) == (0, 14)
        with pytest.raises(SdkError):
            await sdk.health()


def test_int64_fields_parse_from_strings_or_numbers() -> None:
    assert CounterInfo.from_json({"name": "r", "count": "9007199254740993", "capacity": 10}) == CounterInfo(
        "r", 9007199254740993, 10
    )
    assert ListInfo.from_json({"capacity": "3", "values": ["a"]}, "l") == ListInfo("l", 3, ("a",))
    info = GameServerInfo.from_json(
        {
            "object_meta": {"creation_timestamp": "1700000000", "generation": "2"},
            "status": {
                "counters": {"rooms": {"count": "1", "capacity": "10"}},
                "lists": {"players": {"capacity": "100", "values": []}},
                "players": None,
            },
        }
    )
    assert (info.creation_timestamp, info.generation, info.players) == (1700000000, 2, None)
    assert info.counters["rooms"] == CounterInfo("rooms", 1, 10)
    assert info.lists["players"] == ListInfo("players", 100, ())
