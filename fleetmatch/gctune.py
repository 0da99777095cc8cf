"""Garbage-collector tuning: a process decision, taken where a process is composed, never in pure code.

CPython's cyclic collector runs whenever allocations outnumber deallocations by a threshold, and a
full collection walks every tracked object alive. Three patterns of ours make that costly
(docs/benchmarks.md has the figures):

- A burst of short-lived, acyclic allocations beside a large live heap: a match tick over 100,000
  tickets triggers collections that walk the whole pool again and again (10-20 % of a tick).
  ``collector_paused()`` turns the collector off for the burst; reference counting still frees
  everything the burst drops. The matchmaker's director wraps each match call in it.
- A large structure built once and kept: the allocator's index of game servers. ``freeze_heap()``
  moves everything alive into the permanent generation, which collections skip. The allocator
  calls it once its index has caught up with the store.
- A long-lived structure that keeps being replaced: each claim puts a new GameServer (about eight
  tracked objects) into the allocator's index in place of the old one. Allocations and frees then
  balance, and the collector counts only their difference, so no collection is due while the young
  generations fill with survivors; when one finally runs it walks them all. In the allocator at
  half its maximum rate that was young collections of 8-16 ms and full ones of 25-50 ms, none
  freeing anything, and half-rate p99 latency over 10 ms in 7 of 20 runs (docs/benchmarks.md).
  ``keep_heap_frozen()`` freezes the heap every tenth of a second instead (O(1)), so a collection
  never walks more than that much of it; every few minutes a **sweep** unfreezes everything and
  collects once, so that cycles frozen while alive and dropped since are freed after all.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable, Iterator

FREEZE_SECONDS = 0.1
"""How often ``keep_heap_frozen`` freezes the heap: at most this much of it is ever collected young."""
SWEEP_SECONDS = 300.0
"""How often it unfreezes everything for one full collection (one pause of tens of milliseconds)."""


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block.

    The collector resumes, if it was on, when the block ends, also by an exception. Blocks in
    several threads each restore what they found, so the last one out leaves it on.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def freeze_heap() -> None:
    """Move every object alive now into the permanent generation: later collections skip them.

    Call it once the process's long-lived state is built; objects made later are collected as usual.
    """
    gc.freeze()


def sweep() -> int:
    """Unfreeze the heap, collect it whole, freeze what is left; how many objects were freed."""
    gc.unfreeze()
    try:
        return gc.collect()
    finally:
        gc.freeze()


async def keep_heap_frozen(
    every: float = FREEZE_SECONDS,
    sweep_every: float = SWEEP_SECONDS,
    *,
    on_sweep: Callable[[float, int], None] | None = None,
) -> None:
    """Freeze the heap every ``every`` seconds and ``sweep()`` it every ``sweep_every`` (see the
    module documentation); ``on_sweep(seconds, freed)`` after each sweep. Runs until cancelled."""
    freeze_heap()
    last_sweep = time.monotonic()
    while True:
        await asyncio.sleep(every)
        if time.monotonic() - last_sweep >= sweep_every:
            started = time.perf_counter()
            freed = sweep()
            if on_sweep is not None:
                on_sweep(time.perf_counter() - started, freed)
            last_sweep = time.monotonic()
        else:
            gc.freeze()
