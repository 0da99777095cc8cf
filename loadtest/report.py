"""The load test's reports: ``report.json`` as the runner produced it, ``report.html`` drawn from it,
and the summary printed at the end.

``report.html`` is one self-contained page: inline CSS, charts as inline SVG drawn here, no
script, no font, no image, no link. It opens from a laptop on a plane, from a CI artifact, or
attached to a bug, and looks the same years later. Even text that quotes a URL (the target) is
written with ``://`` encoded as ``&#58;//``, which browsers show unchanged, so a plain search of
the file for ``http://`` finds nothing at all.

The report the runner writes (``loadtest.runner``), and what each part means here::

    {"scenario": {"name", "file", "target", "startedAt" (RFC 3339), "seconds", "playersPlanned"},
     "summary": {"players", "played", "failed", "failures": {kind: n}, "ticketsCreated", "ticketsMatched",
                 "timeToMatchMs": {"count", "p50", "p95", "p99", "max"},
                 "allocationMs": {"p50", "p99"} | null,
                 "readyBuffer": {"start", "min", "minAt", "refillSeconds"} | null,
                 "serverTickets": {...} | null},
     "timeline": [{"t", "arrivals", "matchedPlayers", "phases": {"queued", "matched", "connected", "playing",
                   "done", "failed"}, "ttmP50Ms", "ttmP95Ms", "ttmP99Ms", "ready", "allocated"}],
     "quality": {"skillSpread" | "worstLatencyMs" | "longestWaitSeconds": {"le": [...], "counts": [...]} | null},
     "errors": [{"t", "kind", "message"}]}

- ``timeline``: one entry per second since the start (``t``). ``arrivals``: players who arrived in
  that second; ``matches``: players matched in it (players, not matches: the collector counts each
  matched ticket's players, so the two compare); ``phases``: players in each phase at its end;
  ``ttm*``: time-to-match percentiles of the players matched in it (null: none); ``ready`` and
  ``allocated``: game servers in those states (null: not observed).
- ``quality``: histograms of the matches made. ``counts[i]`` matches fell in ``(le[i-1], le[i]]``
  (``counts`` are per bucket, *not* cumulative as in Prometheus); the last bound ``"+Inf"`` (as the
  collector writes it), or one count more than bounds, is the overflow above the last finite bound.
- failure kinds: ``auth``, ``match-timeout``, ``no-capacity``, ``udp-no-answer``, ``rejected-token``,
  ``server-error``, ``other``.

Every field may be missing or null: the page says "no data" where a chart would be, rather than
failing after a long run. Long runs are drawn with at most ``MAX_POINTS`` points per line: each
point then covers several seconds (rates averaged, time to match and allocated servers at their
highest, ready servers at their lowest: the figures that matter are never smoothed away).
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAILURE_KINDS = ("auth", "match-timeout", "no-capacity", "udp-no-answer", "rejected-token", "server-error", "other")
PHASES = ("queued", "matched", "connected", "playing", "done", "failed")
MAX_POINTS = 900
"""Points per line at most; a longer timeline is drawn in buckets of several seconds."""
JSON_NAME = "report.json"
HTML_NAME = "report.html"

# Okabe-Ito: told apart with every common form of colour blindness.
BLUE, ORANGE, GREEN, VERMILION, PURPLE, SKY, YELLOW, GREY = (
    "#0072b2",
    "#e69f00",
    "#009e73",
    "#d55e00",
    "#cc79a7",
    "#56b4e9",
    "#f0e442",
    "#8c8c8c",
)
PHASE_COLORS = {
    "queued": ORANGE,
    "matched": SKY,
    "connected": BLUE,
    "playing": GREEN,
    "done": GREY,
    "failed": VERMILION,
}

# -- small helpers -------------------------------------------------------------------------------


def _num(value: Any) -> float | None:
    """A finite number, or None for anything else (missing, null, NaN, a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _esc(value: Any) -> str:
    """Text for HTML; ``://`` encoded so that no URL appears in the file, even as text."""
    return html.escape(str(value), quote=True).replace("://", "&#58;//")


def _count(value: Any) -> str:
    number = _num(value)
    return "—" if number is None else f"{number:,.0f}"


def _ms(value: Any) -> str:
    """Milliseconds, in the unit a person reads best."""
    ms = _num(value)
    if ms is None:
        return "—"
    if ms < 1:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return _seconds(ms / 1000)


def _seconds(value: Any) -> str:
    s = _num(value)
    if s is None:
        return "—"
    if s < 10:
        return f"{s:.2f} s"
    if s < 600:
        return f"{s:.1f} s"
    return f"{int(s // 60)} min {s % 60:02.0f} s"


def _percent(part: Any, whole: Any) -> str:
    p, w = _num(part), _num(whole)
    if p is None or not w:
        return ""
    return f" ({100 * p / w:.0f}%)"


def _tick_label(value: float, *, thousands: bool = False) -> str:
    """A tick's number; with ``thousands`` (an axis reaching 10,000), in thousands: ``12.5k``."""
    if thousands and value:
        return f"{value / 1000:g}k"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:g}"


