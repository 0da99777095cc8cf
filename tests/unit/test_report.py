"""The load test's report rendering: report.html is one self-contained page with a chart per section,
escapes what it quotes and copes with missing data; report.json is strict JSON; the printed summary
carries the key figures. Pure: a synthetic report shaped like ``loadtest.runner.build_report``'s."""

from __future__ import annotations

import copy
import html
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from loadtest.report import (
    HTML_NAME,
    JSON_NAME,
    histogram_bars,
    render_html,
    summary_text,
    write_reports,
)
from loadtest.timeline import MAX_POINTS, Timeline
from loadtest.verdict import DEFAULT_THRESHOLDS, judge, previous_of

FAILURE_KINDS = ("auth", "match-timeout", "no-capacity", "udp-no-answer", "rejected-token", "server-error", "other")
SECTIONS = (
    "Time to match",
    "Arrivals vs matches",
    "Ready buffer vs allocated servers",
    "Players by phase",
    "Skill spread",
    "Worst latency",
    "Longest wait",
    "Failures",
)
BLUE, ORANGE, GREEN, PURPLE, VERMILION = "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#d55e00"


def _row(t: int, seconds: int) -> dict[str, Any]:
    """One second of a 100-player run: arrivals first, matches a second later, TTM only when matched."""
    arriving = t < seconds // 2
    matched = 1 <= t <= seconds // 2
    return {
        "t": t,
        "arrivals": 5 if arriving else 0,
        "matchedPlayers": 2 if matched else 0,
        "phases": {
            "queued": 3 if arriving else 0,
            "matched": 0,
            "connected": 1 if matched else 0,
            "playing": 8 if matched else 0,
            "done": 4 * t,
            "failed": 2 if t >= seconds - 2 else 0,
        },
        "ttmP50Ms": 300.0 + 10 * t if matched else None,
        "ttmP95Ms": 1500.0 + 100 * t if matched else None,
        "ttmP99Ms": 2500.0 + 200 * t if matched else None,
        "ready": 4.0 - (1.0 if 5 <= t < 8 else 0.0),
        "allocated": float(min(t, 9)) if matched else 0.0,
    }


