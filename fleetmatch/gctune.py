"""Garbage-collector tuning: a process decision, taken where a process is composed, never in pure code.

CPython's cyclic collector runs whenever allocations outnumber deallocations by a threshold, and a
full collection walks every tracked object alive. Two patterns of ours make that costly
(docs/benchmarks.md has the figures):

- A burst of short-lived, acyclic allocations beside a large live heap: a match tick over 100,000
  tickets triggers collections that walk the whole pool again and again (10-20 % of a tick).
  ``collector_paused()`` turns the collector off for the burst; reference counting still frees
  everything the burst drops. The matchmaker's director wraps each match call in it.
- A large structure built once and kept: the allocator's index of game servers. ``freeze_heap()``
  moves everything alive into the permanent generation, which collections skip. The allocator
  calls it once its index has caught up with the store.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


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
