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

Resource bounds: a client gets ``header_timeout`` seconds to send a request's headers (and to send
the next one on a kept-alive connection: ``app_runner``) and ``body_timeout`` seconds to send its
body (``read_json``, 408, then the connection is closed); a slow or stalled client cannot hold a
connection open indefinitely.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import json
import logging
import math
import select
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

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
    408: "RequestTimeout",
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
BODY_TIMEOUT = web.AppKey("fleetmatch.body_timeout", float)
"""Seconds ``read_json`` waits for a whole body (``DEFAULT_BODY_TIMEOUT`` when the app sets none)."""
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 10.0


class RateLimitedLog:
    """One log line per ``every`` seconds at most, counting what it left out: a flood of bad
    requests must not become a flood of log lines."""

    def __init__(self, logger: logging.Logger, every: float = 60.0, *, clock: Callable[[], float] = time.monotonic):
        self._log = logger
        self._every = every
        self._clock = clock
        self._next = float("-inf")
        self._dropped = 0

    def warning(self, message: str, *args: object) -> None:
        now = self._clock()
        if now < self._next:
            self._dropped += 1
            return
        dropped, self._dropped = self._dropped, 0
        self._next = now + self._every
        suffix = f" (and {dropped} more like it since the last report)" if dropped else ""
        self._log.warning(message + suffix, *args)


_bad_auth_log = RateLimitedLog(log)


class Named(Protocol):
    """What an error's log line names: an aiohttp request, or a request the fast path read itself."""

    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str: ...


def error_response(request: Named, exc: Exception) -> web.Response:
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
    # Header bytes that are not UTF-8 arrive as surrogates: they can match no token, and must not
    # raise (a 500 with a traceback per request, before any error mapper runs).
    given_bytes = given.strip().encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(given_bytes, request.app[TOKEN].encode()):
        if not given_bytes.isascii():
            _bad_auth_log.warning("%s %s: bearer token with non-ASCII bytes refused", request.method, request.path)
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
    """The request body as JSON; malformed JSON is a 400 naming the position, a body not sent
    within the app's ``BODY_TIMEOUT`` a 408 (aiohttp then closes the connection: its rest is unread)."""
    return parse_json(await read_body(request))


async def read_body(request: web.Request) -> bytes:
    """The whole request body, not empty (400); a 408 when it is not sent within the app's
    ``BODY_TIMEOUT`` (aiohttp then closes the connection: its rest is unread)."""
    if request.content.is_eof():  # the usual case: the whole body came with the headers
        raw = await request.read()
    else:
        try:
            async with asyncio.timeout(request.app.get(BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT)):
                raw = await request.read()
        except TimeoutError:
            raise web.HTTPRequestTimeout(reason="the request body was not sent in time") from None
    if not raw:
        raise web.HTTPBadRequest(reason="the request body is empty; expected a JSON object")
    return raw


def parse_json(raw: bytes) -> Any:
    """A request body as JSON; malformed JSON is a 400 naming the position."""
    try:
        return _JSON.decode(raw.decode())
    except ValueError as exc:  # malformed, not UTF-8, NaN/Infinity, an integer of thousands of digits
        raise web.HTTPBadRequest(reason=f"malformed JSON: {exc}"[:300]) from None
    except RecursionError:
        raise web.HTTPBadRequest(reason="malformed JSON: nested too deeply") from None


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


_JSON = json.JSONDecoder(parse_constant=_not_json)


_POLLRDHUP: int = getattr(select, "POLLRDHUP", 0)
"""The peer's end of stream, as poll reports it (Linux); 0 elsewhere (every check peeks)."""


def client_gone(request: web.BaseRequest) -> bool:
    """Has the client hung up (closed or reset its connection)? Asked before an irreversible write
    made for it, such as claiming a game server: an answer nobody reads would strand the result.

    The transport alone can be late: a close that arrived while the process was stalled sits in
    the socket behind the request until the event loop reads it. So the socket is also looked at
    (nothing consumed): end of stream or a reset means gone; pending bytes or none, still there.
    On Linux a poll answers first (0.7 us, where the peek costs 4.4: it raises when nothing is
    pending, the usual case); only a half-close it reports is peeked, as elsewhere.
    """
    return transport_gone(request.transport)


def transport_gone(transport: asyncio.BaseTransport | None) -> bool:
    """``client_gone`` for a connection's transport (the allocation fast path holds no request)."""
    if transport is None or transport.is_closing():
        return True
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    fd = sock.fileno()
    if _POLLRDHUP:
        poller = select.poll()
        poller.register(fd, select.POLLIN | _POLLRDHUP)
        events = poller.poll(0)
        if not events:
            return False  # nothing pending, no end of stream
        flags = events[0][1]
        if flags & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
            return True  # reset, or closed both ways
        if not flags & _POLLRDHUP:
            return False  # bytes pending (a pipelined request): still there
    probe = socket.socket(sock.family, sock.type, sock.proto, fileno=fd)  # all given: no getsockopt
    try:
        return probe.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    finally:
        probe.detach()  # the socket stays the transport's


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


