"""The dashboard's time series: a bounded ring of one-second samples kept in the dashboard process.

Per fleet desired/ready/allocated, and the allocator's counters, from which rates are derived
(allocations/s between two samples; failures by reason over the last minute). The ring is what a
browser gets when it connects (then one point per push), so a fresh tab shows the last minutes
without asking Prometheus, and its memory is bounded: ``capacity`` points, whatever the uptime.
Pure: ``now`` is given, nothing here reads a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetmatch.dashboard.views import AllocationCounts

FAILURE_WINDOW = 60.0
"""Seconds over which the failures panel counts (the "last minute")."""


@dataclass(frozen=True, slots=True)
class FleetPoint:
    desired: int
    ready: int
    allocated: int


@dataclass(frozen=True, slots=True)
class Point:
    at: float
    fleets: Mapping[str, FleetPoint]
    counts: AllocationCounts
    allocations_per_second: float
    failures_per_second: float

    def document(self) -> dict[str, Any]:
        """The point as the page reads it (``t`` in epoch milliseconds, for JavaScript's Date)."""
        return {
            "t": round(self.at * 1000),
            "fleets": {n: [f.desired, f.ready, f.allocated] for n, f in self.fleets.items()},
            "allocationsPerSecond": round(self.allocations_per_second, 3),
            "failuresPerSecond": round(self.failures_per_second, 3),
        }


def increase(before: float, after: float) -> float:
    """How much a counter grew; a counter that went down was reset (its process restarted), and
    everything it counts since is new, as Prometheus' ``rate`` assumes."""
    return after - before if after >= before else after


class History:
    def __init__(self, capacity: int = 600) -> None:
        self.points: deque[Point] = deque(maxlen=max(2, capacity))

    def add(self, at: float, fleets: Mapping[str, FleetPoint], counts: AllocationCounts) -> Point:
        """Record a sample taken at ``at`` (seconds); rates are against the previous sample."""
        prev = self.points[-1] if self.points else None
        per_s = fail_s = 0.0
        if prev is not None and at > prev.at:
            span = at - prev.at
            per_s = increase(prev.counts.allocated, counts.allocated) / span
            fail_s = increase(prev.counts.failed, counts.failed) / span
        point = Point(at, dict(fleets), counts, per_s, fail_s)
        self.points.append(point)
        return point

    def latest(self) -> Point | None:
        return self.points[-1] if self.points else None

    def failures_since(self, window: float = FAILURE_WINDOW) -> dict[str, float]:
        """Failures by reason within the last ``window`` seconds of samples (reasons with none left out)."""
        if not self.points:
            return {}
        last = self.points[-1]
        first = next((p for p in self.points if p.at >= last.at - window), last)
        out = {}
        for reason, value in last.counts.failures.items():
            grown = increase(first.counts.failures.get(reason, 0.0), value) if first is not last else 0.0
            if grown > 0:
                out[reason] = grown
        return out

    def documents(self) -> list[dict[str, Any]]:
        return [p.document() for p in self.points]
