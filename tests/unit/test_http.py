"""One error mapper for every API: each error type, through both middlewares, gets the same answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fleetmatch.errors import BackendError, ConflictError, NotFoundError, ValidationError
from fleetmatch.http import PUBLIC, TOKEN, api_middleware, errors_middleware, read_json
from matchmaker.errors import AuthError, RateLimitedError, TooManyTicketsError

TOKEN_VALUE = "t0ken"
ERRORS: dict[str, Callable[[], Exception]] = {
    "validation": lambda: ValidationError("players[0].id", "is not a player id"),
    "not-found": lambda: NotFoundError("Ticket", "duel.t1"),
    "backend": lambda: BackendError("redis at 10.0.0.7:6379: connection refused"),
    "auth": lambda: AuthError("the token expired"),
    "too-many": lambda: TooManyTicketsError("p1", 3),
    "rate": lambda: RateLimitedError(1.2),
    "conflict": lambda: ConflictError("GameServer", "gs-1", "7", "8"),
    "bug": lambda: RuntimeError("a bug"),
}


def app_with(middleware: str, observed: list[int]) -> web.Application:
    if middleware == "api_middleware":
        app = web.Application(middlewares=[api_middleware], client_max_size=64)
        app[TOKEN] = TOKEN_VALUE
        app[PUBLIC] = frozenset()
    else:
        app = web.Application(
            middlewares=[errors_middleware(lambda _, status: observed.append(status))], client_max_size=64
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
        ("too-many", 429, "TooManyTickets", "p1 already has 3 open tickets", None),
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
