"""Serving Prometheus metrics. Each service declares its own metrics in its ``metrics.py``; all go
to the default registry, so one ``/metrics`` shows every component running in a process (in
``fleetmatch up``, only the metrics port serves it: see docs/metrics.md).

Importing this module turns off prometheus_client's ``_created`` series: a counter named
``fleetmatch_tickets`` would otherwise also expose ``fleetmatch_tickets_created``, which reads like a
ticket event, and every histogram would carry one more series per label set for nothing we use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # type: ignore[no-untyped-call]

FAST_PATH_SERVED = Counter(
    "fleetmatch_http_fast_path_requests",
    "Allocation requests answered on the fast path, straight off the socket (fleetmatch.fastpath).",
)
FAST_PATH_HANDOFFS = Counter(
    "fleetmatch_http_fast_path_handoffs",
    "Connections the fast path handed to aiohttp for a request it does not answer itself: another path "
    "(health, metrics), a bad or missing token, an unusual request (chunked, HTTP/1.0, Expect).",
)


def metrics_handler(registry: CollectorRegistry = REGISTRY) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handle


def add_metrics_routes(app: web.Application) -> None:
    """``GET /metrics`` (Prometheus) on ``app``."""
    app.router.add_get("/metrics", metrics_handler())