def report_doc(seconds: int = 30) -> dict[str, Any]:
    """A report as ``build_report`` writes it (the shape of a real smoke run's report.json)."""
    return {
        "scenario": {
            "name": "smoke",
            "file": "/repo/loadtest/scenarios/smoke.yaml",
            "target": "http://127.0.0.1:33737",
            "startedAt": "2026-11-26T23:33:32.865Z",
            "seconds": 48.385,
            "playersPlanned": 100,
            "hardStopSeconds": 55.0,
            "matchTimeoutSeconds": 30.0,
            "seed": 1,
            "runId": "5abed749",
        },
        "summary": {
            "players": 100,
            "played": 98,
            "failed": 2,
            "connected": 98,
            "unfinished": 0,
            "failures": {kind: 2 if kind == "match-timeout" else 0 for kind in FAILURE_KINDS},
            "ticketsCreated": 67,
            "ticketsMatched": 65,
            "timeToMatchMs": {"count": 98, "p50": 1216.511, "p95": 10133.503, "p99": 10502.143, "max": 15028.52},
            "allocationMs": {"p50": 2.964, "p99": 4.959, "count": 19},
            "readyBuffer": {"start": 4.0, "min": 3.0, "minAt": 5.025, "refillSeconds": 1.0},
            "serverTickets": {
                "created": 67,
                "matched": 65,
                "cancelled": 2,
                "expired": 0,
                "queued": 0,
                "missing": 0,
                "unchecked": 0,
                "clientMatched": 65,
                "matches": 19,
                "consistent": True,
                "problems": [],
            },
            "latenciesMs": {"udpJoin": {"count": 98, "p50": 0.911, "p95": 3.245, "p99": 8.319, "max": 9.627}},
            "ticketEvents": {"cancelled": 2, "created": 67, "matched": 65},
            "allocationFailures": {},
            "metricsGaps": [],
            "errorsDropped": 0,
        },
        "timeline": [_row(t, seconds) for t in range(seconds)],
        "quality": {
            "skillSpread": {
                "le": [0.0, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 400.0, 800.0, "+Inf"],
                "counts": [0, 0, 1, 5, 5, 3, 3, 2, 0, 0],
            },
            "worstLatencyMs": {
                "le": [10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 150.0, 200.0, 300.0, "+Inf"],
                "counts": [11, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            },
            "longestWaitSeconds": {
                "le": [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, "+Inf"],
                "counts": [0, 1, 5, 6, 3, 4, 0, 0, 0, 0, 1],
            },
        },
        "errors": [
            {"t": 44.875, "kind": "match-timeout", "message": "lt-5abed749-51-0: not matched within 30s"},
            {"t": 48.363, "kind": "match-timeout", "message": "lt-5abed749-66-0: not matched within 30s"},
        ],
    }


def sections(page: str) -> dict[str, str]:
    """Each ``<section>``'s body by its heading."""
    found = dict(re.findall(r"<section><h2>(.*?)</h2>(.*?)</section>", page, re.S))
    assert found, "no section in the page"
    return found


def svgs(fragment: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", fragment, re.S)


def polylines(svg: str, color: str) -> list[list[tuple[float, float]]]:
    """The points of every line drawn in ``color``."""
    out = []
    for points in re.findall(rf'<polyline class="line" points="([^"]*)" stroke="{color}"', svg):
        out.append([(float(x), float(y)) for x, y in (p.split(",") for p in points.split())])
    return out


def bar_titles(svg: str) -> dict[str, str]:
    """``label -> count`` from the bars' tooltips."""
    found = re.findall(r"<rect [^>]*><title>(.*?): ([\d,]+)</title></rect>", svg)
    return {html.unescape(label): count for label, count in found}


# -- the page --------------------------------------------------------------------------------------


def test_page_is_self_contained() -> None:
    doc = report_doc()
    doc["errors"].append({"t": 1.0, "kind": "other", "message": "GET https://example.com/x failed"})
    page = render_html(doc).lower()
    for reference in ("http:", "https:", "://", "src=", "href=", "@import", "url(", "<script", "<link", "<img"):
        assert reference not in page, reference
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "<style>" in page and 'charset="utf-8"' in page
    # The target is still shown, only its "://" encoded (a browser shows it unchanged).
    assert "http&#58;//127.0.0.1:33737" in page


def test_one_chart_per_section() -> None:
    found = sections(render_html(report_doc()))
    assert set(SECTIONS) <= set(found)
    for title in SECTIONS:
        charts = svgs(found[title])
        assert len(charts) == 1, title
        assert 'class="empty"' not in charts[0], f"{title}: drawn as empty although it has data"


def test_time_to_match_chart() -> None:
    chart = svgs(sections(render_html(report_doc()))["Time to match"])[0]
    assert "<title>Time to match over time</title>" in chart
    p50, p95, p99 = polylines(chart, BLUE), polylines(chart, ORANGE), polylines(chart, VERMILION)
    assert len(p50) == 1 and len(p95) == 1 and len(p99) == 1
    # p99 is a wide pale band drawn first, p95 and p50 on top of it: p95 shows where the two are equal.
    assert re.search(r'stroke="#d55e00" style="stroke-width:7px;stroke-opacity:0.4"', chart)
    assert chart.index(f'stroke="{VERMILION}"') < chart.index(f'stroke="{ORANGE}"') < chart.index(f'stroke="{BLUE}"')
    # Matched from second 1 to 15: one point per second, no point where nobody was matched.
    assert len(p50[0]) == 15
    # Higher percentiles are drawn higher (smaller y) at every point.
    assert all(a[1] > b[1] for a, b in zip(p50[0], p95[0], strict=True))
    # Up to 5.5 s: milliseconds on the axis.
    assert "time to match (milliseconds)" in chart and ">6,000<" in chart


def test_time_to_match_axis_turns_to_seconds() -> None:
    doc = report_doc()
    doc["timeline"][3]["ttmP99Ms"] = 42_000.0
    chart = svgs(sections(render_html(doc))["Time to match"])[0]
    assert "time to match (seconds)" in chart and ">50<" in chart and ">50,000<" not in chart


def test_arrivals_and_fleet_charts() -> None:
    found = sections(render_html(report_doc()))
    flow = svgs(found["Arrivals vs matches"])[0]
    arrivals, matches = polylines(flow, BLUE), polylines(flow, GREEN)
    assert len(arrivals) == 1 and len(arrivals[0]) == 30 and len(matches) == 1
    # The collector counts players matched (not matches): the legend must say so.
    assert "players arriving" in flow and "players matched" in flow and "matches formed" not in flow
    fleet = svgs(found["Ready buffer vs allocated servers"])[0]
    ready, allocated = polylines(fleet, GREEN), polylines(fleet, PURPLE)
    assert len(ready) == 1 and len(allocated) == 1
    assert ">Ready<" in fleet and ">Allocated<" in fleet
    # The axis reaches the highest value (9 allocated) without clipping it: every point inside the plot.
    assert ">10<" in fleet
    assert all(34 <= y <= 260 - 46 for _, y in allocated[0] + ready[0])


def test_a_null_breaks_the_line_instead_of_dropping_to_zero() -> None:
    doc = report_doc()
    for row in doc["timeline"][10:13]:
        row["ready"] = None
    fleet = svgs(sections(render_html(doc))["Ready buffer vs allocated servers"])[0]
    runs = polylines(fleet, GREEN)
    assert [len(run) for run in runs] == [10, 17]


def test_quality_histograms_use_the_collectors_inf_bound() -> None:
    found = sections(render_html(report_doc()))
    spread = bar_titles(svgs(found["Skill spread"])[0])
    assert spread["≤25"] == "5" and spread["≤10"] == "1" and spread[">800"] == "0"
    assert len(spread) == 10
    wait = bar_titles(svgs(found["Longest wait"])[0])
    assert wait[">300"] == "1" and wait["≤0.5"] == "0"
    assert "19 matches." in found["Skill spread"] and "11 matches." in found["Worst latency"]


def tick_labels(svg: str) -> list[str]:
    """The y axis' tick labels, bottom up."""
    return re.findall(r'<text class="tick" x="[\d.]+" y="[\d.]+" text-anchor="end">([^<]*)</text>', svg)


def test_counts_get_whole_number_ticks() -> None:
    found = sections(render_html(report_doc()))
    # 11 matches at most: 0, 2, ..., 12, not 0, 2.5, ..., 12.5 matches.
    assert tick_labels(svgs(found["Worst latency"])[0]) == ["0", "2", "4", "6", "8", "10", "12"]
    # Time is not a count: a time to match axis may step by 2.5 s.
    doc = report_doc()
    for row in doc["timeline"]:
        if row["ttmP99Ms"] is not None:
            row["ttmP99Ms"] = 11_000.0
    assert tick_labels(svgs(sections(render_html(doc))["Time to match"])[0])[-1] == "12.5"


@pytest.mark.parametrize(
    ("histogram", "expected"),
    [
        ({"le": [1.0, 2.0, "+Inf"], "counts": [3, 0, 1]}, (["≤1", "≤2", ">2"], [3.0, 0.0, 1.0])),
        ({"le": [1.0, 2.0, math.inf], "counts": [3, 0, 1]}, (["≤1", "≤2", ">2"], [3.0, 0.0, 1.0])),
        ({"le": [1.0, 2.0], "counts": [3, 0, 1]}, (["≤1", "≤2", ">2"], [3.0, 0.0, 1.0])),
        ({"le": [0.5, 2.5], "counts": [3, 4]}, (["≤0.5", "≤2.5"], [3.0, 4.0])),
        ({"le": ["+Inf"], "counts": [7]}, (["all"], [7.0])),
        ({"le": [1.0, "+Inf"], "counts": [3]}, ([], [])),
        ({"le": [1.0, "many"], "counts": [3, 4]}, ([], [])),
        ({"le": [], "counts": []}, ([], [])),
        ({"le": [1.0], "counts": [1, 2, 3]}, ([], [])),
        (None, ([], [])),
        ("12", ([], [])),
    ],
)
def test_histogram_bars(histogram: Any, expected: tuple[list[str], list[float]]) -> None:
    assert histogram_bars(histogram) == expected


def test_failures_chart_and_error_table() -> None:
    doc = report_doc()
    doc["summary"]["failures"]["no-capacity"] = 5
    doc["summary"]["failures"]["reconcile"] = 1  # a kind the page does not know is still shown
    found = sections(render_html(doc))
    chart = svgs(found["Failures"])[0]
    bars = bar_titles(chart)
    assert list(bars) == [*FAILURE_KINDS, "reconcile"]
    assert bars["match-timeout"] == "2" and bars["no-capacity"] == "5" and bars["reconcile"] == "1"
    widths = {kind: float(width) for width, kind in re.findall(r'width="([\d.]+)" [^>]*><title>([^:<]+):', chart)}
    assert widths["no-capacity"] > widths["match-timeout"] > widths["auth"] == 0.0
    assert "The first 2 errors." in found["Failures"]
    assert "lt-5abed749-66-0: not matched within 30s" in found["Failures"]


def test_summary_and_cards() -> None:
    page = render_html(report_doc())
    summary = sections(page)["Summary"]
    assert "p50 1.22 s · p95 10.1 s · p99 10.5 s · max 15.0 s (over 98)" in summary
    assert "p50 3 ms · p99 5 ms" in summary
    assert "4 Ready at the start, lowest 3 at 5.03 s, refilled after 1.00 s" in summary
    assert "match-timeout 2" in summary and "100 / 100" in summary and "67 / 65" in summary
    assert re.search(
        r"tickets read back</th><td[^>]*>67 created: 65 matched, 2 cancelled, 0 expired, 0 queued, 0 missing, "
        r"0 unchecked<",
        summary,
    )
    assert re.search(r"matches</th><td[^>]*>19 \(65 tickets matched as the players saw it\)<", summary)
    assert re.search(r"reconciliation</th><td[^>]*>consistent<", summary)
    assert re.search(r"problems</th><td[^>]*>none<", summary)
    assert '<div class="card bad"><b>2</b><span>failed (2%)</span></div>' in page


def test_no_failures_is_not_drawn_as_bad() -> None:
    doc = report_doc()
    doc["summary"].update(failed=0, failures=dict.fromkeys(FAILURE_KINDS, 0))
    doc["errors"] = []
    page = render_html(doc)
    failures = sections(page)["Failures"]
    assert "No failures" in failures and "<table" not in failures
    assert "card bad" not in page


def test_html_in_names_and_messages_is_escaped() -> None:
    doc = report_doc()
    doc["scenario"]["name"] = '<script>alert("name")</script>'
    doc["scenario"]["file"] = "a&b.yaml"
    doc["errors"] = [{"t": 1.5, "kind": "<b>kind</b>", "message": '<img src=x onerror="alert(1)"> & more'}]
    doc["summary"]["failures"]["<i>odd</i>"] = 1
    page = render_html(doc)
    assert "<script" not in page and "<img" not in page and "<b>kind" not in page and "<i>odd" not in page
    assert "<title>fleetmatch load test: &lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;</title>" in page
    assert "<h1>fleetmatch load test: &lt;script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; more" in page
    assert "a&amp;b.yaml" in page and "&lt;i&gt;odd&lt;/i&gt;" in page


# -- missing and odd data ---------------------------------------------------------------------------


def _emptied(doc: dict[str, Any]) -> dict[str, Any]:
    doc["timeline"] = []
    doc["quality"] = dict.fromkeys(doc["quality"])
    doc["errors"] = []
    doc["summary"].update(
        players=0, played=0, failed=0, failures={}, allocationMs=None, readyBuffer=None, serverTickets=None
    )
    doc["summary"]["timeToMatchMs"] = {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}
    return doc


def test_a_run_without_data_renders_empty_states() -> None:
    page = render_html(_emptied(report_doc()))
    found = sections(page)
    for title in ("Time to match", "Arrivals vs matches", "Ready buffer vs allocated servers", "Players by phase"):
        (chart,) = svgs(found[title])
        assert 'class="empty"' in chart and "No data yet" in chart and "<polyline" not in chart
    for title in ("Skill spread", "Worst latency", "Longest wait"):
        assert "Not measured in this run" in found[title]
    assert "No failures" in found["Failures"]
    summary = found["Summary"]
    assert "not measured" in summary and "not observed" in summary and "tickets read back" not in summary
    assert "p50 — · p95 — · p99 — · max — (over 0)" in summary


def test_quality_with_no_matches_says_so() -> None:
    doc = report_doc()
    doc["quality"]["skillSpread"]["counts"] = [0] * 10
    assert "No matches yet" in sections(render_html(doc))["Skill spread"]


def test_nobody_matched_leaves_only_the_time_to_match_chart_empty() -> None:
    doc = report_doc()
    for row in doc["timeline"]:
        row.update(ttmP50Ms=None, ttmP95Ms=None, ttmP99Ms=None, matches=0, ready=None, allocated=None)
    found = sections(render_html(doc))
    assert "No data yet" in found["Time to match"]
    assert "No data yet" in found["Ready buffer vs allocated servers"]
    assert "No data yet" not in found["Arrivals vs matches"]
    assert len(polylines(svgs(found["Arrivals vs matches"])[0], BLUE)) == 1


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param({}, id="empty-document"),
        pytest.param(
            {"scenario": None, "summary": None, "timeline": None, "quality": None, "errors": None}, id="nulls"
        ),
        pytest.param({"scenario": "x", "summary": [], "timeline": {}, "quality": 3, "errors": "e"}, id="wrong-types"),
        pytest.param(
            {
                "summary": {"players": math.nan, "failed": "2", "timeToMatchMs": {"p50": math.inf}, "readyBuffer": {}},
                "timeline": [{"t": None}, {"t": 1, "phases": None, "ready": True}, "row", {"t": math.nan}],
                "quality": {"skillSpread": {"le": "0,5", "counts": None}},
                "errors": [None, {"t": "late"}],
            },
            id="malformed-values",
        ),
        pytest.param({"timeline": [{"t": 0, "arrivals": 3}]}, id="one-second"),
        pytest.param(
            {
                "verdict": {"checks": [None, 3, {"name": None, "pass": "yes"}]},
                "previous": {"figures": "x", "pass": "maybe"},
                "summary": {"timeToMatchByQueueMs": {"a": None, "b": {"p50": "x"}}, "latenciesMs": {"udpJoin": 5}},
            },
            id="malformed-verdict-previous-and-latencies",
        ),
    ],
)
def test_missing_or_malformed_data_never_raises(doc: dict[str, Any]) -> None:
    page = render_html(doc)
    found = sections(page)
    assert set(SECTIONS) <= set(found)
    assert all(len(svgs(found[title])) == 1 for title in SECTIONS)
    assert "<h1>fleetmatch load test: load test</h1>" in page
    assert not re.search(r"\b(nan|inf)\b", page, re.IGNORECASE)
    assert '<div class="verdict fail"' in page  # nothing to judge a pass on
    text = summary_text(doc)  # and the printed summary too
    assert text.startswith("FAIL\n") and "None" not in text


