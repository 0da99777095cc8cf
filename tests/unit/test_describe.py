"""``describe`` formatting from snapshots: the Events table as kubectl prints it, aligned fields."""

from __future__ import annotations

from fleetmatch.cli.describe import events, fields
from fleetmatch.events import EventRecord, Severity

NOW = 1_000_000.0


def test_events_are_oldest_first_with_counts_over_their_span() -> None:
    records = [
        EventRecord(
            "GameServer", "gs-1", "Unhealthy", "no health ping\nfor 15s", Severity.WARNING, 3, NOW - 600, NOW - 120
        ),
        EventRecord("GameServer", "gs-1", "Allocated", "to match m-1", Severity.NORMAL, 1, NOW - 30, NOW - 30),
    ]
    lines = events(records, NOW)
    assert lines[0] == "Events:"
    assert lines[1].split() == ["TYPE", "REASON", "AGE", "MESSAGE"]
    assert lines[2].split() == [
        "Warning",
        "Unhealthy",
        "2m",
        "(x3",
        "over",
        "10m)",
        "no",
        "health",
        "ping",
        "for",
        "15s",
    ]
    assert lines[3].split() == ["Normal", "Allocated", "30s", "to", "match", "m-1"]
    assert lines[2].index("Unhealthy") == lines[3].index("Allocated") == lines[1].index("REASON")


def test_no_events() -> None:
    assert events([], NOW) == ["Events:  <none>"]


def test_fields_align_values_and_indent_sections() -> None:
    assert fields([("Name", "gs-1"), ("Status", [("State", "Ready"), ("Node Name", "n1")]), ("UID", "u")]) == [
        "Name:  gs-1",
        "Status:",
        "  State:      Ready",
        "  Node Name:  n1",
        "UID:   u",
    ]
