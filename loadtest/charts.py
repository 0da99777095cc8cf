"""The report's charts: inline SVG drawn here, and the number formats they and the page share.

Why hand-drawn SVG: ``report.html`` must open anywhere, offline, years later (``loadtest.report``),
so no script, font or chart library. Colours are Okabe-Ito (told apart with every common form of
colour blindness); every axis says what it counts and in which unit.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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


def num(value: Any) -> float | None:
    """A finite number, or None for anything else (missing, null, NaN, a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def esc(value: Any) -> str:
    """Text for HTML; ``://`` encoded so that no URL appears in the file, even as text."""
    return html.escape(str(value), quote=True).replace("://", "&#58;//")


def words(value: Any) -> str:
    """Any JSON value as a person reads it: never ``True``, ``None``, ``[]`` or ``{}`` on the page."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        number = num(value)
        return "—" if number is None else f"{number:,.0f}" if number == int(number) else f"{number:,.4g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {words(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple):
        return "; ".join(words(v) for v in value) or "none"
    return str(value)


def fmt_count(value: Any) -> str:
    number = num(value)
    return "—" if number is None else f"{number:,.0f}"


def fmt_ms(value: Any) -> str:
    """Milliseconds, in the unit a person reads best."""
    ms = num(value)
    if ms is None:
        return "—"
    if ms < 1:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return fmt_seconds(ms / 1000)


def fmt_seconds(value: Any) -> str:
    s = num(value)
    if s is None:
        return "—"
    if s < 10:
        return f"{s:.2f} s"
    if s < 600:
        return f"{s:.1f} s"
    return f"{int(s // 60)} min {s % 60:02.0f} s"


def fmt_percent(part: Any, whole: Any) -> str:
    p, w = num(part), num(whole)
    if p is None or not w:
        return ""
    return f" ({100 * p / w:.0f}%)"


def tick_label(value: float, *, thousands: bool = False) -> str:
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
    halo: bool = False
    """Drawn as a wide pale band beneath the other lines: a line on top of it (p95 under p99 when
    the two are equal, as they are in a second with few players) still shows."""

    @property
    def style(self) -> str:
        return ' style="stroke-width:7px;stroke-opacity:0.4"' if self.halo else ""


def svg_open(title: str, height: int = HEIGHT) -> list[str]:
    return [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{esc(title)}">',
        f"<title>{esc(title)}</title>",
    ]


def empty_chart(title: str, message: str, height: int = 120) -> str:
    """An empty state in place of a chart: still an SVG of the same width, so the page keeps its shape."""
    out = svg_open(title, height)
    out.append(f'<rect class="frame" x="1" y="1" width="{WIDTH - 2}" height="{height - 2}" rx="6"/>')
    out.append(f'<text class="empty" x="{WIDTH / 2}" y="{height / 2 + 5}" text-anchor="middle">{esc(message)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _legend(series: Sequence[Series]) -> list[str]:
    out, x = [], float(LEFT)
    for s in series:
        if s.halo:
            out.append(f'<rect x="{x:.1f}" y="9" width="14" height="12" rx="2" fill="{s.color}" fill-opacity="0.4"/>')
        elif s.dash:  # a dashed line is shown as one, so it is told apart from a solid one of a near colour
            out.append(
                f'<line x1="{x:.1f}" x2="{x + 14:.1f}" y1="15" y2="15" stroke="{s.color}" stroke-width="3" '
                f'stroke-dasharray="4 2"/>'
            )
        else:
            out.append(f'<rect x="{x:.1f}" y="10" width="14" height="10" rx="2" fill="{s.color}"/>')
        out.append(f'<text class="legend" x="{x + 19:.1f}" y="19">{esc(s.label)}</text>')
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
        text = tick_label(value, thousands=plot.y1 >= 10_000)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{text}</text>')
    middle = (TOP + plot.height - BOTTOM) / 2
    rotate = f"translate(14 {middle:.1f}) rotate(-90)"
    out.append(f'<text class="axis" transform="{rotate}" text-anchor="middle">{esc(label)}</text>')
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
        text = tick_label(value / unit)
        out.append(f'<line class="axisline" x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" y2="{bottom + 5}"/>')
        out.append(f'<text class="tick" x="{x:.1f}" y="{bottom + 18}" text-anchor="middle">{text}</text>')
        value += step
    out.append(f'<line class="axisline" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{bottom}" y2="{bottom}"/>')
    out.append(f'<text class="axis" x="{(LEFT + WIDTH - RIGHT) / 2}" y="{plot.height - 6}" text-anchor="middle">')
    out.append(f"{esc(label)}</text>")
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
    ``whole``: the values count things (whole-number ticks). The first series is drawn on top."""
    values = [v for s in series for v in s.values if v is not None]
    if not xs or not values:
        return empty_chart(title, "No data yet")
    y1, step = _y_scale(max(values), whole=whole)
    x0, x1 = min(0.0, xs[0]), max(xs[-1], xs[0] + 1)
    plot = _Plot(x0, x1, y1)
    out = svg_open(title) + _y_axis(plot, step, y_label) + _x_axis(plot)
    few = len(xs) <= 60
    for s in reversed(series):
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        radius = 4.5 if s.halo else 2.5
        for run in _segments(xs, s.values):
            points = " ".join(f"{plot.x(x):.1f},{plot.y(v):.1f}" for x, v in run)
            out.append(f'<polyline class="line" points="{points}" stroke="{s.color}"{dash}{s.style}/>')
            if few or len(run) == 1:
                opacity = ' fill-opacity="0.4"' if s.halo else ""
                for x, v in run:
                    out.append(
                        f'<circle cx="{plot.x(x):.1f}" cy="{plot.y(v):.1f}" r="{radius}" fill="{s.color}"{opacity}>'
                    )
                    out.append(f"<title>{esc(s.label)} at {tick_label(x)} s: {v:,.4g}</title></circle>")
    out += _legend(series)
    out.append("</svg>")
    return "\n".join(out)


def stacked_chart(title: str, xs: Sequence[float], series: Sequence[Series], *, y_label: str) -> str:
    """Stacked areas (players per phase): nulls count as 0."""
    if not xs or not any(v for s in series for v in s.values):
        return empty_chart(title, "No data yet")
    tops = [0.0] * len(xs)
    layers = []
    for s in series:
        bottom = list(tops)
        tops = [b + (v or 0.0) for b, v in zip(bottom, s.values, strict=False)]
        layers.append((s, bottom, list(tops)))
    y1, step = _y_scale(max(tops), whole=True)
    plot = _Plot(min(0.0, xs[0]), max(xs[-1], xs[0] + 1), y1)
    out = svg_open(title) + _y_axis(plot, step, y_label) + _x_axis(plot)
    for s, bottom, top in layers:
        upper = [f"{plot.x(x):.1f},{plot.y(v):.1f}" for x, v in zip(xs, top, strict=False)]
        lower = [f"{plot.x(x):.1f},{plot.y(v):.1f}" for x, v in zip(xs, bottom, strict=False)]
        points = " ".join(upper + lower[::-1])
        out.append(f'<polygon class="area" points="{points}" fill="{s.color}"><title>{esc(s.label)}</title></polygon>')
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
        return empty_chart(title, empty)
    y1, step = _y_scale(max(counts), whole=True)
    plot = _Plot(0, len(counts), y1)
    out = svg_open(title) + _y_axis(plot, step, y_label)
    bottom = HEIGHT - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / len(counts)
    every = max(1, math.ceil(len(counts) * 56 / (WIDTH - LEFT - RIGHT)))  # labels ~56 px apart at least
    for i, (label, count) in enumerate(zip(labels, counts, strict=True)):
        x, y = LEFT + i * slot, plot.y(count)
        out.append(
            f'<rect x="{x + slot * 0.1:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" height="{bottom - y:.1f}" '
            f'fill="{color}"><title>{esc(label)}: {count:,.0f}</title></rect>'
        )
        if i % every == 0:
            out.append(
                f'<text class="tick" x="{x + slot / 2:.1f}" y="{bottom + 16}" text-anchor="middle">{esc(label)}</text>'
            )
    out.append(f'<line class="axisline" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{bottom}" y2="{bottom}"/>')
    out.append(f'<text class="axis" x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 6}" text-anchor="middle">')
    out.append(f"{esc(x_label)}</text>")
    out.append("</svg>")
    return "\n".join(out)


def _short(value: float) -> str:
    """A value written on a bar: three figures at most, no exponent."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def grouped_bar_chart(
    title: str, groups: Sequence[str], series: Sequence[Series], *, x_label: str, y_label: str, empty: str
) -> str:
    """Bars side by side per group (a queue's p50, p95, p99 and max), each value written above its
    bar: every percentile stays visible, however close two of them are."""
    values = [v for s in series for v in s.values if v is not None]
    if not groups or not values:
        return empty_chart(title, empty)
    y1, step = _y_scale(max(values))
    plot = _Plot(0, len(groups), y1)
    out = svg_open(title) + _y_axis(plot, step, y_label)
    bottom = HEIGHT - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / len(groups)
    width = min(48.0, slot * 0.8 / len(series))
    for i, group in enumerate(groups):
        start = LEFT + i * slot + (slot - width * len(series)) / 2
        for j, s in enumerate(series):
            value = s.values[i] if i < len(s.values) else None
            if value is None:
                continue
            x, y = start + j * width, plot.y(value)
            out.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{width - 2:.1f}" height="{bottom - y:.1f}" '
                f'fill="{s.color}"><title>{esc(group)} {esc(s.label)}: {_short(value)}</title></rect>'
            )
            if width >= 26:
                out.append(
                    f'<text class="value" x="{x + width / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle">'
                    f"{_short(value)}</text>"
                )
        out.append(
            f'<text class="tick" x="{LEFT + (i + 0.5) * slot:.1f}" y="{bottom + 16}" text-anchor="middle">'
            f"{esc(group)}</text>"
        )
    out.append(f'<line class="axisline" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{bottom}" y2="{bottom}"/>')
    out.append(f'<text class="axis" x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 6}" text-anchor="middle">')
    out.append(f"{esc(x_label)}</text>")
    out += _legend(series)
    out.append("</svg>")
    return "\n".join(out)


def hbar_chart(title: str, items: Sequence[tuple[str, float]], *, color: str, empty: str) -> str:
    """Horizontal bars with their counts written out (failures by kind)."""
    if not any(count for _, count in items):
        return empty_chart(title, empty)
    row, label_width = 26, 150
    height = TOP + row * len(items) + 12
    top = max(count for _, count in items)
    span = WIDTH - label_width - RIGHT - 60
    out = svg_open(title, height)
    for i, (label, count) in enumerate(items):
        y = TOP + i * row
        width = span * count / top
        out.append(f'<text class="tick" x="{label_width - 8}" y="{y + 15}" text-anchor="end">{esc(label)}</text>')
        out.append(
            f'<rect x="{label_width}" y="{y + 3}" width="{width:.1f}" height="{row - 8}" rx="2" fill="{color}">'
            f"<title>{esc(label)}: {count:,.0f}</title></rect>"
        )
        out.append(f'<text class="value" x="{label_width + width + 6:.1f}" y="{y + 15}">{count:,.0f}</text>')
    out.append(f'<line class="axisline" x1="{label_width}" x2="{label_width}" y1="{TOP - 4}" y2="{height - 8}"/>')
    out.append("</svg>")
    return "\n".join(out)
