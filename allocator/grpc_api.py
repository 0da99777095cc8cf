"""Agones' allocator gRPC service, ``allocation.AllocationService/Allocate``, on grpcio's asyncio server.

A backend built on Agones' allocator client switches to fleetmatch by changing the address it dials:
the request and response are Agones' messages (``allocator/protos/allocation.proto``, generated into
``allocator.grpc_gen`` by ``make proto``). A request is turned into the JSON the HTTP API takes and
decoded by the same code (``decode_allocation``), so both front doors validate alike and name the
same fields; the claim is the same ``Allocator.allocate``.

Status codes follow Agones' allocator: Allocated → OK; nothing free → RESOURCE_EXHAUSTED; lost every
race → ABORTED; bad input → INVALID_ARGUMENT (the message names the field); another namespace →
INVALID_ARGUMENT; no or wrong token → UNAUTHENTICATED; index not read yet or Redis out of reach →
UNAVAILABLE. Authentication: with mutual TLS (``FLEETMATCH_ALLOCATOR_TLS_CLIENT_CA``) the client
certificate suffices, as with Agones; otherwise each call carries ``authorization: Bearer <token>``.
``multiClusterSetting`` is accepted and ignored (allocation is local).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from typing import Any, NoReturn

import grpc

from allocator import metrics
from allocator.allocation import Allocator
from allocator.grpc_gen import allocation_pb2, allocation_pb2_grpc
from fleetmatch.allocation import AllocationState, GameServerAllocationStatus, decode_allocation
from fleetmatch.errors import BackendError, ValidationError
from fleetmatch.settings import AllocatorSettings

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
Request = allocation_pb2.AllocationRequest
Response = allocation_pb2.AllocationResponse


_STATES = {0: "Ready", 1: "Allocated"}
_SCHEDULING = {0: "Packed", 1: "Distributed"}
_GONE = {
    AllocationState.UNALLOCATED: (grpc.StatusCode.RESOURCE_EXHAUSTED, "there is no available GameServer to allocate"),
    AllocationState.CONTENTION: (grpc.StatusCode.ABORTED, "every server tried was taken by a concurrent allocation"),
}


def _selector(message: allocation_pb2.GameServerSelector) -> dict[str, Any]:
    doc: dict[str, Any] = {"gameServerState": _STATES.get(message.gameServerState, "Ready")}
    if message.matchLabels:
        doc["matchLabels"] = dict(message.matchLabels)
    if message.HasField("players"):
        doc["players"] = {
            "minAvailable": message.players.minAvailable,
            "maxAvailable": message.players.maxAvailable,
        }
    return doc


def request_document(request: Request) -> dict[str, Any]:
    """The HTTP API's request document for an Agones ``AllocationRequest``: ``gameServerSelectors``,
    or else (deprecated by Agones) the preferred selectors then the required one; ``metadata``, or
    else ``metaPatch``."""
    if request.gameServerSelectors:
        selectors = [_selector(s) for s in request.gameServerSelectors]
    else:
        selectors = [_selector(s) for s in request.preferredGameServerSelectors]
        selectors.append(_selector(request.requiredGameServerSelector))
    spec: dict[str, Any] = {"selectors": selectors, "scheduling": _SCHEDULING.get(request.scheduling, "Packed")}
    patch = request.metadata if request.HasField("metadata") else request.metaPatch
    if patch.labels or patch.annotations:
        spec["metadata"] = {"labels": dict(patch.labels), "annotations": dict(patch.annotations)}
    return {"spec": spec}


def _address_type(address: str) -> str:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return "ExternalDNS"
    return "ExternalIP"


def response_of(status: GameServerAllocationStatus) -> Response:
    """Agones' ``AllocationResponse`` for an Allocated answer."""
    return Response(
        gameServerName=status.game_server_name,
        ports=[Response.GameServerStatusPort(name=p.name, port=p.port) for p in status.ports],
        address=status.address,
        addresses=[Response.GameServerStatusAddress(type=_address_type(status.address), address=status.address)]
        if status.address
        else [],
        nodeName=status.node_name,
        source="local",
        metadata=Response.GameServerMetadata(
            labels=dict(status.metadata.labels), annotations=dict(status.metadata.annotations)
        ),
    )


async def _abort(context: Context, code: grpc.StatusCode, message: str) -> NoReturn:
    metrics.GRPC_ALLOCATIONS.labels(code=code.name).inc()
    await context.abort(code, message)


class AllocationServicer(allocation_pb2_grpc.AllocationServiceServicer):
    """``Allocate`` on one ``Allocator``; ``token``: required in call metadata unless ``mutual_tls``."""

    def __init__(self, allocator: Allocator, namespace: str, token: str, *, mutual_tls: bool = False) -> None:
        self._allocator = allocator
        self._namespace = namespace
        self._token = token.encode()
        self._mutual_tls = mutual_tls

    async def _authenticate(self, context: Context) -> None:
        if self._mutual_tls:
            return
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                scheme, _, given = str(value).partition(" ")
                if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token):
                    return
        await _abort(
            context, grpc.StatusCode.UNAUTHENTICATED, "missing or wrong token: send 'authorization: Bearer <token>'"
        )

    async def Allocate(self, request: Request, context: Context) -> Response:
        await self._authenticate(context)
        if not self._allocator.ready:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, "the allocator is still reading the store; retry")
        if request.namespace and request.namespace != self._namespace:
            await _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"namespace: this allocator serves namespace {self._namespace!r}, not {request.namespace!r}",
            )
        try:
            spec = decode_allocation(request_document(request)).spec
            status = await self._allocator.allocate(spec)
        except ValidationError as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except BackendError as exc:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, f"the store is out of reach: {exc}")
        if status.state is not AllocationState.ALLOCATED:
            code, message = _GONE[status.state]
            await _abort(context, code, message)
        metrics.GRPC_ALLOCATIONS.labels(code=grpc.StatusCode.OK.name).inc()
        return response_of(status)


def _credentials(settings: AllocatorSettings) -> grpc.ServerCredentials | None:
    if settings.tls_cert is None:
        return None
    key = (settings.tls_key or settings.tls_cert).read_bytes()
    ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca is not None else None
    return grpc.ssl_server_credentials(
        [(key, settings.tls_cert.read_bytes())], root_certificates=ca, require_client_auth=ca is not None
    )


async def serve_grpc(
    allocator: Allocator, settings: AllocatorSettings, token: str, namespace: str, *, reuse_port: bool = False
) -> tuple[grpc.aio.Server, int]:
    """Start ``AllocationService`` on ``settings.host:settings.grpc_port`` (TLS as the HTTP API); the
    server and its bound port. ``OSError`` when the port cannot be had. ``reuse_port``: share it with
    the other workers of ``fleetmatch allocator --workers N`` (off: a port in use is an error)."""
    server = grpc.aio.server(options=(("grpc.so_reuseport", int(reuse_port)),))
    servicer = AllocationServicer(allocator, namespace, token, mutual_tls=settings.tls_client_ca is not None)
    allocation_pb2_grpc.add_AllocationServiceServicer_to_server(servicer, server)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    address = f"{host}:{settings.grpc_port}"
    credentials = _credentials(settings)
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError as exc:  # grpcio: "Failed to bind to address ..."
        raise OSError(f"cannot serve the allocation gRPC API on {address}: {exc}") from exc
    if bound == 0:
        raise OSError(f"cannot serve the allocation gRPC API on {address}")
    await server.start()
    return server, bound
