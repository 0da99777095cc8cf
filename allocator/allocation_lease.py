"""Allocation leases: an allocation its game never confirms is recycled, so it strands no server.

With ``FLEETMATCH_ALLOCATION_LEASE_SECONDS`` set, the allocator stamps every server it takes from
Ready with ``fleetmatch.dev/allocation-lease``: an expiry and a fingerprint of what the game could
change through the SDK (state, players, counters, lists, labels, annotations). A game that got its
players makes SDK calls that change some of that (``PlayerConnect``, a label, a counter, ``Shutdown``);
one that never heard of the allocation (its requester vanished: a timed-out matchmaker, a client
that hung up between the allocator's check and its write) changes nothing. ``lease_expired``
(``fleetmatch.allocation``, pure) tells them apart; this loop acts on it.

An expired server is recycled (state Shutdown: the node agent or Pod controller stops it, the
fleet controller replaces it) rather than put back to Ready: its game was told it is Allocated
(the SDK's watch) and may have begun a session, and the allocation's labels, annotations and
counter changes are on it, with nothing that says what they were before. A fresh server is the
one state known to be clean; the buffer refills it in seconds.

The loop needs no setting of its own: it enforces the expiry each lease carries. It is one writer
per namespace (``fleetmatch controller``, under its leader lease); a second one would only lose
the conditional writes. Every write is conditional on the version judged, so a game that confirms
at the last moment wins: the write conflicts and the server is judged again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from allocator import metrics
from fleetmatch.allocation import ALLOCATION_LEASE_ANNOTATION, lease_expired, lease_expiry
from fleetmatch.backends import Backend
from fleetmatch.codec import evolve
from fleetmatch.errors import ConflictError, NotFoundError, StoreError
from fleetmatch.events import record_quietly
from fleetmatch.informer import Informer
from fleetmatch.models import GameServer, GameServerState
from fleetmatch.store import EventType, GameServerStore, WatchEvent

log = logging.getLogger(__name__)

MAX_SLEEP_SECONDS = 1.0
"""Longest wait between two looks."""
MIN_SLEEP_SECONDS = 0.1
"""Shortest: a write that failed (the store is down, the server changed) is not retried in a spin."""


class AllocationLeaseLoop:
    """Recycle servers whose allocation lease expired unconfirmed (see the module documentation).

    Follows the process's GameServer informer and keeps only the leased ones, so a look costs
    nothing for the rest of the fleet."""

    def __init__(
        self,
        store: GameServerStore,
        informer: Informer[GameServer],
        *,
        backend: Backend | None = None,
        clock: Callable[[], float] = time.time,
        max_sleep: float = MAX_SLEEP_SECONDS,
    ) -> None:
        self.store = store
        self.informer = informer
        self._events = backend.events if backend is not None else None
        self._clock = clock
        self._max_sleep = max_sleep
        self.leased: dict[str, GameServer] = {}
        """Allocated servers carrying a lease, as last seen."""
        self._changed = asyncio.Event()
        self._remove: Callable[[], None] | None = None

    @classmethod
    def on(
        cls, backend: Backend, *, clock: Callable[[], float] = time.time, max_sleep: float = MAX_SLEEP_SECONDS
    ) -> AllocationLeaseLoop:
        """The loop on ``backend``'s GameServers and its shared informer."""
        return cls(backend.gameservers, backend.informer(GameServer), backend=backend, clock=clock, max_sleep=max_sleep)

    def _on_event(self, event: WatchEvent[GameServer]) -> None:
        gs = event.object
        if event.type is not EventType.DELETED and lease_expiry(gs) is not None:
            self.leased[gs.name] = gs
            self._changed.set()
        else:
            self.leased.pop(gs.name, None)

    async def run(self) -> None:
        """Until cancelled: recycle expired leases as they fall due."""
        self._remove = self.informer.add_handler(self._on_event)
        try:
            await self.informer.synced.wait()
            while True:
                await self.sweep()
                self._changed.clear()
                try:
                    async with asyncio.timeout(self._next_wait()):
                        await self._changed.wait()
                except TimeoutError:
                    pass
        finally:
            self._remove()

    def _next_wait(self) -> float:
        now = self._clock()
        due = [e for gs in self.leased.values() if (e := lease_expiry(gs)) is not None]
        if not due:
            return self._max_sleep
        return min(self._max_sleep, max(MIN_SLEEP_SECONDS, min(due) - now))

    async def sweep(self) -> list[str]:
        """Recycle every leased server expired now; the names recycled."""
        now = self._clock()
        recycled = []
        for gs in [g for g in self.leased.values() if lease_expired(g, now)]:
            if await self._recycle(gs):
                recycled.append(gs.name)
        return recycled

    async def _recycle(self, gs: GameServer) -> bool:
        annotations = {k: v for k, v in gs.metadata.annotations.items() if k != ALLOCATION_LEASE_ANNOTATION}
        shutdown = evolve(
            gs,
            metadata=evolve(gs.metadata, annotations=annotations),
            status=evolve(gs.status, state=GameServerState.SHUTDOWN),
        )
        try:
            await self.store.update(shutdown)  # conditional on the version judged
        except (ConflictError, NotFoundError):
            return False  # it changed (the game confirmed, or it went away): judged again when seen
        except StoreError as exc:
            log.warning("cannot recycle %s after its allocation lease expired (%s); retrying", gs.name, exc)
            return False
        self.leased.pop(gs.name, None)
        metrics.ALLOCATION_LEASES_EXPIRED.inc()
        log.info(
            "recycled %s: allocated, but its game never confirmed within the lease",
            gs.name,
            extra={"gameserver": gs.name},
        )
        await record_quietly(
            self._events,
            "GameServer",
            gs.name,
            "AllocationLeaseExpired",
            "allocated, but the game made no SDK call by the lease's expiry: recycled",
            uid=gs.metadata.uid,
        )
        return True
