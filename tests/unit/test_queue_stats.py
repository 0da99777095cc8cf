"""Queue statistics (``matchmaker.stats``) from snapshots: counts, regions, waits and percentiles."""

from __future__ import annotations

import pytest

from matchmaker.models import Player, Ticket
from matchmaker.stats import best_region, percentile, players_by_region, queue_stats
from matchmaker.store import QueueSnapshot, Tick

NOW = 1_800_000_000.0


def ticket(n: int, enqueued: float, *latencies: dict[str, float]) -> Ticket:
    players = tuple(Player(f"p{n}-{i}", latencies=lat) for i, lat in enumerate(latencies or ({},)))
    return Ticket(id=f"duel.{n}", queue="duel", owner="p", players=players, enqueued_at=enqueued)


@pytest.mark.parametrize(
    ("latencies", "region"),
    [
        pytest.param(({"eu": 20, "us": 90},), "eu", id="lowest"),
        pytest.param(({"eu": 20, "us": 90}, {"eu": 200, "us": 95}), "us", id="worst-player-decides"),
        pytest.param((), "-", id="no-latencies"),
    ],
)
def test_best_region(latencies: tuple[dict[str, float], ...], region: str) -> None:
    assert best_region(ticket(1, NOW, *latencies)) == region


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        pytest.param([5.0], 0.5, 5.0, id="one"),
        pytest.param([4.0, 1.0, 3.0, 2.0], 0.5, 2.0, id="median-of-even-is-lower"),
        pytest.param([float(i) for i in range(1, 101)], 0.95, 95.0, id="p95-of-100"),
        pytest.param([float(i) for i in range(1, 21)], 0.95, 19.0, id="p95-of-20"),
        pytest.param([3.0, 1.0, 2.0], 1.0, 3.0, id="max"),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], fraction: float, expected: float) -> None:
    assert percentile(values, fraction) == expected


def test_players_by_region_counts_each_party_member() -> None:
    tickets = [
        ticket(1, NOW, {"eu": 10}, {"eu": 30}),
        ticket(2, NOW, {"us": 10}),
        ticket(3, NOW),
    ]
    assert players_by_region(tickets) == {"eu": 2, "us": 1, "-": 1}


def test_stats_of_a_busy_queue() -> None:
    snap = QueueSnapshot(
        waiting_tickets=3,
        oldest=(ticket(1, NOW - 42.5, {"eu": 10}, {"eu": 12}), ticket(2, NOW - 3, {"us": 5}), ticket(3, NOW - 1)),
        matched_waits=(1.0, 2.0, 3.0, 10.0),
        last_tick=Tick(at=NOW - 0.5, seconds=0.0125, matches=2),
    )
    assert queue_stats("duel", snap, NOW) == {
        "name": "duel",
        "waitingTickets": 3,
        "waitingPlayers": 4,
        "byRegion": {"-": 1, "eu": 2, "us": 1},
        "oldestWaitSeconds": 42.5,
        "lastTick": {"at": "2027-01-15T07:59:59.500Z", "seconds": 0.0125, "matches": 2},
        "timeToMatchSeconds": {"p50": 2.0, "p95": 10.0},
    }


def test_stats_of_an_idle_queue_no_director_ever_ran() -> None:
    snap = QueueSnapshot(waiting_tickets=0, oldest=(), matched_waits=(), last_tick=None)
    assert queue_stats("duel", snap, NOW) == {
        "name": "duel",
        "waitingTickets": 0,
        "waitingPlayers": 0,
        "byRegion": {},
        "oldestWaitSeconds": 0.0,
        "lastTick": None,
        "timeToMatchSeconds": None,
    }
