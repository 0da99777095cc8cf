"""The one view of the stack that every connected browser shares.

The process's shared informers (``Backend.informer``: one watch per kind, the same ones the
allocator and controllers use) mark the view dirty on every change; one named loop
(``dashboard.push``) turns the marks into at most one update per ``push_interval`` and one history
sample per second, and hands the same serialized update to every browser. Another
(``dashboard.sources``) reads the queues, nodes and event records every ``POLL_SECONDS``, only
while a browser is connected. So ten open tabs cost what one does, and no tab ever makes Redis
work on its own.

A browser that does not keep up (its queue of updates is full) is disconnected; its EventSource
reconnects and starts again from a fresh snapshot, which is cheaper than buffering for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from fleetmatch.backends import Backend
from fleetmatch.codec import format_timestamp
from fleetmatch.dashboard import metrics
from fleetmatch.dashboard.history import FleetPoint, History, Point
from fleetmatch.dashboard.sources import MetricSource, QueueSource, SourceError
from fleetmatch.dashboard.views import (
    AllocationCounts,
    allocation_counts,
    events_view,
    fleet_view,
    gameserver_view,
    node_view,
    queue_view,
    summary_view,
)
from fleetmatch.errors import StoreError
from fleetmatch.models import Fleet, FleetAutoscaler, GameServer
from fleetmatch.nodes import NodeRecord
from fleetmatch.settings import DashboardSettings
from fleetmatch.store import WatchEvent
from fleetmatch.tasks import cancel_and_wait, raise_if_cancelling, supervised

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 1.0
"""One history sample (and so at least one push) a second."""
POLL_SECONDS = 2.0
"""Queues, nodes and event records are read this often while a browser is connected."""
CLIENT_BACKLOG = 16
"""Updates queued for one browser before it counts as stalled and is disconnected."""
MAX_SERVERS = 500
"""Game servers listed at most (the page says how many there are in all)."""


class Client:
    """One connected browser: the serialized updates waiting for it (``None``: the hub is closing)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=CLIENT_BACKLOG)
        self.dropped = False


