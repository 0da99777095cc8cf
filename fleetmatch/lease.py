"""Leadership: the controllers of a process run only while it holds a lease.

Two fleet controllers acting together would both create the missing servers, so ``fleetmatch
controller`` runs its loops (fleet controller, autoscaler, Pod controller) under ONE lease
(``Backend.lease``: a Redis key with a TTL, or a ``coordination.k8s.io`` Lease on Kubernetes). A
standby process takes over within the lease's ``ttl`` when the leader dies.

``Leadership.run(loops)`` waits until it holds the lease, starts the loops, renews every ``ttl/3``
and cancels the loops when the lease is lost; then stands by again. A renewal that fails for a
store error (Redis restarting, the API server unreachable) does not depose the leader at once: the
lease is still ours until it expires, so the loops keep running until one more renewal period would
take them past the expiry; only then do they stop, before any standby can take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from fleetmatch.errors import StoreError
from fleetmatch.tasks import cancel_and_wait, supervised

log = logging.getLogger(__name__)

Loop = tuple[str, Callable[[], Awaitable[None]]]
"""A named loop body: started with ``fleetmatch.tasks.supervised`` under that name."""


class Lease(Protocol):
    ttl: float

    async def acquire(self) -> bool:
        """Take or renew the lease; True while we hold it."""

    async def release(self) -> None: ...

    async def taken(self) -> bool:
        """Whether anyone (this process included) holds the lease now, as far as the store tells:
        one read, for looking at others' leases (``allocator.roster``), never a write."""


class Leadership:
    """Whether this process leads, renewed on demand; ``lease=None`` means always lead."""

    def __init__(self, lease: Lease | None, name: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.lease = lease
        self.name = name
        self.leading = lease is None
        self._clock = clock
        self._valid_until = float("inf") if lease is None else float("-inf")

    @property
    def renew_every(self) -> float | None:
        """How often ``lead()`` must be called to keep the lease (None: no lease)."""
        return self.lease.ttl / 3 if self.lease is not None else None

    async def lead(self) -> bool:
        """Take or renew the lease: True if this process should act now. A change is logged once."""
        if self.lease is None:
            return True
        now = self._clock()
        try:
            held = await self.lease.acquire()
        except StoreError as exc:
            held = self.leading and now + self.lease.ttl / 3 < self._valid_until
            log.warning(
                "%s: cannot renew its lease (%s); %s",
                self.name,
                exc,
                f"still valid for {self._valid_until - now:.1f}s" if held else "standing by",
            )
        else:
            if held:
                self._valid_until = now + self.lease.ttl
        if held != self.leading:
            log.info("%s %s leadership", self.name, "took" if held else "lost")
            self.leading = held
        return held

    async def release(self) -> None:
        if self.lease is not None and self.leading:
            with contextlib.suppress(StoreError):
                await self.lease.release()
            self.leading = False
            self._valid_until = float("-inf")

    async def run(self, loops: Sequence[Loop]) -> None:
        """Run ``loops`` while leading, until cancelled (see the module documentation)."""
        try:
            while True:
                await self._until_leading()
                tasks = [supervised(name, body) for name, body in loops]
                try:
                    await self._while_leading()
                finally:
                    await cancel_and_wait(*tasks)
        finally:
            await asyncio.shield(self.release())

    async def _until_leading(self) -> None:
        while True:
            if await self.lead():
                return
            await asyncio.sleep(self.renew_every or 1.0)

    async def _while_leading(self) -> None:
        """Renew every ``renew_every`` seconds; return once the lease is lost (never without a lease)."""
        if self.lease is None:
            await asyncio.Event().wait()
        while True:
            await asyncio.sleep(self.renew_every or 1.0)
            if not await self.lead():
                return
