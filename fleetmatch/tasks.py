"""Named, supervised background tasks (after kopf's ``create_guarded_task``).

A long-lived loop that raises is logged with its name and restarted after a back-off instead of
dying silently; cancellation stops it. Every background loop in fleetmatch runs through here.
"""

from __future__ import annotations

import asyncio
import logging
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
