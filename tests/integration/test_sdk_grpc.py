"""The gRPC SDK (``agones.dev.sdk.SDK``, ``.beta.SDK``, ``.alpha.SDK``) on a real SdkHost, a real
RedisStore and an informer feeding ``observe``, called through a real ``grpc.aio`` channel with the
generated stubs: the same effects as the REST front door, errors as gRPC statuses, clean streams."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.wrappers_pb2 import Int64Value

from allocator.fleetops import apply_fleet
from fleetmatch.backends.redis.embedded import free_port
from fleetmatch.codec import format_timestamp, from_wire
from fleetmatch.models import (
    LAST_ALLOCATED_ANNOTATION,
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
    ProcessTemplate,
)
from fleetmatch.store import modify
from sdk_sidecar import metrics
from sdk_sidecar.grpc_gen import alpha_pb2, alpha_pb2_grpc, beta_pb2, beta_pb2_grpc, sdk_pb2, sdk_pb2_grpc
from sdk_sidecar.grpc_gen.sdk_pb2 import GameServer as GameServerProto
from sdk_sidecar.grpc_server import gameserver_proto
from sdk_sidecar.state import LATEST_TIMESTAMP
from tests.integration.fleetenv import REPO, Stack, make_fleet, running_stack
from tests.integration.sdkenv import Env, call, running_host
from tests.waiting import eventually

S = GameServerState
EMPTY = sdk_pb2.Empty()


@pytest.fixture
async def env(redis_client: aioredis.Redis) -> AsyncIterator[Env]:
    async with running_host(redis_client) as e:
        yield e


@contextlib.asynccontextmanager
async def channel(env: Env, name: str = "gs-1") -> AsyncIterator[grpc.aio.Channel]:
    port = env.host.grpc_port_of(name)
    assert port is not None
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch


@contextlib.asynccontextmanager
async def sdk(env: Env, name: str = "gs-1") -> AsyncIterator[sdk_pb2_grpc.SDKAsyncStub]:
    async with channel(env, name) as ch:
        yield sdk_pb2_grpc.SDKStub(ch)


async def add_declared(env: Env, name: str = "gs-1") -> GameServer:
    """A Ready GameServer declaring counters, lists and player tracking, hosted."""
    gs = await env.store.create(
        GameServer(
            metadata=ObjectMeta(name=name),
            spec=GameServerSpec(
                health=Health(disabled=True),
                counters={"rooms": CounterStatus(count=1, capacity=10)},
                lists={"players": ListStatus(capacity=3, values=("a",))},
                players=PlayersSpec(initial_capacity=2),
            ),
            status=GameServerStatus(state=S.READY, address="10.0.0.5", node_name="local"),
        )
    )
    await env.host.add(gs)
    return gs


async def rpc_error(call: Any) -> grpc.aio.AioRpcError:
    """The error an awaited call fails with (fails the test if it succeeds)."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


# -- agones.dev.sdk.SDK ----------------------------------------------------------------------------


async def test_get_gameserver_carries_the_agones_fields(env: Env) -> None:
    gs, _ = await env.add(health=Health(period_seconds=7, failure_threshold=4, initial_delay_seconds=9))
    meta = gs.metadata
    assert meta.creation_timestamp is not None
    async with sdk(env) as stub:
        got = await stub.GetGameServer(EMPTY)
    Status = GameServerProto.Status
    assert got == GameServerProto(
        object_meta=GameServerProto.ObjectMeta(
            name="gs-1",
            namespace="default",
            uid=meta.uid,
            resource_version=meta.resource_version,
            generation=1,
            creation_timestamp=int(meta.creation_timestamp),
            annotations={},
            labels={"agones.dev/fleet": "f"},
        ),
        spec=GameServerProto.Spec(
            health=GameServerProto.Spec.Health(period_seconds=7, failure_threshold=4, initial_delay_seconds=9)
        ),
        status=Status(
            state="Scheduled",
            address="10.0.0.5",
            addresses=[Status.Address(type="InternalIP", address="10.0.0.5")],
            ports=[Status.Port(name="default", port=7001)],
        ),
    )
    assert got.object_meta.uid and got.object_meta.creation_timestamp > 1_500_000_000  # epoch seconds, not ms
    assert not got.status.HasField("players")


