"""Per-ticket derived rule values kept between ticks, so a tick derives only the tickets it has not seen.

A queue's pool changes little from one tick to the next, and the store hands back the same decoded
``Ticket`` object while a ticket is unchanged (``matchmaker.tickets``): a changed ticket is a new
object. So a row is kept per ticket *object* (keyed by ``id()``, the row holding the object so that
the id cannot be reused while the row lives), and each tick keeps exactly the rows of the tickets it
was given: a ticket that left is forgotten, a changed one is derived again. What a row holds is up to
the caller (``matchmaker.matching``): values of the ticket and the queue's rules only, never of the
pool or the clock.

The cache also counts the players of the kept tickets, so that a tick knows without a pass over
every player whether some player is in two tickets (the rare case that needs a check per candidate).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

from matchmaker.models import Ticket

Row = tuple[Any, ...]
"""A ticket's derived values: ``row[0]`` is the tuple of its player ids, ``row[-1]`` the players it
blocks; the rest is the caller's."""
_PIDS = itemgetter(0)
_BLOCKED = itemgetter(-1)


class TicketCache:
    """Rows of the tickets of the last tick, by ticket object. Not thread-safe: one tick at a time."""

    __slots__ = ("_blocking", "_counts", "_occurrences", "_rows", "derived", "extra")

    def __init__(self) -> None:
        self._rows: dict[int, tuple[Ticket, Row]] = {}
        self._counts: Counter[str] = Counter()
        self._blocking = 0
        """Kept rows whose ticket blocks somebody."""
        self._occurrences = 0
        """Player ids over the kept rows, counting repeats: equal to ``len(_counts)`` when no player
        is in two tickets."""
        self.derived = 0
        """Rows derived by the last ``rows`` call (the others came from the cache)."""
        self.extra: dict[str, Any] = {}
        """State the caller keeps with the rows (``matchmaker.matching``: the region bits)."""

    def clear(self) -> None:
        self._rows = {}
        self._counts = Counter()
        self._occurrences = 0
        self._blocking = 0
        self.extra = {}

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self, tickets: Sequence[Ticket], derive: Callable[[list[Ticket]], list[Row]]) -> list[Row]:
        """The row of each of ``tickets`` (an object given twice gets its row twice), deriving the
        missing ones with ``derive`` (a row per ticket, in order); afterwards the cache holds exactly
        these tickets."""
        keys = list(map(id, tickets))
        old = self._rows
        kept = list(map(old.get, keys))
        made: list[Row] = []
        if None in kept:
            missing = {k: t for k, t, row in zip(keys, tickets, kept, strict=True) if row is None}
            made = derive(list(missing.values()))
            fresh = dict(zip(missing, zip(missing.values(), made, strict=True), strict=True))
            kept = [row if row is not None else fresh[k] for k, row in zip(keys, kept, strict=True)]
        self.derived = len(made)
        new = dict(zip(keys, kept, strict=True))
        gone = old.keys() - new.keys() if len(new) - len(made) != len(old) else ()
        self._count([old[k][1] for k in gone], made)
        self._rows = new  # type: ignore[assignment]  # no None left
        return [row[1] for row in kept]  # type: ignore[index]  # no None left

    def _count(self, gone: list[Row], made: list[Row]) -> None:
        counts = self._counts
        if gone:
            pids = list(chain.from_iterable(map(_PIDS, gone)))
            counts.subtract(pids)
            for pid in pids:
                if counts.get(pid, 1) <= 0:
                    del counts[pid]
            self._occurrences -= len(pids)
            self._blocking -= sum(map(bool, map(_BLOCKED, gone)))
        if made:
            counts.update(chain.from_iterable(map(_PIDS, made)))
            self._occurrences += sum(map(len, map(_PIDS, made)))
            self._blocking += sum(map(bool, map(_BLOCKED, made)))

    @property
    def shared_players(self) -> bool:
        """Whether some player is in two of the kept tickets (or twice in one); when not, no subset
        of them has one either."""
        return self._occurrences != len(self._counts)

    @property
    def blocking(self) -> bool:
        """Whether one of the kept tickets blocks somebody."""
        return self._blocking > 0
