"""Health-check arithmetic (Agones' rules, see ``sdk_sidecar.health``), by tables with explicit times."""

from __future__ import annotations

import pytest

from fleetmatch.models import Health
from sdk_sidecar.health import HealthTracker


def run(health: Health, pings: list[float], checks: list[float]) -> tuple[HealthTracker, list[float]]:
    """Feed pings and checks in time order (a ping and a check at the same time: the ping first)."""
    tracker = HealthTracker(health, started=0.0)
    turned: list[float] = []
    events = sorted([(t, 0) for t in pings] + [(t, 1) for t in checks])
    for t, kind in events:
        if kind == 0:
            tracker.ping(t)
        elif tracker.check(t):
            turned.append(t)
    return tracker, turned


def every(step: float, until: float, start: float = 0.0) -> list[float]:
    n = round((until - start) / step)
    return [round(start + i * step, 6) for i in range(1, n + 1)]


H = Health(period_seconds=1, failure_threshold=3, initial_delay_seconds=0)
H_DELAY = Health(period_seconds=2, failure_threshold=2, initial_delay_seconds=5)

# (health, pings, checks, failures after, unhealthy after, turned unhealthy at)
TABLE = [
    pytest.param(H, [], [2.99], 2, False, [], id="no-pings-two-misses"),
    pytest.param(H, [], [3.0], 3, True, [3.0], id="no-pings-unhealthy-at-threshold-times-period"),
    pytest.param(H, [], every(0.25, 10), 3, True, [3.0], id="ticking-no-pings-turns-once"),
    pytest.param(H_DELAY, [], [8.99], 1, False, [], id="delay-then-one-miss"),
    pytest.param(H_DELAY, [], [9.0], 2, True, [9.0], id="delay-plus-threshold-periods"),
    pytest.param(H_DELAY, [1.0], [9.0], 2, True, [9.0], id="ping-during-delay-does-not-shorten-it"),
    pytest.param(H_DELAY, [6.0], [8.0], 0, False, [], id="ping-after-delay-counts"),
    pytest.param(H_DELAY, [6.0], [9.0], 1, False, [], id="ping-after-delay-then-silence"),
    pytest.param(H, every(0.9, 30), every(0.25, 30), 0, False, [], id="pings-within-period-stay-healthy"),
    pytest.param(H, every(1.0, 30), every(0.25, 30), 0, False, [], id="pings-every-period-just-enough"),
    pytest.param(H, [1.0], [2.0], 1, False, [], id="ping-exactly-a-period-old-is-too-old"),
    pytest.param(H, [1.5], [2.0], 0, False, [], id="ping-within-period-passes"),
    pytest.param(H, [2.5], [2.0, 3.0], 0, False, [], id="ping-resets-failures"),
    pytest.param(H, [2.5], [2.0, 5.0], 2, False, [], id="misses-count-again-after-reset"),
    pytest.param(H, [2.5], [2.0, 6.0], 3, True, [6.0], id="reset-then-threshold"),
    pytest.param(H, [], [100.0], 3, True, [100.0], id="late-tick-catches-up-on-missed-checks"),
    pytest.param(H, [99.5], [100.0], 0, False, [], id="late-tick-with-recent-ping-forgives-the-past"),
    pytest.param(H, [0.5], [100.0], 3, True, [100.0], id="late-tick-old-ping"),
    pytest.param(Health(disabled=True, period_seconds=1, failure_threshold=1), [], [1e6], 0, False, [], id="disabled"),
    pytest.param(Health(period_seconds=5, failure_threshold=1), [], [9.99, 10.0], 1, True, [10.0], id="threshold-one"),
]  # fmt: skip


@pytest.mark.parametrize(("health", "pings", "checks", "failures", "unhealthy", "turned"), TABLE)
def test_health_arithmetic(
    health: Health, pings: list[float], checks: list[float], failures: int, unhealthy: bool, turned: list[float]
) -> None:
    tracker, turned_at = run(health, pings, checks)
    assert (tracker.failures, tracker.unhealthy, turned_at) == (failures, unhealthy, turned)


def test_unhealthy_is_final() -> None:
    tracker, turned = run(H, [], [3.0])
    assert turned == [3.0]
    tracker.ping(3.1)
    assert tracker.unhealthy
    assert tracker.check(10.0) is False
    assert tracker.unhealthy
    assert tracker.next_check is None


def test_next_check_follows_the_grid_after_the_delay() -> None:
    tracker = HealthTracker(H_DELAY, started=100.0)
    assert tracker.next_check == 107.0
    tracker.check(107.5)
    assert tracker.next_check == 109.0
    assert HealthTracker(Health(disabled=True), started=0.0).next_check is None


def test_a_pause_moves_the_deadlines_and_forgive_gives_a_fresh_period() -> None:
    tracker = HealthTracker(Health(period_seconds=5, failure_threshold=1, initial_delay_seconds=0), started=0.0)
    tracker.ping(4.0)
    assert tracker.would_fail(10.0) and not tracker.unhealthy  # would_fail changes nothing
    tracker.pause(20.0)  # the host could not read pings for 20 s
    assert not tracker.would_fail(10.0) and not tracker.check(28.0)
    assert tracker.would_fail(30.0)
    tracker.forgive(30.0)
    assert not tracker.check(34.9) and tracker.check(35.0)
