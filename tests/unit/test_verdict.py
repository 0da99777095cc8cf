"""The verdict on a load test: PASS only with no ticket lost, the server consistent and few enough
players failed, each FAIL with its reason; the headline figures compared with a previous run; and
``--compare`` refusing, in one line, a file that is not a report. Pure: report documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleetmatch.errors import ValidationError
from loadtest.verdict import (
    DEFAULT_THRESHOLDS,
    Thresholds,
    compare,
    judge,
    load_previous,
    previous_of,
    verdict_of,
)
from tests.unit.test_report import report_doc


def tickets(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = report_doc()
    doc["summary"]["serverTickets"].update(lost=0, mismatches=0, playersInTwoMatches=0, serversAllocatedTwice=0)
    doc["summary"]["serverTickets"].update(changes)
    return doc


def failing(doc: dict[str, Any], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> dict[str, str]:
    """The failed checks' details by name."""
    return {c.name: c.detail for c in judge(doc, thresholds).checks if not c.passed}


def test_a_clean_run_passes_and_says_what_was_checked() -> None:
    verdict = judge(tickets())
    assert verdict.passed
    assert [c.name for c in verdict.checks] == ["tickets lost", "consistency", "failure rate"]
    assert verdict.reasons == [
        "none of 67 tickets lost",
        "no player in two matches, no game server given twice, every ticket as told",
        "2 of 100 players failed (2.0%), at most 5% allowed",
    ]


@pytest.mark.parametrize(
    ("changes", "check", "detail"),
    [
        pytest.param({"lost": 2, "consistent": False}, "tickets lost", "2 of 67 tickets lost", id="lost"),
        pytest.param({"unchecked": 3}, "tickets lost", "3 could not be read back", id="unchecked"),
        pytest.param(
            {"playersInTwoMatches": 1, "consistent": False}, "consistency", "1 player in two matches", id="player-twice"
        ),
        pytest.param(
            {"serversAllocatedTwice": 2, "consistent": False},
            "consistency",
            "2 game servers given to two matches at once",
            id="server-twice",
        ),
        pytest.param(
            {"mismatches": 1, "consistent": False}, "consistency", "1 ticket not as their players were told", id="told"
        ),
    ],
)
def test_lost_or_inconsistent_tickets_fail(changes: dict[str, Any], check: str, detail: str) -> None:
    failed = failing(tickets(**changes))
    assert list(failed) == [check]
    assert failed[check].startswith(detail)


def test_a_player_neither_played_nor_failed_is_a_lost_outcome() -> None:
    doc = tickets()
    doc["summary"]["unfinished"] = 1  # a party that did not stop in time after the hard stop
    assert failing(doc) == {"tickets lost": "1 player neither played nor failed"}


def test_tickets_not_read_back_fail_both_ticket_checks() -> None:
    doc = tickets()
    doc["summary"]["serverTickets"] = None  # interrupted, or reading them back failed
    failed = failing(doc)
    assert set(failed) == {"tickets lost", "consistency"}
    assert "not read back" in failed["tickets lost"]


def test_a_report_from_before_lost_was_counted_still_judges_lost_tickets() -> None:
    doc = report_doc()
    doc["summary"]["serverTickets"].update(missing=1, queued=1, consistent=False)
    assert failing(doc) == {"tickets lost": "2 of 67 tickets lost"}


@pytest.mark.parametrize(
    ("failed", "limit", "passed"),
    [(5, 0.05, True), (6, 0.05, False), (6, 0.10, True), (0, 0.0, True), (1, 0.0, False)],
)
def test_the_failure_rate_threshold(failed: int, limit: float, passed: bool) -> None:
    doc = tickets()
    doc["summary"]["failed"] = failed
    verdict = judge(doc, Thresholds(max_failure_rate=limit))
    assert verdict.passed is passed
    rate = next(c for c in verdict.checks if c.name == "failure rate")
    assert rate.detail == f"{failed} of 100 players failed ({failed:.1f}%), at most {100 * limit:g}% allowed"


def test_no_player_is_a_failure() -> None:
    doc = tickets()
    doc["summary"].update(players=0, failed=0)
    assert failing(doc) == {"failure rate": "no player arrived"}


def test_time_to_match_p95_is_judged_only_when_asked() -> None:
    doc = tickets()  # p95 10.1 s
    assert "time to match p95" not in {c.name for c in judge(doc).checks}
    assert failing(doc, Thresholds(max_ttm_p95_ms=5_000)) == {
        "time to match p95": "time to match p95 10.13 s, at most 5 s allowed"
    }
    assert judge(doc, Thresholds(max_ttm_p95_ms=20_000)).passed


def test_the_verdict_written_in_the_report_wins() -> None:
    doc = tickets()
    doc["verdict"] = judge(doc, Thresholds(max_failure_rate=0.01)).as_json(Thresholds(max_failure_rate=0.01))
    assert doc["verdict"]["pass"] is False and doc["verdict"]["thresholds"]["maxFailureRate"] == 0.01
    assert not verdict_of(doc).passed  # not judged again with the default 5%
    del doc["verdict"]
    assert verdict_of(doc).passed


# -- the comparison --------------------------------------------------------------------------------


def test_headline_figures_are_compared_with_the_previous_run() -> None:
    before = tickets()
    before["summary"]["timeToMatchMs"]["p95"] = 8000.0
    before["summary"]["failed"] = 4
    now = tickets()
    now["previous"] = previous_of(before, "old/report.json")
    deltas = {d.figure.key: d for d in compare(now)}
    p95 = deltas["ttmP95"]
    assert (p95.now, p95.before) == (10133.503, 8000.0)
    assert p95.relative == pytest.approx(0.2667, abs=1e-4) and p95.better is False
    failed = deltas["failureRate"]
    assert (failed.now, failed.before, failed.better) == (2.0, 4.0, True)
    assert deltas["players"].change == 0 and deltas["players"].better is None
    assert deltas["allocationP95"].change is None  # not measured in either run
    assert compare(tickets()) == []


def test_load_previous_reads_a_report(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    doc = tickets()
    doc["verdict"] = judge(doc).as_json(DEFAULT_THRESHOLDS)
    path.write_text(json.dumps(doc))
    previous = load_previous(path)
    assert previous["file"] == str(path) and previous["name"] == "smoke" and previous["pass"] is True
    assert previous["figures"]["ttmP95"] == 10133.503


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "cannot read", id="missing"),
        pytest.param("<html>", "is not JSON", id="not-json"),
        pytest.param('{"redis_url": "redis://x"}', "is not a load test report", id="another-json"),
        pytest.param("[1, 2]", "is not a load test report", id="a-list"),
        pytest.param('{"scenario": {}, "summary": {"players": 3}}', "is not a load test report", id="no-figures"),
    ],
)
def test_load_previous_refuses_what_is_not_a_report(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "previous.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValidationError) as caught:
        load_previous(path)
    assert caught.value.field == "--compare" and message in str(caught.value)
    assert "\n" not in str(caught.value)
