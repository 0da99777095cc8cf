"""Pure parts of the load tester's collection: which allocations count, when no-capacity failures
explain a player who timed out, percentiles that hold together (p50 <= p95 <= p99 <= max for any
sample), time to match per queue, and what the reconciliation calls lost or inconsistent."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadtest.collect import (
    SCRAPED,
    Collector,
    LatencyHistogram,
    ScrapeSample,
    parse_metrics,
)
from loadtest.players import ASSIGNMENT_PUSH, TICKET_CREATE, capacity_window
from loadtest.reconcile import Span, TicketRecord, reconcile

ALLOCATOR = """\
# TYPE fleetmatch_allocation_seconds histogram
fleetmatch_allocation_seconds_bucket{le="0.001",result="UnAllocated"} 90
fleetmatch_allocation_seconds_bucket{le="0.1",result="UnAllocated"} 90
fleetmatch_allocation_seconds_bucket{le="+Inf",result="UnAllocated"} 90
fleetmatch_allocation_seconds_bucket{le="0.001",result="Allocated"} 0
fleetmatch_allocation_seconds_bucket{le="0.1",result="Allocated"} 10
fleetmatch_allocation_seconds_bucket{le="+Inf",result="Allocated"} 10
"""


def test_allocation_latency_counts_only_successful_claims() -> None:
    sample = ScrapeSample.of(0.0, parse_metrics([ALLOCATOR]))
    assert sample.allocation == {0.001: 0.0, 0.1: 10.0, float("inf"): 10.0}


def test_an_allocator_without_the_result_label_still_counts() -> None:
    text = ALLOCATOR.replace(',result="UnAllocated"', "").replace(',result="Allocated"', "")
    assert ScrapeSample.of(0.0, parse_metrics([text])).allocation[float("inf")] == 100.0


def failures(at: float, count: float) -> ScrapeSample:
    return ScrapeSample(at=at, allocation_failures={("4v4", "no-capacity"): count})


def test_no_capacity_since_counts_failures_after_the_moment() -> None:
    collector = Collector(start=0.0)
    for sample in (failures(0, 0), failures(10, 50), failures(20, 80), failures(30, 80)):
        collector.add_sample(sample)
    assert collector.no_capacity_since("4v4", 5) == 80
    assert collector.no_capacity_since("4v4", 15) == 30
    assert collector.no_capacity_since("4v4", 25) == 0
    assert collector.no_capacity_since("duel", 0) == 0


def test_the_capacity_window_is_the_end_of_the_wait() -> None:
    assert capacity_window(sent=110.0, now=200.0, wait=90.0) == 177.5  # the last quarter
    assert capacity_window(sent=100.0, now=110.0, wait=8.0) == 105.0  # at least 5 s
    assert capacity_window(sent=108.0, now=110.0, wait=8.0) == 108.0  # never before the ticket


# -- percentiles -----------------------------------------------------------------------------------

SECONDS = st.floats(min_value=0.0, max_value=4000.0, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(SECONDS, min_size=1, max_size=200))
def test_latency_percentiles_never_pass_the_max(sample: list[float]) -> None:
    histogram = LatencyHistogram()
    for seconds in sample:
        histogram.record(seconds)
    summary = histogram.summary()
    assert summary["count"] == len(sample)
    assert summary["max"] == round(max(sample) * 1000, 3)
    assert summary["p50"] <= summary["p95"] <= summary["p99"] <= summary["max"], summary


@settings(max_examples=300, deadline=None)
@given(st.lists(SECONDS, min_size=1, max_size=50))
def test_timeline_percentiles_are_ordered_and_within_the_sample(sample: list[float]) -> None:
    collector = Collector(start=0.0)
    for seconds in sample:
        collector.latency(TICKET_CREATE, seconds, at=0.5)
    (row,) = collector.timeline()
    p50, p95, p99 = (row[f"{TICKET_CREATE}P{p}Ms"] for p in (50, 95, 99))
    assert round(min(sample) * 1000, 3) <= p50 <= p95 <= p99 <= round(max(sample) * 1000, 3)
    assert row["udpJoinP50Ms"] is None  # nothing recorded: null, not 0


def test_an_hdr_bucket_edge_above_the_max_is_clamped() -> None:
    histogram = LatencyHistogram()
    histogram.record(15.02852)  # HDR keeps 3 significant digits: its bucket's edge is above this
    assert histogram.summary()["p99"] == histogram.summary()["max"] == 15028.52


# -- per queue -------------------------------------------------------------------------------------


def test_time_to_match_is_split_by_queue() -> None:
    collector = Collector(start=0.0)
    collector.ticket_created("a", "duel", None, at=0.0)
    collector.ticket_created("b", "4v4", None, at=0.0)
    collector.ticket_created("c", "4v4", None, at=0.0)
    collector.matched("a", "m1", players=1, waited=0.5, at=1.0)
    collector.matched("b", "m2", players=4, waited=2.0, at=3.0)
    collector.matched("c", "m2", players=2, waited=8.0, at=3.5)
    by_queue = collector.ttm_by_queue_summary()
    assert list(by_queue) == ["4v4", "duel"]
    assert by_queue["duel"] == {"count": 1, "p50": 500.0, "p95": 500.0, "p99": 500.0, "max": 500.0}
    assert by_queue["4v4"]["count"] == 6 and by_queue["4v4"]["max"] == 8000.0
    assert by_queue["4v4"]["p50"] == pytest.approx(2000.0, rel=1e-3)  # four of six waited 2 s (HDR: 3 digits)
    # The assignment push of the match's second ticket is counted, in the second it happened.
    assert collector.latencies[ASSIGNMENT_PUSH].max_ms == 500.0
    assert collector.timeline()[3]["assignmentPushP99Ms"] == 500.0


def test_a_backfilled_ticket_is_timed_from_its_backfill_not_from_the_match() -> None:
    """A ticket that joins a running match learns it long after the match's first players: its push
    is timed among the tickets of its backfill; the match keeps its first sighting (spans)."""
    collector = Collector(start=0.0)
    for tid in "abc":
        collector.ticket_created(tid, "4v4", None, at=0.0)
    collector.matched("a", "m1", players=1, waited=1.0, at=1.0)
    collector.matched("b", "m1", players=1, waited=1.2, at=1.2)
    collector.matched("c", "m1", players=1, waited=2.0, at=31.0, backfill="fill-1")
    assert collector.latencies[ASSIGNMENT_PUSH].max_ms == pytest.approx(200.0, rel=1e-3)
    assert collector.match_first_seen["m1"] == 1.0
    # The same backfill filled again later (another player left): its own fill, timed on its own.
    collector.ticket_created("d", "4v4", None, at=40.0)
    collector.matched("d", "m1", players=1, waited=1.0, at=41.0, backfill="fill-2")
    assert collector.latencies[ASSIGNMENT_PUSH].max_ms == pytest.approx(200.0, rel=1e-3)


# -- reconciliation --------------------------------------------------------------------------------


def ticket(ticket_id: str, match_id: str | None, state: str = "matched") -> TicketRecord:
    return TicketRecord(ticket_id, "duel", None, 0.0, state=state, match_ids=[match_id] if match_id else [])


def server_doc(match_id: str | None, server: str, players: list[str], state: str = "matched") -> dict[str, Any]:
    assignment = {"matchId": match_id, "gameServer": server, "address": "127.0.0.1", "port": 7000}
    return {"state": state, "assignment": assignment if match_id else None, "players": [{"id": p} for p in players]}


def test_a_clean_run_is_consistent() -> None:
    client = {"t1": ticket("t1", "m1"), "t2": ticket("t2", "m1"), "t3": ticket("t3", None, "cancelled")}
    server = {
        "t1": server_doc("m1", "gs-1", ["p1"]),
        "t2": server_doc("m1", "gs-1", ["p2"]),
        "t3": server_doc(None, "", ["p3"], "cancelled"),
    }
    result = reconcile(client, server, {"m1": (1.0, 5.0)})
    assert result["consistent"] and result["problems"] == []
    assert (result["lost"], result["playersInTwoMatches"], result["serversAllocatedTwice"]) == (0, 0, 0)


def test_lost_tickets_are_counted() -> None:
    client = {"t1": ticket("t1", None), "t2": ticket("t2", None), "t3": ticket("t3", None)}
    server = {"t1": None, "t2": server_doc(None, "", ["p2"], "leased"), "t3": server_doc(None, "", ["p3"], "queued")}
    result = reconcile(client, server)
    assert result["lost"] == 3 and not result["consistent"]
    assert "t2: still leased on the server after the run" in result["problems"]


def test_a_player_in_two_matches_is_a_problem() -> None:
    client = {"t1": ticket("t1", "m1"), "t2": ticket("t2", "m2")}
    server = {"t1": server_doc("m1", "gs-1", ["p1"]), "t2": server_doc("m2", "gs-2", ["p1"])}
    result = reconcile(client, server, {"m1": (1.0, 2.0), "m2": (3.0, 4.0)})
    assert result["playersInTwoMatches"] == 1 and not result["consistent"]
    assert "player p1: in matches m1, m2" in result["problems"]


@pytest.mark.parametrize(
    ("spans", "twice"),
    [
        pytest.param({"m1": (1.0, 5.0), "m2": (6.0, 9.0)}, 0, id="reused-after-the-first-match-ended"),
        pytest.param({"m1": (1.0, 5.0), "m2": (4.0, 9.0)}, 1, id="given-again-while-in-use"),
        pytest.param({"m1": (1.0, 5.0)}, 1, id="a-span-unknown"),
        pytest.param(None, 0, id="no-spans-cannot-tell"),
    ],
)
def test_a_server_given_to_two_live_matches_is_a_problem(spans: dict[str, Span] | None, twice: int) -> None:
    client = {"t1": ticket("t1", "m1"), "t2": ticket("t2", "m2")}
    server = {"t1": server_doc("m1", "gs-1", ["p1"]), "t2": server_doc("m2", "gs-1", ["p2"])}
    result = reconcile(client, server, spans)
    assert result["serversAllocatedTwice"] == twice
    assert result["consistent"] is (twice == 0)


# -- metric names ----------------------------------------------------------------------------------

WORST_LATENCY = """\
# TYPE fleetmatch_match_worst_latency_{unit} histogram
fleetmatch_match_worst_latency_{unit}_bucket{{le="{first}",queue="duel"}} 3
fleetmatch_match_worst_latency_{unit}_bucket{{le="{second}",queue="duel"}} 5
fleetmatch_match_worst_latency_{unit}_bucket{{le="+Inf",queue="duel"}} 6
"""


@pytest.mark.parametrize(("unit", "first", "second"), [("seconds", "0.01", "0.02"), ("ms", "10.0", "20.0")])
def test_the_worst_latency_is_read_in_seconds_or_milliseconds(unit: str, first: str, second: str) -> None:
    text = WORST_LATENCY.format(unit=unit, first=first, second=second)
    sample = ScrapeSample.of(0.0, parse_metrics([text], SCRAPED))
    assert sample.quality["worstLatencyMs"] == {10.0: 3.0, 20.0: 5.0, float("inf"): 6.0}