def _step(span: float, count: int) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving about ``count`` intervals."""
    raw = max(span, 1e-9) / count
    magnitude: float = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if raw <= m * magnitude * (1 + 1e-9))


def _time_step(span: float) -> float:
    """A step for a time axis in seconds: 1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10, 15, 30, 60 min..."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        if span / step <= 8:
            return float(step)
    return _step(span, 8)


# -- charts ----------------------------------------------------------------------------------------

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 18, 34, 46


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    color: str
    values: Sequence[float | None]
    dash: str = ""


def _svg_open(title: str, height: int = HEIGHT) -> list[str]:
    return [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{_esc(title)}">',
        f"<title>{_esc(title)}</title>",
    ]


def _empty(title: str, message: str, height: int = 120) -> str:
    """An empty state in place of a chart: still an SVG of the same width, so the page keeps its shape."""
    out = _svg_open(title, height)
    out.append(f'<rect class="frame" x="1" y="1" width="{WIDTH - 2}" height="{height - 2}" rx="6"/>')
    out.append(f'<text class="empty" x="{WIDTH / 2}" y="{height / 2 + 5}" text-anchor="middle">{_esc(message)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _legend(series: Sequence[Series]) -> list[str]:
    out, x = [], float(LEFT)
    for s in series:
        if s.dash:  # a dashed line is shown as one, so it is told apart from a solid one of a near colour
            out.append(
                f'<line x1="{x:.1f}" x2="{x + 14:.1f}" y1="15" y2="15" stroke="{s.color}" stroke-width="3" '
                f'stroke-dasharray="4 2"/>'
            )
        else:
            out.append(f'<rect x="{x:.1f}" y="10" width="14" height="10" rx="2" fill="{s.color}"/>')
        out.append(f'<text class="legend" x="{x + 19:.1f}" y="19">{_esc(s.label)}</text>')
        x += 19 + 7.2 * len(s.label) + 18
    return out


@dataclass(frozen=True, slots=True)
class _Plot:
    """Maps data to the plot area: x from ``x0`` to ``x1``, y from 0 to ``y1``."""

    x0: float
    x1: float
    y1: float
    height: int = HEIGHT

    def x(self, value: float) -> float:
        return LEFT + (value - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        bottom = self.height - BOTTOM
        return bottom - value / self.y1 * (bottom - TOP)


def _y_axis(plot: _Plot, step: float, label: str) -> list[str]:
    out = []
    ticks = round(plot.y1 / step)
    for i in range(ticks + 1):
        value = i * step
        y = plot.y(value)
        text = _tick_label(value, thousands=plot.y1 >= 10_000)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{text}</text>')
    middle = (TOP + plot.height - BOTTOM) / 2
    rotate = f"translate(14 {middle:.1f}) rotate(-90)"
    out.append(f'<text class="axis" transform="{rotate}" text-anchor="middle">{_esc(label)}</text>')
    return out


def _x_axis(plot: _Plot) -> list[str]:
    """Time since the start: seconds, or minutes past a quarter of an hour."""
    out = []
    step = _time_step(plot.x1 - plot.x0)
    unit, label = (60.0, "minutes since start") if plot.x1 - plot.x0 > 900 else (1.0, "seconds since start")
    bottom = plot.height - BOTTOM
    value = math.ceil(plot.x0 / step) * step
    while value <= plot.x1 + 1e-9:
        x = plot.x(value)
        text = _tick_label(value / unit)
        out.append(f'<line class="axisline" x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" y2="{bottom + 5}"/>')
        out.append(f'<text class="tick" x="{x:.1f}" y="{bottom + 18}" text-anchor="middle">{text}</text>')
        value += step
    out.append(f'<line class="axisline" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{bottom}" y2="{bottom}"/>')
    out.append(f'<text class="axis" x="{(LEFT + WIDTH - RIGHT) / 2}" y="{plot.height - 6}" text-anchor="middle">')
    out.append(f"{_esc(label)}</text>")
    return out


def _y_scale(top: float, *, whole: bool = False) -> tuple[float, float]:
    """(axis top, tick step) for data up to ``top`` (at least 1). ``whole``: the data counts things
    (players, servers, matches), so ticks are whole numbers: never 2.5 or 7.5 servers."""
    step = _step(max(top, 1.0), 5)
    if whole and step != int(step):
        step = max(1.0, float(math.floor(step)))
    return math.ceil(max(top, 1.0) / step - 1e-9) * step, step


def _segments(xs: Sequence[float], values: Sequence[float | None]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive points with a value: a gap (null) breaks the line instead of dropping to 0."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, v in zip(xs, values, strict=False):
        if v is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x, v))
    return [r for r in runs if r]


def line_chart(title: str, xs: Sequence[float], series: Sequence[Series], *, y_label: str, whole: bool = False) -> str:
    """Lines over time, with gaps where a value is null; an empty state when no series has a value.
    ``whole``: the values count things (whole-number ticks)."""
    values = [v for s in series for v in s.values if v is not None]
    if not xs or not values:
        return _empty(title, "No data yet")
    y1, step = _y_scale(max(values), whole=whole)
    x0, x1 = min(0.0, xs[0]), max(xs[-1], xs[0] + 1)
    plot = _Plot(x0, x1, y1)
    out = _svg_open(title) + _y_axis(plot, step, y_label) + _x_axis(plot)
    few = len(xs) <= 60
    for s in series:
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        for run in _segments(xs, s.values):
            points = " ".join(f"{plot.x(x):.1f},{plot.y(v):.1f}" for x, v in run)
            out.append(f'<polyline class="line" points="{points}" stroke="{s.color}"{dash}/>')
            if few or len(run) == 1:
                for x, v in run:
                    out.append(f'<circle cx="{plot.x(x):.1f}" cy="{plot.y(v):.1f}" r="2.5" fill="{s.color}">')
                    out.append(f"<title>{_esc(s.label)} at {_tick_label(x)} s: {v:,.4g}</title></circle>")
    out += _legend(series)
    out.append("</svg>")
    return "\n".join(out)


def stacked_chart(title: str, xs: Sequence[float], series: Sequence[Series], *, y_label: str) -> str:
    """Stacked areas (players per phase): nulls count as 0."""
    if not xs or not any(v for s in series for v in s.values):
        return _empty(title, "No data yet")
    tops = [0.0] * len(xs)
    layers = []
    for s in series:
        bottom = list(tops)
        tops = [b + (v or 0.0) for b, v in zip(bottom, s.values, strict=False)]
        layers.append((s, bottom, list(tops)))
    y1, step = _y_scale(max(tops), whole=True)
    plot = _Plot(min(0.0, xs[0]), max(xs[-1], xs[0] + 1), y1)
    out = _svg_open(title) + _y_axis(plot, step, y_label) + _x_axis(plot)
    for s, bottom, top in layers:
        upper = [f"{plot.x(x):.1f},{plot.y(v):.1f}" for x, v in zip(xs, top, strict=False)]
        lower = [f"{plot.x(x):.1f},{plot.y(v):.1f}" for x, v in zip(xs, bottom, strict=False)]
        points = " ".join(upper + lower[::-1])
        out.append(f'<polygon class="area" points="{points}" fill="{s.color}"><title>{_esc(s.label)}</title></polygon>')
    out += _legend(series)
    out.append("</svg>")
    return "\n".join(out)


def bar_chart(
    title: str,
    labels: Sequence[str],
    counts: Sequence[float],
    *,
    color: str,
    x_label: str,
    y_label: str,
    empty: str = "No data yet",
) -> str:
    """Vertical bars (a histogram from bucketed counts); the ``empty`` state when every count is 0."""
    if not counts or not any(counts):
        return _empty(title, empty)
    y1, step = _y_scale(max(counts), whole=True)
    plot = _Plot(0, len(counts), y1)
    out = _svg_open(title) + _y_axis(plot, step, y_label)
    bottom = HEIGHT - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / len(counts)
    every = max(1, math.ceil(len(counts) * 56 / (WIDTH - LEFT - RIGHT)))  # labels ~56 px apart at least
    for i, (label, count) in enumerate(zip(labels, counts, strict=True)):
        x, y = LEFT + i * slot, plot.y(count)
        out.append(
            f'<rect x="{x + slot * 0.1:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" height="{bottom - y:.1f}" '
            f'fill="{color}"><title>{_esc(label)}: {count:,.0f}</title></rect>'
        )
        if i % every == 0:
            out.append(
                f'<text class="tick" x="{x + slot / 2:.1f}" y="{bottom + 16}" text-anchor="middle">{_esc(label)}</text>'
            )
    out.append(f'<line class="axisline" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{bottom}" y2="{bottom}"/>')
    out.append(f'<text class="axis" x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 6}" text-anchor="middle">')
    out.append(f"{_esc(x_label)}</text>")
    out.append("</svg>")
    return "\n".join(out)


def hbar_chart(title: str, items: Sequence[tuple[str, float]], *, color: str, empty: str) -> str:
    """Horizontal bars with their counts written out (failures by kind)."""
    if not any(count for _, count in items):
        return _empty(title, empty)
    row, label_width = 26, 150
    height = TOP + row * len(items) + 12
    top = max(count for _, count in items)
    span = WIDTH - label_width - RIGHT - 60
    out = _svg_open(title, height)
    for i, (label, count) in enumerate(items):
        y = TOP + i * row
        width = span * count / top
        out.append(f'<text class="tick" x="{label_width - 8}" y="{y + 15}" text-anchor="end">{_esc(label)}</text>')
        out.append(
            f'<rect x="{label_width}" y="{y + 3}" width="{width:.1f}" height="{row - 8}" rx="2" fill="{color}">'
            f"<title>{_esc(label)}: {count:,.0f}</title></rect>"
        )
        out.append(f'<text class="value" x="{label_width + width + 6:.1f}" y="{y + 15}">{count:,.0f}</text>')
    out.append(f'<line class="axisline" x1="{label_width}" x2="{label_width}" y1="{TOP - 4}" y2="{height - 8}"/>')
    out.append("</svg>")
    return "\n".join(out)


# -- the timeline --------------------------------------------------------------------------------

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
            [r for r in raw if isinstance(r, Mapping) and _num(r.get("t")) is not None] if isinstance(raw, list) else []
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
            values = [_num(_map(r.get(within)).get(key) if within else r.get(key)) for r in group]
            present = [v for v in values if v is not None]
            out.append(reduce(present) if present else None)
        return out


def _bucket_note(timeline: Timeline, how: str) -> str:
    if timeline.bucket == 1:
        return ""
    return f"Each point covers {timeline.bucket} s ({how})."


# -- the page ------------------------------------------------------------------------------------

CSS = """
:root { color-scheme: light; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); }
main { max-width: 1120px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 0 0 6px; }
.sub, .note { color: var(--muted); margin: 0 0 10px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 10px; margin: 18px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; background: var(--soft); }
.card b { display: block; font-size: 20px; }
.card span { color: var(--muted); font-size: 12px; }
.card.bad b { color: #b42318; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 18px; }
section { border: 1px solid var(--line); border-radius: 8px; padding: 14px; margin: 0 0 18px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; width: 34%; }
td.num { font-variant-numeric: tabular-nums; }
table.errors th { width: auto; }
table.errors td { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
svg.chart { width: 100%; height: auto; display: block; }
svg .grid { stroke: #eaeef2; }
svg .axisline { stroke: #8c959f; }
svg .tick, svg .value { font-size: 11px; fill: var(--muted); }
svg .axis { font-size: 12px; fill: var(--muted); }
svg .legend { font-size: 12px; fill: var(--ink); }
svg .line { fill: none; stroke-width: 2; stroke-linejoin: round; }
svg .area { opacity: 0.85; }
svg .frame { fill: var(--soft); stroke: var(--line); }
svg .empty { font-size: 14px; fill: var(--muted); }
footer { color: var(--muted); font-size: 12px; margin-top: 8px; }
"""


def _row(label: str, value: str) -> str:
    return f'<tr><th scope="row">{_esc(label)}</th><td class="num">{value}</td></tr>'


def _card(label: str, value: str, *, bad: bool = False) -> str:
    return f'<div class="card{" bad" if bad else ""}"><b>{_esc(value)}</b><span>{_esc(label)}</span></div>'


def _cards(summary: Mapping[str, Any]) -> str:
    ttm = _map(summary.get("timeToMatchMs"))
    failed = _num(summary.get("failed")) or 0
    cards = [
        _card("players", _count(summary.get("players"))),
        _card("played", _count(summary.get("played"))),
        _card("failed" + _percent(failed, summary.get("players")), _count(summary.get("failed")), bad=failed > 0),
        _card("time to match p50", _ms(ttm.get("p50"))),
        _card("time to match p95", _ms(ttm.get("p95"))),
        _card("time to match p99", _ms(ttm.get("p99"))),
    ]
    return '<div class="cards">' + "".join(cards) + "</div>"


def _failures_text(summary: Mapping[str, Any]) -> str:
    failures = _failure_counts(summary)
    return ", ".join(f"{kind} {n:,.0f}" for kind, n in failures if n) or "none"


def _failure_counts(summary: Mapping[str, Any]) -> list[tuple[str, float]]:
    """Every known kind (0 if absent), then any other kind the runner reported."""
    given = {str(k): _num(v) or 0.0 for k, v in _map(summary.get("failures")).items()}
    known = [(kind, given.pop(kind, 0.0)) for kind in FAILURE_KINDS]
    return known + sorted(given.items())


def _summary_table(report: Mapping[str, Any]) -> str:
    scenario, summary = _map(report.get("scenario")), _map(report.get("summary"))
    ttm, alloc = _map(summary.get("timeToMatchMs")), _map(summary.get("allocationMs"))
    rows = [
        _row("scenario", _esc(scenario.get("name", "—"))),
        _row("scenario file", _esc(scenario.get("file", "—"))),
        _row("target", _esc(scenario.get("target", "—"))),
        _row("started", _esc(scenario.get("startedAt", "—"))),
        _row("ran for", _seconds(scenario.get("seconds"))),
        _row(
            "players planned / arrived", f"{_count(scenario.get('playersPlanned'))} / {_count(summary.get('players'))}"
        ),
        _row("played", _count(summary.get("played")) + _percent(summary.get("played"), summary.get("players"))),
        _row("failed", _count(summary.get("failed")) + _percent(summary.get("failed"), summary.get("players"))),
        _row("failures by kind", _esc(_failures_text(summary))),
        _row(
            "tickets created / matched",
            f"{_count(summary.get('ticketsCreated'))} / {_count(summary.get('ticketsMatched'))}",
        ),
        _row(
            "time to match",
            f"p50 {_ms(ttm.get('p50'))} · p95 {_ms(ttm.get('p95'))} · p99 {_ms(ttm.get('p99'))} · "
            f"max {_ms(ttm.get('max'))} (over {_count(ttm.get('count'))})",
        ),
        _row(
            "allocation",
            f"p50 {_ms(alloc.get('p50'))} · p99 {_ms(alloc.get('p99'))}" if alloc else "not measured",
        ),
        _row("ready buffer", _esc(_buffer_text(summary.get("readyBuffer")))),
    ]
    for key, value in _map(summary.get("serverTickets")).items():
        shown = value if isinstance(value, str | int | float) else json.dumps(value, sort_keys=True)
        rows.append(_row(f"server tickets: {key}", _esc(shown)))
    return "<table>" + "".join(rows) + "</table>"


def _buffer_text(buffer: Any) -> str:
    if not isinstance(buffer, Mapping):
        return "not observed"
    text = f"{_count(buffer.get('start'))} Ready at the start, lowest {_count(buffer.get('min'))}"
    if _num(buffer.get("minAt")) is not None:
        text += f" at {_seconds(buffer.get('minAt'))}"
    refill = _num(buffer.get("refillSeconds"))
    return text + (f", refilled after {_seconds(refill)}" if refill is not None else ", not refilled by the end")


def _ttm_chart(timeline: Timeline) -> tuple[str, str]:
    columns = [
        (label, timeline.column(key, max))
        for label, key in (("p50", "ttmP50Ms"), ("p95", "ttmP95Ms"), ("p99", "ttmP99Ms"))
    ]
    top = max((v for _, col in columns for v in col if v is not None), default=0.0)
    scale, unit = (1000.0, "seconds") if top >= 10_000 else (1.0, "milliseconds")
    series = [
        Series(label, color, [None if v is None else v / scale for v in col], dash)
        for (label, col), color, dash in zip(columns, (BLUE, ORANGE, VERMILION), ("", "", "6 3"), strict=True)
    ]
    title = "Time to match over time"
    note = "Percentiles of the players matched in each second. " + _bucket_note(timeline, "the highest")
    return line_chart(title, timeline.xs, series, y_label=f"time to match ({unit})"), note


def _section(title: str, chart: str, note: str = "") -> str:
    paragraph = f'<p class="note">{_esc(note)}</p>' if note.strip() else ""
    return f"<section><h2>{_esc(title)}</h2>{paragraph}{chart}</section>"


def _timeline_sections(timeline: Timeline) -> list[str]:
    ttm, ttm_note = _ttm_chart(timeline)
    xs = timeline.xs
    flow = line_chart(
        "Players arriving and matched per second",
        xs,
        [
            Series("players arriving", BLUE, timeline.column("arrivals")),
            Series("players matched", GREEN, timeline.column("matchedPlayers")),
        ],
        y_label="players per second",
        whole=True,
    )
    fleet = line_chart(
        "Ready buffer and allocated servers",
        xs,
        [
            Series("Ready", GREEN, timeline.column("ready", min)),
            Series("Allocated", PURPLE, timeline.column("allocated", max)),
        ],
        y_label="game servers",
        whole=True,
    )
    phases = stacked_chart(
        "Players by phase",
        xs,
        [Series(name, PHASE_COLORS[name], timeline.column(name, within="phases")) for name in PHASES],
        y_label="players",
    )
    return [
        _section("Time to match", ttm, ttm_note),
        _section(
            "Arrivals vs matches",
            flow,
            "Players who arrived, and players who learned their match, per second: matched above arrivals "
            "is the queue draining, below it the queue growing. " + _bucket_note(timeline, "averaged"),
        ),
        _section(
            "Ready buffer vs allocated servers",
            fleet,
            "Game servers Ready to take a match, and Allocated to one. "
            + _bucket_note(timeline, "Ready at its lowest, Allocated at its highest"),
        ),
        _section("Players by phase", phases, "Where every simulated player was, second by second."),
    ]


QUALITY = (
    ("skillSpread", "Skill spread", "skill points between the strongest and weakest team", PURPLE),
    ("worstLatencyMs", "Worst latency", "highest player latency to the match's region (ms)", SKY),
    ("longestWaitSeconds", "Longest wait", "the longest-waiting ticket's wait (seconds)", ORANGE),
)


def _is_inf(bound: Any) -> bool:
    """The overflow bound: ``"+Inf"`` (how the collector writes it) or an infinite number."""
    if isinstance(bound, str):
        return bound.strip().lower() in ("+inf", "inf")
    return isinstance(bound, float) and math.isinf(bound) and bound > 0


def histogram_bars(histogram: Any) -> tuple[list[str], list[float]]:
    """Labels and per-bucket counts of a ``{"le": [...], "counts": [...]}`` histogram ([] if malformed).

    The overflow bucket is either a last bound ``"+Inf"`` (as ``loadtest.collect`` writes it) or
    one count more than bounds; it is labelled ``>`` the last finite bound."""
    if not isinstance(histogram, Mapping):
        return [], []
    bounds, counts = histogram.get("le"), histogram.get("counts")
    if not isinstance(bounds, list) or not isinstance(counts, list) or not bounds:
        return [], []
    overflow = _is_inf(bounds[-1])
    les = [_num(b) for b in (bounds[:-1] if overflow else bounds)]
    numbers = [_num(c) or 0.0 for c in counts]
    sizes = (len(les) + 1,) if overflow else (len(les), len(les) + 1)
    if any(b is None for b in les) or len(numbers) not in sizes:
        return [], []
    labels = [f"≤{_tick_label(b)}" for b in les if b is not None]
    if len(numbers) == len(les) + 1:
        labels.append(f">{_tick_label(les[-1] or 0.0)}" if les else "all")
    return labels, numbers


def _quality_sections(report: Mapping[str, Any]) -> list[str]:
    quality = _map(report.get("quality"))
    out = []
    for key, title, axis, color in QUALITY:
        labels, counts = histogram_bars(quality.get(key))
        empty = "No matches yet" if isinstance(quality.get(key), Mapping) else "Not measured in this run"
        chart = bar_chart(
            f"{title} of matches", labels, counts, color=color, x_label=axis, y_label="matches", empty=empty
        )
        total = sum(counts)
        note = f"{total:,.0f} matches." if total else ""
        out.append(_section(title, chart, note))
    return out


def _errors_section(report: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    failures = hbar_chart("Failures by kind", _failure_counts(summary), color=VERMILION, empty="No failures")
    errors = [e for e in report.get("errors") or [] if isinstance(e, Mapping)]
    if errors:
        rows = "".join(
            f'<tr><td class="num">{_esc(_seconds(e.get("t")))}</td><td>{_esc(e.get("kind", ""))}</td>'
            f"<td>{_esc(e.get('message', ''))}</td></tr>"
            for e in errors
        )
        table = (
            f'<p class="note">The first {len(errors):,} errors.</p>'
            f'<table class="errors"><tr><th>t</th><th>kind</th><th>message</th></tr>{rows}</table>'
        )
    else:
        table = ""
    return _section("Failures", failures + table, "Players who did not get to play, by what went wrong.")


def render_html(report: Mapping[str, Any]) -> str:
    """One self-contained HTML page: summary, charts (inline SVG) and the first errors."""
    scenario, summary = _map(report.get("scenario")), _map(report.get("summary"))
    name = str(scenario.get("name") or "load test")
    timeline = Timeline.of(report)
    subtitle = " · ".join(
        part
        for part in (
            f"target {_esc(scenario['target'])}" if scenario.get("target") else "",
            f"started {_esc(scenario['startedAt'])}" if scenario.get("startedAt") else "",
            f"ran for {_seconds(scenario.get('seconds'))}" if _num(scenario.get("seconds")) is not None else "",
        )
        if part
    )
    body = [
        f"<h1>fleetmatch load test: {_esc(name)}</h1>",
        f'<p class="sub">{subtitle}</p>',
        _cards(summary),
        _section("Summary", _summary_table(report)),
        *_timeline_sections(timeline),
        '<div class="grid2">',
        *_quality_sections(report),
        "</div>",
        _errors_section(report, summary),
        "<footer>Written by fleetmatch loadtest. The figures are in report.json next to this page.</footer>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>fleetmatch load test: {_esc(name)}</title>\n<style>{CSS}</style>\n</head>\n"
        "<body>\n<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )


# -- the summary and the files -------------------------------------------------------------------


def summary_text(report: Mapping[str, Any]) -> str:
    """The lines printed when the run ends."""
    scenario, summary = _map(report.get("scenario")), _map(report.get("summary"))
    ttm, alloc = _map(summary.get("timeToMatchMs")), _map(summary.get("allocationMs"))
    players = summary.get("players")
    lines = [
        f"load test {scenario.get('name', '?')!s} against {scenario.get('target', '?')!s}: {_count(players)} "
        f"players (planned {_count(scenario.get('playersPlanned'))}) in {_seconds(scenario.get('seconds'))}",
        f"  played         {_count(summary.get('played'))}{_percent(summary.get('played'), players)}",
        f"  failed         {_count(summary.get('failed'))}{_percent(summary.get('failed'), players)}: "
        f"{_failures_text(summary)}",
        f"  tickets        {_count(summary.get('ticketsCreated'))} created, "
        f"{_count(summary.get('ticketsMatched'))} matched",
        f"  time to match  p50 {_ms(ttm.get('p50'))}, p95 {_ms(ttm.get('p95'))}, p99 {_ms(ttm.get('p99'))}, "
        f"max {_ms(ttm.get('max'))} (over {_count(ttm.get('count'))})",
    ]
    if alloc:
        lines.append(f"  allocation     p50 {_ms(alloc.get('p50'))}, p99 {_ms(alloc.get('p99'))}")
    if isinstance(summary.get("readyBuffer"), Mapping):
        lines.append(f"  ready buffer   {_buffer_text(summary['readyBuffer'])}")
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    """NaN and infinities become null: ``report.json`` stays strict JSON that any tool reads."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _write(path: Path, text: str) -> None:
    """Whole or not at all: a run interrupted while writing leaves the previous report intact."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_reports(report: Mapping[str, Any], directory: Path | str) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``directory`` (created if needed); return their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = _jsonable(report)
    json_path, html_path = directory / JSON_NAME, directory / HTML_NAME
    _write(json_path, json.dumps(data, indent=2, allow_nan=False, default=str) + "\n")
    _write(html_path, render_html(data))
    return json_path, html_path
