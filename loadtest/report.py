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
                 "timeToMatchByQueueMs": {queue: {"count", "p50", "p95", "p99", "max"}},
                 "waitEstimate": {"matched", "estimated", "within", "withinPercent", "targetPercent",
                                  "tolerancePercent", "buckets": [{"label", "count"}]},
                 "latenciesMs": {"ticketCreate" | "assignmentPush" | "udpJoin": {"count", "p50", ...}},
                 "allocationMs": {"p50", "p95", "p99"} | null,
                 "readyBuffer": {"start", "min", "minAt", "refillSeconds"} | null,
                 "serverTickets": {..., "lost", "mismatches", "playersInTwoMatches",
                                   "serversAllocatedTwice", "consistent", "problems"} | null},
     "timeline": [{"t", "arrivals", "matchedPlayers", "phases": {"queued", "matched", "connected", "playing",
                   "done", "failed"}, "ttmP50Ms", "ttmP95Ms", "ttmP99Ms", "ticketCreateP50Ms"... "udpJoinP99Ms",
                   "ready", "allocated"}],
     "quality": {"skillSpread" | "worstLatencyMs" | "longestWaitSeconds": {"le": [...], "counts": [...]} | null},
     "errors": [{"t", "kind", "message"}],
     "verdict": {"pass", "checks": [{"name", "pass", "detail"}], "thresholds"},
     "previous": {"file", "name", "startedAt", "pass", "figures": {...}}}   (only with --compare)

- ``verdict`` (``loadtest.verdict``) is drawn first, as a banner; a report without one (interrupted
  before it was judged, or older) is judged when drawn, with the default thresholds.
- ``timeline``: one entry per second since the start (``t``). ``arrivals``: players who arrived in
  that second; ``matches``: players matched in it (players, not matches: the collector counts each
  matched ticket's players, so the two compare); ``phases``: players in each phase at its end;
  ``ttm*`` and the client latencies' ``*P50Ms``...: percentiles of the values recorded in it (null:
  none); ``ready`` and ``allocated``: game servers in those states (null: not observed).
- ``quality``: histograms of the matches made. ``counts[i]`` matches fell in ``(le[i-1], le[i]]``
  (``counts`` are per bucket, *not* cumulative as in Prometheus); the last bound ``"+Inf"`` (as the
  collector writes it), or one count more than bounds, is the overflow above the last finite bound.
- failure kinds: ``auth``, ``match-timeout``, ``no-capacity``, ``udp-no-answer``, ``rejected-token``,
  ``server-error``, ``other``.

No value reaches the page as Python writes it (``True``, ``None``, ``[]``): ``charts.words``.
Every field may be missing or null: the page says "no data" where a chart would be, rather than
failing after a long run. Long runs are drawn with at most ``MAX_POINTS`` points per line: each
point then covers several seconds (rates averaged, time to match and allocated servers at their
highest, ready servers at their lowest: the figures that matter are never smoothed away).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loadtest.charts import (
    BLUE,
    GREEN,
    GREY,
    ORANGE,
    PHASE_COLORS,
    PURPLE,
    SKY,
    VERMILION,
    Series,
    as_map,
    bar_chart,
    esc,
    fmt_count,
    fmt_ms,
    fmt_percent,
    fmt_seconds,
    grouped_bar_chart,
    hbar_chart,
    line_chart,
    num,
    stacked_chart,
    tick_label,
    words,
)
from loadtest.features import feature_html, feature_lines
from loadtest.headline import CSS as HEADLINE_CSS
from loadtest.headline import banner_html, card_note, comparison_html, comparison_lines, verdict_lines
from loadtest.timeline import Timeline, bucket_note, percentile_chart, unit_for
from loadtest.verdict import lost_tickets

