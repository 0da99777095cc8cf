"""The one port pool (node agent and Pod controller): no collisions, round-robin reuse, busy ports
skipped, all-or-nothing, ports shared by up to ``per_port`` owners, GameServer port policies."""

from __future__ import annotations

import pytest

from allocator.ports import PortInUseError, PortPool, PortsExhaustedError
from fleetmatch.models import GameServer, GameServerPort, GameServerSpec, ObjectMeta, PortPolicy, PortStatus


def test_allocates_distinct_ports_in_range() -> None:
    ports = PortPool(7000, 7009)
    got = [p for i in range(10) for p in ports.allocate(f"gs-{i}")]
    assert sorted(got) == list(range(7000, 7010))
    with pytest.raises(PortsExhaustedError):
        ports.allocate("one-too-many")


def test_released_port_is_reused_last() -> None:
    ports = PortPool(7000, 7003)
    first = ports.allocate("a")[0]
    ports.allocate("b")
    ports.release("a")
    # The cursor moves on: 7002 and 7003 come before the just-released 7000.
    assert [ports.allocate(n)[0] for n in ("c", "d", "e")] == [7002, 7003, first]


def test_busy_ports_reported_by_the_probe_are_skipped() -> None:
    busy = {7000, 7002}
    ports = PortPool(7000, 7004, is_free=lambda p: p not in busy)
    assert ports.allocate("a", 3) == (7001, 7003, 7004)


def test_multi_port_allocation_is_all_or_nothing() -> None:
    ports = PortPool(7000, 7002)
    ports.allocate("a", 2)
    with pytest.raises(PortsExhaustedError):
        ports.allocate("b", 2)
    assert ports.ports_of("b") == ()
    assert ports.free_count == 1


def test_reserve_refuses_a_port_held_by_someone_else() -> None:
    ports = PortPool(7000, 7010)
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
        PortPool(low, high)


# -- shared ports (the Pod controller's host ports) ------------------------------------------------


def test_pool_hands_out_distinct_ports_round_robin_and_reuses_released_last() -> None:
    pool = PortPool(7000, 7003)
    assert pool.allocate("a", 2) == (7000, 7001)
    assert pool.allocate("b", 1) == (7002,)
    pool.release("a")
    assert pool.allocate("c", 2) == (7003, 7000)
    assert pool.free_count == 1
    with pytest.raises(PortsExhaustedError):
        pool.allocate("d", 2)
    assert pool.ports_of("d") == ()


def test_pool_shares_a_port_up_to_per_port_owners() -> None:
    pool = PortPool(7000, 7001, per_port=2)
    got = [pool.allocate(n, 1)[0] for n in "abcd"]
    assert sorted(got) == [7000, 7000, 7001, 7001]
    with pytest.raises(PortsExhaustedError):
        pool.allocate("e", 1)


def test_pool_assign_follows_the_policies_and_hold_records_facts() -> None:
    pool = PortPool(7000, 7009)
    pool.hold("other", [7000, 7001])
    spec_ports = (
        GameServerPort("a", PortPolicy.DYNAMIC, container_port=1),
        GameServerPort("b", PortPolicy.STATIC, host_port=7500),
        GameServerPort("c", PortPolicy.NONE, container_port=9000),
        GameServerPort("d", PortPolicy.PASSTHROUGH),
    )
    gs = GameServer(metadata=ObjectMeta(name="arena-abcde"), spec=GameServerSpec(ports=spec_ports))
    ports = pool.assign(gs)
    assert ports == (PortStatus("a", 7002), PortStatus("b", 7500), PortStatus("c", 9000), PortStatus("d", 7003))
    assert pool.assign(gs) == (
        PortStatus("a", 7004),
        PortStatus("b", 7500),
        PortStatus("c", 9000),
        PortStatus("d", 7005),
    )
    assert pool.users(7002) == 0  # re-assigning released the earlier pick
