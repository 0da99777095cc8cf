"""The fast path against aiohttp alone, on generated requests: odd casing, spacing, repeated,
missing or malformed framing headers, other methods, paths and versions. The same stand-in app
(``tests.integration.test_fastpath``) serves twice, once behind a ``FastSite`` and once behind a
plain ``TCPSite``; every request must get the same status and the same echoed body from both, and
no 5xx. Where the fast path answers, its own route gives the answer; anything it does not
recognise goes to aiohttp, so a difference here is a request it misread."""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetmatch.fastpath import FastRoute, FastSite
from fleetmatch.http import PUBLIC, TOKEN, api_middleware, app_runner, start_site
from tests.integration.test_fastpath import TOKEN_VALUE, Route, healthz, on_aiohttp

EXAMPLES = 1000
"""About 5 s on a two-core machine."""


@dataclass
class Twins:
    fast: int
    plain: int


def _app() -> web.Application:
    app = web.Application(middlewares=[api_middleware], client_max_size=1024)
    app[TOKEN] = TOKEN_VALUE
    app[PUBLIC] = frozenset({"/healthz"})
    app.router.add_post("/v1/allocations", on_aiohttp)
    app.router.add_get("/healthz", healthz)
    return app


@pytest.fixture(scope="module")
def twins() -> Iterator[Twins]:
    loop = asyncio.new_event_loop()
    ready: list[int] = []
    stop = asyncio.Event()

    async def serve() -> None:
        runners = []
        for fast in (True, False):
            runner = app_runner(_app(), header_timeout=2.0, access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            runners.append(runner)
            route = FastRoute("POST", "/v1/allocations", TOKEN_VALUE, Route().answer, 1024, 2.0, 2.0)
            site = functools.partial(FastSite, route=route, grace=1.0) if fast else web.TCPSite
            ready.append(await start_site(runner, "127.0.0.1", 0, site_class=site))
        await stop.wait()
        for runner in runners:
            await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    while len(ready) < 2:
        threading.Event().wait(0.01)
    yield Twins(*ready)
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)


def _first_answer(port: int, raw: bytes) -> tuple[int, bytes]:
    """The status and body of the first answer (after any 100 Continue); (0, b"") if the
    connection closed or stayed silent without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(raw)
        data = b""
        try:
            while True:
                head_end = data.find(b"\r\n\r\n")
                if head_end >= 0:
                    head = data[:head_end].decode("latin-1").split("\r\n")
                    status = int(head[0].split()[1])
                    if status == 100:
                        data = data[head_end + 4 :]
                        continue
                    length = next(
                        (int(line.split(":", 1)[1]) for line in head if line.lower().startswith("content-length:")), 0
                    )
                    if len(data) >= head_end + 4 + length:
                        return status, data[head_end + 4 : head_end + 4 + length]
                chunk = sock.recv(65536)
                if not chunk:
                    return 0, b""
                data += chunk
        except TimeoutError:
            return 0, b""


def _cased(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.lower(), name.upper(), name.swapcase()])


_SPACE = st.sampled_from(["", " ", "  ", "\t", " \t"])


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    # Mostly requests the fast path should answer, each with a fair chance of one oddity.
    body = draw(st.sampled_from([b'{"spec": {}}'] * 6 + [b"{}", b"", b"not json", b'{"x": "' + b"y" * 1500 + b'"}']))
    method = draw(st.sampled_from(["POST"] * 12 + ["GET", "post", "PUT"]))
    target = draw(st.sampled_from(["/v1/allocations"] * 12 + ["/v1/allocations?x=1", "/healthz", "/v1/other"]))
    version = draw(st.sampled_from(["HTTP/1.1"] * 12 + ["HTTP/1.0"]))
    headers: list[tuple[str, str]] = [("Host", "test")]
    odd_auth = ["Bearer nope", f"bearer {TOKEN_VALUE}", "", "Basic x"]
    auth = draw(st.sampled_from([f"Bearer {TOKEN_VALUE}"] * 12 + odd_auth))
    if auth:
        headers.append((draw(_cased("Authorization")), auth))
    length = draw(st.sampled_from([str(len(body))] * 16 + ["", "abc", "-1", f"+{len(body)}", f"{len(body)}, 5"]))
    if length:
        headers.append((draw(_cased("Content-Length")), length))
    extras = draw(
        st.lists(
            st.sampled_from(
                [
                    ("X-Request-Id", "r-1"),
                    ("Accept", "application/json"),
                    ("User-Agent", "fuzz/1.0"),
                    ("Idempotency-Key", "k-1"),
                    ("Idempotency-Key", "k-2"),
                    ("Connection", "keep-alive"),
                    ("Connection", "close"),
                    ("Transfer-Encoding", "chunked"),
                    ("Expect", "100-continue"),
                    ("X-Other", "a:b"),
                    ("Content-Length", str(len(body))),
                    ("Upgrade", "websocket"),
                    ("Host", "again"),
                    ("X-Utf8", "caf\u00e9"),
                    ("X-Tab", "a\tb"),
                    ("X-Empty", ""),
                ]
            ),
            max_size=2,
        )
    )
    headers += [(draw(_cased(name)), value) for name, value in extras]
    headers = draw(st.permutations(headers))
    lines = [f"{method} {target} {version}"]
    lines += [f"{name}:{draw(_SPACE)}{value}{draw(_SPACE)}" for name, value in headers]
    chunked = any(name.lower() == "transfer-encoding" for name, _ in headers)
    payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if chunked and body else body
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=requests())
def test_the_fast_path_answers_every_request_as_aiohttp_alone_does(twins: Twins, raw: bytes) -> None:
    fast = _first_answer(twins.fast, raw)
    plain = _first_answer(twins.plain, raw)
    assert fast[0] == plain[0], (raw, fast, plain)
    assert not 500 <= fast[0] < 600, (raw, fast)
    if fast[0] == 201:
        assert json.loads(fast[1])["body"] == json.loads(plain[1])["body"], (raw, fast, plain)
