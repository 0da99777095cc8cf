"""One hot route answered straight off the socket; everything else on aiohttp, as before.

aiohttp spends about 55 us of CPU on each request around its handler (the request and response
objects, the router, the middleware, the handler task), as much as an allocation itself costs. The
allocation API's load is one route, ``POST /v1/allocations``, sent the same way over and over.

A ``FastSite`` listens like aiohttp's ``TCPSite``, but each connection starts on ``_Connection``,
a plain asyncio protocol. A request it can answer exactly as the app would (the route's method and
path, HTTP/1.1, a ``Content-Length`` body within the app's limit, the app's bearer token, no
``Expect``, ``Transfer-Encoding`` or ``Upgrade``, no ``Connection`` other than keep-alive, well-formed
header lines) it answers itself, with the route's own answer function and the one error mapping
(``fleetmatch.http.error_response``). On anything else it hands the connection, with every byte
not yet answered, to an aiohttp request handler for good, at a request boundary: aiohttp then answers
as it always did (a 401, a 413, a chunked body, another path, HTTP/1.0, a malformed line). Nothing
is answered twice and nothing is lost: the handed-over bytes are those no answer was written for.

Bounds as in ``fleetmatch.http``: ``header_timeout`` for a request's headers (from accept, or from
the previous answer on a kept-alive connection; then the connection is closed, as aiohttp's
keep-alive timer does), ``body_timeout`` for its body (then a 408 and the connection is closed).
While an answer is being computed, further pipelined bytes wait (reading pauses past
``PENDING_LIMIT``); while the client does not read its answers, nothing more is answered.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.http_parser import SINGLETON_HEADERS

from fleetmatch.http import error_response, transport_gone
from fleetmatch.metrics import FAST_PATH_HANDOFFS, FAST_PATH_SERVED

log = logging.getLogger(__name__)

Answer = tuple[int, bytes] | web.Response
"""A route's answer: ``(status, JSON body)`` on its usual success, any other answer as a response."""
RouteAnswer = Callable[[bytes, Mapping[bytes, bytes], Callable[[], bool]], Awaitable[Answer]]
"""``answer(body, headers, gone)``: the route's work for one request. ``headers``: lowercased names
to raw values; ``gone()``: has the client hung up (``fleetmatch.http.client_gone``)? It may raise:
the error is answered as the app's middleware answers it."""

MAX_HEAD = 8190
"""Header blocks longer than this go to aiohttp (which enforces its own line and field limits)."""
PENDING_LIMIT = 65536
"""Bytes read ahead of the request being answered before reading pauses."""

_TOKEN_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_REFUSED = frozenset({b"transfer-encoding", b"expect", b"upgrade", b"te", b"content-encoding"})
"""Headers whose request aiohttp answers (bodies not framed by Content-Length, 100-continue, ...)."""
_SINGLE = frozenset(name.encode() for name in SINGLETON_HEADERS) | {b"authorization", b"connection", b"idempotency-key"}
"""Headers that must come once (aiohttp's own list, which it refuses repeated, and those the route
reads): a request repeating one goes to aiohttp to judge."""


@dataclass(frozen=True, slots=True)
class FastRoute:
    """The route a ``FastSite`` answers itself, and the app's bounds it keeps."""

    method: str
    path: str
    token: str
    """The app's bearer token: a request without it goes to aiohttp (for its 401)."""
    answer: RouteAnswer
    max_body: int
    header_timeout: float
    body_timeout: float


@dataclass(frozen=True, slots=True)
class _Line:
    """What ``error_response`` logs of a request: its method and path."""

    method: str
    path: str


_SERVER = SERVER_SOFTWARE.encode()


def _head(status: int, reason: str, content_type: bytes, length: int, *, close: bool, extra: bytes = b"") -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nDate: %s\r\nServer: %s\r\n%s%s\r\n" % (
        status,
        reason.encode(),
        content_type,
        length,
        rfc822_formatted_time().encode(),  # aiohttp's Date, formatted once a second
        _SERVER,
        extra,
        connection,
    )


