"""The verdict on a load test (PASS or FAIL, with the reasons), and its headline figures beside a
previous run's.

Why a verdict: a report of twenty figures does not say whether the run went well; a CI job and a
person in a hurry both need one word first, and the reasons. A run **passes** when:

- **no ticket was lost**: every ticket the players opened was read back from the server and
  ended matched, cancelled or expired (``summary.serverTickets``: ``lost`` 0, ``unchecked`` 0),
  and every player ended played or failed with a reason (``summary.unfinished`` 0);
- **the server stayed consistent**: no player in two matches, no game server given to two
  matches at once, every ticket in the state and match its players were told;
- **few enough players failed**: failed players at most ``max_failure_rate`` of those who arrived
  (a few ``match-timeout`` are normal: the odd player out of a queue once arrivals stop); players
  who declined or ignored a ready check because the scenario told them to are left out of both;
- **the features held** (``loadtest.features``): every match of a queue the scenario describes was
  full and role-complete, nobody played a role they did not offer, and the ready checks the
  players lived are the ones the matchmaker counted;
- optionally, time to match p95 at most ``max_ttm_p95_ms``.

Pure: it reads a report document (``loadtest.runner.build_report``) and returns data, so the same
judgement renders in ``report.html``, the printed summary and the exit status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetmatch.errors import ValidationError
from loadtest.charts import as_map, num
from loadtest.features import problems
from loadtest.players import CHOSEN_FAILURES

DEFAULT_MAX_FAILURE_RATE = 0.05
"""Failed players allowed, as a fraction of those who arrived: ``smoke`` fails about 2% by design."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """What a run may get away with and still pass."""

    max_failure_rate: float = DEFAULT_MAX_FAILURE_RATE
    """Failed players / arrived players, at most (0.05: 5%)."""
    max_ttm_p95_ms: float | None = None
    """Time to match p95 at most this (milliseconds); None: not judged."""

    def as_json(self) -> dict[str, Any]:
        return {"maxFailureRate": self.max_failure_rate, "maxTimeToMatchP95Ms": self.max_ttm_p95_ms}


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    detail: str


def _many(count: float, noun: str) -> str:
    return f"{count:,.0f} {noun}{'' if count == 1 else 's'}"


def lost_tickets(tickets: Any) -> float | None:
    """``serverTickets.lost`` (a report from before it was counted: missing plus still queued)."""
    if not isinstance(tickets, Mapping):
        return None
    lost = num(tickets.get("lost"))
    return lost if lost is not None else (num(tickets.get("missing")) or 0) + (num(tickets.get("queued")) or 0)


def _tickets_lost(summary: Mapping[str, Any]) -> Check:
    tickets = summary.get("serverTickets")
    if not isinstance(tickets, Mapping):
        return Check(
            "tickets lost", False, "the tickets were not read back from the server (interrupted, or it failed)"
        )
    created = num(tickets.get("created")) or 0
    lost = lost_tickets(tickets) or 0
    unchecked = num(tickets.get("unchecked")) or 0
    unfinished = num(summary.get("unfinished")) or 0  # a party stuck past the hard stop: its outcome unknown
    if lost or unchecked or unfinished:
        parts = [f"{lost:,.0f} of {created:,.0f} tickets lost"] if lost else []
        parts += [f"{unchecked:,.0f} could not be read back"] if unchecked else []
        parts += [f"{_many(unfinished, 'player')} neither played nor failed"] if unfinished else []
        return Check("tickets lost", False, ", ".join(parts))
    return Check("tickets lost", True, f"none of {created:,.0f} tickets lost")


def _consistency(summary: Mapping[str, Any]) -> Check:
    tickets = summary.get("serverTickets")
    if not isinstance(tickets, Mapping):
        return Check("consistency", False, "not checked: the tickets were not read back")
    twice = num(tickets.get("playersInTwoMatches")) or 0
    servers = num(tickets.get("serversAllocatedTwice")) or 0
    mismatches = num(tickets.get("mismatches"))
    if mismatches is None:  # a report from before mismatches were counted: any problem but a lost ticket
        mismatches = 0 if tickets.get("consistent") or _tickets_lost(summary).passed is False else 1
    if twice or servers or mismatches:
        parts = [f"{_many(twice, 'player')} in two matches"] if twice else []
        parts += [f"{_many(servers, 'game server')} given to two matches at once"] if servers else []
        parts += [f"{_many(mismatches, 'ticket')} not as their players were told"] if mismatches else []
        return Check("consistency", False, ", ".join(parts) + " (serverTickets.problems names them)")
    return Check("consistency", True, "no player in two matches, no game server given twice, every ticket as told")


def _failure_rate(summary: Mapping[str, Any], limit: float) -> Check:
    players, failed = num(summary.get("players")) or 0, num(summary.get("failed")) or 0
    # Players the scenario told to decline or ignore ready checks are not meant to play, whatever
    # became of them (declined, or timed out before a match was put to them): left out.
    ready = as_map(as_map(summary.get("features")).get("acceptance"))
    if ready:
        told, told_failed = num(ready.get("playersToldNotToAccept")) or 0, num(ready.get("failedOfThose")) or 0
    else:
        failures = as_map(summary.get("failures"))
        told = told_failed = sum(num(failures.get(str(kind))) or 0 for kind in CHOSEN_FAILURES)
    players, failed = players - told, failed - told_failed
    if not players:
        return Check("failure rate", False, "no player arrived" if not told else "every player was told to decline")
    rate = failed / players
    detail = f"{failed:,.0f} of {players:,.0f} players failed ({100 * rate:.1f}%), at most {100 * limit:g}% allowed"
    if told:
        detail += f"; {told:,.0f} more were told to decline or ignore a ready check (left out)"
    return Check("failure rate", rate <= limit, detail)


def _features(summary: Mapping[str, Any]) -> Check | None:
    """None when the run exercised no feature the check looks at."""
    figures = as_map(summary.get("features"))
    described = figures.get("acceptance") or any("expected" in q for q in as_map(figures.get("matches")).values())
    if not described:
        return None
    found = problems(figures)
    if found:
        return Check("features", False, "; ".join(found))
    said = ["every match as the scenario describes it (full, every role slot filled)"]
    if figures.get("acceptance"):
        said.append("the ready checks as the matchmaker counted them")
    return Check("features", True, "; ".join(said))


def _ttm_p95(summary: Mapping[str, Any], limit: float) -> Check:
    p95 = num(as_map(summary.get("timeToMatchMs")).get("p95"))
    if p95 is None:
        return Check("time to match p95", False, "nobody was matched")
    detail = f"time to match p95 {p95 / 1000:.2f} s, at most {limit / 1000:g} s allowed"
    return Check("time to match p95", p95 <= limit, detail)


@dataclass(frozen=True, slots=True)
class Verdict:
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        """What failed (FAIL), else what was checked."""
        return [c.detail for c in self.checks if not c.passed] or [c.detail for c in self.checks]

    def as_json(self, thresholds: Thresholds) -> dict[str, Any]:
        return {
            "pass": self.passed,
            "checks": [{"name": c.name, "pass": c.passed, "detail": c.detail} for c in self.checks],
            "thresholds": thresholds.as_json(),
        }

    @classmethod
    def from_json(cls, doc: Any) -> Verdict | None:
        """The verdict a report carries (None if it has none, or a malformed one)."""
        checks = as_map(doc).get("checks")
        if not isinstance(checks, list):
            return None
        kept = tuple(
            Check(c["name"], c["pass"], str(c.get("detail") or ""))
            for c in checks
            if isinstance(c, Mapping) and isinstance(c.get("name"), str) and isinstance(c.get("pass"), bool)
        )
        return cls(kept) if kept else None


def judge(report: Mapping[str, Any], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Verdict:
    summary = as_map(report.get("summary"))
    checks = [_tickets_lost(summary), _consistency(summary), _failure_rate(summary, thresholds.max_failure_rate)]
    feature_check = _features(summary)
    if feature_check is not None:
        checks.append(feature_check)
    if thresholds.max_ttm_p95_ms is not None:
        checks.append(_ttm_p95(summary, thresholds.max_ttm_p95_ms))
    return Verdict(tuple(checks))


def verdict_of(report: Mapping[str, Any]) -> Verdict:
    """The verdict written in the report, else judged now with the default thresholds."""
    return Verdict.from_json(report.get("verdict")) or judge(report)


# -- headline figures and the comparison --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figure:
    key: str
    label: str
    unit: str
    """``ms``, ``%`` or ``""`` (a count)."""
    lower_is_better: bool = True


HEADLINE = (
    Figure("players", "players arrived", "", lower_is_better=False),
    Figure("played", "played", "", lower_is_better=False),
    Figure("failureRate", "failed", "%"),
    Figure("ticketsLost", "tickets lost", ""),
    Figure("ttmP50", "time to match p50", "ms"),
    Figure("ttmP95", "time to match p95", "ms"),
    Figure("ttmP99", "time to match p99", "ms"),
    Figure("ttmMax", "time to match max", "ms"),
    Figure("ticketCreateP95", "ticket create p95", "ms"),
    Figure("assignmentPushP95", "assignment push p95", "ms"),
    Figure("udpJoinP95", "UDP join p95", "ms"),
    Figure("allocationP95", "allocation p95", "ms"),
    Figure("readyMin", "lowest Ready buffer", "", lower_is_better=False),
    Figure("waitEstimateWithin", "wait estimate within ±25 %", "%", lower_is_better=False),
)


def headline(report: Mapping[str, Any]) -> dict[str, float | None]:
    """The figures two runs are compared on (None: not measured in that run)."""
    summary = as_map(report.get("summary"))
    ttm, latencies = as_map(summary.get("timeToMatchMs")), as_map(summary.get("latenciesMs"))
    players, failed = num(summary.get("players")), num(summary.get("failed"))
    return {
        "players": players,
        "played": num(summary.get("played")),
        "failureRate": 100 * failed / players if players and failed is not None else None,
        "ticketsLost": lost_tickets(summary.get("serverTickets")),
        "ttmP50": num(ttm.get("p50")),
        "ttmP95": num(ttm.get("p95")),
        "ttmP99": num(ttm.get("p99")),
        "ttmMax": num(ttm.get("max")),
        "ticketCreateP95": num(as_map(latencies.get("ticketCreate")).get("p95")),
        "assignmentPushP95": num(as_map(latencies.get("assignmentPush")).get("p95")),
        "udpJoinP95": num(as_map(latencies.get("udpJoin")).get("p95")),
        "allocationP95": num(as_map(summary.get("allocationMs")).get("p95")),
        "readyMin": num(as_map(summary.get("readyBuffer")).get("min")),
        "waitEstimateWithin": num(as_map(summary.get("waitEstimate")).get("withinPercent")),
    }


def previous_of(report: Mapping[str, Any], file: str) -> dict[str, Any]:
    """What a report keeps of the run it is compared with (``report.json``'s ``previous``)."""
    scenario = as_map(report.get("scenario"))
    verdict = Verdict.from_json(report.get("verdict"))
    return {
        "file": file,
        "name": scenario.get("name"),
        "startedAt": scenario.get("startedAt"),
        "pass": None if verdict is None else verdict.passed,
        "figures": headline(report),
    }


def load_previous(path: Path) -> dict[str, Any]:
    """``--compare FILE``: a previous ``report.json``; one clear error if it is not one."""
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValidationError("--compare", f"cannot read {path}: {reason}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ValidationError("--compare", f"{path} is not JSON ({exc}): pass a load test's report.json") from None
    if not (
        isinstance(doc, dict)
        and isinstance(doc.get("scenario"), dict)
        and isinstance(doc.get("summary"), dict)
        and "timeToMatchMs" in doc["summary"]
    ):
        raise ValidationError("--compare", f"{path} is not a load test report (report.json of `fleetmatch loadtest`)")
    return previous_of(doc, str(path))


@dataclass(frozen=True, slots=True)
class Delta:
    figure: Figure
    now: float | None
    before: float | None

    @property
    def change(self) -> float | None:
        return None if self.now is None or self.before is None else self.now - self.before

    @property
    def relative(self) -> float | None:
        """The change as a fraction of the previous value (None from 0 or without both)."""
        change = self.change
        return None if change is None or not self.before else change / abs(self.before)

    @property
    def better(self) -> bool | None:
        """Whether this run did better on the figure (None: no change, or not comparable)."""
        change = self.change
        if not change:
            return None
        return (change < 0) is self.figure.lower_is_better


def compare(report: Mapping[str, Any]) -> list[Delta]:
    """This run's headline figures beside the previous run's (``report["previous"]``); [] without one."""
    previous = as_map(report.get("previous"))
    if not previous:
        return []
    now, before = headline(report), as_map(previous.get("figures"))
    return [Delta(f, now.get(f.key), num(before.get(f.key))) for f in HEADLINE]
