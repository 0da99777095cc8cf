"""The dashboard's HTTP side on a real Redis backend: the same credentials as the other APIs (401
JSON without them, never a 500), the token exchanged once for an HttpOnly SameSite=Strict cookie
that is not the token, and the SSE stream: a snapshot, then coalesced updates driven by the
shared informers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from fleetmatch.backends.base import Backend
from fleetmatch.dashboard import dashboard, metrics
from fleetmatch.dashboard.app import COOKIE, session_value
from fleetmatch.demo import DEMO_FILES
from fleetmatch.manifests import load_resources
from fleetmatch.models import FLEET_LABEL, Fleet, GameServer, GameServerState, ObjectMeta
from fleetmatch.settings import DashboardSettings

TOKEN = "allocator-token-0123456789"
KEY = "operator-key-0123456789abc"


@pytest.fixture
async def board(backend: Backend) -> AsyncIterator[str]:
    fleet = next(r for path in DEMO_FILES for r in load_resources(path) if isinstance(r, Fleet))
    await backend.fleets.create(fleet)
    settings = DashboardSettings(port=0, push_interval=0.5)
    async with dashboard(backend, settings, [TOKEN, KEY], local_metrics=True) as service:
        yield service.url


async def events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event, data) of an SSE response, as they arrive."""
    kind, data = "", ""
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif not line and data:
            yield kind, json.loads(data)
            kind, data = "", ""


@pytest.mark.parametrize("path", ["api/snapshot", "api/stream"])
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": "Basic x"}, {"Cookie": f"{COOKIE}=x"}],
    ids=["none", "wrong-token", "not-bearer", "forged-cookie"],
)
async def test_without_credentials_the_api_answers_401_json(board: str, path: str, headers: dict[str, str]) -> None:
    async with aiohttp.ClientSession() as session, session.get(board + path, headers=headers) as response:
        assert response.status == 401
        body = await response.json()
        assert body["error"]["code"] == "Unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_the_page_without_a_session_is_the_login_form_and_a_bad_token_says_so(board: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(board) as response:
            assert response.status == 200
            html = await response.text()
            assert 'action="/dashboard/login"' in html and 'class="login"' in html
            assert "Content-Security-Policy" in response.headers
        async with session.get(board, params={"token": "nope"}) as response:
            assert response.status == 200 and 'class="login failed"' in await response.text()
        async with session.get(board + "static/style.css") as response:  # the login page needs its CSS
            assert response.status == 200 and response.content_type == "text/css"
        assert not response.cookies


@pytest.mark.parametrize("credential", [TOKEN, KEY], ids=["allocator-token", "api-key"])
async def test_a_token_becomes_an_httponly_strict_cookie_that_is_not_the_token(board: str, credential: str) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:  # unsafe: an IP host
        async with session.get(board, params={"token": credential}, allow_redirects=False) as response:
            assert response.status == 303 and response.headers["Location"] == "/dashboard/"
            cookie = response.cookies[COOKIE]
            assert cookie.value == session_value(credential) != credential
            assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
        async with session.get(board) as response:  # the cookie jar now carries the session
            assert response.status == 200
            assert 'id="fleets"' in await response.text()  # the dashboard, no longer the login form
        async with session.get(board + "api/snapshot") as response:
            assert response.status == 200
            assert (await response.json())["state"]["fleets"][0]["name"] == "demo"
        async with session.post(board + "login", data={"token": credential}, allow_redirects=False) as response:
            assert response.status == 303 and COOKIE in response.cookies


async def test_the_stream_sends_a_snapshot_then_coalesced_updates_of_store_changes(
    board: str, backend: Backend
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as session, session.get(board + "api/stream", headers=headers) as response:
        assert response.status == 200 and response.content_type == "text/event-stream"
        stream = events(response)
        kind, first = await anext(stream)
        assert kind == "snapshot" and first["state"]["fleets"][0]["desired"] == 4 and "history" in first
        assert metrics.CLIENTS._value.get() == 1

        started = time.monotonic()
        for i in range(20):  # a burst of changes...
            gs = GameServer(ObjectMeta(name=f"demo-{i:02}", labels={FLEET_LABEL: "demo"}))
            await backend.gameservers.create(gs.with_status(state=GameServerState.ALLOCATED))
        updates = 0
        async with asyncio.timeout(10):
            async for kind, update in stream:
                assert kind == "update"
                updates += 1
                if update["state"]["fleets"][0]["allocated"] == 20:
                    break
        elapsed = time.monotonic() - started
        # ...arrives as a few updates (at most one per push interval, plus the per-second samples)
        assert updates <= elapsed / 0.5 + 2, (updates, elapsed)
        assert update["state"]["summary"]["allocated"] == 20 and update["state"]["gameServersTotal"] == 20
        # what cannot be shown is said: the browser's connection started the sources' poll
        assert update["state"]["errors"] == {"queues": "no ticket API configured (FLEETMATCH_DASHBOARD_MATCHMAKER_URL)"}
    deadline = time.monotonic() + 5
    while metrics.CLIENTS._value.get() != 0:  # the server notices the browser left
        assert time.monotonic() < deadline, "the stream's client was never let go"
        await asyncio.sleep(0.05)


async def test_standalone_reads_allocation_counters_from_a_scraped_metrics_endpoint() -> None:
    from allocator.metrics import ALLOCATIONS
    from fleetmatch.dashboard.sources import ScrapedMetrics, SourceError
    from fleetmatch.dashboard.views import allocation_counts
    from fleetmatch.http import metrics_site

    async with metrics_site(0) as url, aiohttp.ClientSession() as session:
        base = allocation_counts(await ScrapedMetrics(session, url).samples()).failures.get("Contention", 0.0)
        ALLOCATIONS.labels("Contention").inc(2)
        counts = allocation_counts(await ScrapedMetrics(session, url).samples())
        assert counts.failures["Contention"] == base + 2
        with pytest.raises(SourceError, match="answered 404"):
            await ScrapedMetrics(session, url.replace("/metrics", "/nothing")).samples()
    with pytest.raises(SourceError, match="did not answer"):
        async with aiohttp.ClientSession() as session:
            await ScrapedMetrics(session, url).samples()  # the site is gone