async def test_disabled_health_reports_no_periods(env: Env) -> None:
    """Agones fills in the health defaults only when health checking is on: ``{disabled: true}`` reads 0s."""
    await env.add(health=from_wire(Health, {"disabled": True}))
    expected = GameServerProto.Spec.Health(disabled=True)  # proto3: the three int32 fields are 0
    async with sdk(env) as stub:
        assert (await stub.GetGameServer(EMPTY)).spec.health == expected
        stream = stub.WatchGameServer(EMPTY)
        first = await anext(aiter(stream))
        stream.cancel()
    assert first.spec.health == expected


async def test_get_gameserver_carries_counters_lists_and_players(env: Env) -> None:
    await add_declared(env)
    async with sdk(env) as stub:
        status = (await stub.GetGameServer(EMPTY)).status
    assert {k: (v.count, v.capacity) for k, v in status.counters.items()} == {"rooms": (1, 10)}
    assert {k: (v.capacity, list(v.values)) for k, v in status.lists.items()} == {"players": (3, ["a"])}
    assert status.HasField("players")
    assert (status.players.count, status.players.capacity, list(status.players.ids)) == (0, 2, [])


async def test_ready_requests_ready(env: Env) -> None:
    await env.add()
    async with sdk(env) as stub:
        assert await stub.Ready(EMPTY) == EMPTY
    gs = await env.stored("gs-1", lambda g: g.state is not S.SCHEDULED)
    assert gs.state is S.REQUEST_READY  # the node agent, not the SDK, makes it Ready


async def test_allocate_stamps_last_allocated_then_shutdown(env: Env) -> None:
    await env.add(state=S.READY)
    async with sdk(env) as stub:
        before = time.time()
        await stub.Allocate(EMPTY)
        gs = await env.stored("gs-1", lambda g: g.state is S.ALLOCATED)
        stamp = gs.metadata.annotations[LAST_ALLOCATED_ANNOTATION]
        assert format_timestamp(before - 0.001) <= stamp <= format_timestamp(time.time())
        await stub.Shutdown(EMPTY)
    await env.stored("gs-1", lambda g: g.state is S.SHUTDOWN)


async def test_labels_and_annotations_land_under_the_sdk_prefix(env: Env) -> None:
    await env.add()
    async with sdk(env) as stub:
        assert await stub.SetLabel(sdk_pb2.KeyValue(key="mode", value="ctf")) == EMPTY
        assert await stub.SetAnnotation(sdk_pb2.KeyValue(key="map", value="Dust II, night")) == EMPTY
        gs = await env.stored("gs-1", lambda g: "agones.dev/sdk-map" in g.metadata.annotations)
        assert gs.metadata.labels == {"agones.dev/fleet": "f", "agones.dev/sdk-mode": "ctf"}
        assert gs.metadata.annotations == {"agones.dev/sdk-map": "Dust II, night"}

        async def visible() -> bool:
            got = await stub.GetGameServer(EMPTY)
            return dict(got.object_meta.annotations) == {"agones.dev/sdk-map": "Dust II, night"}

        await eventually(visible)


