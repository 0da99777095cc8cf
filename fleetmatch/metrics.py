"""Serving Prometheus metrics. Each service declares its own metrics in its ``metrics.py``; all go
to the default registry, so one ``/metrics`` shows every component running in a process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest


def metrics_handler(registry: CollectorRegistry = REGISTRY) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handle


def add_metrics_routes(app: web.Application) -> None:
    """``GET /metrics`` (Prometheus) on ``app``."""
    app.router.add_get("/metrics", metrics_handler())