def test_one_second_timeline_has_a_usable_axis() -> None:
    chart = svgs(sections(render_html({"timeline": [{"t": 0, "arrivals": 3}]}))["Arrivals vs matches"])[0]
    assert len(polylines(chart, BLUE)) == 1 and "<circle" in chart
    ticks = re.findall(r'<text class="tick" x="[\d.]+" y="[\d.]+" text-anchor="middle">([^<]*)</text>', chart)
    assert ticks == ["0", "1"]  # one second still spans an axis, not a single point at x = 0
    assert "seconds since start" in chart


def test_a_long_run_is_drawn_in_buckets() -> None:
    doc = report_doc(seconds=2000)
    doc["timeline"][700]["ready"] = 0.0  # a dip that bucketing must keep
    doc["timeline"][701]["allocated"] = 250.0  # and a peak
    timeline = Timeline.of(doc)
    assert timeline.bucket == 3 and len(timeline.xs) <= MAX_POINTS
    assert min(v for v in timeline.column("ready", min) if v is not None) == 0.0
    assert max(v for v in timeline.column("allocated", max) if v is not None) == 250.0
    found = sections(render_html(doc))
    assert "Each point covers 3 s" in found["Arrivals vs matches"]
    chart = svgs(found["Ready buffer vs allocated servers"])[0]
    assert "minutes since start" in chart
    (allocated,) = polylines(chart, PURPLE)
    assert len(allocated) <= MAX_POINTS
    assert "<circle" not in chart  # too many points for markers


