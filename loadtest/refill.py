"""How fast the Buffer autoscaler refills a fleet after a burst of allocations.

Used by ``tests/e2e/test_autoscale_refill.py`` (which asserts a generous bound) and
``loadtest/bench_refill.py`` (which reports the exact figures). Against a running stack: it takes
``count`` servers at once through the allocation API, then watches the store until the fleet has
``buffer`` Ready servers again, timing every replacement from its creation to Ready.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from fleetmatch.allocation import AllocationState, GameServerAllocationSpec, GameServerSelector
from fleetmatch.allocator_client import AllocatorClient
from fleetmatch.models import GameServer, GameServerState
from fleetmatch.store import EventType, GameServerStore


@dataclass(frozen=True, slots=True)
class RefillFigures:
    allocated: int
    allocate_seconds: float
    """From the first request to the last answer of the burst."""
    refill_seconds: float
    """From the end of the burst until the fleet had ``buffer`` Ready servers again."""
    server_start_seconds_median: float
    server_start_seconds_max: float
    """A replacement's own time from creation (the autoscaler has already acted) to Ready."""
    reaction_seconds_max: float
    """From the end of the burst until the last replacement was created: the autoscaler and
    fleet controller's part of the refill."""

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _ready(items: dict[str, GameServer], fleet: str) -> int:
    return sum(g.fleet == fleet and g.state is GameServerState.READY for g in items.values())


async def measure_refill(
    store: GameServerStore,
    allocator_url: str,
    token: str,
    *,
    fleet: str,
    count: int,
    buffer: int,
    within: float = 120.0,
    clock: Callable[[], float] = time.monotonic,
) -> RefillFigures:
    items, version = await store.list()
    cache = {g.name: g for g in items}
    before = set(cache)
    created: dict[str, float] = {}
    ready_at: dict[str, float] = {}
    changed = asyncio.Event()

    async def follow() -> None:
        async for event in store.watch(version):
            gs, now = event.object, clock()
            if event.type is EventType.DELETED:
                cache.pop(gs.name, None)
            else:
                cache[gs.name] = gs
                if gs.name not in before:
                    created.setdefault(gs.name, now)
                    if gs.state is GameServerState.READY:
                        ready_at.setdefault(gs.name, now)
            changed.set()

    watcher = asyncio.create_task(follow(), name="refill.watch")
    try:
        spec = GameServerAllocationSpec(selectors=(GameServerSelector.for_fleet(fleet),))
        start = clock()
        async with AllocatorClient(allocator_url, token) as client:
            results = await asyncio.gather(*(client.allocate(spec) for _ in range(count)))
        burst_end = clock()
        allocated = sum(r.state is AllocationState.ALLOCATED for r in results)
        async with asyncio.timeout(within):
            while _ready(cache, fleet) < buffer or len(ready_at) < allocated:
                changed.clear()
                await changed.wait()
        refilled = clock()
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    starts = [ready_at[n] - created[n] for n in ready_at]
    return RefillFigures(
        allocated=allocated,
        allocate_seconds=burst_end - start,
        refill_seconds=refilled - burst_end,
        server_start_seconds_median=statistics.median(starts),
        server_start_seconds_max=max(starts),
        reaction_seconds_max=max(created.values()) - burst_end,
    )
