"""The allocation API (aiohttp): ``POST /v1/allocations`` plus health, metrics and OpenAPI.

Results follow Agones' GameServerAllocation: the request's document comes back with a ``status``.
HTTP codes: 201 Allocated; 429 UnAllocated (nothing free: retry later or scale up); 404
FleetNotFound (still UnAllocated, as Agones answers, but every selector names a fleet that does not
exist: the field names the first; a full or empty fleet that exists is a 429); 409 Contention
(lost every race it tried: retry now) or IdempotencyKeyInUse (a request with the same key is in
progress: retry with it); 401 bad token; 400 malformed JSON; 408 body not sent in time; 413 body
too large; 422 invalid request, naming the field (or the ``Idempotency-Key`` header, reused with
another body); 503 while the allocator has not yet read the store, or cannot reach it. The
allocation results are answered here; errors are mapped by ``fleetmatch.http``, as for every
fleetmatch API.

``POST /v1/allocations`` is also served on the fast path (``fast_route``, ``fleetmatch.fastpath``):
the same answers from the same code (``_answer``), without aiohttp's cost per request.

``Idempotency-Key: <key>`` (optional, 1 to 128 visible ASCII characters) names one logical
allocation: every retry with it gets the same server, from any allocator, never a second one.
A request whose client hung up before its server was claimed claims nothing.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from allocator.allocation import Allocator
from allocator.openapi import OPENAPI
from fleetmatch.allocation import (
    IDEMPOTENCY_HEADER,
    AllocationKey,
    AllocationState,
    GameServerAllocation,
    GameServerAllocationSpec,
    decode_allocation,
    idempotency_key_error,
    request_digest,
)
from fleetmatch.codec import to_wire
from fleetmatch.errors import ValidationError
from fleetmatch.fastpath import Answer, FastRoute
from fleetmatch.http import (
    BODY_TIMEOUT,
    PUBLIC,
    TOKEN,
    api_middleware,
    client_gone,
    parse_json,
    problem,
    read_body,
    server_tls,
)
from fleetmatch.metrics import add_metrics_routes
from fleetmatch.models import API_VERSION
from fleetmatch.probes import Probes, add_probe_routes
from fleetmatch.settings import AllocatorSettings

ALLOCATOR = web.AppKey("allocator", Allocator)
NAMESPACE = web.AppKey("namespace", str)
OPENAPI_DOC = web.AppKey("openapi", dict[str, Any])
"""What this app serves: ``/metrics`` is listed only where it is (not on ``fleetmatch up``'s allocator port)."""

_STATUS = {AllocationState.ALLOCATED: 201, AllocationState.UNALLOCATED: 429, AllocationState.CONTENTION: 409}
_MESSAGES = {
    AllocationState.UNALLOCATED: "no game server matches the selectors and is free: retry later, or scale the fleet",
    AllocationState.CONTENTION: "every server tried was taken by a concurrent allocation: retry",
}


@dataclass(frozen=True, slots=True)
class _Request:
    """A decoded, validated request body, and the start of its 201 answer encoded once."""

    spec: GameServerAllocationSpec
    sent: Any
    """The request's spec as the client sent it (JSON): answered back as sent, no re-encoding."""
    head: bytes
    """The 201 body up to its status: ``{"apiVersion": ..., "kind": ..., "spec": <sent>, "status": ``."""
    namespace: str
    """``metadata.namespace`` as sent ("" if not): it must be empty or the allocator's own."""


_REQUESTS: dict[bytes, _Request] = {}
REQUEST_CACHE_SIZE = 256
"""Distinct request bodies kept decoded. Clients send the same few bodies over and over (a
matchmaker's fleet selector); decoding and validating one costs more than the rest of the handler
but for the claim. A body is immutable bytes and its decoding deterministic, so a hit answers
exactly as decoding again would."""
REQUEST_CACHE_MAX_BODY = 4096
"""Larger bodies (long label or annotation lists) are decoded every time, not kept."""


def _decoded(raw: bytes) -> _Request:
    """The request in ``raw``: decoded once per distinct body (bad ones raise, and are not kept)."""
    known = _REQUESTS.get(raw)
    if known is not None:
        return known
    doc = parse_json(raw)
    allocation = decode_allocation(doc)
    sent = doc.get("spec", {})
    head = {"apiVersion": API_VERSION, "kind": GameServerAllocation.KIND, "spec": sent, "status": None}
    # Compact JSON (orjson), the status spliced in per answer.
    meta = doc.get("metadata")
    namespace = meta.get("namespace") if isinstance(meta, dict) else None
    if namespace is not None and not isinstance(namespace, str):
        raise ValidationError("metadata.namespace", f"expected a string, got {type(namespace).__name__}")
    request = _Request(allocation.spec, sent, orjson.dumps(head)[: -len("null}")], namespace or "")
    if len(raw) <= REQUEST_CACHE_MAX_BODY:
        if len(_REQUESTS) >= REQUEST_CACHE_SIZE:
            del _REQUESTS[next(iter(_REQUESTS))]  # oldest first
        _REQUESTS[raw] = request
    return request


async def allocate(request: web.Request) -> web.Response:
    raw = await read_body(request)
    answer = await _answer(request.app, raw, request.headers.get(IDEMPOTENCY_HEADER), lambda: client_gone(request))
    if isinstance(answer, tuple):
        status, body = answer
        return web.Response(body=body, status=status, content_type="application/json", charset="utf-8")
    return answer


async def _answer(app: web.Application, raw: bytes, idempotency: str | None, gone: Callable[[], bool]) -> Answer:
    """The allocation for the body ``raw``, on aiohttp or on the fast path alike: ``(201, body)``,
    another answer as a response, or an error the API maps (``fleetmatch.http.error_response``)."""
    allocator = app[ALLOCATOR]
    if not allocator.ready:
        return problem(503, "the allocator is still reading the store; retry in a moment")
    sent = _decoded(raw)
    if sent.namespace and sent.namespace != app[NAMESPACE]:
        raise ValidationError(
            "metadata.namespace", f"this allocator serves namespace {app[NAMESPACE]!r}, not {sent.namespace!r}"
        )
    key = _key(idempotency, sent.sent)
    status = await allocator.allocate(sent.spec, key=key, abandoned=gone)
    if status.state is AllocationState.ALLOCATED:
        # orjson: a tenth of json.dumps' time; the status holds only validated values (text keys,
        # int64 counters, finite numbers), all of which it encodes.
        return 201, sent.head + orjson.dumps(to_wire(status)) + b"}"
    body = {"apiVersion": API_VERSION, "kind": GameServerAllocation.KIND, "spec": sent.sent, "status": to_wire(status)}
    if status.state is AllocationState.UNALLOCATED:
        missing = await allocator.missing_fleet(sent.spec)
        if missing is not None:
            field, fleet = missing
            return problem(404, f'fleet "{fleet}" does not exist', code="FleetNotFound", field=field, extra=body)
    return problem(_STATUS[status.state], _MESSAGES[status.state], code=status.state.value, extra=body)


def fast_route(app: web.Application, settings: AllocatorSettings) -> FastRoute:
    """``POST /v1/allocations`` of ``app`` on the fast path (``fleetmatch.fastpath``): the same
    answers, without aiohttp's cost per request."""

    async def answer(raw: bytes, headers: Mapping[bytes, bytes], gone: Callable[[], bool]) -> Answer:
        key = headers.get(b"idempotency-key")
        return await _answer(app, raw, None if key is None else key.decode("utf-8", "surrogateescape"), gone)

    return FastRoute(
        "POST",
        "/v1/allocations",
        app[TOKEN],
        answer,
        max_body=settings.max_body_bytes,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
    )


async def release(request: web.Request) -> web.Response:
    """``DELETE /v1/allocations/{key}``: give back the servers allocated under idempotency key
    ``key`` that nobody has connected to; the key is refused from then on."""
    allocator = request.app[ALLOCATOR]
    if not allocator.ready:
        return problem(503, "the allocator is still reading the store; retry in a moment")
    key = request.match_info["key"]
    err = idempotency_key_error(key)
    if err:
        raise ValidationError("key", err)
    return web.json_response({"released": list(await allocator.release(key))})


def _key(value: str | None, spec: object) -> AllocationKey | None:
    """The request's idempotency key (its header's value), with the digest of the spec it came with."""
    if value is None:
        return None
    err = idempotency_key_error(value)
    if err:
        raise ValidationError(IDEMPOTENCY_HEADER, err)
    return AllocationKey(value, request_digest(spec))


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI_DOC])


