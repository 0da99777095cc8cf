"""Per-ticket derived rule values kept between ticks, so a tick derives only the tickets it has not seen.

A queue's pool changes little from one tick to the next, and the store hands back the same decoded
``Ticket`` object while a ticket is unchanged (``matchmaker.tickets``): a changed ticket is a new
object. So a row is kept per ticket *object* (keyed by ``id()``, the row holding the object so that
the id cannot be reused while the row lives), and each tick keeps exactly the rows of the tickets it
was given: a ticket that left is forgotten, a changed one is derived again. What a row holds is up to
the caller (``matchmaker.matching``): values of the ticket and the queue's rules only, never of the
pool or the clock.

The cache also keeps the set of players of the kept tickets and whether one of them blocks
somebody, so that a tick knows without a pass over every player whether some player is in two
tickets, or some ticket blocks (the rare cases that need a check per candidate).
"""

from __future__ import annotations

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
_ROW = itemgetter(1)


class TicketCache:
    """Rows of the tickets of the last tick, by ticket object. Not thread-safe: one tick at a time."""

    __slots__ = ("_blocking", "_players", "_rows", "_shared", "derived", "regions")

    def __init__(self) -> None:
        self._rows: dict[int, tuple[Ticket, Row]] = {}
        self._players: set[str] = set()
        self._shared = False
        """Whether a player is in two of the kept tickets (or twice in one)."""
        self._blocking = 0
        """Kept rows whose ticket blocks somebody."""
        self.derived = 0
        """Rows derived by the last ``rows`` call (the others came from the cache)."""
        self.regions: set[str] = set()
        """The latency regions of every ticket derived so far (the caller adds them; it only grows):
        a superset of the kept tickets' regions, without a pass over every ticket each tick."""

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
        self._rows = new  # type: ignore[assignment]  # no None left
        self._count([old[k][1] for k in gone], made)
        return list(map(_ROW, kept))  # type: ignore[arg-type]  # no None left

    def _count(self, gone: list[Row], made: list[Row]) -> None:
        """Keep the set of players and whether one is in two tickets: exact while none is (a gone
        ticket's players are then nobody else's); counted afresh while one is (rare: the store keeps
        one open ticket per player)."""
        players = self._players
        if gone:
            self._blocking -= sum(map(bool, map(_BLOCKED, gone)))
            if not self._shared:
                players.difference_update(chain.from_iterable(map(_PIDS, gone)))
        if made:
            self._blocking += sum(map(bool, map(_BLOCKED, made)))
            if not self._shared:
                pids = list(chain.from_iterable(map(_PIDS, made)))
                before = len(players)
                players.update(pids)
                self._shared = len(players) - before != len(pids)
        if self._shared and (gone or made):
            pids = list(chain.from_iterable(map(_PIDS, map(_ROW, self._rows.values()))))
            self._players = set(pids)
            self._shared = len(self._players) != len(pids)

    @property
    def shared_players(self) -> bool:
        """Whether some player is in two of the kept tickets (or twice in one); when not, no subset
        of them has one either."""
        return self._shared

    @property
    def blocking(self) -> bool:
        """Whether one of the kept tickets blocks somebody."""
        return self._blocking > 0
