"""Allocation: choose a server from the watch-fed index, claim it with one conditional write.

Correct with any number of allocator processes: a claim is ``store.update`` on the version this
process saw, so when two allocators pick the same server exactly one write lands; the other gets
``ConflictError`` and retries on a *different* server (the loser excludes it). Within one process,
servers being claimed are excluded from concurrent requests. There is no batching wait: an idle
allocator answers at once. The claim writes state Allocated, the request's labels and annotations
and ``agones.dev/last-allocated`` in the same write, so a server is never half-claimed.
"""

from __future__ import annotations

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
from fleetmatch.errors import ConflictError, NotFoundError
from fleetmatch.informer import Informer
from fleetmatch.models import (
    LAST_ALLOCATED_ANNOTATION,
    GameServer,
    GameServerState,
    TemplateMeta,
    stamp,
)
from fleetmatch.store import EventType, GameServerStore, WatchEvent

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
"""Claims one request may try (each on another server) before answering Contention."""


def allocated(gs: GameServer, metadata: TemplateMeta, now: float) -> GameServer:
    """``gs`` as the allocation writes it: Allocated, with the request's labels and annotations."""
    annotations = {**gs.metadata.annotations, **metadata.annotations, LAST_ALLOCATED_ANNOTATION: format_timestamp(now)}
    labels = {**gs.metadata.labels, **metadata.labels} if metadata.labels else gs.metadata.labels
    # Request labels were validated when the request was decoded: no need to validate again.
    claimed = stamp(gs, labels=labels, annotations=annotations)
    return evolve(claimed, status=evolve(claimed.status, state=GameServerState.ALLOCATED))


class Allocator:
    def __init__(
        self,
        store: GameServerStore,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.store = store
        self.index = AllocationIndex()
        self.informer: Informer[GameServer] = Informer(store)
        self.informer.add_handler(self._on_event)
        self._rng = rng or random.Random()
        self._clock = clock
        self._max_attempts = max_attempts
        self._claiming: set[str] = set()
        for state in (GameServerState.READY, GameServerState.ALLOCATED):
            metrics.ALLOCATABLE.labels(state=state.value).set_function(partial(self.index.count, state))

    def _on_event(self, event: WatchEvent[GameServer]) -> None:
        gs = event.object
        if event.type is EventType.DELETED:
            self.index.remove(gs.name)
        elif self.index.servers.get(gs.name) is not gs:  # our own claims come back as the same object
            self.index.upsert(gs)

    async def run(self) -> None:
        """Keep the index in step with the store (until cancelled)."""
        await self.informer.run()

    @property
    def ready(self) -> bool:
        """True once the index holds the store's state (before that, every answer would be a guess)."""
        return self.informer.synced.is_set()

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
            if gs is None:
                return GameServerAllocationStatus(state=AllocationState.UNALLOCATED)
            self._claiming.add(gs.name)
            try:
                claimed = await self.store.update(allocated(gs, spec.metadata, self._clock()))
            except (ConflictError, NotFoundError):
                metrics.CLAIM_CONFLICTS.inc()
                lost.add(gs.name)  # someone else got it, or it changed: try another server
                continue
            finally:
                self._claiming.discard(gs.name)
            self.index.upsert(claimed)  # the watch will confirm; until then nobody here picks it
            return GameServerAllocationStatus(
                state=AllocationState.ALLOCATED,
                game_server_name=claimed.name,
                address=claimed.status.address,
                ports=claimed.status.ports,
                node_name=claimed.status.node_name,
                metadata=TemplateMeta(labels=claimed.metadata.labels, annotations=claimed.metadata.annotations),
            )
        log.info("allocation gave up after %d lost races", len(lost))
        return GameServerAllocationStatus(state=AllocationState.CONTENTION)

    def _choose(self, spec: GameServerAllocationSpec, lost: set[str]) -> GameServer | None:
        exclude = self._claiming | lost if lost else self._claiming
        for selector in spec.selectors:
            gs = choose_server(self.index, selector, spec.scheduling, self._rng, exclude=exclude)
            if gs is not None:
                return gs
        return None
