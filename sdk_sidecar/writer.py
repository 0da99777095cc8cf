"""The coalescing store writer of one GameServer: many SDK calls, few store writes.

SDK calls only ``submit`` a ``Pending`` change (merged with what is already waiting) and return at
once, as Agones' sidecar does. One task writes: the first change right away, then at most one write
per ``interval``; whatever arrives meanwhile rides along in the next write. Each write is a
read-modify-write (``fleetmatch.store.modify``) that applies the merged change to the freshly read
object, so conflicts with other writers are retried and the state machine's rules hold against the
latest stored state. A store outage keeps the changes and retries with back-off; a deleted
GameServer drops them (there is nothing left to change).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from fleetmatch.errors import NotFoundError, StoreError, ValidationError
from fleetmatch.models import GameServer
from fleetmatch.store import GameServerStore, modify
from fleetmatch.tasks import cancel_and_wait, supervised
from sdk_sidecar import metrics
from sdk_sidecar.state import Pending, apply

log = logging.getLogger(__name__)


def _reraise_cancellation() -> None:
    """Re-raise a cancellation that a client library turned into an error (redis-py does, at times):
    retrying would keep a cancelled writer alive forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class CoalescingWriter:
    """Pending SDK changes of one GameServer and the task that writes them."""

    def __init__(
        self,
        store: GameServerStore,
        name: str,
        *,
        interval: float,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        max_backoff: float = 2.0,
        on_written: Callable[[GameServer], None] | None = None,
    ) -> None:
        self._store = store
        self._name = name
        self._interval = interval
        self._clock = clock
        self._monotonic = monotonic
        self._max_backoff = max_backoff
        self._pending = Pending()
        self._inflight = Pending()
        self._proposed: GameServer | None = None
        self._on_written = on_written
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._next_write = float("-inf")
        self._failures = 0
        self._task: asyncio.Task[None] | None = None
        self._extra = {"gameserver": name}
        self.writes = 0
        """Store writes that changed the object (for tests and logs)."""

    @property
    def pending(self) -> Pending:
        return self._pending

    @property
    def unwritten(self) -> Pending:
        """Everything not written yet: the change being written now, then the pending one."""
        return self._inflight.merge(self._pending)

    @property
    def proposed(self) -> GameServer | None:
        """While a write is in flight: the object it is writing (what the store will hold if it
        lands). The watch may bring that write back before the store answers, so readers must
        not add the in-flight change to what they observed: that would count a diff twice."""
        return self._proposed

    @property
    def idle(self) -> bool:
        """Nothing waiting and nothing being written."""
        return self._idle.is_set()

    def start(self) -> None:
        if self._task is None:
            self._task = supervised(f"sdk.writer[{self._name}]", self._run)

    def submit(self, change: Pending) -> None:
        """Queue ``change`` for the next write (merged with anything already waiting)."""
        if change.empty:
            return
        self._pending = self._pending.merge(change)
        metrics.COALESCED_CALLS.inc()
        self._idle.clear()
        self._wake.set()

    async def flush(self, within: float | None = None) -> bool:
        """Write what is pending now, without waiting for the interval; True once nothing is pending.

        False if ``within`` seconds passed first (the store is unreachable) or the writer is not running.
        """
        if self._idle.is_set():
            return True
        if self._task is None or self._task.done():
            return False
        self._urgent.set()
        try:
            async with asyncio.timeout(within):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def close(self, flush_timeout: float = 2.0) -> None:
        """Write what is pending (for at most ``flush_timeout`` seconds), then stop."""
        if self._task is None:
            return
        if not await self.flush(flush_timeout):
            log.warning("%s: closing with unwritten SDK changes: %s", self._name, self._pending, extra=self._extra)
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            delay = self._next_write - self._monotonic()
            if delay > 0 and not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._urgent.wait()
            self._wake.clear()
            pending, self._pending = self._pending, Pending()
            if not pending.empty:
                self._next_write = self._monotonic() + self._interval
                if not await self._write(pending):
                    self._pending = pending.merge(self._pending)
                    self._wake.set()
                    self._failures += 1
                    backoff = max(self._interval, 0.05) * 2 ** min(self._failures, 10)
                    await asyncio.sleep(min(backoff, self._max_backoff))
                    continue
                self._failures = 0
            if self._pending.empty:
                self._urgent.clear()
                self._idle.set()

    async def _write(self, pending: Pending) -> bool:
        """One read-modify-write; False means: keep the change and retry later."""
        started = self._monotonic()

        def change(current: GameServer) -> GameServer | None:
            updated = apply(pending, current, self._clock())
            self._proposed = current if updated is None else updated
            return updated

        self._inflight = pending
        try:
            written = await modify(self._store, self._name, change)
        except NotFoundError:
            metrics.STORE_WRITES.labels(result="gone").inc()
            log.info("%s is gone; dropping SDK changes %s", self._name, pending, extra=self._extra)
            return True
        except StoreError as exc:
            _reraise_cancellation()
            metrics.STORE_WRITES.labels(result="failed").inc()
            log.warning("%s: SDK write failed (%s); will retry", self._name, exc, extra=self._extra)
            return False
        except ValidationError as exc:
            metrics.STORE_WRITES.labels(result="failed").inc()
            log.error("%s: dropping SDK changes the model rejects: %s", self._name, exc, extra=self._extra)
            return True
        except Exception:
            _reraise_cancellation()
            metrics.STORE_WRITES.labels(result="failed").inc()
            log.exception("%s: dropping SDK changes %s (unexpected error)", self._name, pending, extra=self._extra)
            return True
        finally:
            # Cleared in the same step as the outcome is known (a retry puts it back into _pending):
            # ``unwritten`` never counts a change twice or loses one.
            self._inflight = Pending()
            self._proposed = None
            metrics.WRITE_SECONDS.observe(self._monotonic() - started)
        if written is not None and self._on_written is not None:
            self._on_written(written)
        if written is None:
            metrics.STORE_WRITES.labels(result="unchanged").inc()
        else:
            self.writes += 1
            metrics.STORE_WRITES.labels(result="written").inc()
        return True
