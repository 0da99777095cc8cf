"""Garbage-collector tuning: the collector comes back as it was, and a freeze moves the heap aside."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from fleetmatch.gctune import collector_paused, freeze_heap


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
