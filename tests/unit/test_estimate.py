"""The estimated wait (``matchmaker.estimate``): keys, decay, fallback to coarser keys, encoding."""

from __future__ import annotations

import math

import pytest

from matchmaker.estimate import (
    HALF_LIFE_SECONDS,
    Cell,
    band,
    decode_cells,
    estimate,
    keys_of,
    merge,
    remaining,
)
from matchmaker.models import Player, Ticket
from matchmaker.rules import Queue, parse_queues

NOW = 1_800_000_000.0
QUEUE = parse_queues(
    """
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: ranked}
spec:
  teams: {count: 2, maxSize: 2}
  rules:
    - {name: skill, type: distance, attribute: skill, maxDistance: 200, widen: {perSecond: 10, max: 600}}
    - {name: ping, type: latency, maxLatencyMs: 80, regions: [eu, us]}
  allocation: {selectors: [{matchLabels: {agones.dev/fleet: arena}}]}
"""
)["ranked"]


def ticket(*skills: float, eu: float = 20, us: float = 90) -> Ticket:
    players = tuple(
        Player(f"p{i}", attributes={"skill": s}, latencies={"eu": eu, "us": us}) for i, s in enumerate(skills)
    )
    return Ticket(id="ranked.1", queue="ranked", owner="p0", players=players, enqueued_at=NOW)


@pytest.mark.parametrize(
    ("skills", "queue", "expected"),
    [
        pytest.param((1500,), QUEUE, "7", id="solo: 1500 // 200"),
        pytest.param((1399.9,), QUEUE, "6", id="just-below"),
        pytest.param((1000, 2000), QUEUE, "7", id="party-average"),
        pytest.param((-1,), QUEUE, "-1", id="negative-rounds-down"),
        pytest.param((1500,), None, "-", id="no-rules"),
    ],
)
def test_band(skills: tuple[float, ...], queue: Queue | None, expected: str) -> None:
    assert band(ticket(*skills), queue) == expected


def test_keys_go_from_band_to_region_to_queue() -> None:
    assert keys_of(ticket(1500, us=10), QUEUE) == ("us|7", "us|*", "*|*")


def cells_of(*waits: float, keys: tuple[str, ...] = ("eu|7", "eu|*", "*|*"), at: float = NOW) -> dict[str, Cell]:
    return merge({}, [(keys, w) for w in waits], at)


def test_the_estimate_is_the_geometric_mean_of_the_band() -> None:
    cells = cells_of(2.0, 8.0, 4.0)
    assert estimate(cells, ("eu|7", "eu|*", "*|*"), NOW) == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("samples", "keys", "expected"),
    [
        pytest.param([], ("eu|7", "eu|*", "*|*"), None, id="nothing-yet"),
        pytest.param([(("eu|7", "eu|*", "*|*"), 3.0)] * 2, ("eu|7", "eu|*", "*|*"), None, id="too-few-everywhere"),
        pytest.param(
            [(("eu|3", "eu|*", "*|*"), 10.0)] * 3 + [(("eu|7", "eu|*", "*|*"), 1.0)],
            ("eu|7", "eu|*", "*|*"),
            (10.0**3 * 1.0) ** 0.25,
            id="thin-band-falls-back-to-region",
        ),
        pytest.param(
            [(("us|7", "us|*", "*|*"), 5.0)] * 3,
            ("eu|7", "eu|*", "*|*"),
            5.0,
            id="unknown-region-falls-back-to-queue",
        ),
    ],
)
def test_fallback_to_coarser_keys(
    samples: list[tuple[tuple[str, ...], float]], keys: tuple[str, ...], expected: float | None
) -> None:
    result = estimate(merge({}, samples, NOW), keys, NOW)
    assert result == (None if expected is None else pytest.approx(expected))


def test_samples_decay_so_recent_waits_win() -> None:
    old = cells_of(*[40.0] * 10, at=NOW - 5 * HALF_LIFE_SECONDS)
    new = merge(old, [(("eu|7", "eu|*", "*|*"), 2.0)] * 10, NOW)
    value = estimate({**old, **new}, ("eu|7",), NOW)
    assert value is not None
    weight_old = 10 * 0.5**5
    assert value == pytest.approx(math.exp((weight_old * math.log(40) + 10 * math.log(2)) / (weight_old + 10)))
    assert value < 2.5


def test_an_old_cell_ages_out_without_being_written() -> None:
    cells = cells_of(5.0, 5.0, 5.0, 5.0)
    assert estimate(cells, ("eu|7",), NOW) == pytest.approx(5.0)
    assert estimate(cells, ("eu|7",), NOW + HALF_LIFE_SECONDS) is None  # 4 samples halved: 2 < 3


def test_merge_returns_only_the_changed_cells_and_caps_new_ones() -> None:
    cells = cells_of(1.0, keys=("a", "b"))
    changed = merge(cells, [(("new", "b"), 1.0)], NOW, max_cells=2)
    assert set(changed) == {"b"}
    assert changed["b"].weight == pytest.approx(2.0)


def test_a_zero_wait_counts_as_the_floor() -> None:
    assert estimate(cells_of(0.0, 0.0, 0.0), ("eu|7",), NOW) == pytest.approx(0.05)


def test_cells_round_trip_and_garbage_is_skipped() -> None:
    cell = Cell(2.5, 3.25, NOW)
    assert Cell.decode(cell.encode()) == cell
    fields = {"ok": cell.encode(), "short": "1 2", "words": "a b c", "nan": "nan 1 2", "negative": "-1 0 0"}
    assert decode_cells(fields) == {"ok": cell}


@pytest.mark.parametrize(
    ("expected", "waited", "left"),
    [
        pytest.param(None, 3.0, None, id="no-data"),
        pytest.param(10.0, 0.0, 10.0, id="fresh"),
        pytest.param(10.0, 4.0, 6.0, id="partly-waited"),
        pytest.param(10.0, 25.0, 0.0, id="overdue-floors-at-zero"),
        pytest.param(10.04, -1.0, 10.0, id="clock-skew-counts-as-no-wait"),
    ],
)
def test_remaining(expected: float | None, waited: float, left: float | None) -> None:
    assert remaining(expected, waited) == left
