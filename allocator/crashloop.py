"""Crash-loop back-off for a fleet (pure): replacements of servers that fail before Ready slow down.

A fleet whose game exits at once would otherwise be replaced as fast as the controller can write:
hundreds of servers and log files a minute, and nothing Ready. Like Kubernetes' CrashLoopBackOff,
each server of the fleet that fails before it was ever Ready (``FAILED_BEFORE_READY_ANNOTATION``)
doubles the wait before the next creation: ``BASE_SECONDS``, 2x, 4x... up to ``MAX_SECONDS``. From
``CRASH_LOOP_AFTER`` failures in a row the fleet is crash-looping: it starts one server at a time
(a probe) and reports the condition. A server created after the streak began that reaches Ready
(or Allocated, Reserved) ends it; so does a new template, which may well fix the game.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from fleetmatch.models import (
    ERROR_ANNOTATION,
    FAILED_BEFORE_READY_ANNOTATION,
    PENDING_STATES,
    FleetCondition,
    GameServer,
    GameServerState,
)

BASE_SECONDS = 1.0
MAX_SECONDS = 60.0
CRASH_LOOP_AFTER = 3
"""Failures before Ready in a row from which a fleet is crash-looping (one probe at a time)."""
CONDITION = "CrashLoopBackOff"
RUNNING_STATES = frozenset({GameServerState.READY, GameServerState.ALLOCATED, GameServerState.RESERVED})


@dataclass(frozen=True, slots=True)
class Streak:
    """A fleet's failures before Ready in a row."""

    template: str = ""
    """Template hash the streak belongs to (a new template starts afresh)."""
    failures: int = 0
    started: float = 0.0
    """When the first failure of the streak was seen."""
    last: float = 0.0
    """When the latest one was seen."""
    reason: str = ""
    """Why the latest one failed (its ``fleetmatch.dev/error``)."""
    counted: frozenset[str] = frozenset()
    """Names already counted (a failed server is seen on several passes until it is gone)."""

    @property
    def delay(self) -> float:
        """Seconds to wait after the latest failure before creating again."""
        if self.failures == 0:
            return 0.0
        return min(BASE_SECONDS * 2.0 ** (self.failures - 1), MAX_SECONDS)

    @property
    def looping(self) -> bool:
        return self.failures >= CRASH_LOOP_AFTER

    def next_attempt(self) -> float:
        return self.last + self.delay


def failed_before_ready(gs: GameServer) -> bool:
    return gs.metadata.annotations.get(FAILED_BEFORE_READY_ANNOTATION) == "true"


def observe(streak: Streak, template: str, members: Sequence[GameServer], now: float) -> Streak:
    """The streak after looking at the fleet's members at ``now``."""
    if streak.template != template:
        streak = Streak(template=template)
    if streak.failures and any(
        gs.state in RUNNING_STATES and (gs.metadata.creation_timestamp or 0.0) >= streak.started for gs in members
    ):
        streak = Streak(template=template)  # a server made during the streak runs: the game works
    names = {gs.name for gs in members}
    new = [gs for gs in members if failed_before_ready(gs) and gs.name not in streak.counted]
    if not new:
        counted = streak.counted & names
        return streak if counted == streak.counted else replace(streak, counted=counted)
    latest = max(new, key=lambda g: (g.metadata.creation_timestamp or 0.0, g.name))
    return replace(
        streak,
        failures=streak.failures + len(new),
        started=streak.started if streak.failures else now,
        last=now,
        reason=latest.metadata.annotations.get(ERROR_ANNOTATION, "failed before Ready"),
        counted=frozenset((streak.counted & names) | {gs.name for gs in new}),
    )


def allowed_creations(streak: Streak, planned: int, members: Iterable[GameServer], now: float) -> int:
    """How many of the ``planned`` creations may happen now."""
    if streak.failures == 0 or planned == 0:
        return planned
    if now < streak.next_attempt():
        return 0
    if streak.looping:
        starting = sum(gs.state in PENDING_STATES for gs in members)
        return max(0, min(planned, 1 - starting))  # one probe at a time
    return planned


def condition(streak: Streak, since: float | None) -> FleetCondition | None:
    """The fleet's CrashLoopBackOff condition while it is crash-looping (``since``: when it started
    to be reported, kept across passes)."""
    if not streak.looping:
        return None
    return FleetCondition(
        type=CONDITION,
        status="True",
        reason=CONDITION,
        message=(
            f"{streak.failures} servers failed before Ready in a row; last: {streak.reason}; "
            f"next attempt in {streak.delay:g}s after each failure (one server at a time)"
        ),
        last_transition_time=since if since is not None else streak.last,
    )