class Hub:
    def __init__(
        self,
        backend: Backend,
        queues: QueueSource,
        metric_source: MetricSource,
        settings: DashboardSettings,
        *,
        node_lease: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self._queues_source = queues
        self._metrics = metric_source
        self._node_lease = node_lease
        self._clock = clock
        self.history = History(settings.history_seconds)
        self._clients: set[Client] = set()
        self._dirty = asyncio.Event()
        self._wanted = asyncio.Event()
        self._queues: list[Mapping[str, Any]] | None = None
        self._nodes: list[NodeRecord] = []
        self._node_clock_offset = 0.0
        self._events: list[dict[str, Any]] = []
        self._polled_at = float("-inf")
        self._polling = asyncio.Lock()
        self._errors: dict[str, str] = {}
        self._counts = AllocationCounts()
        self._removers: list[Callable[[], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.gameservers = backend.informer(GameServer)
        self.fleets = backend.informer(Fleet)
        self.autoscalers = backend.informer(FleetAutoscaler)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Follow the informers and start the loops (returns once the informers have listed)."""
        for informer in (self.gameservers, self.fleets, self.autoscalers):
            self._removers.append(informer.add_handler(self._changed, replay=False))
        await asyncio.gather(self.gameservers.synced.wait(), self.fleets.synced.wait(), self.autoscalers.synced.wait())
        self._tasks = [
            supervised("dashboard.push", self._push_loop),
            supervised("dashboard.sources", self._poll_loop),
        ]

    async def close(self) -> None:
        for remove in self._removers:
            remove()
        await cancel_and_wait(*self._tasks)
        for client in list(self._clients):
            self._drop(client)

    def _changed(self, _: WatchEvent[Any]) -> None:
        self._dirty.set()

    # -- browsers ---------------------------------------------------------------------------

    def connect(self) -> tuple[Client, str]:
        """A new browser: its queue, and the snapshot (with history) to send it first."""
        client = Client()
        self._clients.add(client)
        metrics.CLIENTS.set(len(self._clients))
        self._wanted.set()
        return client, json.dumps({"state": self.state(), "history": self.history.documents()})

    def disconnect(self, client: Client) -> None:
        self._clients.discard(client)
        metrics.CLIENTS.set(len(self._clients))

    def _drop(self, client: Client) -> None:
        client.dropped = True
        self.disconnect(client)
        with contextlib.suppress(asyncio.QueueFull):
            client.queue.put_nowait(None)
        if client.queue.full():  # make room for the end mark: the browser reconnects for a fresh snapshot
            with contextlib.suppress(asyncio.QueueEmpty, asyncio.QueueFull):
                client.queue.get_nowait()
                client.queue.put_nowait(None)

    def _broadcast(self, message: str) -> None:
        for client in list(self._clients):
            try:
                client.queue.put_nowait(message)
            except asyncio.QueueFull:
                log.info("dashboard client fell %d updates behind; disconnecting it", CLIENT_BACKLOG)
                self._drop(client)

    # -- loops ------------------------------------------------------------------------------

    async def _push_loop(self) -> None:
        last_push = last_sample = float("-inf")
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, last_sample + SAMPLE_SECONDS - time.monotonic())):
                    await self._dirty.wait()
            pause = last_push + self.settings.push_interval - time.monotonic()
            if pause > 0:  # coalesce: changes during the pause ride along
                await asyncio.sleep(pause)
            self._dirty.clear()
            point = None
            if time.monotonic() - last_sample >= SAMPLE_SECONDS * 0.9:
                last_sample = time.monotonic()
                point = await self.sample()
            last_push = time.monotonic()
            if self._clients:
                update: dict[str, Any] = {"state": self.state()}
                if point is not None:
                    update["point"] = point.document()
                self._broadcast(json.dumps(update))
                metrics.PUSHES.inc()

    async def sample(self) -> Point:
        """Add one history point: the fleets' replicas now and the allocation counters."""
        try:
            self._counts = allocation_counts(await self._metrics.samples())
            self._errors.pop("metrics", None)
        except SourceError as exc:
            self._fail("metrics", exc)
        servers = list(self.gameservers.cache.values())
        points = {}
        for fleet in self.fleets.cache.values():
            doc = fleet_view(fleet, (), servers)
            points[fleet.name] = FleetPoint(fleet.spec.replicas, doc["ready"], doc["allocated"])
        return self.history.add(self._clock(), points, self._counts)

    async def _poll_loop(self) -> None:
        while True:
            if not self._clients:
                self._wanted.clear()
                await self._wanted.wait()
            await self.poll()
            self._dirty.set()
            await asyncio.sleep(POLL_SECONDS)

    async def fresh(self) -> None:
        """Poll now unless a poll ran within ``POLL_SECONDS`` (a snapshot asked for with no stream open)."""
        async with self._polling:
            if time.monotonic() - self._polled_at >= POLL_SECONDS:
                await self.poll()

    async def poll(self) -> None:
        """Read the queues, nodes and event records once (each failure is kept to show, not raised)."""
        self._polled_at = time.monotonic()
        try:
            self._queues = await self._queues_source.queues()
            self._errors.pop("queues", None)
        except SourceError as exc:
            self._queues = None
            self._fail("queues", exc)
        now = self._clock()
        try:
            if self.backend.nodes is not None:
                self._nodes, store_now = await self.backend.nodes.list()
                self._node_clock_offset = store_now - self._clock()
            if self.backend.events is not None:
                self._events = events_view(await self.backend.events.list(), now)
            self._errors.pop("store", None)
        except StoreError as exc:
            raise_if_cancelling()
            self._fail("store", exc)

    def _fail(self, source: str, exc: Exception) -> None:
        if self._errors.get(source) != str(exc):
            log.warning("dashboard: %s: %s", source, exc)
        self._errors[source] = str(exc)
        metrics.SOURCE_ERRORS.labels(source).inc()

    # -- the document -----------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What the page shows now (without the history: a browser gets that once, then points)."""
        now = self._clock()
        servers = sorted(self.gameservers.cache.values(), key=lambda g: (g.fleet or "", g.name))
        scalers = list(self.autoscalers.cache.values())
        fleets = [fleet_view(f, scalers, servers) for f in sorted(self.fleets.cache.values(), key=lambda f: f.name)]
        store_now = now + self._node_clock_offset
        nodes = [node_view(r, store_now, self._node_lease, servers) for r in self._nodes]
        queues = None if self._queues is None else [queue_view(q) for q in self._queues]
        latest = self.history.latest()
        per_second = latest.allocations_per_second if latest else 0.0
        last_minute = self.history.failures_since()
        failures = [
            {"reason": reason, "total": round(total), "lastMinute": round(last_minute.get(reason, 0.0))}
            for reason, total in sorted(self._counts.failures.items())
        ]
        return {
            "at": format_timestamp(now),
            "namespace": self.backend.namespace,
            "summary": summary_view(fleets, servers, nodes, queues, per_second, sum(last_minute.values())),
            "fleets": fleets,
            "gameServers": [gameserver_view(g, now) for g in servers[:MAX_SERVERS]],
            "gameServersTotal": len(servers),
            "nodes": nodes,
            "queues": queues,
            "allocations": {"allocated": round(self._counts.allocated), "perSecond": round(per_second, 2)},
            "failures": failures,
            "events": self._events,
            "errors": dict(sorted(self._errors.items())),
        }
