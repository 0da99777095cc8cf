"""Named, supervised background tasks (after kopf's ``create_guarded_task``), and back-off per key.

A long-lived loop that raises is logged with its name and restarted after a back-off instead of
dying silently; cancellation stops it. Every background loop in fleetmatch runs through here.
``Backoff`` spaces the retries of one key (a GameServer, a watched resource) that keeps failing.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def _supervise(name: str, factory: Callable[[], Awaitable[None]], backoff: float, max_backoff: float) -> None:
    delay = backoff
    while True:
        try:
            await factory()
            log.warning("task %s returned; restarting", name)
        except asyncio.CancelledError:
            raise
        except Exception:
            raise_if_cancelling()
            log.exception("task %s crashed; restarting in %.1fs", name, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_backoff)


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that a library turned into another error.

    redis-py (and others) may convert a ``CancelledError`` arriving mid-read into a connection
    error; a retry loop that catches it would then never stop. Call this first in such handlers.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def supervised(
    name: str, factory: Callable[[], Awaitable[None]], *, backoff: float = 0.5, max_backoff: float = 10.0
) -> asyncio.Task[None]:
    """Start ``factory()`` as task ``name``; restart it whenever it ends or fails, until cancelled."""
    return asyncio.create_task(_supervise(name, factory, backoff, max_backoff), name=name)


async def cancel_and_wait(*tasks: asyncio.Task[object] | None) -> None:
    """Cancel tasks and wait until each has finished its cleanup."""
    live = [t for t in tasks if t is not None and not t.done()]
    for task in live:
        task.cancel()
    if live:
        await asyncio.gather(*live, return_exceptions=True)


class Backoff:
    """Exponential back-off per key (a GameServer name, a watched resource): ``base`` doubling up to
    ``cap``, plus up to 25% jitter so that keys failing together do not retry together."""

    def __init__(self, base: float = 0.2, cap: float = 30.0, *, rng: random.Random | None = None) -> None:
        self.base, self.cap = base, cap
        self._rng = rng or random.Random()
        self._failures: dict[str, int] = {}
        self._until: dict[str, float] = {}

    def fail(self, key: str, now: float) -> float:
        """Record a failure of ``key`` at ``now``: the seconds it now waits."""
        n = self._failures.get(key, 0) + 1
        self._failures[key] = n
        delay = min(self.base * 2.0 ** (n - 1), self.cap) * (1 + self._rng.random() / 4)
        self._until[key] = now + delay
        return delay

    def ok(self, key: str) -> None:
        self._failures.pop(key, None)
        self._until.pop(key, None)

    def waiting(self, key: str, now: float) -> bool:
        return self._until.get(key, 0.0) > now

    def next_due(self) -> float | None:
        """When the earliest wait ends (on the clock the failures were given), or None."""
        return min(self._until.values(), default=None)

    def forget(self, keep: Callable[[str], bool]) -> None:
        for key in [k for k in self._until if not keep(k)]:
            self.ok(key)