@pytest.mark.parametrize(
    ("method", "key", "value", "message"),
    [
        ("SetLabel", "bad key!", "v", "invalid label key 'agones.dev/sdk-bad key!'"),
        ("SetLabel", "ok", "bad value!", "invalid label value 'bad value!'"),
        ("SetAnnotation", "", "v", "invalid annotation key 'agones.dev/sdk-'"),
    ],
)
async def test_invalid_metadata_is_invalid_argument_and_nothing_is_written(
    env: Env, method: str, key: str, value: str, message: str
) -> None:
    _, url = await env.add()
    errors = metrics.SDK_ERRORS.labels(method=method, code="INVALID_ARGUMENT")._value.get()
    async with sdk(env) as stub:
        err = await rpc_error(getattr(stub, method)(sdk_pb2.KeyValue(key=key, value=value)))
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (err.details() or "").startswith(message)
    assert metrics.SDK_ERRORS.labels(method=method, code="INVALID_ARGUMENT")._value.get() == errors + 1
    # The REST front door says exactly the same.
    path = "/metadata/label" if method == "SetLabel" else "/metadata/annotation"
    status, _, body = await call(env, "PUT", url + path, json.dumps({"key": key, "value": value}))
    assert (status, body["code"], body["message"]) == (400, 3, err.details())
    assert await env.host.flush("gs-1")
    assert env.store.updates == 0


async def test_reserve_then_back_to_ready(env: Env) -> None:
    await env.add(state=S.READY)
    async with sdk(env) as stub:
        before = time.time()
        assert await stub.Reserve(sdk_pb2.Duration(seconds=1)) == EMPTY
        after = time.time()
    gs = await env.stored("gs-1", lambda g: g.state is S.RESERVED)
    assert gs.status.reserved_until is not None
    assert before + 1 - 0.01 <= gs.status.reserved_until <= after + 1 + 0.01
    gs = await env.stored("gs-1", lambda g: g.state is not S.RESERVED)
    assert (gs.state, gs.status.reserved_until) == (S.REQUEST_READY, None)
    assert env.host.sessions["gs-1"].reserve_deadline is None


async def test_reserve_has_no_upper_bound_and_zero_is_indefinite(env: Env) -> None:
    """Agones takes any seconds; a reservation past what a timestamp carries ends in the year 9999."""
    await env.add(state=S.READY)
    async with sdk(env) as stub:
        assert await stub.Reserve(sdk_pb2.Duration(seconds=2**63 - 1)) == EMPTY
        gs = await env.stored("gs-1", lambda g: g.state is S.RESERVED)
        assert gs.status.reserved_until == LATEST_TIMESTAMP
        assert env.host.sessions["gs-1"].reserve_deadline is not None
        await stub.Reserve(sdk_pb2.Duration())
    gs = await env.stored("gs-1", lambda g: g.state is S.RESERVED and g.status.reserved_until is None)
    assert env.host.sessions["gs-1"].reserve_deadline is None


async def test_health_pings_over_one_long_stream_keep_the_server_healthy(env: Env) -> None:
    await env.add(state=S.READY, health=Health(period_seconds=1, failure_threshold=2, initial_delay_seconds=0))
    session = env.host.sessions["gs-1"]
    pings = metrics.SDK_CALLS.labels(method="Health")._value.get()
    sent = 0
    async with sdk(env) as stub:
        stream = stub.Health()
        deadline = time.monotonic() + 3.0  # three periods: without the pings it would fail
        while time.monotonic() < deadline:
            await stream.write(EMPTY)
            sent += 1
            await asyncio.sleep(0.1)
        await eventually(lambda: metrics.SDK_CALLS.labels(method="Health")._value.get() == pings + sent)
        assert not session.health_tracker.unhealthy
        assert (await env.store.get("gs-1")).state is S.READY
        await stream.done_writing()
        assert await stream == EMPTY  # half-close: the call ends with Empty
    await env.stored("gs-1", lambda g: g.state is S.UNHEALTHY)  # and stopping them does the rest


def to_state(new: GameServerState) -> Callable[[GameServer], GameServer]:
    return lambda gs: gs.with_status(state=new)


