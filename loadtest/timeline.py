"""The report's timeline (one row per second) as chart columns, and the percentile-over-time chart
drawn from it (time to match, and each client latency).

A long run has more seconds than a line can show: it is drawn in buckets of several seconds, each
keeping the figure that matters (a rate averaged, a latency at its highest, Ready at its lowest).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadtest.charts import BLUE, ORANGE, VERMILION, Series, as_map, line_chart, num

MAX_POINTS = 900
"""Points per line at most; a longer timeline is drawn in buckets of several seconds."""

# -- columns --------------------------------------------------------------------------------

Reducer = Callable[[Sequence[float]], float]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


@dataclass(frozen=True, slots=True)
class Timeline:
    """The report's timeline as columns, in buckets of ``bucket`` seconds (1 unless it is long)."""

    rows: Sequence[Mapping[str, Any]]
    bucket: int

    @classmethod
    def of(cls, report: Mapping[str, Any]) -> Timeline:
        raw = report.get("timeline")
        rows = (
            [r for r in raw if isinstance(r, Mapping) and num(r.get("t")) is not None] if isinstance(raw, list) else []
        )
        rows.sort(key=lambda r: float(r["t"]))
        return cls(rows, max(1, math.ceil(len(rows) / MAX_POINTS)))

    def _groups(self) -> list[Sequence[Mapping[str, Any]]]:
        return [self.rows[i : i + self.bucket] for i in range(0, len(self.rows), self.bucket)]

    @property
    def xs(self) -> list[float]:
        return [float(group[0]["t"]) for group in self._groups()]

    def column(self, key: str, reduce: Reducer = _mean, *, within: str = "") -> list[float | None]:
        out: list[float | None] = []
        for group in self._groups():
            values = [num(as_map(r.get(within)).get(key) if within else r.get(key)) for r in group]
            present = [v for v in values if v is not None]
            out.append(reduce(present) if present else None)
        return out


def bucket_note(timeline: Timeline, how: str) -> str:
    if timeline.bucket == 1:
        return ""
    return f"Each point covers {timeline.bucket} s ({how})."


def unit_for(top: float) -> tuple[float, str]:
    """(divisor, unit) for milliseconds up to ``top``: seconds once values pass 10 s."""
    return (1000.0, "seconds") if top >= 10_000 else (1.0, "milliseconds")


def percentile_chart(timeline: Timeline, prefix: str, what: str, *, name_axis: bool = True) -> str:
    """p50, p95 and p99 per second of one latency (``{prefix}P50Ms``... in the timeline). p99 is a
    pale band beneath p95, so p95 shows even where the two are equal (few values in a second).
    ``name_axis``: the y axis says what it measures, not only the unit (a half-width chart has no room)."""
    columns = [timeline.column(f"{prefix}P{p}Ms", max) for p in (50, 95, 99)]
    scale, unit = unit_for(max((v for col in columns for v in col if v is not None), default=0.0))
    scaled = [[None if v is None else v / scale for v in col] for col in columns]
    series = [
        Series("p50", BLUE, scaled[0]),
        Series("p95", ORANGE, scaled[1]),
        Series("p99", VERMILION, scaled[2], halo=True),
    ]
    y_label = f"{what} ({unit})" if name_axis else f"latency ({unit})"
    return line_chart(f"{what[0].upper() + what[1:]} over time", timeline.xs, series, y_label=y_label)