_JSON_TYPE = b"application/json; charset=utf-8"
_REASONS = {status.value: status.phrase for status in HTTPStatus}


def _serialize(response: web.Response, *, close: bool) -> bytes:
    """A whole (not streamed) aiohttp response as bytes, with the headers aiohttp would send."""
    body = response.body
    if not isinstance(body, bytes):  # our answers are JSON bytes; anything else is a bug
        raise TypeError(f"fast path: cannot send a {type(body).__name__} body")
    headers = response.headers
    extra = b"".join(
        b"%s: %s\r\n" % (name.encode(), value.encode("latin-1"))
        for name, value in headers.items()
        if name.lower() not in ("content-type", "content-length", "date", "server", "connection")
    )
    content_type = headers.get("Content-Type", "application/octet-stream").encode("latin-1")
    return _head(response.status, response.reason, content_type, len(body), close=close, extra=extra) + body


class _Connection(asyncio.Protocol):
    """One client connection, answered here until it is handed to aiohttp."""

    def __init__(self, site: FastSite) -> None:
        self._site = site
        self._route = site.route
        self._line = f"{self._route.method} {self._route.path} HTTP/1.1".encode()
        self._token = self._route.token.encode()
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer: bytes | bytearray = b""
        self._head: tuple[int, int, dict[bytes, bytes]] | None = None
        """A request whose body is still coming: where its body starts, its length, its headers."""
        self._busy = False
        self._closing = False
        """The site is stopping: close once the answer in progress is written."""
        self._reading_paused = False
        self._writing_paused = False
        self._deadline = 0.0
        self._body_due = False
        """The deadline is the body's (a 408 when it passes), not the headers' (a silent close)."""
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._site.connections.add(self)
        self._wait(self._route.header_timeout, body=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._site.connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def eof_received(self) -> bool:
        return False  # as aiohttp: the transport closes; an answer in progress finds its client gone

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if not self._busy and self._buffer:
            self._next()

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        if not buf:
            self._buffer = data  # the usual case: a whole request, nothing before it
        elif isinstance(buf, bytearray):
            buf += data  # appended in place: a request sent in many parts is not copied again each time
        else:
            self._buffer = bytearray(buf) + data
        if self._busy or self._writing_paused:
            if len(self._buffer) > PENDING_LIMIT and not self._reading_paused and self._transport is not None:
                self._reading_paused = True
                self._transport.pause_reading()
            return
        self._next()

    # -- requests ---------------------------------------------------------------------------

    def _next(self) -> None:
        """Answer the buffered request, if it is whole; hand the connection over if it is not ours."""
        buf = self._buffer
        head = self._head
        if head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    self._hand_off()
                return  # the header deadline stands
            parsed = self._parse(bytes(buf[:end])) if end <= MAX_HEAD else None
            if parsed is None:
                self._hand_off()
                return
            head = (end + 4, *parsed)
        start, length, headers = head
        total = start + length
        if len(buf) < total:  # the body is still coming: its deadline, and the head kept meanwhile
            if self._head is None:
                self._head = head
                self._wait(self._route.body_timeout, body=True)
            return
        self._head = None
        self._buffer = buf[total:]
        self._busy = True
        self._task = self._loop.create_task(self._serve(bytes(buf[start:total]), headers))

    def _parse(self, block: bytes) -> tuple[int, dict[bytes, bytes]] | None:
        """The body length and headers of a request this path answers as the app would; None if not."""
        lines = block.split(b"\r\n")
        if lines[0] != self._line:
            return None
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not _TOKEN_NAME.fullmatch(name):
                return None  # no colon, a folded line, a name with spaces
            value = value.strip(b" \t")
            if _BAD_VALUE.search(value):
                return None
            key = name.lower()
            if key in _REFUSED:
                return None
            if key in headers:
                if key in _SINGLE:
                    return None
                headers[key] += b", " + value
            else:
                headers[key] = value
        connection = headers.get(b"connection")
        if connection is not None and connection.lower() != b"keep-alive":
            return None
        length = headers.get(b"content-length", b"")
        if not (length.isdigit() and len(length) <= 18):
            return None
        size = int(length)
        if not 0 < size <= self._route.max_body:
            return None  # empty (400) or too large (413): aiohttp's answers
        scheme, _, given = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self._token):
            return None  # aiohttp's 401 (and its rate-limited log line)
        return size, headers

    async def _serve(self, body: bytes, headers: dict[bytes, bytes]) -> None:
        route = self._route
        try:
            answer = await route.answer(body, headers, self._gone)
        except asyncio.CancelledError:
            if self._transport is not None:
                self._transport.close()
            raise
        except Exception as exc:  # mapped as the app's middleware maps it
            answer = error_response(_Line(route.method, route.path), exc)
        FAST_PATH_SERVED.inc()
        self._task = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        close = self._closing
        try:
            if isinstance(answer, tuple):
                status, payload = answer
                transport.write(_head(status, _REASONS[status], _JSON_TYPE, len(payload), close=close) + payload)
            else:
                transport.write(_serialize(answer, close=close))
        except Exception:  # an answer that cannot be sent (a bug): the connection, not the process
            log.exception("%s %s: the answer could not be sent; closing the connection", route.method, route.path)
            transport.close()
            return
        self._busy = False
        if close:
            transport.close()
            return
        self._wait(route.header_timeout, body=False)
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        if self._buffer and not self._writing_paused:
            self._next()

    def _gone(self) -> bool:
        return transport_gone(self._transport)

    # -- handing over, time limits, stopping ------------------------------------------------

    def _hand_off(self) -> None:
        """Give the connection and its unanswered bytes to aiohttp, for good."""
        transport = self._transport
        if transport is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._site.connections.discard(self)
        FAST_PATH_HANDOFFS.inc()
        handler = self._site.aiohttp_protocol()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self._writing_paused:
            handler.pause_writing()
        if self._reading_paused:
            transport.resume_reading()
        data, self._buffer = bytes(self._buffer), b""
        self._transport = None
        handler.data_received(data)

    def _wait(self, seconds: float, *, body: bool) -> None:
        """Start the headers' or the body's time limit (one timer, moved lazily: requests are many)."""
        self._deadline = self._loop.time() + seconds
        self._body_due = body
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is None or self._busy:
            return  # an answer in progress has no deadline; the next one starts after it
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._expire)
            return
        if self._body_due:
            exc = web.HTTPRequestTimeout(reason="the request body was not sent in time")
            transport.write(_serialize(error_response(_Line(self._route.method, self._route.path), exc), close=True))
        transport.close()

    def stop(self) -> None:
        """The site is stopping: close now if idle, else once the answer in progress is written."""
        self._closing = True
        if not self._busy and self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """The site's grace is over: drop the answer in progress and the connection."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._transport is not None:
            self._transport.close()

    @property
    def buffered(self) -> int:
        """Bytes read and not yet answered (at most about ``PENDING_LIMIT`` past a read)."""
        return len(self._buffer)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The answer in progress, if any."""
        return self._task


class FastSite(web.TCPSite):
    """A ``TCPSite`` whose connections start on the fast path for ``route`` (see the module)."""

    __slots__ = ("_grace", "connections", "route")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, route: FastRoute, grace: float, **kwargs: Any):
        super().__init__(runner, host, port, **kwargs)
        self.route = route
        self.connections: set[_Connection] = set()
        self._grace = grace

    def aiohttp_protocol(self) -> asyncio.Protocol:
        """A new aiohttp request handler, for a connection handed over."""
        server = self._runner.server
        assert server is not None
        protocol: asyncio.Protocol = server()
        return protocol

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port

    async def stop(self) -> None:
        """Stop listening; idle connections close now, busy ones after their answer (at most
        ``grace`` seconds), as aiohttp's own shutdown treats its connections."""
        await super().stop()
        for connection in list(self.connections):
            connection.stop()
        answering = [c.task for c in self.connections if c.task is not None]
        if answering:
            await asyncio.wait(answering, timeout=self._grace)
        for connection in list(self.connections):
            connection.abort()
