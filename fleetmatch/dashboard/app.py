"""The dashboard's HTTP side: the page (static files of this package, no build step, nothing fetched
from elsewhere), its live stream (Server-Sent Events) and a JSON snapshot, behind the same
credentials as the other APIs.

Routes (all under ``/dashboard/``; ``/`` redirects there):

- ``GET /dashboard/`` the page; without a session, the login page (a form for the token);
- ``GET /dashboard/?token=T`` / ``POST /dashboard/login``: a valid token (the allocator token or an
  API key the ticket API accepts) is exchanged once for an HttpOnly, SameSite=Strict session cookie
  holding an HMAC of it (never the token itself), then the page is reloaded without the token in
  its address;
- ``GET /dashboard/api/stream`` (SSE: ``snapshot`` then ``update`` events) and
  ``GET /dashboard/api/snapshot``: the cookie, or ``Authorization: Bearer <token>`` for scripts.
  Without either: 401 JSON, like every fleetmatch API;
- ``GET /healthz``, ``/livez``, ``/readyz``: public probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from fleetmatch.backends import Backend
from fleetmatch.dashboard.hub import Hub
from fleetmatch.dashboard.sources import (
    TIMEOUT,
    MetricSource,
    NoMetrics,
    NoQueues,
    QueueSource,
    RegistryMetrics,
    ScrapedMetrics,
    TicketApiQueues,
)
from fleetmatch.errors import ConfigError
from fleetmatch.http import Handler, app_runner, errors_middleware, problem, start_site
from fleetmatch.metrics import add_metrics_routes
from fleetmatch.probes import Probes, add_probe_routes
from fleetmatch.probes import running as running_probes
from fleetmatch.settings import DashboardSettings

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
COOKIE = "fleetmatch_dashboard"
SESSION_LABEL = b"fleetmatch-dashboard-session"
HEARTBEAT_SECONDS = 15.0
"""An SSE comment this often keeps proxies from closing an idle stream."""
SECURITY_HEADERS = {
    # Everything comes from this server: a page that tried to load anything else would be a bug.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
HUB = web.AppKey("fleetmatch.dashboard.hub", Hub)
SESSIONS = web.AppKey("fleetmatch.dashboard.sessions", dict)
PUBLIC = frozenset({"/healthz", "/livez", "/readyz", "/metrics", "/", "/dashboard/login"})
FILES = {"app.js": "text/javascript", "style.css": "text/css", "favicon.svg": "image/svg+xml"}


def session_value(token: str) -> str:
    """The cookie for ``token``: an HMAC keyed by it, so the cookie proves the token without being it."""
    return hmac.new(token.encode(), SESSION_LABEL, hashlib.sha256).hexdigest()


def sessions_for(tokens: Sequence[str]) -> dict[str, str]:
    """cookie value -> token, for every accepted token."""
    return {session_value(t): t for t in tokens if t}


def _known(request: web.Request, value: str) -> bool:
    candidates: dict[str, str] = request.app[SESSIONS]
    given = value.encode("utf-8", "surrogateescape")
    return any(hmac.compare_digest(given, c.encode()) for c in candidates)


def _token_ok(request: web.Request, token: str) -> bool:
    candidates: dict[str, str] = request.app[SESSIONS]
    given = token.strip().encode("utf-8", "surrogateescape")
    return any(hmac.compare_digest(given, t.encode()) for t in candidates.values())


def authenticated(request: web.Request) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and given:
        return _token_ok(request, given)
    cookie = request.cookies.get(COOKIE)
    return cookie is not None and _known(request, cookie)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The page itself answers its login form; everything else needs a session or a bearer token."""
    public = request.path in PUBLIC or request.path.startswith("/dashboard/static/")  # the login page's CSS too
    if public or request.path == "/dashboard/" or authenticated(request):
        response = await handler(request)
    else:
        response = problem(401, "log in: open /dashboard/?token=<token>, or send 'Authorization: Bearer <token>'")
    response.headers.update(SECURITY_HEADERS)
    return response


def _login(request: web.Request, token: str) -> web.StreamResponse:
    """Raises the redirect: to the page with a session cookie, or back to the form saying it failed."""
    if not _token_ok(request, token):
        raise web.HTTPSeeOther("/dashboard/?failed=1")
    redirect = web.HTTPSeeOther("/dashboard/")
    redirect.set_cookie(
        COOKIE, session_value(token.strip()), httponly=True, samesite="Strict", path="/", secure=request.secure
    )
    raise redirect


async def page(request: web.Request) -> web.StreamResponse:
    token = request.query.get("token")
    if token is not None:
        return _login(request, token)
    if authenticated(request):
        return web.FileResponse(STATIC / "index.html", headers={"Content-Type": "text/html; charset=utf-8"})
    html = (STATIC / "login.html").read_text()
    if "failed" in request.query:  # the form's "not accepted" line is shown by a class, no script needed
        html = html.replace('<body class="login">', '<body class="login failed">')
    return web.Response(text=html, content_type="text/html")


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    token = form.get("token")
    return _login(request, token if isinstance(token, str) else "")