def test_timeline_rows_are_sorted_by_time() -> None:
    doc = report_doc(seconds=5)
    doc["timeline"].reverse()
    assert Timeline.of(doc).xs == [0.0, 1.0, 2.0, 3.0, 4.0]


# -- the files and the summary --------------------------------------------------------------------


def test_write_reports_writes_strict_json_and_the_page(tmp_path: Path) -> None:
    doc = report_doc()
    doc["summary"]["allocationMs"] = {"p50": math.nan, "p99": math.inf, "count": 0}
    doc["timeline"][2]["ttmP99Ms"] = -math.inf
    out = tmp_path / "run" / "out"
    json_path, html_path = write_reports(doc, out)
    assert (json_path, html_path) == (out / JSON_NAME, out / HTML_NAME)
    assert sorted(p.name for p in out.iterdir()) == sorted([JSON_NAME, HTML_NAME])  # no temporary file left

    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} in report.json")

    written = json.loads(json_path.read_text(encoding="utf-8"), parse_constant=refuse)
    assert written["summary"]["allocationMs"] == {"p50": None, "p99": None, "count": 0}
    assert written["timeline"][2]["ttmP99Ms"] is None
    expected = copy.deepcopy(doc)
    expected["summary"]["allocationMs"] = {"p50": None, "p99": None, "count": 0}
    expected["timeline"][2]["ttmP99Ms"] = None
    assert written == expected
    assert html_path.read_text(encoding="utf-8") == render_html(written)


