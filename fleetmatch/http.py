"""What every fleetmatch HTTP API shares: JSON errors, bearer-token auth, body reading.

Errors become HTTP answers in one place (``error_response``), for every API, always as
``{"error": {"code": "...", "message": "...", "field": "..."}}``. A ``FleetmatchError`` that
declares an ``http_status`` gets it (``ValidationError`` 422 naming the field, ``NotFoundError``
404, ``BackendError`` 503, the services' own errors theirs, with ``Retry-After`` when they know);
aiohttp's own (malformed JSON 400, body over the limit 413, 405 with ``Allow``) keep their status;
anything else is a 500 with a log line, never a traceback to the client. Two middlewares use it:
``api_middleware`` (a shared bearer token, the allocation API) and ``errors_middleware`` (an API
that authenticates per request, the ticket API). (The Agones SDK endpoints keep Agones' own error
shape; see ``sdk_sidecar.http``.)
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import math
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from fleetmatch.errors import ConfigError, FleetmatchError, ValidationError
from fleetmatch.metrics import add_metrics_routes
from fleetmatch.probes import Probes, add_probe_routes
from fleetmatch.probes import running as running_probes

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "TooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "NoCapacity",
    500: "Internal",
    503: "Unavailable",
}


def problem(
    http_status: int,
    message: str,
    *,
    code: str | None = None,
    field: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> web.Response:
    """A JSON error response (``extra``: more top-level members, e.g. the allocation's status)."""
    error: dict[str, Any] = {"code": code or _CODES.get(http_status, "Error"), "message": message}
    if field is not None:
        error["field"] = field
    headers = {"WWW-Authenticate": 'Bearer realm="fleetmatch"'} if http_status == 401 else None
    return web.json_response({"error": error, **(extra or {})}, status=http_status, headers=headers)


PUBLIC = web.AppKey("fleetmatch.public_paths", frozenset)
"""Paths served without a token (health, metrics, the OpenAPI document)."""
TOKEN = web.AppKey("fleetmatch.token", str)


def error_response(request: web.Request, exc: Exception) -> web.Response:
    """The JSON problem answering ``exc``: the one place errors become HTTP answers."""
    status = exc.http_status if isinstance(exc, FleetmatchError) else None
    if isinstance(exc, FleetmatchError) and status is not None:
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.path, exc)
        if isinstance(exc, ValidationError):
            response = problem(status, exc.message, code=exc.http_code, field=exc.field)
        else:
            response = problem(status, exc.public_message or str(exc), code=exc.http_code)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return response
    if isinstance(exc, web.HTTPException) and exc.status >= 400:
        response = problem(exc.status, exc.text if exc.status == 413 and exc.text else exc.reason)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    log.error("%s %s failed", request.method, request.path, exc_info=exc)
    return problem(500, "internal error (see the server log)")


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # a redirect is an answer, not an error
        return error_response(request, exc)
    except Exception as exc:
        return error_response(request, exc)


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer-token auth, then errors to JSON problems: one middleware layer (each costs a little
    on every request)."""
    if request.path in request.app[PUBLIC]:
        return await _answer(request, handler)
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return problem(401, "missing bearer token: send 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(given.strip().encode(), request.app[TOKEN].encode()):
        return problem(401, "invalid bearer token")
    return await _answer(request, handler)


def errors_middleware(observe: Callable[[web.Request, int], None] | None = None) -> Middleware:
    """Errors to JSON problems, for an API that authenticates each request itself. ``observe``
    sees every answer's status (request counters), in the same middleware layer."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await _answer(request, handler)
        if observe is not None:
            observe(request, response.status)
        return response

    return errors


async def read_json(request: web.Request) -> Any:
    """The request body as JSON; malformed JSON is a 400 naming the position."""
    raw = await request.read()
    if not raw:
        raise web.HTTPBadRequest(reason="the request body is empty; expected a JSON object")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise web.HTTPBadRequest(reason=f"malformed JSON: {exc}") from None
    except RecursionError:
        raise web.HTTPBadRequest(reason="malformed JSON: nested too deeply") from None


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string", "description": "dotted path of the offending field"},
            },
        }
    },
}
"""The error body of every fleetmatch API, for their OpenAPI documents."""


async def start_site(
    runner: web.AppRunner,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    fallback_port: bool = False,
    what: str = "server",
) -> int:
    """Listen on ``host:port`` and return the port. With ``fallback_port``, a busy port is replaced
    by any free one (``fleetmatch up`` on a busy laptop) instead of failing."""
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, backlog=1024)
    try:
        await site.start()
    except OSError as exc:
        if not fallback_port or port == 0:
            raise ConfigError(f"{what}: cannot listen on {host}:{port}: {exc.strerror}") from exc
        log.warning("%s port %d unavailable (%s); using a free port", what, port, exc.strerror)
        site = web.TCPSite(runner, host, 0, ssl_context=ssl_context, backlog=1024)
        await site.start()
    server = site._server
    assert server is not None
    bound: int = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return bound


@contextlib.asynccontextmanager
async def metrics_site(port: int, host: str = "127.0.0.1", *, probes: Probes | None = None) -> AsyncIterator[str]:
    """Serve ``/metrics`` and the probes (``/livez``, ``/readyz``, ``/healthz``: what ``probes``
    checks, run here in the background); if ``port`` is taken, take any free one (and say so)."""
    probes = probes or Probes()
    app = web.Application()
    add_metrics_routes(app)
    add_probe_routes(app, probes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        async with running_probes(probes):
            bound = await start_site(runner, host, port, fallback_port=True, what="metrics")
            yield f"http://{host}:{bound}/metrics"
    finally:
        await runner.cleanup()