async def logout(_: web.Request) -> web.StreamResponse:
    redirect = web.HTTPSeeOther("/dashboard/")
    redirect.del_cookie(COOKIE, path="/")
    raise redirect


async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in FILES:
        raise web.HTTPNotFound()
    return web.FileResponse(STATIC / name, headers={"Content-Type": FILES[name]})


async def snapshot(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    await hub.fresh()
    return web.json_response({"state": hub.state(), "history": hub.history.documents()})


async def stream(request: web.Request) -> web.StreamResponse:
    """SSE: one ``snapshot`` (state and history), then an ``update`` per push until either side goes."""
    hub = request.app[HUB]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
    response.headers.update(SECURITY_HEADERS)
    await response.prepare(request)
    client, first = hub.connect()
    try:
        await response.write(f"event: snapshot\ndata: {first}\n\n".encode())
        while True:
            try:
                async with asyncio.timeout(HEARTBEAT_SECONDS):
                    message = await client.queue.get()
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if message is None:
                break
            await response.write(f"event: update\ndata: {message}\n\n".encode())
    except (ConnectionResetError, ConnectionError):
        pass  # the browser went away
    finally:
        hub.disconnect(client)
    return response


async def root(_: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/dashboard/")


def build_app(hub: Hub, tokens: Sequence[str], probes: Probes, *, metrics: bool = False) -> web.Application:
    """``metrics``: also serve ``/metrics`` (public, as on the other APIs; standalone only: ``up``
    serves its whole registry on the metrics port)."""
    app = web.Application(middlewares=[errors_middleware(), auth_middleware])
    app[HUB] = hub
    app[SESSIONS] = sessions_for(tokens)
    app.router.add_get("/", root)
    app.router.add_get("/dashboard/", page)
    app.router.add_post("/dashboard/login", login)
    app.router.add_post("/dashboard/logout", logout)
    app.router.add_get("/dashboard/static/{name}", static_file)
    app.router.add_get("/dashboard/api/snapshot", snapshot)
    app.router.add_get("/dashboard/api/stream", stream)
    add_probe_routes(app, probes)
    if metrics:
        add_metrics_routes(app)
    return app


@dataclass(frozen=True, slots=True)
class DashboardService:
    url: str
    """The page: ``http://host:port/dashboard/``."""
    hub: Hub


@contextlib.asynccontextmanager
async def serve_dashboard(
    hub: Hub,
    tokens: Sequence[str],
    host: str,
    port: int,
    *,
    fallback_port: bool = False,
    source: str = "",
    metrics: bool = False,
) -> AsyncIterator[DashboardService]:
    """Serve the dashboard until the block ends (the hub started here, closed after the site).
    ``tokens``: the credentials a browser may log in with; at least one is required."""
    if not any(tokens):
        raise ConfigError("the dashboard needs a token to accept: set FLEETMATCH_ALLOCATOR_TOKEN")
    probes = Probes()
    probes.add("store", hub.backend.ping)
    await hub.start()
    runner = app_runner(build_app(hub, tokens, probes, metrics=metrics), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        async with running_probes(probes):
            bound = await start_site(runner, host, port, fallback_port=fallback_port, what="dashboard", source=source)
            yield DashboardService(f"http://{host}:{bound}/dashboard/", hub)
    finally:
        await hub.close()  # ends the streams first: the runner's cleanup would wait for them
        await runner.cleanup()


@contextlib.asynccontextmanager
async def dashboard(
    backend: Backend,
    settings: DashboardSettings,
    tokens: Sequence[str],
    *,
    local_metrics: bool = False,
    node_lease: float = 10.0,
    fallback_port: bool = False,
) -> AsyncIterator[DashboardService]:
    """The whole dashboard on ``backend``: its queue and metric sources from ``settings`` (the
    ticket API at ``matchmaker_url`` read with ``api_key``; this process's registry with
    ``local_metrics``, else ``metrics_url`` scraped), the hub and the site. Standalone (not
    ``local_metrics``) the site also serves ``/metrics``."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
        queues: QueueSource
        if settings.matchmaker_url and settings.api_key:
            queues = TicketApiQueues(session, settings.matchmaker_url, settings.api_key)
        elif settings.matchmaker_url:
            queues = NoQueues("queue statistics need an API key of the ticket API (FLEETMATCH_DASHBOARD_API_KEY)")
        else:
            queues = NoQueues("no ticket API configured (FLEETMATCH_DASHBOARD_MATCHMAKER_URL)")
        metric_source: MetricSource
        if local_metrics:
            metric_source = RegistryMetrics()
        elif settings.metrics_url:
            metric_source = ScrapedMetrics(session, settings.metrics_url)
        else:
            metric_source = NoMetrics()
        hub = Hub(backend, queues, metric_source, settings, node_lease=node_lease)
        async with serve_dashboard(
            hub,
            tokens,
            settings.host,
            settings.port,
            fallback_port=fallback_port,
            source=settings.port_source,
            metrics=not local_metrics,
        ) as service:
            yield service