def test_write_reports_replaces_a_previous_report(tmp_path: Path) -> None:
    write_reports(report_doc(), tmp_path)
    doc = report_doc()
    doc["scenario"]["name"] = "second"
    json_path, html_path = write_reports(doc, tmp_path)
    assert json.loads(json_path.read_text(encoding="utf-8"))["scenario"]["name"] == "second"
    assert "<h1>fleetmatch load test: second</h1>" in html_path.read_text(encoding="utf-8")


def test_summary_text_has_the_key_figures() -> None:
    text = summary_text(report_doc())
    lines = text.splitlines()
    assert lines[0] == "PASS"  # the verdict first
    assert "load test smoke against http://127.0.0.1:33737: 100 players (planned 100) in 48.4 s" in lines
    assert "  played           98 (98%)" in lines
    assert "  failed           2 (2%): match-timeout 2" in lines
    assert "  tickets          67 created, 65 matched" in lines
    assert "  time to match    p50 1.22 s, p95 10.1 s, p99 10.5 s, max 15.0 s (over 98)" in lines
    assert "  UDP join         p50 0.91 ms, p95 3 ms, p99 8 ms, max 10 ms" in lines
    assert "  allocation       p50 3 ms, p99 5 ms" in lines
    assert "  ready buffer     4 Ready at the start, lowest 3 at 5.03 s, refilled after 1.00 s" in lines


