"""The live view shows what a load tester watches: players by phase, arrival rate, time-to-match
percentiles, Ready/Allocated servers and failures; off a terminal, one log line with the same."""

from __future__ import annotations

import io

from rich.console import Console

from loadtest.collect import Collector, LiveFigures
from loadtest.view import LiveView

FIGURES = LiveFigures(
    elapsed=42.0,
    players=180,
    phases={"queued": 31, "matched": 4, "connected": 2, "playing": 96, "done": 40, "failed": 7},
    arrival_rate=12.5,
    ttm_ms=(812.0, 4210.0, 9876.0),
    ready=3.0,
    allocated=17.0,
    failures={"no-capacity": 5, "udp-no-answer": 2},
    tickets_created=120,
    tickets_matched=88,
    open_gaps=1,
)


def view() -> LiveView:
    return LiveView(Collector(start=0.0), title="fleetmatch loadtest smoke", planned=200, hard_stop=55, enabled=True)


def test_the_terminal_view_shows_every_figure() -> None:
    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(view().render(FIGURES))
    text = out.getvalue()
    for expected in ("42s / hard stop 55s", "players 180/200", "arriving 12.5/s", "812 ms", "4,210 ms", "9,876 ms"):
        assert expected in text, (expected, text)
    for phase, count in FIGURES.phases.items():
        assert phase in text and str(count) in text
    assert "no-capacity 5, udp-no-answer 2" in text
    assert "1 endpoint(s) not answering" in text


def test_the_log_line_carries_the_same_figures() -> None:
    line = view().line(FIGURES)
    assert line.startswith("42s players=180/200 queued=31 matched=4 connected=2 playing=96 done=40 failed=7")
    assert "rate=12.5/s ttm_p50=812ms ttm_p95=4,210ms ttm_p99=9,876ms ready=3 allocated=17" in line
    assert line.endswith("failures=no-capacity=5,udp-no-answer=2")


def test_no_scrape_yet_shows_dashes() -> None:
    empty = LiveFigures(0.0, 0, {}, 0.0, (None, None, None), None, None, {}, 0, 0, 0)
    assert "ttm_p50=-ms ttm_p95=-ms ttm_p99=-ms ready=- allocated=- failures=0" in view().line(empty)