async def test_watch_sends_the_current_state_then_each_change(env: Env) -> None:
    await env.add()
    async with sdk(env) as stub:
        current = await stub.GetGameServer(EMPTY)
        stream = stub.WatchGameServer(EMPTY)
        assert await asyncio.wait_for(stream.read(), 10) == current  # at once, before any change

        await stub.SetLabel(sdk_pb2.KeyValue(key="mode", value="ctf"))
        got = await asyncio.wait_for(stream.read(), 10)
        assert isinstance(got, GameServerProto)
        assert dict(got.object_meta.labels) == {"agones.dev/fleet": "f", "agones.dev/sdk-mode": "ctf"}

        # Changes made by others (the node agent, the allocator) arrive too, one message each, in order.
        versions = []
        for state in (S.REQUEST_READY, S.READY, S.ALLOCATED):
            written = await modify(env.store.inner, "gs-1", to_state(state))
            assert written is not None
            versions.append((written.metadata.resource_version, state.value))
        seen = []
        for _ in versions:
            got = await asyncio.wait_for(stream.read(), 10)
            assert isinstance(got, GameServerProto)
            seen.append((got.object_meta.resource_version, got.status.state))
        assert seen == versions
        stream.cancel()


async def test_watch_cancellation_is_clean(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    await env.add()
    session = env.host.sessions["gs-1"]
    streams = metrics.WATCH_STREAMS._value.get()
    with caplog.at_level(logging.DEBUG):
        async with sdk(env) as stub:
            for _ in range(3):
                stream = stub.WatchGameServer(EMPTY)
                await asyncio.wait_for(stream.read(), 10)
                assert session.watch_count == 1
                assert stream.cancel()
                await eventually(lambda: session.watch_count == 0)  # the servicer left its aclosing block
                assert stream.cancelled()
            await modify(env.store.inner, "gs-1", lambda g: g.with_status(state=S.READY))  # nobody left to tell
            assert (await stub.GetGameServer(EMPTY)).object_meta.name == "gs-1"
        # The channel closing mid-stream (the game died) is just as clean.
        async with sdk(env) as stub:
            stream = stub.WatchGameServer(EMPTY)
            await asyncio.wait_for(stream.read(), 10)
            assert session.watch_count == 1
        await eventually(lambda: session.watch_count == 0)
    assert metrics.WATCH_STREAMS._value.get() == streams
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_watch_ends_cleanly_when_the_server_is_removed(env: Env) -> None:
    await env.add()
    async with sdk(env) as stub:
        stream = stub.WatchGameServer(EMPTY)
        await asyncio.wait_for(stream.read(), 10)
        await env.host.remove("gs-1")
        assert await asyncio.wait_for(stream.read(), 10) is grpc.aio.EOF
        assert await stream.code() is grpc.StatusCode.OK


async def test_a_closed_session_answers_unavailable(env: Env) -> None:
    await env.add()
    await env.host.sessions["gs-1"].close()
    async with sdk(env) as stub:
        for pending in (stub.Ready(EMPTY), stub.GetGameServer(EMPTY), stub.SetLabel(sdk_pb2.KeyValue(key="a"))):
            err = await rpc_error(pending)
            assert (err.code(), err.details()) == (
                grpc.StatusCode.UNAVAILABLE,
                "no game server is served on this port",
            )
        watch = stub.WatchGameServer(EMPTY)
        assert (await rpc_error(watch.read())).code() is grpc.StatusCode.UNAVAILABLE


async def test_remove_frees_the_grpc_port(env: Env) -> None:
    await env.add()
    port = env.host.grpc_port_of("gs-1")
    assert port is not None and port != env.host.port_of("gs-1")
    await env.host.remove("gs-1")
    assert env.host.grpc_port_of("gs-1") is None
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        err = await rpc_error(sdk_pb2_grpc.SDKStub(ch).Ready(EMPTY, timeout=5))
        assert err.code() is grpc.StatusCode.UNAVAILABLE
    # The port can be served again, by another server.
    gs2 = await env.store.create(GameServer(metadata=ObjectMeta(name="gs-2")))
    await env.host.add(gs2, grpc_port=port)
    assert env.host.grpc_port_of("gs-2") == port
    async with sdk(env, "gs-2") as stub:
        # wait_for_ready, as the official SDKs call: this process' connection to the port is still
        # in its back-off after the refusal above (grpc shares it between channels).
        got = await stub.GetGameServer(EMPTY, wait_for_ready=True, timeout=20)
        assert got.object_meta.name == "gs-2"


async def test_a_taken_grpc_port_fails_the_add_and_leaves_nothing_behind(env: Env) -> None:
    await env.add()
    taken = env.host.grpc_port_of("gs-1")
    assert taken is not None
    sessions = metrics.SESSIONS._value.get()
    gs2 = await env.store.create(GameServer(metadata=ObjectMeta(name="gs-2")))
    with pytest.raises(OSError, match="gRPC"):
        await env.host.add(gs2, grpc_port=taken)
    assert "gs-2" not in env.host.sessions and env.host.port_of("gs-2") is None
    assert metrics.SESSIONS._value.get() == sessions
    async with sdk(env) as stub:  # the owner still has it
        assert (await stub.GetGameServer(EMPTY)).object_meta.name == "gs-1"


async def test_the_client_may_connect_before_the_server_listens(env: Env) -> None:
    """``wait_for_ready``, as the official SDKs call: the call waits for the port to listen."""
    port = free_port()
    gs = await env.store.create(GameServer(metadata=ObjectMeta(name="gs-late")))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        pending = asyncio.ensure_future(sdk_pb2_grpc.SDKStub(ch).GetGameServer(EMPTY, wait_for_ready=True, timeout=20))
        await asyncio.sleep(0.3)
        assert not pending.done()
        await env.host.add(gs, grpc_port=port)
        assert (await pending).object_meta.name == "gs-late"


# -- parity with REST ------------------------------------------------------------------------------


def _comparable(gs: GameServer) -> GameServer:
    """Everything but identity, versions and times."""
    meta = replace(
        gs.metadata,
        name="",
        uid="",
        resource_version="",
        creation_timestamp=None,
        annotations={k: v for k, v in gs.metadata.annotations.items() if k != LAST_ALLOCATED_ANNOTATION},
    )
    status = replace(gs.status, reserved_until=None)
    return replace(gs, metadata=meta, status=status)


async def test_rest_and_grpc_calls_store_the_same_gameserver(env: Env) -> None:
    _, url = await env.add("gs-rest", state=S.READY)
    await env.add("gs-grpc", state=S.READY)
    rest = [
        ("PUT", "/metadata/label", '{"key": "mode", "value": "ctf"}'),
        ("PUT", "/metadata/annotation", '{"key": "map", "value": "dust"}'),
        ("POST", "/reserve", '{"seconds": "30"}'),
        ("POST", "/allocate", "{}"),
        ("PUT", "/metadata/label", '{"key": "mode", "value": "tdm"}'),
        ("POST", "/health", "{}"),
    ]
    for method, path, body in rest:
        status, _, _ = await call(env, method, url + path, body)
        assert status == 200
    async with sdk(env, "gs-grpc") as stub:
        await stub.SetLabel(sdk_pb2.KeyValue(key="mode", value="ctf"))
        await stub.SetAnnotation(sdk_pb2.KeyValue(key="map", value="dust"))
        await stub.Reserve(sdk_pb2.Duration(seconds=30))
        await stub.Allocate(EMPTY)
        await stub.SetLabel(sdk_pb2.KeyValue(key="mode", value="tdm"))
        health = stub.Health()
        await health.write(EMPTY)
        await health.done_writing()
        await health
    assert await env.host.flush("gs-rest") and await env.host.flush("gs-grpc")
    by_rest = await env.stored("gs-rest", lambda g: g.state is S.ALLOCATED)
    by_grpc = await env.stored("gs-grpc", lambda g: g.state is S.ALLOCATED)
    assert _comparable(by_grpc) == _comparable(by_rest)
    assert LAST_ALLOCATED_ANNOTATION in by_grpc.metadata.annotations
    assert by_grpc.metadata.labels["agones.dev/sdk-mode"] == "tdm"


# -- agones.dev.sdk.beta.SDK -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def beta(env: Env, name: str = "gs-1") -> AsyncIterator[beta_pb2_grpc.SDKAsyncStub]:
    async with channel(env, name) as ch:
        yield beta_pb2_grpc.SDKStub(ch)


async def test_counters(env: Env) -> None:
    await add_declared(env)

    def update(**fields: Any) -> beta_pb2.UpdateCounterRequest:
        return beta_pb2.UpdateCounterRequest(counterUpdateRequest=beta_pb2.CounterUpdateRequest(name="rooms", **fields))

    async with beta(env) as stub:
        assert await stub.GetCounter(beta_pb2.GetCounterRequest(name="rooms")) == beta_pb2.Counter(
            name="rooms", count=1, capacity=10
        )
        assert (await stub.UpdateCounter(update(countDiff=2))).count == 3
        # Settle the write: this test is about the front door, not about the session's view of a
        # change whose store event arrives before its write returns.
        assert await env.host.flush("gs-1")
        assert (await stub.UpdateCounter(update(countDiff=-1))).count == 2
        got = await stub.UpdateCounter(update(count=Int64Value(value=0), capacity=Int64Value(value=5)))
        assert (got.count, got.capacity) == (0, 5)
        got = await stub.UpdateCounter(update(count=Int64Value(value=4)))  # capacity absent: unchanged
        assert (got.count, got.capacity) == (4, 5)
        too_many = await rpc_error(stub.UpdateCounter(update(countDiff=10)))
        missing = await rpc_error(stub.GetCounter(beta_pb2.GetCounterRequest(name="nope")))
        malformed = await rpc_error(stub.UpdateCounter(beta_pb2.UpdateCounterRequest()))
    assert too_many.code() is grpc.StatusCode.UNKNOWN and "out of range" in (too_many.details() or "")
    assert missing.code() is grpc.StatusCode.UNKNOWN and "nope" in (missing.details() or "")
    assert malformed.code() is grpc.StatusCode.UNKNOWN and "Malformed" in (malformed.details() or "")
    gs = await env.stored("gs-1", lambda g: g.status.counters.get("rooms") == CounterStatus(count=4, capacity=5))
    assert gs.status.counters == {"rooms": CounterStatus(count=4, capacity=5)}


async def test_lists(env: Env) -> None:
    await add_declared(env)
    async with beta(env) as stub:
        assert await stub.GetList(beta_pb2.GetListRequest(name="players")) == beta_pb2.List(
            name="players", capacity=3, values=["a"]
        )
        got = await stub.AddListValue(beta_pb2.AddListValueRequest(name="players", value="b"))
        assert list(got.values) == ["a", "b"]
        duplicate = await rpc_error(stub.AddListValue(beta_pb2.AddListValueRequest(name="players", value="b")))
        assert duplicate.code() is grpc.StatusCode.UNKNOWN and "already" in (duplicate.details() or "")
        got = await stub.RemoveListValue(beta_pb2.RemoveListValueRequest(name="players", value="a"))
        assert list(got.values) == ["b"]
        absent = await rpc_error(stub.RemoveListValue(beta_pb2.RemoveListValueRequest(name="players", value="a")))
        assert absent.code() is grpc.StatusCode.UNKNOWN

        # A mask naming capacity leaves the values alone, even when the request lists some.
        masked = beta_pb2.UpdateListRequest(
            list=beta_pb2.List(name="players", capacity=5, values=["x"]), update_mask=FieldMask(paths=["capacity"])
        )
        got = await stub.UpdateList(masked)
        assert (got.capacity, list(got.values)) == (5, ["b"])
        # The Node.js SDK's setListCapacity sends an empty (but present) mask: non-default fields apply.
        node = beta_pb2.UpdateListRequest(list=beta_pb2.List(name="players", capacity=6), update_mask=FieldMask())
        assert node.HasField("update_mask")
        got = await stub.UpdateList(node)
        assert (got.capacity, list(got.values)) == (6, ["b"])
        both = beta_pb2.UpdateListRequest(
            list=beta_pb2.List(name="players", capacity=4, values=["p", "q"]),
            update_mask=FieldMask(paths=["capacity", "values"]),
        )
        got = await stub.UpdateList(both)
        assert (got.capacity, list(got.values)) == (4, ["p", "q"])
        bad_path = beta_pb2.UpdateListRequest(list=beta_pb2.List(name="players"), update_mask=FieldMask(paths=["nme"]))
        err = await rpc_error(stub.UpdateList(bad_path))
        assert err.code() is grpc.StatusCode.UNKNOWN and "nme" in (err.details() or "")
    gs = await env.stored("gs-1", lambda g: g.status.lists.get("players") == ListStatus(4, ("p", "q")))
    assert gs.status.lists == {"players": ListStatus(capacity=4, values=("p", "q"))}


# -- agones.dev.sdk.alpha.SDK ----------------------------------------------------------------------


async def test_player_tracking(env: Env) -> None:
    await add_declared(env)
    async with channel(env) as ch:
        stub = alpha_pb2_grpc.SDKStub(ch)
        assert await stub.GetPlayerCapacity(alpha_pb2.Empty()) == alpha_pb2.Count(count=2)
        assert await stub.PlayerConnect(alpha_pb2.PlayerID(playerID="p1")) == alpha_pb2.Bool(bool=True)
        assert await stub.PlayerConnect(alpha_pb2.PlayerID(playerID="p1")) == alpha_pb2.Bool(bool=False)  # no error
        assert await stub.PlayerConnect(alpha_pb2.PlayerID(playerID="p2")) == alpha_pb2.Bool(bool=True)
        full = await rpc_error(stub.PlayerConnect(alpha_pb2.PlayerID(playerID="p3")))
        assert full.code() is grpc.StatusCode.UNKNOWN and "capacity" in (full.details() or "")
        assert await stub.GetPlayerCount(alpha_pb2.Empty()) == alpha_pb2.Count(count=2)
        assert await stub.IsPlayerConnected(alpha_pb2.PlayerID(playerID="p2")) == alpha_pb2.Bool(bool=True)
        assert await stub.PlayerDisconnect(alpha_pb2.PlayerID(playerID="p2")) == alpha_pb2.Bool(bool=True)
        assert await stub.PlayerDisconnect(alpha_pb2.PlayerID(playerID="p2")) == alpha_pb2.Bool(bool=False)
        assert await stub.IsPlayerConnected(alpha_pb2.PlayerID(playerID="p2")) == alpha_pb2.Bool(bool=False)
        assert await stub.SetPlayerCapacity(alpha_pb2.Count(count=8)) == alpha_pb2.Empty()
        assert await stub.GetPlayerCapacity(alpha_pb2.Empty()) == alpha_pb2.Count(count=8)
        assert await stub.GetConnectedPlayers(alpha_pb2.Empty()) == alpha_pb2.PlayerIDList(list=["p1"])
    gs = await env.stored("gs-1", lambda g: g.status.players is not None and g.status.players.capacity == 8)
    assert gs.status.players is not None
    assert (gs.status.players.count, gs.status.players.ids) == (1, ("p1",))


async def test_a_negative_player_capacity_is_stored_and_read_back(env: Env) -> None:
    """Agones does not check SetPlayerCapacity: a negative capacity is kept (and admits nobody)."""
    await add_declared(env)
    async with channel(env) as ch:
        stub = alpha_pb2_grpc.SDKStub(ch)
        assert await stub.SetPlayerCapacity(alpha_pb2.Count(count=-5)) == alpha_pb2.Empty()
        assert await stub.GetPlayerCapacity(alpha_pb2.Empty()) == alpha_pb2.Count(count=-5)
        full = await rpc_error(stub.PlayerConnect(alpha_pb2.PlayerID(playerID="p1")))
        assert full.code() is grpc.StatusCode.UNKNOWN
    gs = await env.stored("gs-1", lambda g: g.status.players is not None and g.status.players.capacity == -5)
    async with sdk(env) as core:
        assert (await core.GetGameServer(EMPTY)).status.players.capacity == -5
    assert gs.status.players is not None and gs.status.players.ids == ()


async def test_sdk_calls_are_counted_by_method(env: Env) -> None:
    def count(method: str) -> float:
        return float(metrics.SDK_CALLS.labels(method=method)._value.get())

    await add_declared(env)
    before = {m: count(m) for m in ("Ready", "Health", "SetLabel", "GetGameServer", "GetCounter")}
    async with channel(env) as ch:
        stub = sdk_pb2_grpc.SDKStub(ch)
        await stub.Ready(EMPTY)
        health = stub.Health()
        await health.write(EMPTY)
        await health.write(EMPTY)
        await health.done_writing()
        await health
        await stub.SetLabel(sdk_pb2.KeyValue(key="a", value="b"))
        await stub.GetGameServer(EMPTY)
        await beta_pb2_grpc.SDKStub(ch).GetCounter(beta_pb2.GetCounterRequest(name="rooms"))
    assert {m: count(m) - before[m] for m in before} == {
        "Ready": 1,
        "Health": 2,
        "SetLabel": 1,
        "GetGameServer": 1,
        "GetCounter": 1,
    }


def test_gameserver_proto_of_a_bare_object() -> None:
    """Unset times are 0, no address means no addresses, players absent stays absent."""
    gs = GameServer(
        metadata=ObjectMeta(name="bare", deletion_timestamp=1_700_000_000.9),
        spec=GameServerSpec(ports=(GameServerPort(name="game"),)),
        status=GameServerStatus(ports=(PortStatus("game", 7777),)),
    )
    got = gameserver_proto(gs)
    assert (got.object_meta.creation_timestamp, got.object_meta.deletion_timestamp) == (0, 1_700_000_000)
    assert list(got.status.addresses) == [] and not got.status.HasField("players")
    assert [(p.name, p.port) for p in got.status.ports] == [("game", 7777)]
    assert got.status.state == "Creating"


# -- through the node agent ------------------------------------------------------------------------

FIRST_PORT = 7950
"""Game ports of the node-agent test (other modules use other ranges)."""

GRPC_GAME = """
import os, time, grpc
from sdk_sidecar.grpc_gen import sdk_pb2, sdk_pb2_grpc
port = os.environ["AGONES_SDK_GRPC_PORT"]
with grpc.insecure_channel("localhost:" + port) as channel:  # as the official SDKs connect
    sdk = sdk_pb2_grpc.SDKStub(channel)
    sdk.SetLabel(sdk_pb2.KeyValue(key="grpc-port", value=port), wait_for_ready=True, timeout=30)
    sdk.Ready(sdk_pb2.Empty(), timeout=10)
    def pings():
        while True:
            yield sdk_pb2.Empty()
            time.sleep(0.3)
    sdk.Health(pings())
"""


async def test_a_game_process_speaks_grpc_through_the_node_agent(redis_client: aioredis.Redis, tmp_path: Path) -> None:
    """The node agent serves the gRPC SDK on the port it passes as ``AGONES_SDK_GRPC_PORT``; a game
    using it (connecting to ``localhost``) becomes Ready and stays healthy on its Health stream."""
    game = ProcessTemplate(("python", "-c", GRPC_GAME), working_dir=str(REPO), termination_grace_seconds=1)
    stack: Stack
    async with running_stack(redis_client, tmp_path, first_port=FIRST_PORT) as stack:
        await apply_fleet(
            stack.fleets,
            make_fleet("grpc", 1, game, Health(period_seconds=1, failure_threshold=2, initial_delay_seconds=1)),
        )
        [gs] = await stack.ready("grpc", 1)
        agent = stack.agents[0]
        grpc_port = agent.host.grpc_port_of(gs.name)
        assert grpc_port is not None and grpc_port == agent.local[gs.name].grpc_port
        assert gs.metadata.labels["agones.dev/sdk-grpc-port"] == str(grpc_port)
        await asyncio.sleep(3.5)  # past the initial delay plus failure_threshold periods: the pings count
        assert (await stack.gameservers.get(gs.name)).state is S.READY