def test_summary_text_without_optional_figures() -> None:
    doc = _emptied(report_doc())
    doc["summary"]["readyBuffer"] = {"start": 4, "min": 1, "minAt": None, "refillSeconds": None}
    text = summary_text(doc)
    assert "allocation" not in text
    assert "  ready buffer     4 Ready at the start, lowest 1, not refilled by the end" in text
    assert "  failed           0: none" in text
    assert "  time to match    p50 —, p95 —, p99 —, max — (over 0)" in text


# -- the verdict, per-queue times, client latencies, the comparison -------------------------------


def full_doc() -> dict[str, Any]:
    """``report_doc`` with what the runner now adds: per-queue times, client latencies per second,
    the verdict and the reconciliation's new counts."""
    doc = report_doc()
    doc["summary"]["timeToMatchByQueueMs"] = {
        "4v4": {"count": 80, "p50": 1500.0, "p95": 10200.0, "p99": 10600.0, "max": 15028.52},
        "duel": {"count": 18, "p50": 400.0, "p95": 2100.0, "p99": 2100.0, "max": 2100.0},
    }
    doc["summary"]["latenciesMs"] = {
        "ticketCreate": {"count": 67, "p50": 4.1, "p95": 12.5, "p99": 30.2, "max": 31.0},
        "assignmentPush": {"count": 65, "p50": 0.5, "p95": 3.0, "p99": 9.0, "max": 9.5},
        "udpJoin": {"count": 98, "p50": 0.911, "p95": 3.245, "p99": 8.319, "max": 9.627},
    }
    doc["summary"]["serverTickets"].update(lost=0, mismatches=0, playersInTwoMatches=0, serversAllocatedTwice=0)
    for row in doc["timeline"]:
        for key in ("ticketCreate", "assignmentPush", "udpJoin"):
            value = 3.0 + row["t"] % 5 if row["t"] < 16 else None
            # p95 equal to p99 in every second: few values in a second make it common.
            row.update({f"{key}P50Ms": value, f"{key}P95Ms": value and 2 * value, f"{key}P99Ms": value and 2 * value})
    doc["verdict"] = judge(doc).as_json(DEFAULT_THRESHOLDS)
    return doc


