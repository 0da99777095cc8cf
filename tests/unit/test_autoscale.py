"""The Buffer policy's arithmetic, clamping and scale-down cool-off, as tables."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from allocator.autoscale import Decision, ScaleDecision, allocated_per_fleet, buffer_replicas, decide
from fleetmatch.models import FLEET_LABEL, BufferPolicy, GameServer, GameServerState, ObjectMeta

S = GameServerState


def policy(buffer: int | str, lo: int = 0, hi: int = 1000) -> BufferPolicy:
    return BufferPolicy(buffer_size=buffer, min_replicas=lo, max_replicas=hi)


@pytest.mark.parametrize(
    ("buffer", "lo", "hi", "allocated", "expected"),
    [
        # integer buffer: allocated + buffer
        pytest.param(5, 0, 1000, 0, (5, False), id="int-zero-allocated"),
        pytest.param(5, 0, 1000, 3, (8, False), id="int"),
        pytest.param(1, 0, 1000, 999, (1000, False), id="int-exactly-max"),
        # percentage buffer: ceil(allocated * 100 / (100 - pct))
        pytest.param("30%", 1, 1000, 8, (12, False), id="pct-rounds-up"),  # 11.43 -> 12
        pytest.param("50%", 1, 1000, 5, (10, False), id="pct-exact"),
        pytest.param("10%", 1, 1000, 9, (10, False), id="pct-10-exact"),
        pytest.param("10%", 1, 1000, 10, (12, False), id="pct-10-rounds-up"),  # 11.11 -> 12
        pytest.param("99%", 1, 1000, 1, (100, False), id="pct-99"),
        pytest.param("1%", 1, 1000, 100, (102, False), id="pct-1"),  # 101.01 -> 102
        pytest.param("25%", 1, 1000, 0, (1, True), id="pct-zero-allocated-floors-at-min"),
        # clamping sets limited
        pytest.param(5, 0, 10, 8, (10, True), id="int-clamped-to-max"),
        pytest.param(5, 0, 10, 5, (10, False), id="int-at-max-not-limited"),
        pytest.param(2, 5, 10, 0, (5, True), id="int-clamped-to-min"),
        pytest.param(2, 5, 10, 3, (5, False), id="int-at-min-not-limited"),
        pytest.param("50%", 3, 10, 1, (3, True), id="pct-clamped-to-min"),
        pytest.param("50%", 3, 10, 6, (10, True), id="pct-clamped-to-max"),
        pytest.param(2, 0, 10, 0, (2, False), id="min-zero-is-no-floor"),
    ],
)
def test_buffer_replicas(buffer: int | str, lo: int, hi: int, allocated: int, expected: tuple[int, bool]) -> None:
    assert buffer_replicas(policy(buffer, lo, hi), allocated) == expected


@pytest.mark.parametrize("pct", range(1, 100))
def test_percent_is_the_smallest_fleet_with_that_share_free(pct: int) -> None:
    for allocated in (*range(250), 10**12 + 7):
        desired, _ = buffer_replicas(policy(f"{pct}%", lo=1, hi=10**15), allocated)
        assert desired == max(1, math.ceil(Fraction(allocated * 100, 100 - pct)))
        if allocated:  # at least pct% of the fleet is free, and one server fewer would not be
            assert (desired - allocated) * 100 >= pct * desired
            assert (desired - 1 - allocated) * 100 < pct * (desired - 1)


def test_negative_allocated_is_a_bug() -> None:
    with pytest.raises(ValueError, match="allocated"):
        buffer_replicas(policy(2), -1)


T0 = 1_700_000_000.0


@pytest.mark.parametrize(
    ("current", "allocated", "last", "cooloff", "expected"),
    [
        pytest.param(2, 3, None, 0, ScaleDecision(5, 5, False, Decision.UP), id="up"),
        pytest.param(9, 3, None, 0, ScaleDecision(5, 5, False, Decision.DOWN), id="down"),
        pytest.param(5, 3, None, 0, ScaleDecision(5, 5, False, Decision.HOLD), id="hold"),
        pytest.param(9, 3, T0 - 10, 30, ScaleDecision(9, 5, False, Decision.COOLOFF), id="cooloff-defers-down"),
        pytest.param(
            9, 3, T0 - 30, 30, ScaleDecision(5, 5, False, Decision.DOWN), id="cooloff-ends-exactly-at-boundary"
        ),
        pytest.param(9, 3, T0 - 31, 30, ScaleDecision(5, 5, False, Decision.DOWN), id="cooloff-over"),
        pytest.param(2, 3, T0 - 1, 30, ScaleDecision(5, 5, False, Decision.UP), id="cooloff-never-delays-up"),
        pytest.param(9, 3, T0 - 1, 0, ScaleDecision(5, 5, False, Decision.DOWN), id="no-cooloff"),
        pytest.param(9, 3, None, 30, ScaleDecision(5, 5, False, Decision.DOWN), id="never-scaled"),
        pytest.param(30, 40, None, 0, ScaleDecision(20, 20, True, Decision.DOWN), id="down-to-max-limited"),
        pytest.param(5, 40, None, 0, ScaleDecision(20, 20, True, Decision.UP), id="up-to-max-limited"),
        pytest.param(20, 40, None, 0, ScaleDecision(20, 20, True, Decision.HOLD), id="hold-at-max-limited"),
        pytest.param(30, 40, T0, 30, ScaleDecision(30, 20, True, Decision.COOLOFF), id="cooloff-limited"),
        pytest.param(0, 0, None, 0, ScaleDecision(2, 2, False, Decision.UP), id="empty-fleet-gets-buffer"),
    ],
)
def test_decide(current: int, allocated: int, last: float | None, cooloff: float, expected: ScaleDecision) -> None:
    got = decide(policy(2, 0, 20), current=current, allocated=allocated, now=T0, last_scale_time=last, cooloff=cooloff)
    assert got == expected


def server(name: str, state: GameServerState, fleet: str | None = "arena", deleting: bool = False) -> GameServer:
    labels = {FLEET_LABEL: fleet} if fleet else {}
    meta = ObjectMeta(name=name, labels=labels, deletion_timestamp=T0 if deleting else None)
    return GameServer(metadata=meta).with_status(state=state)


def test_only_allocated_servers_count_reserved_do_not() -> None:
    servers = [
        server("a1", S.ALLOCATED),
        server("a2", S.ALLOCATED),
        server("r1", S.RESERVED),
        server("ready", S.READY),
        server("leaving", S.ALLOCATED, deleting=True),
        server("other", S.ALLOCATED, fleet="duel"),
        server("loose", S.ALLOCATED, fleet=None),
        server("shutdown", S.SHUTDOWN),
    ]
    assert allocated_per_fleet(servers) == {"arena": 2, "duel": 1}
    # Reserved servers fill buffer slots but never make the fleet grow.
    assert buffer_replicas(policy(2), allocated_per_fleet(servers)["arena"]) == (4, False)
