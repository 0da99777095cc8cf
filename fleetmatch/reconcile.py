"""The level-triggered loop every controller runs (fleet controller, autoscaler, node agent, Pod controller).

A pass looks at the whole cache and does what it finds missing; it runs at start, whenever
something pokes the loop (an informer handler: ``informer.add_handler(loop.on_event)``), and at
least every ``resync`` seconds, so a missed event or a failed write is retried without anybody
remembering it. ``next_due`` lets a loop ask for an earlier pass (an autoscaler interval, a back-off
that ends). Pokes that arrive during a pass are not lost: they make the next pass start at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

MIN_PAUSE = 0.01
"""Least seconds between two passes asked for by ``next_due`` (a due time in the past never spins)."""


class ReconcileLoop:
    def __init__(
        self,
        reconcile: Callable[[], Awaitable[None]],
        *,
        resync: float,
        next_due: Callable[[], float | None] | None = None,
    ) -> None:
        """``reconcile``: one pass. ``next_due``: seconds until a pass is wanted anyway (None: no
        wish), asked after each pass."""
        self._reconcile = reconcile
        self._resync = resync
        self._next_due = next_due
        self._wake = asyncio.Event()
        self.passes = 0
        """Passes completed (for tests and metrics)."""

    def poke(self) -> None:
        """Ask for a pass as soon as possible."""
        self._wake.set()

    def on_event(self, _event: object) -> None:
        """An informer handler that pokes the loop."""
        self._wake.set()

    async def run(self) -> None:
        """Pass after pass until cancelled; a pass that raises ends the loop (its supervisor restarts it)."""
        while True:
            self._wake.clear()
            await self._reconcile()
            self.passes += 1
            await self._pause()

    async def _pause(self) -> None:
        pause = self._resync
        if self._next_due is not None:
            due = self._next_due()
            if due is not None:
                pause = min(pause, max(due, MIN_PAUSE))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(pause):
                await self._wake.wait()