def visible_text(page: str) -> str:
    """What a reader sees: no style sheet, no tags."""
    body = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def test_the_verdict_comes_first() -> None:
    page = render_html(full_doc())
    banner = page.index('<div class="verdict pass" role="status"><strong>PASS</strong>')
    assert banner < page.index('<div class="cards">') < page.index("<section>")
    assert "none of 67 tickets lost" in page and "at most 5% allowed" in page


def test_a_failed_run_says_fail_and_why_in_the_page_and_the_summary() -> None:
    doc = full_doc()
    doc["summary"]["serverTickets"].update(lost=2, consistent=False)
    doc["summary"]["failed"] = 9
    doc["verdict"] = judge(doc).as_json(DEFAULT_THRESHOLDS)
    page = render_html(doc)
    assert '<div class="verdict fail" role="status"><strong>FAIL</strong>' in page
    failed = re.findall(r'<li class="failed"><b>✗ ([^<]*)</b> ([^<]*)</li>', page)
    assert failed == [
        ("tickets lost", "2 of 67 tickets lost"),
        ("failure rate", "9 of 100 players failed (9.0%), at most 5% allowed"),
    ]
    assert '<div class="card bad"><b>2</b><span>tickets lost</span></div>' in page
    lines = summary_text(doc).splitlines()
    assert lines[:4] == [
        "FAIL",
        "  FAIL  tickets lost  2 of 67 tickets lost",
        "  ok    consistency   no player in two matches, no game server given twice, every ticket as told",
        "  FAIL  failure rate  9 of 100 players failed (9.0%), at most 5% allowed",
    ]


def test_a_report_without_a_verdict_is_judged_when_drawn() -> None:
    doc = full_doc()
    del doc["verdict"]
    doc["summary"]["serverTickets"] = None  # an interrupted run: tickets not read back
    assert '<div class="verdict fail"' in render_html(doc)
    assert summary_text(doc).startswith("FAIL\n")


def test_no_python_literals_on_the_page() -> None:
    doc = full_doc()
    doc["scenario"]["file"] = None  # a scenario given as an object, not a file
    doc["summary"]["serverTickets"]["problems"] = []
    doc["errors"].append({"t": 2.0, "kind": None, "message": None})
    text = visible_text(render_html(doc))
    for literal in ("True", "False", "None", "[]", "{}", "nan", "inf"):
        assert not re.search(rf"(?<![\w\[{{]){re.escape(literal)}(?![\w\]}}])", text), literal
    assert re.search(r"scenario file\s+—", text)


