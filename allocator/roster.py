"""Separate allocator processes split the servers through slot leases, as ``--workers N`` does.

The workers of ``fleetmatch allocator --workers N`` learn their slot from their supervisor
(``allocator.workers``). Separate allocator processes have nobody to tell them: a Deployment's
replicas, allocators on several hosts, a second ``fleetmatch allocator`` beside ``fleetmatch up``.
Without a share they all go to the node Packed prefers and race there for the same servers, and
each lost race is a wasted write and another choice. So each allocator takes a slot lease
(``allocator-slot-<i>``, ``Backend.lease``: a Redis key with a TTL, or a ``coordination.k8s.io``
Lease): the lowest one free.

Every ``ttl / 3`` it renews its lease and looks at the others (``Lease.taken``, one read each),
from slot 0 up to ``LOOK_PAST`` free slots past its own. Its share is its rank among the slots held,
of how many are held (``share_of``). An allocator above a free slot moves down into it, so slots
stay dense and looking stays short.

When all see the same slots, the ranks split the servers with no overlap. Within a round of an
allocator joining or dying they may not: shares then overlap or leave servers out. That costs only
races, because claims stay conditional writes, and an allocator takes servers outside its share once
its own are used up. Alone, an allocator has no share: there is nothing to split. The workers of
``--workers N`` take slot leases too, so that workers on several hosts (or in several replicas)
all split the servers; until a worker sees as many allocators as its supervisor started, it keeps
its supervisor's slot. A dead
allocator's lease expires after ``ttl``, and the others close ranks. A store error leaves the share
as it was (the lease is a hint, not a guard) and is retried the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection

from allocator import metrics
from allocator.index import Share
from fleetmatch.errors import StoreError
from fleetmatch.lease import Lease

log = logging.getLogger(__name__)

SLOT_LEASE_PREFIX = "allocator-slot-"
SLOT_LEASE_SECONDS = 9.0
"""A dead allocator's slot is free this long after its last renewal (renewed every third of it)."""
MAX_SLOTS = 128
"""Allocators beyond this many take no slot and have no share (they still allocate)."""
LOOK_PAST = 2
"""Free slots looked at past this allocator's own before it stops looking."""


def share_of(mine: int | None, held: Collection[int]) -> Share | None:
    """This allocator's share: its rank among the ``held`` slots (its own ``mine`` included), of
    how many are held. None without a slot, or alone (nothing to split)."""
    if mine is None:
        return None
    members = sorted({*held, mine})
    if len(members) < 2:
        return None
    return Share(members.index(mine), len(members))


class Roster:
    """This allocator's slot lease and the share it gives (see the module documentation).

    ``leases(name, ttl)``: a lease held as this process (``Backend.lease``). ``on_share`` is called
    with each new share (None: no preference). ``fallback``: the share while no other allocator is
    seen, which is where the allocator starts (a worker of ``--workers N``: its supervisor's)."""

    def __init__(
        self,
        leases: Callable[[str, float], Lease],
        on_share: Callable[[Share | None], None],
        *,
        ttl: float = SLOT_LEASE_SECONDS,
        max_slots: int = MAX_SLOTS,
        fallback: Share | None = None,
    ) -> None:
        self.ttl = ttl
        self.slot: int | None = None
        self.share: Share | None = fallback
        self._fallback = fallback
        self._make = leases
        self._leases: dict[int, Lease] = {}
        self._on_share = on_share
        self._max_slots = max_slots

    def _lease(self, slot: int) -> Lease:
        lease = self._leases.get(slot)
        if lease is None:
            lease = self._leases[slot] = self._make(f"{SLOT_LEASE_PREFIX}{slot}", self.ttl)
        return lease

    async def step(self) -> Share | None:
        """One round: keep (or take) a slot, look at the others', move down into a free slot below
        this one, and publish the share if it changed. ``StoreError`` if the store fails.

        A worker tries its supervisor's slot first and never moves below it: the workers of one
        host then hold slots 0..N-1 in their supervisor's order, so their shares agree from their
        first rounds instead of crossing (two workers on one share) until every one has looked."""
        if self.slot is not None and not await self._lease(self.slot).acquire():
            log.warning("allocator slot %d was taken over (its renewals were late); taking another", self.slot)
            self.slot = None
        first = self._fallback.slot if self._fallback is not None and self._fallback.slot < self._max_slots else 0
        if self.slot is None:
            self.slot = await self._take_free([first, *(slot for slot in range(self._max_slots) if slot != first)])
        held = await self._look()
        if self.slot is not None:
            free_below = [slot for slot in range(first, self.slot) if slot not in held]
            lower = await self._take_free(free_below)
            if lower is not None:
                with contextlib.suppress(StoreError):
                    await self._lease(self.slot).release()
                held.discard(self.slot)
                self.slot = lower
                held.add(lower)
        self._publish(share_of(self.slot, held))
        return self.share

    async def _take_free(self, slots: Collection[int]) -> int | None:
        for slot in slots:
            if await self._lease(slot).acquire():
                return slot
        return None

    async def _look(self) -> set[int]:
        """The slots held now: every slot up to this allocator's own, then until ``LOOK_PAST`` free
        ones in a row."""
        held: set[int] = set()
        free_run = 0
        mine = -1 if self.slot is None else self.slot
        for slot in range(self._max_slots):
            if slot == self.slot or await self._lease(slot).taken():
                held.add(slot)
                free_run = 0
            else:
                free_run += 1
                if slot > mine and free_run >= LOOK_PAST:
                    break
        return held

    def _publish(self, seen: Share | None) -> None:
        fallback = self._fallback
        # A worker keeps its supervisor's share until it sees at least as many allocators as that
        # share counts: a partial view while its host's workers start would split the servers
        # differently from theirs (overlapping shares race).
        share = seen if seen is not None and (fallback is None or seen.of >= fallback.of) else fallback
        metrics.show_share(share)
        if share == self.share:
            return
        self.share = share
        if share is None:
            log.info("allocator slot %s: no other allocator seen; no share of the servers", self.slot)
        else:
            log.info("allocator slot %s: share %d of %d allocators", self.slot, share.slot, share.of)
        self._on_share(share)

    async def run(self) -> None:
        """Rounds every ``ttl / 3`` until cancelled; the slot is released on the way out. A store
        error is logged once until it changes or the leases answer again (a missing RBAC rule
        would otherwise log every round)."""
        failing: str | None = None
        try:
            while True:
                try:
                    await self.step()
                except StoreError as exc:
                    if str(exc) != failing:
                        log.warning("allocator slot leases: %s; keeping share %s, retrying", exc, self.share)
                        failing = str(exc)
                else:
                    if failing is not None:
                        log.info("allocator slot leases answer again (slot %s)", self.slot)
                        failing = None
                await asyncio.sleep(self.ttl / 3)
        finally:
            await asyncio.shield(self.leave())

    async def leave(self) -> None:
        """Give the slot up, so the others close ranks in their next round instead of after ``ttl``."""
        if self.slot is not None:
            with contextlib.suppress(StoreError):
                await self._lease(self.slot).release()
            self.slot = None