def build_app(
    allocator: Allocator,
    settings: AllocatorSettings,
    token: str,
    probes: Probes | None = None,
    *,
    metrics: bool = True,
    namespace: str = "default",
) -> web.Application:
    """The application; ``probes``: what ``/readyz`` and ``/healthz`` report (default: the index is synced).
    ``metrics``: serve ``/metrics`` (not where another site of the process already serves the registry).
    ``namespace``: the allocator's; a request naming another in ``metadata.namespace`` is a 422."""
    if probes is None:
        probes = Probes()
        probes.gate("index", lambda: allocator.ready)
    app = web.Application(middlewares=[api_middleware], client_max_size=settings.max_body_bytes)
    app[ALLOCATOR] = allocator
    app[NAMESPACE] = namespace
    served = (
        OPENAPI if metrics else {**OPENAPI, "paths": {k: v for k, v in OPENAPI["paths"].items() if k != "/metrics"}}
    )
    app[OPENAPI_DOC] = served
    app[TOKEN] = token
    app[BODY_TIMEOUT] = settings.body_timeout
    app[PUBLIC] = frozenset({"/healthz", "/readyz", "/livez", "/metrics", "/openapi.json"})
    app.router.add_post("/v1/allocations", allocate)
    app.router.add_delete("/v1/allocations/{key}", release)
    add_probe_routes(app, probes)
    app.router.add_get("/openapi.json", openapi)
    if metrics:
        add_metrics_routes(app)
    return app


def server_ssl_context(settings: AllocatorSettings) -> ssl.SSLContext | None:
    """HTTPS when a certificate is configured; client certificates required when a CA is too."""
    if settings.tls_cert is None:
        return None
    return server_tls(
        settings.tls_cert,
        settings.tls_key or settings.tls_cert,
        client_ca=settings.tls_client_ca,
        names=("FLEETMATCH_ALLOCATOR_TLS_CERT", "FLEETMATCH_ALLOCATOR_TLS_KEY"),
    )