FAILURE_KINDS = ("auth", "match-timeout", "no-capacity", "udp-no-answer", "rejected-token", "server-error", "other")
PHASES = ("queued", "matched", "connected", "playing", "done", "failed")
JSON_NAME = "report.json"
HTML_NAME = "report.html"


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
table.queues th, table.queues td { width: auto; white-space: nowrap; }
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
.grid2 svg .tick, .grid2 svg .value { font-size: 15px; }
.grid2 svg .axis, .grid2 svg .legend { font-size: 16px; }
footer { color: var(--muted); font-size: 12px; margin-top: 8px; }
"""


def _row(label: str, value: str) -> str:
    return f'<tr><th scope="row">{esc(label)}</th><td class="num">{value}</td></tr>'


def _card(label: str, value: str, *, bad: bool = False, note: str = "") -> str:
    return f'<div class="card{" bad" if bad else ""}"><b>{esc(value)}</b><span>{esc(label)}</span>{note}</div>'


def _cards(report: Mapping[str, Any]) -> str:
    """The headline figures; compared with a previous run, each with the previous value and the change."""
    summary = as_map(report.get("summary"))
    ttm = as_map(summary.get("timeToMatchMs"))
    failed = num(summary.get("failed")) or 0
    lost = lost_tickets(summary.get("serverTickets"))
    cards = [
        _card("players", fmt_count(summary.get("players")), note=card_note(report, "players")),
        _card("played", fmt_count(summary.get("played")), note=card_note(report, "played")),
        _card(
            "failed" + fmt_percent(failed, summary.get("players")),
            fmt_count(summary.get("failed")),
            bad=failed > 0,
            note=card_note(report, "failureRate"),
        ),
        _card("tickets lost", fmt_count(lost), bad=bool(lost), note=card_note(report, "ticketsLost")),
        *(
            _card(f"time to match {p}", fmt_ms(ttm.get(p)), note=card_note(report, f"ttm{p.upper()}"))
            for p in ("p50", "p95", "p99")
        ),
    ]
    return '<div class="cards">' + "".join(cards) + "</div>"


def _failures_text(summary: Mapping[str, Any]) -> str:
    failures = _failure_counts(summary)
    return ", ".join(f"{kind} {n:,.0f}" for kind, n in failures if n) or "none"


def _failure_counts(summary: Mapping[str, Any]) -> list[tuple[str, float]]:
    """Every known kind (0 if absent), then any other kind the runner reported."""
    given = {str(k): num(v) or 0.0 for k, v in as_map(summary.get("failures")).items()}
    known = [(kind, given.pop(kind, 0.0)) for kind in FAILURE_KINDS]
    return known + sorted(given.items())


def _summary_table(report: Mapping[str, Any]) -> str:
    scenario, summary = as_map(report.get("scenario")), as_map(report.get("summary"))
    ttm, alloc = as_map(summary.get("timeToMatchMs")), as_map(summary.get("allocationMs"))
    rows = [
        _row("scenario", esc(words(scenario.get("name")))),
        _row("scenario file", esc(words(scenario.get("file")))),
        _row("target", esc(words(scenario.get("target")))),
        _row("started", esc(words(scenario.get("startedAt")))),
        _row("ran for", fmt_seconds(scenario.get("seconds"))),
        _row(
            "players planned / arrived",
            f"{fmt_count(scenario.get('playersPlanned'))} / {fmt_count(summary.get('players'))}",
        ),
        _row("played", fmt_count(summary.get("played")) + fmt_percent(summary.get("played"), summary.get("players"))),
        _row("failed", fmt_count(summary.get("failed")) + fmt_percent(summary.get("failed"), summary.get("players"))),
        _row("failures by kind", esc(_failures_text(summary))),
        _row(
            "tickets created / matched",
            f"{fmt_count(summary.get('ticketsCreated'))} / {fmt_count(summary.get('ticketsMatched'))}",
        ),
        _row(
            "time to match",
            f"p50 {fmt_ms(ttm.get('p50'))} · p95 {fmt_ms(ttm.get('p95'))} · p99 {fmt_ms(ttm.get('p99'))} · "
            f"max {fmt_ms(ttm.get('max'))} (over {fmt_count(ttm.get('count'))})",
        ),
        _row("wait estimate", esc(wait_estimate_text(summary.get("waitEstimate")))),
        _row("allocation", _percentiles_text(alloc, " · ") if alloc else "not measured"),
        _row("ready buffer", esc(_buffer_text(summary.get("readyBuffer")))),
    ]
    rows += [_row(label, esc(text)) for label, text in _server_tickets(summary.get("serverTickets"))]
    return "<table>" + "".join(rows) + "</table>"


SERVER_STATES = ("matched", "cancelled", "expired", "queued", "missing", "unchecked")
SERVER_CHECKS = (
    ("lost", "lost"),
    ("mismatches", "not as told"),
    ("playersInTwoMatches", "players in two matches"),
    ("serversAllocatedTwice", "servers given twice"),
)


def _server_tickets(tickets: Any) -> list[tuple[str, str]]:
    """The reconciliation in a few rows a person reads (every field, none as a raw key unless unknown)."""
    if not isinstance(tickets, Mapping):
        return []
    known = {"created", "clientMatched", "matches", "consistent", "problems", *SERVER_STATES}
    known |= {key for key, _ in SERVER_CHECKS}
    states = ", ".join(f"{fmt_count(tickets.get(s))} {s}" for s in SERVER_STATES if s in tickets)
    checks = ", ".join(f"{fmt_count(tickets.get(k))} {label}" for k, label in SERVER_CHECKS if k in tickets)
    rows = [
        ("tickets read back", f"{fmt_count(tickets.get('created'))} created: {states}"),
        ("matches", f"{fmt_count(tickets.get('matches'))} ({fmt_count(tickets.get('clientMatched'))} tickets "
                    "matched as the players saw it)"),
        ("reconciliation", f"{'consistent' if tickets.get('consistent') is True else 'NOT consistent'}"
                           + (f": {checks}" if checks else "")),
        ("problems", words(tickets.get("problems"))),
    ]  # fmt: skip
    return rows + [(f"server tickets: {k}", words(v)) for k, v in tickets.items() if k not in known]


def wait_estimate_text(figures: Any) -> str:
    """``within ±25 %: 83.1 % of 412 estimated tickets (target 80 %); 35 matched without one``."""
    if not isinstance(figures, Mapping):
        return "not measured"
    estimated, matched = num(figures.get("estimated")) or 0, num(figures.get("matched")) or 0
    tolerance = num(figures.get("tolerancePercent"))
    target = num(figures.get("targetPercent"))
    percent = num(figures.get("withinPercent"))
    head = f"within ±{25 if tolerance is None else tolerance:g} %: "
    head += "no ticket had an estimate" if percent is None else f"{percent:.1f} % of {estimated:,.0f} estimated tickets"
    without = matched - estimated
    tail = f"; {without:,.0f} matched without one" if without else ""
    return head + f" (target {80 if target is None else target:g} %)" + tail


def _estimate_section(summary: Mapping[str, Any]) -> str:
    figures = as_map(summary.get("waitEstimate"))
    buckets = [as_map(b) for b in figures.get("buckets") or ()]
    chart = bar_chart(
        "Estimated wait against the wait that followed",
        [str(b.get("label")) for b in buckets],
        [num(b.get("count")) or 0.0 for b in buckets],
        color=BLUE,
        x_label="estimate at creation, relative to the time to match",
        y_label="tickets",
        empty="No ticket had an estimate" if figures else "Not measured in this run",
    )
    note = (
        "Each matched ticket's estimatedWaitSeconds when it was created, against the time its party then "
        f"waited. {wait_estimate_text(figures) if figures else ''}"
    )
    return _section("Wait estimate", chart, note)


def _percentiles_text(figures: Mapping[str, Any], sep: str = ", ") -> str:
    """``p50 … · p95 … · p99 … · max …`` of what the figures hold (allocation has no max)."""
    keys = [k for k in ("p50", "p95", "p99", "max") if k in figures]
    return sep.join(f"{k} {fmt_ms(figures.get(k))}" for k in keys) or "not measured"


def _buffer_text(buffer: Any) -> str:
    if not isinstance(buffer, Mapping):
        return "not observed"
    text = f"{fmt_count(buffer.get('start'))} Ready at the start, lowest {fmt_count(buffer.get('min'))}"
    if num(buffer.get("minAt")) is not None:
        text += f" at {fmt_seconds(buffer.get('minAt'))}"
    refill = num(buffer.get("refillSeconds"))
    return text + (f", refilled after {fmt_seconds(refill)}" if refill is not None else ", not refilled by the end")


def _section(title: str, chart: str, note: str = "") -> str:
    paragraph = f'<p class="note">{esc(note)}</p>' if note.strip() else ""
    return f"<section><h2>{esc(title)}</h2>{paragraph}{chart}</section>"


def _timeline_sections(timeline: Timeline) -> list[str]:
    ttm = percentile_chart(timeline, "ttm", "time to match")
    ttm_note = "Percentiles of the players matched in each second. " + bucket_note(timeline, "the highest")
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
            "is the queue draining, below it the queue growing. " + bucket_note(timeline, "averaged"),
        ),
        _section(
            "Ready buffer vs allocated servers",
            fleet,
            "Game servers Ready to take a match, and Allocated to one. "
            + bucket_note(timeline, "Ready at its lowest, Allocated at its highest"),
        ),
        _section("Players by phase", phases, "Where every simulated player was, second by second."),
    ]


CLIENT_LATENCIES = (
    ("ticketCreate", "ticket create", "POST /v1/tickets, from sending the ticket to its answer."),
    (
        "assignmentPush",
        "assignment push",
        "From the first ticket of a match learning its server to each other ticket of it learning it.",
    ),
    ("udpJoin", "UDP join", "From a player's join to the game server's welcome, resends included."),
)


def _latency_sections(report: Mapping[str, Any], timeline: Timeline) -> list[str]:
    """One chart per client latency over time, its run-wide percentiles in the note."""
    latencies = as_map(as_map(report.get("summary")).get("latenciesMs"))
    out = []
    for key, what, why in CLIENT_LATENCIES:
        figures = as_map(latencies.get(key))
        counted = f" Over the run ({fmt_count(figures.get('count'))}): {_percentiles_text(figures)}." if figures else ""
        out.append(
            _section(what[0].upper() + what[1:], percentile_chart(timeline, key, what, name_axis=False), why + counted)
        )
    return out


def _queue_section(summary: Mapping[str, Any]) -> str:
    """Time to match per queue: p50, p95, p99 and max side by side, and as a table."""
    queues = {str(q): as_map(f) for q, f in as_map(summary.get("timeToMatchByQueueMs")).items()}
    keys = ("p50", "p95", "p99", "max")
    scale, unit = unit_for(max((num(f.get(k)) or 0.0 for f in queues.values() for k in keys), default=0.0))
    series = [
        Series(
            key, color, [None if num(f.get(key)) is None else (num(f.get(key)) or 0.0) / scale for f in queues.values()]
        )
        for key, color in zip(keys, (BLUE, ORANGE, VERMILION, GREY), strict=True)
    ]
    chart = grouped_bar_chart(
        "Time to match by queue", list(queues), series, x_label="queue", y_label=f"time to match ({unit})",
        empty="Nobody was matched" if queues or "timeToMatchByQueueMs" in summary else "Not measured in this run",
    )  # fmt: skip
    head = "".join(f"<th>{h}</th>" for h in ("queue", "players matched", *keys))
    rows = "".join(
        f'<tr><td>{esc(q)}</td><td class="num">{fmt_count(f.get("count"))}</td>'
        + "".join(f'<td class="num">{fmt_ms(f.get(k))}</td>' for k in keys)
        + "</tr>"
        for q, f in queues.items()
    )
    table = f'<table class="queues"><tr>{head}</tr>{rows}</table>' if queues else ""
    note = "How long each queue's players waited for a match, from sending the ticket to knowing the server."
    return _section("Time to match by queue", chart + table, note)


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
    les = [num(b) for b in (bounds[:-1] if overflow else bounds)]
    numbers = [num(c) or 0.0 for c in counts]
    sizes = (len(les) + 1,) if overflow else (len(les), len(les) + 1)
    if any(b is None for b in les) or len(numbers) not in sizes:
        return [], []
    labels = [f"≤{tick_label(b)}" for b in les if b is not None]
    if len(numbers) == len(les) + 1:
        labels.append(f">{tick_label(les[-1] or 0.0)}" if les else "all")
    return labels, numbers


def _quality_sections(report: Mapping[str, Any]) -> list[str]:
    quality = as_map(report.get("quality"))
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
            f'<tr><td class="num">{esc(fmt_seconds(e.get("t")))}</td><td>{esc(words(e.get("kind")))}</td>'
            f"<td>{esc(words(e.get('message')))}</td></tr>"
            for e in errors
        )
        table = (
            f'<p class="note">The first {len(errors):,} errors.</p>'
            f'<table class="errors"><tr><th>t</th><th>kind</th><th>message</th></tr>{rows}</table>'
        )
    else:
        table = ""
    return _section("Failures", failures + table, "Players who did not get to play, by what went wrong.")


def _beside(first: str, second: str) -> list[str]:
    """Two sections side by side on a wide screen (one under the other on a narrow one)."""
    return ['<div class="grid2">', first, second, "</div>"] if second else [first]


def render_html(report: Mapping[str, Any]) -> str:
    """One self-contained HTML page: summary, charts (inline SVG) and the first errors."""
    scenario, summary = as_map(report.get("scenario")), as_map(report.get("summary"))
    name = str(scenario.get("name") or "load test")
    timeline = Timeline.of(report)
    subtitle = " · ".join(
        part
        for part in (
            f"target {esc(scenario['target'])}" if scenario.get("target") else "",
            f"started {esc(scenario['startedAt'])}" if scenario.get("startedAt") else "",
            f"ran for {fmt_seconds(scenario.get('seconds'))}" if num(scenario.get("seconds")) is not None else "",
        )
        if part
    )
    body = [
        f"<h1>fleetmatch load test: {esc(name)}</h1>",
        f'<p class="sub">{subtitle}</p>',
        banner_html(report),
        _cards(report),
        *_beside(_section("Summary", _summary_table(report)), comparison_html(report)),
        *_timeline_sections(timeline),
        _queue_section(summary),
        feature_html(summary.get("features")),
        _estimate_section(summary),
        '<div class="grid2">',
        *_latency_sections(report, timeline),
        *_quality_sections(report),
        "</div>",
        _errors_section(report, summary),
        "<footer>Written by fleetmatch loadtest. The figures are in report.json next to this page.</footer>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>fleetmatch load test: {esc(name)}</title>\n<style>{CSS}{HEADLINE_CSS}</style>\n</head>\n"
        "<body>\n<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )


# -- the summary and the files -------------------------------------------------------------------


def _line(label: str, text: str) -> str:
    return f"  {label:<16} {text}"


def summary_text(report: Mapping[str, Any]) -> str:
    """The lines printed when the run ends: the verdict first, the figures, then any comparison."""
    scenario, summary = as_map(report.get("scenario")), as_map(report.get("summary"))
    ttm, alloc = as_map(summary.get("timeToMatchMs")), as_map(summary.get("allocationMs"))
    players = summary.get("players")
    lines = [
        *verdict_lines(report),
        f"load test {words(scenario.get('name'))} against {words(scenario.get('target'))}: {fmt_count(players)} "
        f"players (planned {fmt_count(scenario.get('playersPlanned'))}) in {fmt_seconds(scenario.get('seconds'))}",
        _line("played", fmt_count(summary.get("played")) + fmt_percent(summary.get("played"), players)),
        _line(
            "failed",
            f"{fmt_count(summary.get('failed'))}{fmt_percent(summary.get('failed'), players)}: "
            + _failures_text(summary),
        ),
        _line(
            "tickets",
            f"{fmt_count(summary.get('ticketsCreated'))} created, {fmt_count(summary.get('ticketsMatched'))} matched",
        ),
        _line("time to match", f"{_percentiles_text(ttm)} (over {fmt_count(ttm.get('count'))})"),
    ]
    for queue, figures in as_map(summary.get("timeToMatchByQueueMs")).items():
        queued = as_map(figures)
        lines.append(_line(f"  queue {queue}", f"{_percentiles_text(queued)} (over {fmt_count(queued.get('count'))})"))
    if isinstance(summary.get("waitEstimate"), Mapping):
        lines.append(_line("wait estimate", wait_estimate_text(summary["waitEstimate"])))
    latencies = as_map(summary.get("latenciesMs"))
    for key, what, _ in CLIENT_LATENCIES:
        if isinstance(latencies.get(key), Mapping):
            lines.append(_line(what, _percentiles_text(latencies[key])))
    lines += [_line(label, text) for label, text in feature_lines(summary.get("features"))]
    if alloc:
        lines.append(_line("allocation", _percentiles_text(alloc)))
    if isinstance(summary.get("readyBuffer"), Mapping):
        lines.append(_line("ready buffer", _buffer_text(summary["readyBuffer"])))
    return "\n".join(lines + comparison_lines(report))


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
