"""The two clocks the SDK reads, as one injectable object, so that tests can run health in virtual time.

``time`` stamps what is stored (``reservedUntil``, ``agones.dev/last-allocated``); ``monotonic`` paces
what must not jump with the wall clock: health deadlines and the store writer's interval.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Epoch seconds."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (any origin)."""
        ...


class SystemClock:
    """The process's clocks."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()
