"""Garbage-collector tuning: the collector comes back as it was, a freeze moves the heap aside, and
a heap kept frozen is still swept."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from fleetmatch.gctune import collector_paused, freeze_heap, keep_heap_frozen
from fleetmatch.tasks import cancel_and_wait
from tests.waiting import eventually


@pytest.fixture
def collector_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()
    gc.unfreeze()


@pytest.mark.usefixtures("collector_restored")
@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_then_left_as_it_was(enabled: bool) -> None:
    (gc.enable if enabled else gc.disable)()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled() is enabled
    with pytest.raises(ZeroDivisionError), collector_paused():
        1 / 0  # noqa: B018 - the block fails
    assert gc.isenabled() is enabled


@pytest.mark.usefixtures("collector_restored")
def test_nested_blocks_leave_it_to_the_outermost() -> None:
    gc.enable()
    with collector_paused():
        with collector_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_restored")
def test_freeze_moves_what_is_alive_out_of_the_collected_generations() -> None:
    gc.unfreeze()
    kept = [{"server": i} for i in range(1000)]
    freeze_heap()
    assert gc.get_freeze_count() >= len(kept)


class Cycle:
    """Garbage only the cyclic collector frees (reference counting never reaches zero)."""

    def __init__(self) -> None:
        self.me = self


@pytest.mark.usefixtures("collector_restored")
async def test_the_heap_is_kept_frozen_and_swept_now_and_then() -> None:
    """An object made after the start is frozen within a period, so no collection sees it; a cycle
    frozen while alive and dropped later is freed by the next sweep, which is reported."""
    gc.unfreeze()
    sweeps: list[tuple[float, int]] = []
    freezing = asyncio.create_task(keep_heap_frozen(0.01, 2.0, on_sweep=lambda s, n: sweeps.append((s, n))))
    try:
        await asyncio.sleep(0)
        held = [Cycle()]
        watched = weakref.ref(held[0])
        await eventually(lambda: all(o is not held[0] for o in gc.get_objects()), within=5)  # frozen
        assert not sweeps
        held.clear()
        gc.collect()
        assert watched() is not None  # frozen: even a full collection skips it
        await eventually(lambda: bool(sweeps), within=5)
        assert watched() is None  # the sweep freed it
        seconds, freed = sweeps[0]
        assert freed >= 1 and seconds >= 0
        assert gc.get_freeze_count() > 0  # and froze the heap again
    finally:
        await cancel_and_wait(freezing)
