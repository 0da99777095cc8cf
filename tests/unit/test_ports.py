"""Port allocation: no collisions, round-robin reuse, busy ports skipped, all-or-nothing."""

from __future__ import annotations

import pytest

from allocator.ports import PortAllocator, PortInUseError, PortsExhaustedError


def test_allocates_distinct_ports_in_range() -> None:
    ports = PortAllocator(7000, 7009)
    got = [p for i in range(10) for p in ports.allocate(f"gs-{i}")]
    assert sorted(got) == list(range(7000, 7010))
    with pytest.raises(PortsExhaustedError):
        ports.allocate("one-too-many")


def test_released_port_is_reused_last() -> None:
    ports = PortAllocator(7000, 7003)
    first = ports.allocate("a")[0]
    ports.allocate("b")
    ports.release("a")
    # The cursor moves on: 7002 and 7003 come before the just-released 7000.
    assert [ports.allocate(n)[0] for n in ("c", "d", "e")] == [7002, 7003, first]


def test_busy_ports_reported_by_the_probe_are_skipped() -> None:
    busy = {7000, 7002}
    ports = PortAllocator(7000, 7004, is_free=lambda p: p not in busy)
    assert ports.allocate("a", 3) == (7001, 7003, 7004)


def test_multi_port_allocation_is_all_or_nothing() -> None:
    ports = PortAllocator(7000, 7002)
    ports.allocate("a", 2)
    with pytest.raises(PortsExhaustedError):
        ports.allocate("b", 2)
    assert ports.ports_of("b") == ()
    assert ports.free_count == 1


def test_reserve_refuses_a_port_held_by_someone_else() -> None:
    ports = PortAllocator(7000, 7010)
    ports.reserve("static-a", [7005])
    with pytest.raises(PortInUseError) as info:
        ports.reserve("static-b", [7005])
    assert info.value.owner == "static-a"
    ports.reserve("static-a", [7005])  # idempotent for the owner
    assert ports.release("static-a") == (7005,)
    assert 7005 in ports.allocate("c", 11)  # released: available again


@pytest.mark.parametrize(("low", "high"), [(0, 10), (10, 5), (7000, 70000)])
def test_rejects_bad_ranges(low: int, high: int) -> None:
    with pytest.raises(ValueError, match="bad port range"):
        PortAllocator(low, high)
