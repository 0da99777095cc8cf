"""Allocation: choose a server from the watch-fed index, claim it with one conditional write.

Correct with any number of allocator processes: a claim is ``store.update`` on the version this
process saw, so when two allocators pick the same server exactly one write lands; the other gets
``ConflictError`` and retries on a *different* server (the loser excludes it). Within one process,
servers being claimed are excluded from concurrent requests. There is no batching wait: an idle
allocator answers at once. The claim writes state Allocated, the request's labels and annotations
and ``agones.dev/last-allocated`` in the same write, so a server is never half-claimed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from functools import partial

from allocator import metrics
from allocator.choose import choose_server
from allocator.index import AllocationIndex
from fleetmatch.allocation import (
    AllocationState,
    GameServerAllocationSpec,
    GameServerAllocationStatus,
)
from fleetmatch.codec import evolve, format_timestamp
from fleetmatch.errors import ConflictError, NotFoundError, StoreError
from fleetmatch.informer import Informer
from fleetmatch.models import (
    LAST_ALLOCATED_ANNOTATION,
    GameServer,
    GameServerState,
    TemplateMeta,
    initial_status,
    stamp,
)
from fleetmatch.nodes import DEFAULT_LEASE_SECONDS, NodeRegistry, live_nodes
from fleetmatch.store import EventType, GameServerStore, WatchEvent

log = logging.getLogger(__name__)

MAX_CLAIM_WAITS = 64
"""In-flight claims one request may wait for before answering UnAllocated."""
MAX_ATTEMPTS = 8
"""Claims one request may try (each on another server) before answering Contention."""
NODE_POLL_SECONDS = 1.0
"""How often the allocator reads node heartbeats: a node is out of reach this long after it lapses."""


def allocated(gs: GameServer, spec: GameServerAllocationSpec, now: float) -> GameServer:
    """``gs`` as the allocation writes it: Allocated, with the request's labels and annotations and
    its counter and list actions applied (on counters and lists the server has; others are ignored)."""
    metadata = spec.metadata
    annotations = {**gs.metadata.annotations, **metadata.annotations, LAST_ALLOCATED_ANNOTATION: format_timestamp(now)}
    labels = {**gs.metadata.labels, **metadata.labels} if metadata.labels else gs.metadata.labels
    # Request labels were validated when the request was decoded: no need to validate again.
    claimed = stamp(gs, labels=labels, annotations=annotations)
    status = evolve(claimed.status, state=GameServerState.ALLOCATED)
    if spec.counters or spec.lists:
        status = initial_status(claimed.spec, status)
        counters = dict(status.counters)
        for name, action in spec.counters.items():
            if name in counters:
                counters[name] = action.apply(counters[name])
        lists = dict(status.lists)
        for name, list_action in spec.lists.items():
            if name in lists:
                lists[name] = list_action.apply(lists[name])
        status = evolve(status, counters=counters, lists=lists)
    return evolve(claimed, status=status)


class Allocator:
    def __init__(
        self,
        store: GameServerStore,
        informer: Informer[GameServer],
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        max_attempts: int = MAX_ATTEMPTS,
        nodes: NodeRegistry | None = None,
        node_lease: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        """``informer``: the process's GameServer informer on ``store`` (``Backend.informer``): the
        index is fed by its events from now on, starting with what it has cached. ``nodes``: node
        heartbeats (``follow_nodes`` keeps servers of silent or restarted node agents out of reach)."""
        self.store = store
        self.nodes = nodes
        self._node_lease = node_lease
        self._nodes_known = asyncio.Event()
        if nodes is None:
            self._nodes_known.set()
        self.index = AllocationIndex()
        self.informer = informer
        self._rng = rng or random.Random()
        self._clock = clock
        self._max_attempts = max_attempts
        self._claiming: set[str] = set()
        self._landed = asyncio.Event()
        """Set (and replaced) each time a claim of this process ends, won or lost."""
        for state in (GameServerState.READY, GameServerState.ALLOCATED):
            metrics.ALLOCATABLE.labels(state=state.value).set_function(partial(self.index.count, state))
        self.close = informer.add_handler(self._on_event)
        """Stop following the informer (the index then goes stale)."""

    def _on_event(self, event: WatchEvent[GameServer]) -> None:
        gs = event.object
        if event.type is EventType.DELETED:
            self.index.remove(gs.name)
        elif self.index.servers.get(gs.name) is not gs:  # our own claims come back as the same object
            self.index.upsert(gs)

    @property
    def ready(self) -> bool:
        """True once the index holds the store's state (before that, every answer would be a guess)."""
        return self.informer.synced.is_set() and self._nodes_known.is_set()

    async def wait_ready(self) -> None:
        await self.informer.synced.wait()
        await self._nodes_known.wait()

    async def follow_nodes(self, period: float = NODE_POLL_SECONDS) -> None:
        """Poll the node heartbeats and fence off servers of nodes that went silent or restarted,
        until cancelled. A poll that fails keeps the last view: a store outage is no node's fault."""
        assert self.nodes is not None
        healthy_since: float | None = None
        while True:
            try:
                records, now = await self.nodes.list()
            except StoreError as exc:
                healthy_since = None
                log.warning("cannot read node heartbeats (%s); keeping the last view", exc)
            else:
                if healthy_since is None:
                    healthy_since = now
                self.index.set_live_nodes(live_nodes(records, now, self._node_lease, healthy_since))
                metrics.FENCED.set(len(self.index.fenced))
                self._nodes_known.set()
            await asyncio.sleep(period)

    async def allocate(self, spec: GameServerAllocationSpec) -> GameServerAllocationStatus:
        started = time.perf_counter()
        status = await self._allocate(spec)
        metrics.ALLOCATIONS.labels(result=status.state.value).inc()
        metrics.ALLOCATION_SECONDS.labels(result=status.state.value).observe(time.perf_counter() - started)
        return status

    async def _allocate(self, spec: GameServerAllocationSpec) -> GameServerAllocationStatus:
        lost: set[str] = set()
        for _ in range(self._max_attempts):
            gs = self._choose(spec, lost)
            waits = 0
            while gs is None and waits < MAX_CLAIM_WAITS and self._in_flight(spec, lost):
                # Only servers this process is claiming right now would do (a high-density server
                # taking another room): wait for that write, then look again, rather than answer 429.
                waits += 1
                await self._claim_landed()
                gs = self._choose(spec, lost)
            if gs is None:
                return GameServerAllocationStatus(state=AllocationState.UNALLOCATED)
            self._claiming.add(gs.name)
            try:
                claimed = await self.store.update(allocated(gs, spec, self._clock()))
            except (ConflictError, NotFoundError):
                metrics.CLAIM_CONFLICTS.inc()
                lost.add(gs.name)  # someone else got it, or it changed: try another server
                continue
            finally:
                self._claiming.discard(gs.name)
                self._landed.set()
                self._landed = asyncio.Event()
            self.index.upsert(claimed)  # the watch will confirm; until then nobody here picks it
            return GameServerAllocationStatus(
                state=AllocationState.ALLOCATED,
                game_server_name=claimed.name,
                address=claimed.status.address,
                ports=claimed.status.ports,
                node_name=claimed.status.node_name,
                metadata=TemplateMeta(labels=claimed.metadata.labels, annotations=claimed.metadata.annotations),
                counters=claimed.status.counters,
                lists=claimed.status.lists,
            )
        log.info("allocation gave up after %d lost races", len(lost))
        return GameServerAllocationStatus(state=AllocationState.CONTENTION)

    def _in_flight(self, spec: GameServerAllocationSpec, lost: set[str]) -> bool:
        """Would a server that this process is claiming right now match (once its claim lands)?"""
        if not self._claiming:
            return False
        return any(
            choose_server(self.index, selector, spec.scheduling, self._rng, exclude=lost) is not None
            for selector in spec.selectors
        )

    async def _claim_landed(self) -> None:
        await self._landed.wait()

    def _choose(self, spec: GameServerAllocationSpec, lost: set[str]) -> GameServer | None:
        exclude = self._claiming | lost if lost else self._claiming
        for selector in spec.selectors:
            gs = choose_server(self.index, selector, spec.scheduling, self._rng, exclude=exclude)
            if gs is not None:
                return gs
        return None
