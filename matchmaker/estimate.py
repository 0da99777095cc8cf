"""Estimated wait (pure): how long a ticket will wait, from how long recent tickets like it waited.

Directors observe every match's time to match. Once per pass, a director folds the waits of the
tickets it matched into the queue's **wait summary** (``merge``): a handful of cells, each keyed by
where a ticket sits in the queue::

    "<region>|<band>"   the ticket's best region and skill band (the finest key)
    "<region>|*"        the region, any band
    "*|*"               the whole queue

A ticket's *region* is the one with its lowest worst latency (``matchmaker.stats.best_region``,
``-`` without latencies); its *band* is its party's value of the queue's first distance rule
(``partyAggregation``) divided by that rule's base window, rounded down (``-`` without one), so
tickets of one band fall within each other's narrowest window.

Each cell holds a decayed sample of waits: its weight (samples, each counting less as it ages,
halving every ``HALF_LIFE_SECONDS``), the weighted sum of their logarithms, and when it was last
updated. The estimate of a cell is the decayed **geometric mean** of its waits: times to match
are skewed (most tickets match within a few ticks, a few wait for widening), and a relative error
(within +-25 %) is what is judged, which the mean of the logarithms minimises. An old cell needs no
update to age: decay is applied when it is read.

``estimate`` takes the finest key whose decayed weight is at least ``MIN_WEIGHT`` (a band with few
recent samples falls back to its region, then to the queue), or None when none has enough: no
estimate is better than a guess. The summary stays small: at most ``MAX_CELLS`` cells per queue (a
new band beyond that only feeds its region and queue cells), stored as one Redis hash per queue
(``matchmaker.tickets``), so any frontend estimates without a director of its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from matchmaker.models import Ticket
from matchmaker.rules import Queue
from matchmaker.stats import best_region

HALF_LIFE_SECONDS = 60.0
"""A sample counts half as much after this long: the estimate follows a queue that speeds up or
slows down within a couple of minutes."""
MIN_WEIGHT = 3.0
"""Decayed samples a cell needs before it is trusted (else the next coarser key is asked)."""
MAX_CELLS = 256
"""Cells in one queue's summary, at most."""
FLOOR_SECONDS = 0.05
"""Waits below this count as this (the logarithm of 0 is not a number; nobody waits less than a tick)."""
ANY = "*"
NONE = "-"


@dataclass(frozen=True, slots=True)
class Cell:
    """One key's decayed sample of waits."""

    weight: float
    log_sum: float
    """Sum of weight x ln(wait seconds)."""
    at: float
    """When it was last updated (epoch seconds): decay runs from here."""

    def decayed(self, now: float, half_life: float = HALF_LIFE_SECONDS) -> Cell:
        factor = 0.5 ** (max(0.0, now - self.at) / half_life)
        return Cell(self.weight * factor, self.log_sum * factor, max(now, self.at))

    @property
    def seconds(self) -> float | None:
        """The geometric mean of the waits (None: no weight)."""
        return math.exp(self.log_sum / self.weight) if self.weight > 0 else None

    def encode(self) -> str:
        return f"{self.weight!r} {self.log_sum!r} {self.at!r}"

    @classmethod
    def decode(cls, text: str) -> Cell | None:
        """A stored cell; None for anything malformed (an estimate is never worth an error)."""
        try:
            weight, log_sum, at = map(float, text.split())
        except ValueError:
            return None
        if not all(map(math.isfinite, (weight, log_sum, at))) or weight < 0:
            return None
        return cls(weight, log_sum, at)


def decode_cells(fields: Mapping[str, str]) -> dict[str, Cell]:
    """A stored summary (hash field -> encoded cell), skipping malformed entries."""
    out = {}
    for key, text in fields.items():
        cell = Cell.decode(text)
        if cell is not None:
            out[key] = cell
    return out


def band(ticket: Ticket, queue: Queue | None) -> str:
    """The ticket's skill band: its value of the queue's first distance rule over that rule's base
    window, rounded down; ``-`` without such a rule or value."""
    rules = queue.spec.distance_rules if queue is not None else ()
    if not rules:
        return NONE
    rule = rules[0]
    values = [p.attributes.get(rule.attribute) for p in ticket.players]
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
    if not numbers or len(numbers) != len(values):
        return NONE
    width = rule.base or rule.widest or 1.0
    return str(math.floor(rule.party_aggregation.of(numbers) / width))


def keys_of(ticket: Ticket, queue: Queue | None) -> tuple[str, str, str]:
    """The ticket's summary keys, finest first."""
    region = best_region(ticket)
    return f"{region}|{band(ticket, queue)}", f"{region}|{ANY}", f"{ANY}|{ANY}"


def merge(
    cells: Mapping[str, Cell],
    samples: Iterable[tuple[tuple[str, ...], float]],
    now: float,
    *,
    half_life: float = HALF_LIFE_SECONDS,
    max_cells: int = MAX_CELLS,
) -> dict[str, Cell]:
    """The cells that change when ``samples`` ((keys, wait seconds) per matched ticket) are added
    to ``cells`` at ``now``: decayed to ``now``, plus the new samples. A key not in ``cells`` is
    only added while the summary holds fewer than ``max_cells``."""
    changed: dict[str, Cell] = {}
    count = len(cells)
    for keys, wait in samples:
        value = math.log(max(FLOOR_SECONDS, wait))
        for key in keys:
            cell = changed.get(key) or cells.get(key)
            if cell is None:
                if count >= max_cells:
                    continue
                count += 1
                cell = Cell(0.0, 0.0, now)
            cell = cell.decayed(now, half_life)
            changed[key] = Cell(cell.weight + 1.0, cell.log_sum + value, cell.at)
    return changed


def estimate(
    cells: Mapping[str, Cell],
    keys: Iterable[str],
    now: float,
    *,
    half_life: float = HALF_LIFE_SECONDS,
    min_weight: float = MIN_WEIGHT,
) -> float | None:
    """Expected time to match (seconds) of a ticket with ``keys`` (finest first), from the finest
    cell with enough recent weight; None when none has."""
    for key in keys:
        cell = cells.get(key)
        if cell is None:
            continue
        cell = cell.decayed(now, half_life)
        if cell.weight >= min_weight:
            return cell.seconds
    return None


def remaining(expected: float | None, waited: float) -> float | None:
    """What is left of the expected wait after ``waited`` seconds, never below 0 (None stays None)."""
    if expected is None:
        return None
    return round(max(0.0, expected - max(0.0, waited)), 1)
