"""The two front doors agree: the same request over REST and over gRPC fails with the same gRPC code and
message (REST with the HTTP status of that code), or succeeds with the same message. Each door talks to
its own one of two identical game servers, so that neither sees the other's change."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf import json_format
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.protobuf.wrappers_pb2 import Int64Value

from fleetmatch.models import (
    CounterStatus,
    GameServer,
    GameServerSpec,
    GameServerState,
    GameServerStatus,
    Health,
    ListStatus,
    ObjectMeta,
)
from sdk_sidecar.codes import http_status
from sdk_sidecar.grpc_gen import beta_pb2, beta_pb2_grpc
from tests.integration.sdkenv import Env, call, running_host

List, Update = beta_pb2.List, beta_pb2.CounterUpdateRequest


@pytest.fixture
async def env(redis_client: aioredis.Redis) -> AsyncIterator[Env]:
    async with running_host(redis_client) as e:
        for name in ("gs-rest", "gs-grpc"):
            await e.host.add(await e.store.create(declared(name)))
        yield e


def declared(name: str) -> GameServer:
    return GameServer(
        metadata=ObjectMeta(name=name),
        spec=GameServerSpec(
            health=Health(disabled=True),
            counters={"rooms": CounterStatus(count=1, capacity=10)},
            lists={"players": ListStatus(capacity=3, values=("a",))},
        ),
        status=GameServerStatus(state=GameServerState.READY, node_name="local"),
    )


def counter(body: dict[str, Any], update: beta_pb2.CounterUpdateRequest) -> tuple[str, str, str, Message]:
    name = update.name
    return (
        "PATCH",
        f"/v1beta1/counters/{name}",
        json.dumps(body),
        beta_pb2.UpdateCounterRequest(counterUpdateRequest=update),
    )


def listed(query: str, body: dict[str, Any], wanted: beta_pb2.List, paths: list[str]) -> tuple[str, str, str, Message]:
    request = beta_pb2.UpdateListRequest(list=wanted, update_mask=FieldMask(paths=paths))
    return "PATCH", f"/v1beta1/lists/{wanted.name}{query}", json.dumps(body), request


FAILURES = [
    pytest.param(
        *listed(
            "?update_mask=capacity,bogus", {"capacity": 2}, List(name="players", capacity=2), ["capacity", "bogus"]
        ),
        id="list-mask-unknown-path",
    ),
    pytest.param(
        *listed("?update_mask=capacity", {"capacity": 1001}, List(name="players", capacity=1001), ["capacity"]),
        id="list-capacity-out-of-range",
    ),
    pytest.param(
        *listed("?update_mask=capacity", {"capacity": 1}, List(name="nope", capacity=1), ["capacity"]),
        id="list-not-found",
    ),
    pytest.param(*counter({}, Update(name="rooms")), id="counter-nothing-to-update"),
    pytest.param(*counter({"countDiff": 1}, Update(name="nope", countDiff=1)), id="counter-not-found"),
    pytest.param(
        *counter({"count": 11}, Update(name="rooms", count=Int64Value(value=11))), id="counter-count-too-high"
    ),
    pytest.param(
        *counter({"capacity": -1}, Update(name="rooms", capacity=Int64Value(value=-1))), id="counter-capacity-negative"
    ),
    pytest.param(*counter({"countDiff": -2}, Update(name="rooms", countDiff=-2)), id="counter-diff-below-zero"),
]


async def grpc_call(env: Env, request: Message) -> Any:
    port = env.host.grpc_port_of("gs-grpc")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = beta_pb2_grpc.SDKStub(channel)
        if isinstance(request, beta_pb2.UpdateListRequest):
            return await stub.UpdateList(request)
        assert isinstance(request, beta_pb2.UpdateCounterRequest)
        return await stub.UpdateCounter(request)


@pytest.mark.parametrize(("method", "path", "body", "request_"), FAILURES)
async def test_both_doors_refuse_alike(env: Env, method: str, path: str, body: str, request_: Message) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await grpc_call(env, request_)
    code, details = int(info.value.code().value[0]), info.value.details()
    url = f"http://127.0.0.1:{env.host.port_of('gs-rest')}"
    assert await call(env, method, url + path, body) == (
        http_status(code),
        "application/json",
        {"code": code, "message": details, "details": []},
    )
    assert await env.host.flush("gs-rest") and await env.host.flush("gs-grpc")
    assert env.store.updates == 0


SUCCESSES = [
    pytest.param(
        *listed("?update_mask=name", {"name": "players", "capacity": 7}, List(name="players", capacity=7), ["name"]),
        id="list-mask-name-sets-nothing",
    ),
    pytest.param(
        *listed("?update_mask=values", {"values": ["z"]}, List(name="players", values=["z"]), ["values"]),
        id="list-values",
    ),
    pytest.param(*counter({"countDiff": 2}, Update(name="rooms", countDiff=2)), id="counter-diff"),
]


@pytest.mark.parametrize(("method", "path", "body", "request_"), SUCCESSES)
async def test_both_doors_answer_alike(env: Env, method: str, path: str, body: str, request_: Message) -> None:
    url = f"http://127.0.0.1:{env.host.port_of('gs-rest')}"
    status, _, rest = await call(env, method, url + path, body)
    reply = await grpc_call(env, request_)
    assert (status, rest) == (
        200,
        json_format.MessageToDict(reply, preserving_proto_field_name=True, always_print_fields_with_no_presence=True),
    )