def test_time_to_match_by_queue() -> None:
    found = sections(render_html(full_doc()))["Time to match by queue"]
    (chart,) = svgs(found)
    bars = dict(re.findall(r"<title>([^<:]+): ([\d.,]+)</title></rect>", chart))
    assert bars["4v4 p50"] == "1.50" and bars["4v4 p95"] == "10.2" and bars["4v4 max"] == "15.0"
    assert bars["duel p95"] == "2.10" and bars["duel p99"] == "2.10"  # equal, and both drawn
    assert "time to match (seconds)" in chart
    assert re.search(r"<td>4v4</td><td[^>]*>80</td><td[^>]*>1.50 s</td><td[^>]*>10.2 s</td>", found)


def test_queue_times_in_the_printed_summary() -> None:
    lines = summary_text(full_doc()).splitlines()
    assert "    queue 4v4      p50 1.50 s, p95 10.2 s, p99 10.6 s, max 15.0 s (over 80)" in lines
    assert "  assignment push  p50 0.50 ms, p95 3 ms, p99 9 ms, max 10 ms" in lines


@pytest.mark.parametrize("title", ["Ticket create", "Assignment push", "UDP join"])
def test_client_latency_charts_show_p95_above_p99s_band(title: str) -> None:
    found = sections(render_html(full_doc()))[title]
    (chart,) = svgs(found)
    (p95,), (p99,) = polylines(chart, ORANGE), polylines(chart, VERMILION)
    assert p95 == p99  # equal every second here...
    assert chart.index(f'stroke="{VERMILION}"') < chart.index(f'stroke="{ORANGE}"')  # ...and p95 drawn on top
    assert "latency (milliseconds)" in chart and "seconds since start" in chart
    assert "Over the run" in found and "p95" in found


def test_missing_client_latencies_draw_empty_states() -> None:
    found = sections(render_html(report_doc()))  # an older report: no client latencies per second
    for title in ("Ticket create", "Assignment push", "UDP join"):
        assert "No data yet" in found[title]
    assert "Not measured in this run" in found["Time to match by queue"]


def compared() -> dict[str, Any]:
    before = full_doc()
    before["summary"]["timeToMatchMs"]["p95"] = 8000.0
    before["summary"]["failed"] = 4
    doc = full_doc()
    doc["previous"] = previous_of(before, "runs/monday/report.json")
    return doc


def test_the_comparison_in_the_page() -> None:
    page = render_html(compared())
    found = sections(page)["Compared with the previous run"]
    assert "runs/monday/report.json" in found and "(PASS)" in found
    assert re.search(
        r"time to match p95</th><td[^>]*>10.1 s</td><td[^>]*>8.00 s</td><td class=\"num worse\">\+2.13 s \(\+27%\)<",
        found,
    )
    assert re.search(r"failed</th><td[^>]*>2.0%</td><td[^>]*>4.0%</td><td class=\"num better\">-2.0 points<", found)
    assert re.search(r"players arrived</th><td[^>]*>100</td><td[^>]*>100</td><td class=\"num \">no change<", found)
    # The cards carry the previous value too.
    assert '<span>time to match p95</span><small>was 8.00 s, <span class="worse">+2.13 s (+27%)</span>' in page
    # Beside the summary, before any chart.
    assert page.index("<h2>Summary</h2>") < page.index("Compared with the previous run") < page.index("<svg")
    assert "Compared with the previous run" not in render_html(full_doc())


def test_the_comparison_in_the_printed_summary() -> None:
    text = summary_text(compared())
    assert "Previous run: smoke started 2026-11-26T23:33:32.865Z (PASS), from runs/monday/report.json:" in text
    assert re.search(r"\n  time to match p95 +10.1 s  was +8.00 s  \+2.13 s \(\+27%\)\n", text)
    assert text.index("PASS") < text.index("Previous run")
