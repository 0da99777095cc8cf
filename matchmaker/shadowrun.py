"""Running a queue's shadow match function beside the live one (``spec.shadow``), safely.

After the live function made its proposals, the director hands the same pool snapshot, ``now``
and those proposals to ``ShadowRunner.observe``, which returns at once: the shadow runs in a thread
of its own (a daemon thread: a stuck one never holds up the process's exit), awaited by a named
task, and the director never waits for it. It claims nothing, allocates nothing and writes
nothing to the ticket store; it only compares (``matchmaker.shadow``) and counts. A run that
raises is counted (``error``); one past ``timeout`` seconds is counted (``timeout``) and its
result dropped. A thread cannot be stopped, so while a run is still going (a slow or stuck
function) later passes skip the shadow (``skipped``) instead of piling up threads: at most one
shadow run per queue at a time. The cost the live path still pays is CPU (the GIL) while the
shadow runs, as for a second match function.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence

from fleetmatch.tasks import cancel_and_wait
from matchmaker import metrics
from matchmaker.functions import Matcher
from matchmaker.models import Proposal, Ticket
from matchmaker.shadow import Comparison, compare

log = logging.getLogger(__name__)


class ShadowRunner:
    """One queue's shadow: at most one run at a time, never awaited by the live path."""

    def __init__(self, queue: str, match: Matcher, *, timeout: float) -> None:
        self.queue, self.match, self.timeout = queue, match, timeout
        self._task: asyncio.Task[Comparison | None] | None = None
        self._ids = {"queue": queue}

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def observe(self, pool: Sequence[Ticket], live: Sequence[Proposal], now: float) -> None:
        """Start a shadow run on this pass's snapshot (or skip it, if the last one still runs)."""
        if self.running:
            metrics.SHADOW_RUNS.labels(queue=self.queue, outcome="skipped").inc()
            return
        self._task = asyncio.create_task(self._run(tuple(pool), tuple(live), now), name=f"shadow[{self.queue}]")

    async def last(self) -> Comparison | None:
        """The latest run's comparison, once it has finished (None: it failed, timed out, or none ran)."""
        if self._task is None:
            return None
        return await asyncio.shield(self._task)

    async def close(self) -> None:
        await cancel_and_wait(self._task)

    def _thread(self, pool: Sequence[Ticket], now: float) -> asyncio.Future[list[Proposal]]:
        """The shadow on a daemon thread of its own, not the loop's executor: a stuck plug-in then
        never holds up the process's exit (``asyncio.run`` waits for its executor's threads)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Proposal]] = loop.create_future()

        def settle(result: list[Proposal] | None, exc: BaseException | None) -> None:
            if future.done():  # cancelled meanwhile
                return
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result or [])

        def target() -> None:
            try:
                result, exc = self.match(pool, now), None
            except Exception as error:  # handed to the loop: counted there
                result, exc = None, error
            except BaseException as error:  # SystemExit and kin must not reach the loop as such
                result, exc = None, RuntimeError(f"the shadow raised {error!r}")
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(settle, result, exc)

        threading.Thread(target=target, name=f"shadow[{self.queue}]", daemon=True).start()
        return future

    async def _run(self, pool: Sequence[Ticket], live: Sequence[Proposal], now: float) -> Comparison | None:
        name = self.queue
        started = time.perf_counter()
        work = self._thread(pool, now)
        try:
            async with asyncio.timeout(self.timeout):
                proposals = await asyncio.shield(work)
        except TimeoutError:
            metrics.SHADOW_RUNS.labels(queue=name, outcome="timeout").inc()
            log.warning(
                "shadow match function of %s took over %gs: its run is dropped", name, self.timeout, extra=self._ids
            )
            with contextlib.suppress(Exception):
                await work  # the thread runs on: this run stays "running" (later passes skip) until it ends
            return None
        except Exception as exc:  # a plug-in may fail in any way; the live path must not notice
            metrics.SHADOW_RUNS.labels(queue=name, outcome="error").inc()
            log.warning("shadow match function of %s failed: %r", name, exc, extra=self._ids)
            return None
        metrics.SHADOW_SECONDS.labels(queue=name).observe(time.perf_counter() - started)
        metrics.SHADOW_RUNS.labels(queue=name, outcome="ok").inc()
        try:
            comparison = compare(pool, live, proposals, now)
        except Exception as exc:  # proposals of the wrong shape
            metrics.SHADOW_RUNS.labels(queue=name, outcome="error").inc()
            log.warning("shadow proposals of %s cannot be compared: %r", name, exc, extra=self._ids)
            return None
        record(name, comparison)
        return comparison


def record(queue: str, comparison: Comparison) -> None:
    """The comparison into the shadow metrics (``docs/metrics.md``)."""
    for label, side in (("live", comparison.live), ("shadow", comparison.shadow)):
        metrics.SHADOW_MATCHES.labels(queue=queue, side=label).inc(side.matches)
        metrics.SHADOW_PLAYERS.labels(queue=queue, side=label).inc(side.players)
        wait = metrics.SHADOW_TICKET_WAIT.labels(queue=queue, side=label)
        for seconds in side.waits:
            wait.observe(seconds)
        spread = metrics.SHADOW_SKILL_SPREAD.labels(queue=queue, side=label)
        for value in side.skill_spreads:
            spread.observe(value)
    metrics.SHADOW_AGREED.labels(queue=queue).inc(comparison.agreed)
    if comparison.agreement is not None:
        metrics.SHADOW_AGREEMENT.labels(queue=queue).set(comparison.agreement)
