"""Event records: what happened to a GameServer, Fleet or node, and why, kept after the object is gone.

Like Kubernetes Events: a record names the object (kind, name), a ``reason`` (one CamelCase word
callers and dashboards branch on: ``Unhealthy``, ``CrashLoopBackOff``, ``NodeNotReady``...), a
human ``message``, a ``type`` (Normal or Warning), and how often it happened between ``first`` and
``last``. Recording the same (object, reason, message) again bumps ``count`` and ``last`` instead of
adding a record, so a crash-looping fleet writes one growing record, not thousands. Records are kept
for ``RETENTION_SECONDS`` after their last occurrence and at most ``MAX_RECORDS`` per namespace.

``EventLog`` is the port; the engines implement it (``fleetmatch.backends``). Recording is best
effort: a failed write is logged by the caller, never allowed to fail the action it describes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

from fleetmatch.errors import StoreError

log = logging.getLogger(__name__)

RETENTION_SECONDS = 3600.0
"""How long a record is kept after it last happened (Kubernetes keeps Events one hour by default)."""
MAX_RECORDS = 5000
"""Records kept per namespace at most; the oldest go first."""
MESSAGE_LIMIT = 1024
"""Characters of a message kept (a game's last words can be long)."""


class Severity(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True, slots=True)
class EventRecord:
    kind: str
    """``GameServer``, ``Fleet``, ``Node``..."""
    name: str
    reason: str
    message: str
    type: Severity = Severity.NORMAL
    count: int = 1
    first: float = 0.0
    """Unix time of the first occurrence."""
    last: float = 0.0
    """Unix time of the latest occurrence."""

    @property
    def key(self) -> str:
        """What makes two occurrences the same record."""
        return f"{self.kind}/{self.name}/{self.reason}/{self.message}"

    def again(self, now: float) -> EventRecord:
        """The record after one more occurrence at ``now``."""
        return replace(self, count=self.count + 1, last=max(self.last, now))


def new_record(
    kind: str, name: str, reason: str, message: str, *, type: Severity = Severity.NORMAL, now: float
) -> EventRecord:
    return EventRecord(kind, name, reason, message[:MESSAGE_LIMIT], type, 1, now, now)


class EventLog(Protocol):
    """Where event records of one namespace are kept."""

    async def record(
        self, kind: str, name: str, reason: str, message: str, *, type: Severity = Severity.NORMAL, uid: str = ""
    ) -> None:
        """Record one occurrence (aggregated with an identical earlier one). ``uid``: the object's, when
        known; Kubernetes Events name it (``regarding.uid``) so an Event is about that very object,
        not a later one of the same name. The other engines name objects by name only."""

    async def list(self, kind: str | None = None, name: str | None = None) -> list[EventRecord]:
        """Records, oldest last occurrence first, optionally of one kind and name."""


async def record_quietly(
    events: EventLog | None,
    kind: str,
    name: str,
    reason: str,
    message: str,
    *,
    type: Severity = Severity.NORMAL,
    uid: str = "",
) -> None:
    """``events.record``, logging instead of raising when the store fails (or there is no log)."""
    if events is None:
        return
    try:
        await events.record(kind, name, reason, message, type=type, uid=uid)
    except StoreError as exc:
        log.warning("cannot record event %s %s/%s: %s", reason, kind, name, exc)


def matches(record: EventRecord, kind: str | None, name: str | None) -> bool:
    return (kind is None or record.kind == kind) and (name is None or record.name == name)


def now() -> float:
    return round(time.time(), 3)
