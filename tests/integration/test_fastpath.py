"""The fast path (``fleetmatch.fastpath``) on real sockets: its route answered off the socket, every
other request handed with its connection to aiohttp, in order; errors mapped as the middleware maps
them; time limits, hang-ups, stopping, TLS. The stand-in route answers ``{"via": "fast"}`` and the
same path on aiohttp ``{"via": "aiohttp"}``, so every answer says who gave it."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
import trustme
from aiohttp import web
from prometheus_client import REGISTRY

from fleetmatch.errors import ValidationError
from fleetmatch.fastpath import Answer, FastRoute, FastSite
from fleetmatch.http import PUBLIC, TOKEN, api_middleware, app_runner, read_body, start_site

TOKEN_VALUE = "fast-path-token-0123456789"
AUTH = f"Authorization: Bearer {TOKEN_VALUE}\r\n".encode()
BODY = b'{"spec": {}}'


def request(
    body: bytes = BODY, *, line: bytes = b"POST /v1/allocations HTTP/1.1", auth: bytes = AUTH, extra: bytes = b""
) -> bytes:
    length = f"Content-Length: {len(body)}\r\n".encode()
    return line + b"\r\nHost: test\r\n" + auth + length + extra + b"\r\n" + body


@dataclass
class Route:
    """The stand-in route: what it was asked, and a gate it can be held at."""

    raising: Exception | None = None
    gate: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    gone_seen: list[bool] = field(default_factory=list)
    gone: Callable[[], bool] | None = None
    unsendable: bool = False

    async def answer(self, body: bytes, headers: Mapping[bytes, bytes], gone: Callable[[], bool]) -> Answer:
        self.gone = gone
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
            self.gone_seen.append(gone())
        if self.raising is not None:
            raise self.raising
        if self.unsendable:  # a header value no HTTP header can carry
            return web.json_response({}, headers={"X-Sign": "\u20ac"})
        key = headers.get(b"idempotency-key", b"").decode()
        return 201, json.dumps({"via": "fast", "body": body.decode(), "key": key}).encode()


async def on_aiohttp(request: web.Request) -> web.Response:
    return web.json_response({"via": "aiohttp", "body": (await read_body(request)).decode()}, status=201)


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@dataclass
class Served:
    host: str
    port: int
    route: Route
    site: FastSite | None = None

    async def connect(self, tls: ssl.SSLContext | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port, ssl=tls)


@asynccontextmanager
async def serve(
    route: Route | None = None, *, header_timeout: float = 10.0, body_timeout: float = 10.0, **site: object
) -> AsyncIterator[Served]:
    route = route or Route()
    app = web.Application(middlewares=[api_middleware], client_max_size=1024)
    app[TOKEN] = TOKEN_VALUE
    app[PUBLIC] = frozenset({"/healthz"})
    app.router.add_post("/v1/allocations", on_aiohttp)
    app.router.add_get("/healthz", healthz)
    runner = app_runner(app, header_timeout=header_timeout, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    fast = FastRoute("POST", "/v1/allocations", TOKEN_VALUE, route.answer, 1024, header_timeout, body_timeout)
    sites: list[FastSite] = []

    def make(*args: object, **kwargs: object) -> FastSite:
        sites.append(FastSite(*args, route=fast, grace=2.0, **kwargs))  # type: ignore[arg-type]
        return sites[-1]

    try:
        port = await start_site(runner, "127.0.0.1", 0, site_class=make, **site)  # type: ignore[arg-type]
        yield Served("127.0.0.1", port, route, sites[0])
    finally:
        await runner.cleanup()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    async with asyncio.timeout(10):
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


def via(body: bytes) -> str:
    doc = json.loads(body)
    return str(doc.get("via") or doc["error"]["code"])


def counted(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_the_route_is_answered_off_the_socket_and_the_rest_by_aiohttp_in_order() -> None:
    async with serve() as served:
        reader, writer = await served.connect()
        before = counted("fleetmatch_http_fast_path_requests_total")
        writer.write(request(b'{"n": 1}') + request(b'{"n": 2}') + b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        writer.write(request(b'{"n": 3}'))
        answers = [await read_answer(reader) for _ in range(4)]
        writer.close()
    assert [status for status, _, _ in answers] == [201, 201, 200, 201]
    assert [json.loads(body).get("via") for _, _, body in answers] == ["fast", "fast", None, "aiohttp"]
    assert [json.loads(body).get("body") for _, _, body in answers] == ['{"n": 1}', '{"n": 2}', None, '{"n": 3}']
    assert counted("fleetmatch_http_fast_path_requests_total") - before == 2
    fast_headers = answers[0][1]
    assert fast_headers["content-type"] == "application/json; charset=utf-8"
    assert fast_headers["server"] == answers[3][1]["server"]  # as aiohttp's
    assert "date" in fast_headers


@pytest.mark.parametrize(
    ("sent", "status", "who"),
    [
        (request(auth=b""), 401, "Unauthorized"),
        (request(auth=b"Authorization: Bearer wrong-token\r\n"), 401, "Unauthorized"),
        (request(auth=b"Authorization: Basic " + TOKEN_VALUE.encode() + b"\r\n"), 401, "Unauthorized"),
        (request(line=b"POST /v1/allocations?x=1 HTTP/1.1"), 201, "aiohttp"),
        (request(line=b"POST /v1/allocations HTTP/1.0"), 201, "aiohttp"),
        (request(b""), 400, "BadRequest"),
        (request(b"x" * 2000), 413, "TooLarge"),
        (request(extra=b"Expect: 100-continue\r\n"), 201, "aiohttp"),
        (request(extra=b"Connection: close\r\n"), 201, "aiohttp"),
        (request(extra=b"Content-Length: 12\r\n"), 400, None),  # twice: aiohttp judges (and refuses)
        (request(extra=b"User-Agent: a\r\nUser-Agent: b\r\n"), 400, None),  # aiohttp allows no second one
        (request(extra=b"X-Folded: a\r\n b\r\n"), 400, None),
        (request(extra=b"Transfer-Encoding: chunked\r\n"), 400, None),  # framed twice: refused, never guessed
        (request(extra=b"Bad Name: x\r\n"), 400, None),
        (
            b"POST /v1/allocations HTTP/1.1\r\nHost: t\r\n"
            + AUTH
            + b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n',
            201,
            "aiohttp",
        ),
    ],
)
async def test_what_the_fast_path_does_not_answer_itself_aiohttp_answers(
    sent: bytes, status: int, who: str | None
) -> None:
    async with serve() as served:
        reader, writer = await served.connect()
        before = counted("fleetmatch_http_fast_path_handoffs_total")
        writer.write(sent)
        got, _, body = await read_answer(reader)
        if got == 100:  # Expect: 100-continue, answered by aiohttp
            got, _, body = await read_answer(reader)
        writer.close()
    assert got == status, body
    if who is not None:
        assert via(body) == who
    assert counted("fleetmatch_http_fast_path_handoffs_total") - before == 1
    assert served.route.gone is None  # the route never saw it


async def test_a_request_sent_a_byte_at_a_time_and_many_on_one_connection_stay_on_the_fast_path() -> None:
    async with serve() as served:
        reader, writer = await served.connect()
        for byte in request(b'{"slow": true}'):
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0)
        status, _, body = await read_answer(reader)
        assert (status, via(body)) == (201, "fast")
        for i in range(50):
            writer.write(request(json.dumps({"i": i}).encode(), extra=b"Idempotency-Key: k%d\r\n" % i))
            status, _, body = await read_answer(reader)
            assert (status, json.loads(body)) == (201, {"via": "fast", "body": json.dumps({"i": i}), "key": f"k{i}"})
        writer.close()


async def test_pipelined_requests_are_read_ahead_within_a_bound_and_answered_in_order() -> None:
    """2 MB of requests sent at once while the first is held: reading pauses (the server does not
    buffer it all), then resumes, and every request gets its answer, in order."""
    padding = b"X-Pad: " + b"p" * 7900 + b"\r\n"
    sent = [request(json.dumps({"i": i}).encode(), extra=padding) for i in range(250)]
    gate = asyncio.Event()
    async with serve(Route(gate=gate)) as served:
        reader, writer = await served.connect()
        writer.write(b"".join(sent))
        await asyncio.sleep(0.5)
        assert served.site is not None
        (connection,) = served.site.connections
        assert 0 < connection.buffered < 1024 * 1024
        gate.set()
        bodies = [json.loads((await read_answer(reader))[2])["body"] for _ in sent]
        writer.close()
    assert bodies == [json.dumps({"i": i}) for i in range(250)]


async def test_errors_of_the_route_are_answered_as_the_middleware_does(caplog: pytest.LogCaptureFixture) -> None:
    route = Route(raising=ValidationError("spec.selectors[0]", "must be a mapping"))
    async with serve(route) as served:
        reader, writer = await served.connect()
        writer.write(request())
        status, _, body = await read_answer(reader)
        assert status == 422
        assert json.loads(body) == {
            "error": {"code": "Invalid", "message": "must be a mapping", "field": "spec.selectors[0]"}
        }
        route.raising = RuntimeError("a bug")
        with caplog.at_level(logging.ERROR, logger="fleetmatch.http"):
            writer.write(request())  # the same connection: an error answer keeps it
            status, _, body = await read_answer(reader)
        writer.close()
    assert status == 500
    assert json.loads(body)["error"]["message"] == "internal error (see the server log)"
    assert "POST /v1/allocations failed" in caplog.text


async def test_an_answer_that_cannot_be_sent_closes_its_connection_only(caplog: pytest.LogCaptureFixture) -> None:
    route = Route(unsendable=True)
    async with serve(route) as served:
        reader, writer = await served.connect()
        with caplog.at_level(logging.ERROR, logger="fleetmatch.fastpath"):
            writer.write(request())
            async with asyncio.timeout(5):
                assert await reader.read() == b""  # closed, no half answer
        writer.close()
        route.unsendable = False
        reader, writer = await served.connect()  # the site still serves
        writer.write(request())
        assert (await read_answer(reader))[0] == 201
        writer.close()
    assert "the answer could not be sent" in caplog.text


async def test_the_route_sees_a_client_that_hung_up() -> None:
    gate = asyncio.Event()
    route = Route(gate=gate)
    async with serve(route) as served:
        _, writer = await served.connect()
        writer.write(request())
        await asyncio.wait_for(route.entered.wait(), 5)
        assert route.gone is not None
        assert route.gone() is False
        writer.close()
        await writer.wait_closed()
        for _ in range(100):  # the close reaches the server's socket
            if route.gone():
                break
            await asyncio.sleep(0.01)
        gate.set()
        await asyncio.sleep(0.05)
    assert route.gone_seen == [True]


async def test_a_stopping_site_finishes_the_answer_in_progress_and_closes_idle_connections() -> None:
    gate = asyncio.Event()
    route = Route(gate=gate)
    async with serve(route) as served:
        busy_reader, busy_writer = await served.connect()
        idle_reader, idle_writer = await served.connect()
        busy_writer.write(request())
        await asyncio.wait_for(route.entered.wait(), 5)
        assert served.site is not None
        stopping = asyncio.create_task(served.site.stop())
        async with asyncio.timeout(5):
            assert await idle_reader.read() == b""  # closed at once
        gate.set()
        status, headers, body = await read_answer(busy_reader)
        await stopping
        async with asyncio.timeout(5):
            assert await busy_reader.read() == b""
    assert (status, via(body), headers.get("connection")) == (201, "fast", "close")
    for writer in (busy_writer, idle_writer):
        writer.close()


async def test_time_limits_close_a_silent_connection_and_answer_a_stalled_body_with_408() -> None:
    async with serve(header_timeout=0.3, body_timeout=0.3) as served:
        reader, writer = await served.connect()
        writer.write(request())
        assert (await read_answer(reader))[0] == 201
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # kept alive, then idle past the header limit: closed
        writer.close()
        reader, writer = await served.connect()
        writer.write(request()[:-3])
        status, headers, body = await read_answer(reader)
        writer.close()
    assert (status, via(body), headers.get("connection")) == (408, "RequestTimeout", "close")


async def test_the_fast_path_serves_over_tls() -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with serve(ssl_context=server_context) as served:
        reader, writer = await served.connect(client_context)
        writer.write(request() + b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        first = await read_answer(reader)
        second = await read_answer(reader)
        writer.close()
    assert (first[0], via(first[2])) == (201, "fast")
    assert (second[0], json.loads(second[2])) == (200, {"status": "ok"})
