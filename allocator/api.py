"""The allocation API (aiohttp): ``POST /v1/allocations`` plus health, metrics and OpenAPI.

Results follow Agones' GameServerAllocation: the request's document comes back with a ``status``.
HTTP codes: 201 Allocated; 429 UnAllocated (nothing free: retry later or scale up); 409 Contention
(lost every race it tried: retry now); 401 bad token; 400 malformed JSON; 413 body too large; 422
invalid request, naming the field; 503 while the allocator has not yet read the store, or cannot
reach it. The allocation results are answered here; errors are mapped by ``fleetmatch.http``, as
for every fleetmatch API.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from aiohttp import web

from allocator.allocation import Allocator
from allocator.openapi import OPENAPI
from fleetmatch.allocation import AllocationState, GameServerAllocation, decode_allocation
from fleetmatch.codec import to_wire
from fleetmatch.http import PUBLIC, TOKEN, api_middleware, problem, read_json
from fleetmatch.metrics import metrics_handler
from fleetmatch.models import API_VERSION
from fleetmatch.probes import Probes, add_probe_routes
from fleetmatch.settings import AllocatorSettings

ALLOCATOR = web.AppKey("allocator", Allocator)

_STATUS = {AllocationState.ALLOCATED: 201, AllocationState.UNALLOCATED: 429, AllocationState.CONTENTION: 409}
_MESSAGES = {
    AllocationState.UNALLOCATED: "no game server matches the selectors and is free: retry later, or scale the fleet",
    AllocationState.CONTENTION: "every server tried was taken by a concurrent allocation: retry",
}


async def allocate(request: web.Request) -> web.Response:
    allocator = request.app[ALLOCATOR]
    if not allocator.ready:
        return problem(503, "the allocator is still reading the store; retry in a moment")
    doc = await read_json(request)
    allocation = decode_allocation(doc)
    status = await allocator.allocate(allocation.spec)
    # The request's spec goes back as the client sent it (validated above): no re-encoding.
    body = {"apiVersion": API_VERSION, "kind": GameServerAllocation.KIND, "spec": doc.get("spec", {})}
    body["status"] = to_wire(status)
    if status.state is AllocationState.ALLOCATED:
        return web.json_response(body, status=201)
    return problem(_STATUS[status.state], _MESSAGES[status.state], code=status.state.value, extra=body)


async def openapi(_: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


def build_app(
    allocator: Allocator, settings: AllocatorSettings, token: str, probes: Probes | None = None
) -> web.Application:
    """The application; ``probes``: what ``/readyz`` and ``/healthz`` report (default: the index is synced)."""
    if probes is None:
        probes = Probes()
        probes.gate("index", lambda: allocator.ready)
    app = web.Application(middlewares=[api_middleware], client_max_size=settings.max_body_bytes)
    app[ALLOCATOR] = allocator
    app[TOKEN] = token
    app[PUBLIC] = frozenset({"/healthz", "/readyz", "/livez", "/metrics", "/openapi.json"})
    app.router.add_post("/v1/allocations", allocate)
    add_probe_routes(app, probes)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/metrics", metrics_handler())
    return app


def server_ssl_context(settings: AllocatorSettings) -> ssl.SSLContext | None:
    """HTTPS when a certificate is configured; client certificates required when a CA is too."""
    if settings.tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key or settings.tls_cert))
    if settings.tls_client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(Path(settings.tls_client_ca)))
    return context
