"""Match quality reaches Prometheus in base units: a ticket's latencies are in ms, the histogram in
seconds; the load-test report reads it back in ms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest
from prometheus_client import REGISTRY

from fleetmatch.allocation import AllocationState, GameServerAllocationSpec, GameServerAllocationStatus
from fleetmatch.models import PortStatus
from loadtest.collect import ScrapeSample, parse_metrics
from matchmaker.models import Assignment, MatchQuality, Proposal, Ticket
from tests.unit.test_director import POOL, PoolStore, director

WORST = "fleetmatch_match_worst_latency_seconds"


@dataclass
class AssigningStore(PoolStore):
    assigned: list[str] = field(default_factory=list)

    async def assign(self, queue: str, match_id: str, assignments: Mapping[str, Assignment]) -> bool:
        self.assigned.append(match_id)
        return True


@dataclass
class Allocates:
    async def allocate(self, spec: GameServerAllocationSpec, *, idempotency_key: str) -> GameServerAllocationStatus:
        return GameServerAllocationStatus(
            AllocationState.ALLOCATED, "gs-1", "127.0.0.1", (PortStatus("default", 7000),)
        )


def a_60ms_match(pool: Sequence[Ticket], now: float) -> list[Proposal]:
    quality = MatchQuality(skill_spread=12.0, worst_latency_ms=60.0, longest_wait_seconds=1.0)
    return [Proposal(teams=((pool[0].id,), (pool[1].id,)), region="eu", quality=quality)]


def bucket(le: str) -> float:
    return REGISTRY.get_sample_value(f"{WORST}_bucket", {"queue": "duel", "le": le}) or 0.0


async def test_the_worst_latency_is_observed_in_seconds() -> None:
    before = {le: bucket(le) for le in ("0.04", "0.06", "+Inf")}
    total = REGISTRY.get_sample_value(f"{WORST}_sum", {"queue": "duel"}) or 0.0
    store = AssigningStore(list(POOL))
    await director(store, a_60ms_match, allocator=Allocates()).tick()  # type: ignore[arg-type]
    assert len(store.assigned) == 1
    assert bucket("0.04") == before["0.04"]  # 60 ms is above 40 ms...
    assert bucket("0.06") == before["0.06"] + 1  # ...and within 60 ms
    assert bucket("+Inf") == before["+Inf"] + 1
    assert REGISTRY.get_sample_value(f"{WORST}_sum", {"queue": "duel"}) == pytest.approx(total + 0.06)


def test_the_load_test_reads_the_seconds_histogram_back_in_ms() -> None:
    text = f"""\
# TYPE {WORST} histogram
{WORST}_bucket{{le="0.04",queue="duel"}} 1
{WORST}_bucket{{le="0.06",queue="duel"}} 3
{WORST}_bucket{{le="+Inf",queue="duel"}} 4
{WORST}_sum{{queue="duel"}} 0.2
{WORST}_count{{queue="duel"}} 4
"""
    sample = ScrapeSample.of(0.0, parse_metrics([text]))
    assert sample.quality["worstLatencyMs"] == {40.0: 1.0, 60.0: 3.0, float("inf"): 4.0}
