"""Health endpoints that tell the truth: ``/livez``, ``/readyz`` and ``/healthz`` on every component.

- ``/livez``: 200 while the process and its event loop run (a Kubernetes liveness probe: restarting
  the process would not bring a lost Redis back, so nothing else is checked here);
- ``/readyz``: 200 only while every dependency answered its last check and every gate is open
  (the store is reachable, the allocator's index is synced...); 503 otherwise, with what failed
  and since when (a readiness probe: take the instance out of the load balancer meanwhile);
- ``/healthz``: the same answer as ``/readyz`` (what humans, scripts and ``fleetmatch status`` ask).

Checks run in the background every ``period`` seconds, each bounded by ``timeout``, so a probe
request never waits on a dead Redis and a burst of probes never hammers a live one. Until a check
has passed once, the component is ``starting``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from fleetmatch.tasks import cancel_and_wait, supervised

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CheckResult:
    ok: bool | None = None
    """None: not checked yet."""
    message: str = "not checked yet"
    since: float = 0.0
    """Unix time of the last change of ``ok``."""


class Probes:
    """A component's dependency checks and readiness gates."""

    def __init__(self, *, period: float = 1.0, timeout: float = 2.0, clock: Callable[[], float] = time.time) -> None:
        self._checks: dict[str, Callable[[], Awaitable[object]]] = {}
        self._gates: dict[str, Callable[[], bool]] = {}
        self.results: dict[str, CheckResult] = {}
        self._period = period
        self._timeout = timeout
        self._clock = clock
        self._checked = asyncio.Event()
        self._runs = 0

    def add(self, name: str, check: Callable[[], Awaitable[object]]) -> None:
        """A dependency: ``check()`` must finish without raising within the timeout."""
        self._checks[name] = check
        self.results[name] = CheckResult()

    def gate(self, name: str, is_open: Callable[[], bool]) -> None:
        """A readiness condition of the component itself (evaluated on each probe)."""
        self._gates[name] = is_open

    async def run(self) -> None:
        """Check every dependency every period, until cancelled."""
        while True:
            await self.check_now()
            await asyncio.sleep(self._period)

    async def check_now(self) -> None:
        names = list(self._checks)
        outcomes = await asyncio.gather(*(self._one(self._checks[n]) for n in names))
        now = self._clock()
        for name, problem in zip(names, outcomes, strict=True):
            result = self.results[name]
            ok = problem is None
            if result.ok is not ok:
                if result.ok is not None:
                    log.log(logging.INFO if ok else logging.WARNING, "%s %s%s", name,
                            "is reachable again" if ok else "is unreachable", "" if ok else f": {problem}")  # fmt: skip
                result.since = now
            result.ok = ok
            result.message = "ok" if ok else str(problem)
        self._checked.set()

    async def _one(self, check: Callable[[], Awaitable[object]]) -> str | None:
        try:
            async with asyncio.timeout(self._timeout):
                await check()
        except TimeoutError:
            return f"no answer within {self._timeout:g}s"
        except Exception as exc:  # a probe reports any failure; it must never raise
            return f"{type(exc).__name__}: {exc}"
        return None

    def report(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) of ``/readyz``."""
        checks: dict[str, Any] = {
            name: {"ok": bool(r.ok), "message": r.message, **({"since": round(r.since, 3)} if r.since else {})}
            for name, r in self.results.items()
        }
        for name, is_open in self._gates.items():
            opened = is_open()
            checks[name] = {"ok": opened, "message": "ok" if opened else "not yet"}
        if any(r.ok is None for r in self.results.values()):
            status = "starting"
        elif all(c["ok"] for c in checks.values()):
            status = "ok"
        elif any(r.ok is False for r in self.results.values()):
            status = "unavailable"
        else:
            status = "starting"
        return (200 if status == "ok" else 503), {"status": status, "checks": checks}


def add_probe_routes(app: web.Application, probes: Probes) -> None:
    """``/livez``, ``/readyz`` and ``/healthz`` on ``app``."""

    async def livez(_: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_: web.Request) -> web.Response:
        status, body = probes.report()
        return web.json_response(body, status=status)

    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/healthz", readyz)


@contextlib.asynccontextmanager
async def running(probes: Probes) -> AsyncIterator[Probes]:
    """Run ``probes`` in the background for the block (a supervised, named task), unless an outer
    block already does (one component's probes may be served on two sites)."""
    probes._runs += 1
    task = supervised("probes", probes.run) if probes._runs == 1 else None
    try:
        yield probes
    finally:
        probes._runs -= 1
        await cancel_and_wait(task)


_REPORT = {
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "starting", "unavailable"]},
        "checks": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["ok", "message"],
                "properties": {"ok": {"type": "boolean"}, "message": {"type": "string"}, "since": {"type": "number"}},
            },
        },
    },
}
_READY = {
    "get": {
        "security": [],
        "responses": {
            "200": {
                "description": "Ready: every dependency answers",
                "content": {"application/json": {"schema": _REPORT}},
            },
            "503": {
                "description": "Starting, or a dependency (the store) is unreachable",
                "content": {"application/json": {"schema": _REPORT}},
            },
        },
    }
}
PROBE_PATHS: dict[str, Any] = {
    "/livez": {
        "get": {
            "operationId": "livez",
            "security": [],
            "responses": {
                "200": {
                    "description": "The process runs",
                    "content": {
                        "application/json": {"schema": {"type": "object", "properties": {"status": {"type": "string"}}}}
                    },
                }
            },
        }
    },
    "/readyz": {"get": {**_READY["get"], "operationId": "readyz"}},
    "/healthz": {"get": {**_READY["get"], "operationId": "healthz"}},
}
"""The OpenAPI paths of the probes, for each API's document."""
