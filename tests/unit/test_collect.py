"""Pure parts of the load tester's collection: which allocations count, and when no-capacity
failures explain a player who timed out."""

from __future__ import annotations

from loadtest.collect import Collector, ScrapeSample, parse_metrics
from loadtest.players import capacity_window

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
