"""The head of a load-test report, in ``report.html`` and in the printed summary: the verdict
(PASS or FAIL and why, ``loadtest.verdict``) first, and with ``--compare`` each headline figure
beside the previous run's, with the change.

Kept apart from ``loadtest.report`` (the page's body and charts): the same words go to the page and
to the terminal, and a reader of either sees the verdict before any figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loadtest.charts import as_map, esc, fmt_count, fmt_ms, words
from loadtest.verdict import Delta, Figure, compare, verdict_of

CSS = """
.verdict { display: flex; gap: 20px; align-items: center; border: 2px solid; border-radius: 8px;
  padding: 12px 18px; margin: 14px 0 18px; }
.verdict.pass { background: #e9f6ec; border-color: #1a7f37; }
.verdict.fail { background: #fdeceb; border-color: #b42318; }
.verdict strong { font-size: 30px; letter-spacing: 1px; min-width: 86px; }
.verdict.pass strong { color: #1a7f37; }
.verdict.fail strong { color: #b42318; }
.verdict ul { margin: 0; padding: 0; list-style: none; }
.verdict li { margin: 2px 0; }
.verdict li.failed { color: #b42318; font-weight: 600; }
.verdict li b { display: inline-block; min-width: 150px; }
.better { color: #1a7f37; }
.worse { color: #b42318; }
table.compare th, table.compare td { width: auto; padding: 4px 6px; }
table.compare td { white-space: nowrap; }
table.compare td.num { text-align: right; }
.card small { display: block; color: var(--muted); font-size: 11px; margin-top: 2px; }
"""


def _value(figure: Figure, value: float | None) -> str:
    if value is None:
        return "—"
    if figure.unit == "ms":
        return fmt_ms(value)
    if figure.unit == "%":
        return f"{value:.1f}%"
    return fmt_count(value)


def change_text(delta: Delta) -> str:
    """``+1.20 s (+12%)``, ``-3``, ``no change``; "—" without both figures."""
    change = delta.change
    if change is None:
        return "—"
    if not change:
        return "no change"
    sign = "+" if change > 0 else "-"
    if delta.figure.unit == "%":
        text = f"{sign}{abs(change):.1f} points"
    else:
        text = sign + _value(delta.figure, abs(change))
    relative = delta.relative
    if relative is None or delta.figure.unit == "%":
        return text
    percent = abs(relative) * 100
    return text + f" ({sign}{percent:.1f}%)" if percent < 10 else text + f" ({sign}{percent:.0f}%)"


def _tone(delta: Delta) -> str:
    return {True: "better", False: "worse", None: ""}[delta.better]


# -- the page --------------------------------------------------------------------------------------


def banner_html(report: Mapping[str, Any]) -> str:
    """PASS or FAIL in large letters, then every check with its figures (a failed one in red)."""
    verdict = verdict_of(report)
    word = "PASS" if verdict.passed else "FAIL"
    items = "".join(
        f'<li class="{"passed" if c.passed else "failed"}"><b>{"✓" if c.passed else "✗"} {esc(c.name)}</b> '
        f"{esc(c.detail)}</li>"
        for c in verdict.checks
    )
    return f'<div class="verdict {word.lower()}" role="status"><strong>{word}</strong><ul>{items}</ul></div>'


def card_note(report: Mapping[str, Any], key: str) -> str:
    """A card's line under its figure: the previous run's value and the change ("" without one)."""
    delta = next((d for d in compare(report) if d.figure.key == key), None)
    if delta is None or delta.before is None:
        return ""
    return (
        f'<small>was {esc(_value(delta.figure, delta.before))}, <span class="{_tone(delta)}">'
        f"{esc(change_text(delta))}</span></small>"
    )


def comparison_html(report: Mapping[str, Any]) -> str:
    """The comparison section ("" when the run is not compared with another)."""
    deltas = compare(report)
    if not deltas:
        return ""
    rows = "".join(
        f'<tr><th scope="row">{esc(d.figure.label)}</th><td class="num">{esc(_value(d.figure, d.now))}</td>'
        f'<td class="num">{esc(_value(d.figure, d.before))}</td>'
        f'<td class="num {_tone(d)}">{esc(change_text(d))}</td></tr>'
        for d in deltas
    )
    table = (
        '<table class="compare"><tr><th>figure</th><th>this run</th><th>previous run</th><th>change</th></tr>'
        f"{rows}</table>"
    )
    note = f'<p class="note">{esc(_previous_text(report))}. Green: better; red: worse.</p>'
    return f"<section><h2>Compared with the previous run</h2>{note}{table}</section>"


def _previous_text(report: Mapping[str, Any]) -> str:
    previous = as_map(report.get("previous"))
    passed = previous.get("pass")
    verdict = "PASS" if passed is True else "FAIL" if passed is False else "no verdict"
    return (
        f"Previous run: {words(previous.get('name'))} started {words(previous.get('startedAt'))} ({verdict}), "
        f"from {words(previous.get('file'))}"
    )


# -- the terminal ----------------------------------------------------------------------------------


def verdict_lines(report: Mapping[str, Any]) -> list[str]:
    """``PASS`` or ``FAIL`` first, then one line per check."""
    verdict = verdict_of(report)
    lines = ["PASS" if verdict.passed else "FAIL"]
    width = max((len(c.name) for c in verdict.checks), default=0)
    for check in verdict.checks:
        lines.append(f"  {'ok  ' if check.passed else 'FAIL'}  {check.name.ljust(width)}  {check.detail}")
    return lines


def comparison_lines(report: Mapping[str, Any]) -> list[str]:
    """The comparison as text: figure, this run, the previous run, the change ([] without one)."""
    deltas = compare(report)
    if not deltas:
        return []
    width = max(len(d.figure.label) for d in deltas)
    lines = [_previous_text(report) + ":"]
    for d in deltas:
        now, before = _value(d.figure, d.now), _value(d.figure, d.before)
        lines.append(f"  {d.figure.label.ljust(width)}  {now:>10}  was {before:>10}  {change_text(d)}")
    return lines
