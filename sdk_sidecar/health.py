"""Health-check arithmetic, pure: is a game server still pinging often enough?

Agones' rules (https://agones.dev/site/docs/guides/health-checking/), with every time passed in so
tables can test them:

- The game has ``initialDelaySeconds`` of grace from the start of tracking: until then it counts as
  having pinged (a ping during the grace does not shorten it).
- Checks run every ``periodSeconds`` after the grace. A check fails when no ping arrived within the
  last ``periodSeconds`` (a ping exactly ``periodSeconds`` ago is too old); each failure increments a
  counter, and any ping resets it to 0.
- ``failureThreshold`` failed checks make the server Unhealthy, which is final. Without any ping that
  happens at ``initialDelaySeconds + failureThreshold * periodSeconds``.
- Disabled health never fails.

Checks that fall due while nobody called ``check`` (a busy event loop) are evaluated at their own
times when ``check`` runs, so a late tick neither forgives nor invents misses. But a host that
could not *receive* pings (its process stalled) must not blame its games for the silence: ``pause``
moves the deadlines by the time the host was away, and ``forgive`` gives a server a fresh period
when the host judges that a failure of many servers at once is its own.
"""

from __future__ import annotations

from fleetmatch.models import Health


class HealthTracker:
    """Health of one game server; times are seconds on any monotonic clock."""

    __slots__ = ("_failures", "_health", "_last_ping", "_next_check", "_unhealthy")

    def __init__(self, health: Health, started: float) -> None:
        self._health = health
        self._last_ping = started + health.initial_delay_seconds
        self._next_check = self._last_ping + health.period_seconds
        self._failures = 0
        self._unhealthy = False

    @property
    def disabled(self) -> bool:
        return self._health.disabled

    @property
    def failures(self) -> int:
        """Consecutive failed checks so far."""
        return self._failures

    @property
    def unhealthy(self) -> bool:
        return self._unhealthy

    @property
    def last_ping(self) -> float:
        """The latest ping (or the end of the initial grace, if later)."""
        return self._last_ping

    @property
    def next_check(self) -> float | None:
        """When the next check falls due; None if none will (disabled, or already unhealthy)."""
        return None if self._health.disabled or self._unhealthy else self._next_check

    def ping(self, now: float) -> None:
        """The game said it is alive."""
        self._last_ping = max(self._last_ping, now)
        self._failures = 0

    def pause(self, seconds: float) -> None:
        """The host could not receive pings for ``seconds``: that time does not count."""
        if seconds > 0 and not self._health.disabled and not self._unhealthy:
            self._last_ping += seconds
            self._next_check += seconds

    def forgive(self, now: float) -> None:
        """Count the server as having pinged at ``now`` (the failure was not its own)."""
        if not self._health.disabled and not self._unhealthy:
            self._failures = 0
            self._last_ping = max(self._last_ping, now)
            self._next_check = max(self._next_check, self._last_ping + self._health.period_seconds)

    def would_fail(self, now: float) -> bool:
        """Would ``check(now)`` make the server unhealthy? (Nothing changes.)"""
        if self._health.disabled or self._unhealthy:
            return False
        period, failures, at = self._health.period_seconds, self._failures, self._next_check
        while at <= now:
            if self._last_ping <= at - period:
                failures += 1
                if failures >= self._health.failure_threshold:
                    return True
            at += period
        return False

    def check(self, now: float) -> bool:
        """Run the checks due by ``now``; True exactly once: when this call made the server unhealthy."""
        if self._health.disabled or self._unhealthy:
            return False
        period = self._health.period_seconds
        while self._next_check <= now:
            at = self._next_check
            self._next_check = at + period
            if self._last_ping > at - period:
                continue  # a ping arrived within the period before this check
            self._failures += 1
            if self._failures >= self._health.failure_threshold:
                self._unhealthy = True
                return True
        return False
