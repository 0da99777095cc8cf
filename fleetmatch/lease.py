"""Leadership for control loops that must not run twice at once (fleet controller, autoscaler).

Two fleet controllers acting together would both create the missing servers. Each pass of such a
loop first calls ``Leadership.lead()``: it takes or renews a lease (``fleetmatch.backends.redis.
lease.RedisLease`` on Redis; a Kubernetes Lease object later), and only the holder acts. A standby takes
over within the lease's ``ttl`` when the leader dies.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Protocol

from fleetmatch.errors import StoreError

log = logging.getLogger(__name__)


class Lease(Protocol):
    ttl: float

    async def acquire(self) -> bool:
        """Take or renew the lease; True while we hold it."""

    async def release(self) -> None: ...


class Leadership:
    """Tracks whether this process leads, logging changes; ``lease=None`` means always lead."""

    def __init__(self, lease: Lease | None, name: str) -> None:
        self.lease = lease
        self.name = name
        self.leading = lease is None

    @property
    def renew_every(self) -> float | None:
        """How often ``lead()`` must be called to keep the lease (None: no lease)."""
        return self.lease.ttl / 3 if self.lease is not None else None

    async def lead(self) -> bool:
        """True if this process should act now. A change of leadership is logged once."""
        if self.lease is None:
            return True
        try:
            held = await self.lease.acquire()
        except StoreError as exc:
            log.warning("%s: cannot renew its lease (%s); standing by", self.name, exc)
            held = False
        if held != self.leading:
            log.info("%s %s leadership", self.name, "took" if held else "lost")
            self.leading = held
        return held

    async def release(self) -> None:
        if self.lease is not None and self.leading:
            with contextlib.suppress(StoreError):
                await self.lease.release()
            self.leading = False