LINGER_SECONDS = 1.0
"""After answering a request whose body was not read to the end (408, 413), how long the rest is
read and dropped before the connection is closed (aiohttp's default is 10 s: a stalled client
would hold the connection that much longer)."""


def app_runner(app: web.Application, *, header_timeout: float = DEFAULT_HEADER_TIMEOUT, **kwargs: Any) -> web.AppRunner:
    """An ``AppRunner`` whose connections are closed when a request's headers (or, on a kept-alive
    connection, the next request) do not arrive within ``header_timeout`` seconds. aiohttp's
    keep-alive timer is what watches a connection waiting for headers, from accept on."""
    kwargs.setdefault("lingering_time", LINGER_SECONDS)
    return web.AppRunner(app, keepalive_timeout=header_timeout, **kwargs)


async def start_site(
    runner: web.AppRunner,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    fallback_port: bool = False,
    what: str = "server",
    source: str = "",
    reuse_port: bool = False,
    site_class: Callable[..., web.TCPSite] = web.TCPSite,
) -> int:
    """Listen on ``host:port`` and return the bound port. ``source``: the setting that chose ``port``
    (``FLEETMATCH_ALLOCATOR_PORT``, a flag), named when it cannot be had. With ``fallback_port``, a
    busy *default* port (no ``source``) is replaced by any free one (``fleetmatch up`` on a busy
    laptop; the caller tells the user); a port the user chose is never silently swapped.
    ``reuse_port``: SO_REUSEPORT, for processes that share one port on purpose (allocator workers).
    ``site_class``: made as ``web.TCPSite`` is (``fleetmatch.fastpath.FastSite`` with its route bound)."""
    site = site_class(runner, host, port, ssl_context=ssl_context, backlog=1024, reuse_port=reuse_port or None)
    try:
        await site.start()
    except OSError as exc:
        why = "in use by another program" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        if source:
            raise ConfigError(f"{source}={port}: the {what} cannot listen on {host}:{port}: {why}") from exc
        if not fallback_port or port == 0:
            raise ConfigError(f"{what}: cannot listen on {host}:{port}: {why}") from exc
        log.warning("%s port %d unavailable (%s); using a free port", what, port, why)
        site = site_class(runner, host, 0, ssl_context=ssl_context, backlog=1024)
        await site.start()
    server = site._server
    assert server is not None
    bound: int = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return bound


def _no_passphrase() -> bytes:
    raise ConfigError("the private key is encrypted: give an unencrypted PEM key (as a Kubernetes TLS Secret holds)")


def server_tls(
    cert: Path,
    key: Path,
    *,
    client_ca: Path | None = None,
    names: tuple[str, str] = ("certificate", "key"),
) -> ssl.SSLContext:
    """A server's TLS context: TLS 1.2 or later, the certificate chain and key in PEM; with
    ``client_ca``, clients must present a certificate it signed. ``names``: the settings that gave
    ``cert`` and ``key``, which a ``ConfigError`` names (a wrong file is one line at start, not a
    traceback and not a failure at the first client)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    where = f"{names[0]}={str(cert)!r} / {names[1]}={str(key)!r}"
    try:
        context.load_cert_chain(str(cert), str(key), password=_no_passphrase)
    except ssl.SSLError as exc:  # an OSError too: first
        raise ConfigError(
            f"{where}: not a PEM certificate chain and its matching private key ({exc.reason or exc})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from None
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        try:
            context.load_verify_locations(cafile=str(client_ca))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"client CA {str(client_ca)!r}: not a readable PEM certificate ({exc})") from None
    return context


@contextlib.asynccontextmanager
async def metrics_site(
    port: int, host: str = "127.0.0.1", *, probes: Probes | None = None, source: str = ""
) -> AsyncIterator[str]:
    """Serve ``/metrics`` and the probes (``/livez``, ``/readyz``, ``/healthz``: what ``probes``
    checks, run here in the background); if the default ``port`` is taken, take any free one (and
    say so). ``source``: the setting that chose ``port`` (then a busy port is an error)."""
    probes = probes or Probes()
    app = web.Application()
    add_metrics_routes(app)
    add_probe_routes(app, probes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        async with running_probes(probes):
            bound = await start_site(runner, host, port, fallback_port=True, what="metrics", source=source)
            yield f"http://{host}:{bound}/metrics"
    finally:
        await runner.cleanup()
