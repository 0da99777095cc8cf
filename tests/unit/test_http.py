"""One error mapper for every API: each error type, through both middlewares, gets the same answer."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fleetmatch.errors import BackendError, ConflictError, NotFoundError, ValidationError
from fleetmatch.http import (
    BODY_TIMEOUT,
    PUBLIC,
    TOKEN,
    RateLimitedLog,
    api_middleware,
    app_runner,
    client_gone,
    errors_middleware,
    read_json,
    start_site,
)
from matchmaker.errors import AlreadyQueuedError, AuthError, RateLimitedError
from tests.waiting import eventually

TOKEN_VALUE = "t0ken"
ERRORS: dict[str, Callable[[], Exception]] = {
    "validation": lambda: ValidationError("players[0].id", "is not a player id"),
    "not-found": lambda: NotFoundError("Ticket", "duel.t1"),
    "backend": lambda: BackendError("redis at 10.0.0.7:6379: connection refused"),
    "auth": lambda: AuthError("the token expired"),
    "already-queued": lambda: AlreadyQueuedError("players[0].id", "p1", "duel", "duel.t1", 1),
    "rate": lambda: RateLimitedError(1.2),
    "conflict": lambda: ConflictError("GameServer", "gs-1", "7", "8"),
    "bug": lambda: RuntimeError("a bug"),
}


def app_with(middleware: str, observed: list[int], max_size: int = 64) -> web.Application:
    if middleware == "api_middleware":
        app = web.Application(middlewares=[api_middleware], client_max_size=max_size)
        app[TOKEN] = TOKEN_VALUE
        app[PUBLIC] = frozenset()
    else:
        app = web.Application(
            middlewares=[errors_middleware(lambda _, status: observed.append(status))], client_max_size=max_size
        )

    async def fail(request: web.Request) -> web.Response:
        raise ERRORS[request.match_info["kind"]]()

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(await read_json(request))

    app.router.add_get("/fail/{kind}", fail)
    app.router.add_post("/echo", echo)
    return app


async def call(app: web.Application, method: str, path: str, data: bytes = b"") -> tuple[int, Any, Any]:
    async with TestClient(TestServer(app)) as client:
        resp = await client.request(method, path, data=data, headers={"Authorization": f"Bearer {TOKEN_VALUE}"})
        return resp.status, await resp.json(), resp.headers


MIDDLEWARES = ["api_middleware", "errors_middleware"]


@pytest.mark.parametrize("middleware", MIDDLEWARES)
@pytest.mark.parametrize(
    ("kind", "status", "code", "message", "field"),
    [
        ("validation", 422, "Invalid", "is not a player id", "players[0].id"),
        ("not-found", 404, "NotFound", 'Ticket "duel.t1" not found', None),
        ("backend", 503, "Unavailable", "the store is unavailable; retry shortly", None),
        ("auth", 401, "Unauthorized", "the token expired", None),
        ("already-queued", 409, "AlreadyQueued", "player 'p1' is already in open ticket duel.t1", "players[0].id"),
        ("rate", 429, "RateLimited", "too many requests; retry in 1.2s", None),
        ("conflict", 500, "Internal", "internal error (see the server log)", None),
        ("bug", 500, "Internal", "internal error (see the server log)", None),
    ],
)
async def test_each_error_gets_its_answer(
    middleware: str, kind: str, status: int, code: str, message: str, field: str | None
) -> None:
    observed: list[int] = []
    got, body, headers = await call(app_with(middleware, observed), "GET", f"/fail/{kind}")
    assert got == status, body
    error = body["error"]
    assert (error["code"], error.get("field")) == (code, field)
    assert error["message"].startswith(message)
    assert ("Retry-After" in headers) == (kind in ("rate", "backend"))
    assert headers.get("Retry-After") == {"rate": "2", "backend": "1"}.get(kind)
    assert ("WWW-Authenticate" in headers) == (status == 401)
    assert observed == ([] if middleware == "api_middleware" else [status])


@pytest.mark.parametrize("middleware", MIDDLEWARES)
async def test_a_store_failure_does_not_leak_its_text(middleware: str, caplog: pytest.LogCaptureFixture) -> None:
    _, body, _ = await call(app_with(middleware, []), "GET", "/fail/backend")
    assert "10.0.0.7" not in str(body)
    assert any("10.0.0.7" in r.getMessage() for r in caplog.records)  # but the log has it


@pytest.mark.parametrize("middleware", MIDDLEWARES)
@pytest.mark.parametrize(
    ("method", "path", "data", "status", "code"),
    [
        ("POST", "/echo", b"{nope", 400, "BadRequest"),
        ("POST", "/echo", b'{"x": "' + b"y" * 100 + b'"}', 413, "TooLarge"),
        ("GET", "/nowhere", b"", 404, "NotFound"),
        ("DELETE", "/echo", b"", 405, "MethodNotAllowed"),
    ],
)
async def test_aiohttp_errors_keep_their_status(
    middleware: str, method: str, path: str, data: bytes, status: int, code: str
) -> None:
    got, body, headers = await call(app_with(middleware, []), method, path, data)
    assert (got, body["error"]["code"]) == (status, code)
    if status == 405:
        assert headers["Allow"] == "POST"


# -- robustness: bad bytes, slow clients, hung-up clients ---------------------------------------


async def test_a_token_that_is_not_utf8_is_401_with_one_short_log_line(caplog: pytest.LogCaptureFixture) -> None:
    async with TestClient(TestServer(app_with("api_middleware", []))) as client:
        for _ in range(200):
            # aiohttp's client would refuse to send the byte: put it on the wire as it is.
            reader, writer = await asyncio.open_connection(client.host, client.port)
            writer.write(
                b"GET /fail/bug HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\xe9\r\nConnection: close\r\n\r\n"
            )
            answer = await reader.read()
            writer.close()
            assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and lines[0].exc_info is None and len(lines[0].getMessage()) < 200


def test_rate_limited_log_counts_what_it_left_out(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("test"), every=60, clock=lambda: now[0])
    for t in (0, 1, 2, 59, 61):
        now[0] = t
        limited.warning("bad %s", "thing")
    assert [r.getMessage() for r in caplog.records] == [
        "bad thing",
        "bad thing (and 3 more like it since the last report)",
    ]


async def serving(app: web.Application, **runner_args: Any) -> tuple[web.AppRunner, int]:
    runner = app_runner(app, access_log=None, **runner_args)
    await runner.setup()
    return runner, await start_site(runner, "127.0.0.1", 0)


async def read_until_closed(reader: asyncio.StreamReader, within: float = 10.0) -> bytes:
    """What the server sends before it closes the connection (a hang here fails the test)."""
    async with asyncio.timeout(within):
        return await reader.read()


async def test_headers_not_sent_in_time_close_the_connection() -> None:
    runner, port = await serving(app_with("api_middleware", []), header_timeout=0.3)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\n")  # half a request, then nothing
        assert await read_until_closed(reader) == b""
        writer.close()
    finally:
        await runner.cleanup()


async def test_a_body_not_sent_in_time_is_408_and_closes_the_connection() -> None:
    app = app_with("api_middleware", [])
    app[BODY_TIMEOUT] = 0.3
    runner, port = await serving(app)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b'POST /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0ken\r\nContent-Length: 40\r\n\r\n{"x": '
        )
        answer = await read_until_closed(reader)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408 ") and b'"RequestTimeout"' in answer, answer
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    "body",
    [b'{"x": NaN}', b"[Infinity]", b"-Infinity", b"1" * 5000, b"\xff\xfe"],
    ids=["nan", "inf", "-inf", "digits", "utf"],
)
async def test_json_that_python_accepts_but_is_not_json_is_400(body: bytes) -> None:
    got, doc, _ = await call(app_with("errors_middleware", [], max_size=1 << 20), "POST", "/echo", body)
    assert (got, doc["error"]["code"]) == (400, "BadRequest")


async def test_a_client_that_hung_up_is_seen_before_the_event_loop_reads_its_close() -> None:
    """A close that arrived while the process was not running (stalled, stopped) sits behind the
    request in the socket: the transport does not know yet, the peek does."""
    started = threading.Event()
    seen: list[tuple[bool, bool]] = []

    async def slow(request: web.Request) -> web.Response:
        started.set()
        time.sleep(0.5)  # noqa: ASYNC251 - the process "stalls": the client gives up meanwhile
        transport = request.transport
        assert transport is not None
        seen.append((transport.is_closing(), client_gone(request)))
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/slow", slow)
    runner, port = await serving(app)

    def impatient_client() -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            started.wait(10)

    try:
        thread = threading.Thread(target=impatient_client)
        thread.start()
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        await eventually(lambda: bool(seen))
        thread.join()
        assert seen == [(False, True)]
    finally:
        await runner.cleanup()


async def test_a_client_still_waiting_is_not_gone() -> None:
    seen: list[bool] = []

    async def check(request: web.Request) -> web.Response:
        seen.append(client_gone(request))
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/check", check)
    async with TestClient(TestServer(app)) as client:
        assert (await client.post("/check", data=b"{}")).status == 200
    assert seen == [False]


@pytest.mark.parametrize(
    ("then", "gone"),
    [("reset", True), ("pipelines", False), ("pipelines-and-half-closes", False), ("waits", False)],
)
async def test_what_arrived_behind_the_request_says_whether_its_client_is_gone(then: str, gone: bool) -> None:
    """Seen while the handler runs, before the event loop reads it: a reset is gone; a pipelined
    request (even with the client's end of stream behind it) or nothing at all is a client still
    there (the poll's answers, and the peek it falls back to on a half-close)."""
    started, acted = threading.Event(), threading.Event()
    seen: list[bool] = []

    async def slow(request: web.Request) -> web.Response:
        started.set()
        acted.wait(10)  # the loop stays blocked: what arrives now stays unread in the socket
        time.sleep(0.2)  # noqa: ASYNC251 - ... and has time to arrive
        seen.append(client_gone(request))
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/slow", slow)
    runner, port = await serving(app)

    def client() -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            started.wait(10)
            if then == "reset":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            elif then.startswith("pipelines"):
                sock.sendall(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
                if then.endswith("half-closes"):
                    sock.shutdown(socket.SHUT_WR)
            acted.set()
            if then != "reset":
                time.sleep(0.5)

    try:
        thread = threading.Thread(target=client)
        thread.start()
        await eventually(lambda: bool(seen))
        thread.join()
        assert seen == [gone]
    finally:
        await runner.cleanup()
