"""Agones' allocation gRPC service (``allocation.AllocationService/Allocate``) in-process on the real
Redis store, called by a real grpcio client through the stubs generated from the Agones proto:
claims with metadata in the same write, the deprecated preferred/required selectors, status codes
as Agones' allocator answers them, auth, and the metric."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from prometheus_client import REGISTRY

from allocator.app import serve_allocator
from allocator.grpc_gen import allocation_pb2, allocation_pb2_grpc
from fleetmatch.backends.base import Backend
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.models import FLEET_LABEL, GameServer, GameServerState
from fleetmatch.settings import AllocatorSettings
from tests.integration.test_allocator_api import ready_servers

TOKEN = "test-token-0123456789abcdef"
Req = allocation_pb2.AllocationRequest
Sel = allocation_pb2.GameServerSelector


@dataclass
class Grpc:
    stub: allocation_pb2_grpc.AllocationServiceAsyncStub
    store: RedisStore[GameServer]

    async def allocate(self, request: Req, *, token: str | None = TOKEN) -> allocation_pb2.AllocationResponse:
        metadata = (("authorization", f"Bearer {token}"),) if token else None
        return await self.stub.Allocate(request, metadata=metadata, timeout=10)


@pytest.fixture
async def api(gs_store: RedisStore[GameServer], backend: Backend) -> AsyncIterator[Grpc]:
    settings = AllocatorSettings(port=0, grpc_port=0)
    async with serve_allocator(backend, settings, TOKEN) as service:
        assert service.grpc_port
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
            stub = allocation_pb2_grpc.AllocationServiceStub(channel)
            yield Grpc(stub, gs_store)


def arena(**labels: str) -> Sel:
    return Sel(matchLabels={FLEET_LABEL: "arena", **labels})


def calls(code: str) -> float:
    return REGISTRY.get_sample_value("fleetmatch_allocator_grpc_requests_total", {"code": code}) or 0.0


async def test_allocate_claims_a_ready_server_with_the_metadata_in_the_same_write(api: Grpc) -> None:
    await ready_servers(api.store, 2)
    before = calls("OK")
    response = await api.allocate(
        Req(
            namespace="default",
            gameServerSelectors=[arena()],
            metadata=allocation_pb2.MetaPatch(labels={"match": "m1"}, annotations={"map": "dust"}),
            multiClusterSetting=allocation_pb2.MultiClusterSetting(enabled=True),  # ignored
        )
    )
    assert response.gameServerName.startswith("arena-")
    assert response.address == "127.0.0.1" and response.source == "local"
    assert [(a.type, a.address) for a in response.addresses] == [("ExternalIP", "127.0.0.1")]
    assert [(p.name, p.port) for p in response.ports] == [("default", 7000 + int(response.gameServerName[-3:]))]
    assert response.nodeName.startswith("node-")
    assert response.metadata.labels["match"] == "m1" and response.metadata.annotations["map"] == "dust"
    stored = await api.store.get(response.gameServerName)
    assert stored.state is GameServerState.ALLOCATED
    assert stored.metadata.labels["match"] == "m1" and stored.metadata.annotations["map"] == "dust"
    assert calls("OK") == before + 1


async def test_preferred_then_required_selectors_and_meta_patch(api: Grpc) -> None:
    await ready_servers(api.store, 1, fleet="blue")
    await ready_servers(api.store, 1, fleet="arena")
    request = Req(
        preferredGameServerSelectors=[Sel(matchLabels={FLEET_LABEL: "blue"})],
        requiredGameServerSelector=arena(),
        metaPatch=allocation_pb2.MetaPatch(labels={"via": "metaPatch"}),
    )
    first = await api.allocate(request)
    second = await api.allocate(request)
    assert (first.gameServerName, second.gameServerName) == ("blue-000", "arena-000")
    assert first.metadata.labels["via"] == "metaPatch"


async def test_nothing_ready_is_resource_exhausted(api: Grpc) -> None:
    await ready_servers(api.store, 1)
    await api.allocate(Req(gameServerSelectors=[arena()]))
    before = calls("RESOURCE_EXHAUSTED")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.allocate(Req(gameServerSelectors=[arena()]))
    assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert calls("RESOURCE_EXHAUSTED") == before + 1


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        pytest.param(Req(gameServerSelectors=[Sel(matchLabels={"bad label!": "x"})]), "matchLabels", id="label-key"),
        pytest.param(
            Req(gameServerSelectors=[arena()], metadata=allocation_pb2.MetaPatch(labels={"ok": "not valid!"})),
            "metadata.labels",
            id="metadata-label-value",
        ),
        pytest.param(Req(namespace="elsewhere", gameServerSelectors=[arena()]), "namespace", id="namespace"),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(api: Grpc, request_: Req, field: str) -> None:
    await ready_servers(api.store, 1)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.allocate(request_)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in (err.value.details() or "")
    assert (await api.store.get("arena-000")).state is GameServerState.READY  # nothing claimed


@pytest.mark.parametrize("token", [None, "wrong-token-0123456789"])
async def test_no_or_wrong_token_is_unauthenticated(api: Grpc, token: str | None) -> None:
    await ready_servers(api.store, 1)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.allocate(Req(gameServerSelectors=[arena()]), token=token)
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert (await api.store.get("arena-000")).state is GameServerState.READY
