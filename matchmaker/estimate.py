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

**The queue ahead** (``expected_remaining``). Recent times to match lag: in an arrival spike the
tickets that just matched were queued before it, so the estimate comes in low exactly when waits
grow. Each pass a director therefore also publishes, per key, the players waiting now (``Depth``,
fields ``n:<key>``: how many, and when the oldest of them was queued) and the recent **match rate**
(``Rate``, fields ``r:<key>``: decayed matched players per second, same half-life idea, shorter).
By Little's law the wait of a ticket is about the players ahead of it over the rate they leave
at; a sparse cell needs at least a match's worth of players, so the queue term is
``max(ahead, needed - size) / rate``. It is taken from the ticket's region (else the queue), not
its band: matches span bands as windows widen, and a band's few players over its few matches
divided noise by noise (replayed on two launch-day runs, ``loadtest.replay_waits``: 14-15 % of
estimates within +-25 % by band, 17-20 % by region); the band still shapes the recent-wait part.
``expected_remaining`` blends it with the recent time to match minus what the ticket waited
already (``QUEUE_WEIGHT``). Both are *remaining* waits: the
load test compares the estimate a ticket is created with (nothing waited yet) to the wait that
followed, and a queued ticket's answer says what is left.

**The next pass** (``next_pass``). A quarter of launch day's tickets complete a match already in
the pool and are matched at the director's next pass, a fraction of a second later, where ±25 % is
a few tens of milliseconds: the players ahead over the rate cannot say that. So a ticket the last
pass has not seen yet, joining a match's worth of players near its skill (its band and the two
beside it), is estimated the time to the next pass, while the queue ahead clears within
``NEXT_PASS_QUEUE_SECONDS`` (else the fleet is full and a match waits for a server). On
``loadtest.wait_ceiling``'s simulated launch days (seeds 15-17, a frontend reading the summary
as ``matchmaker.views`` does) it took the estimates within ±25 % from 19.9 / 18.2 / 16.2 % to
33.8 / 28.9 / 26.5 %; on real 2,000-player launch-day runs, from 16.4 and 9.7 % to 21.8 and 23.2 %
(docs/load-testing.md). Its tolerance is a few tens of milliseconds, so the frontend reads the
summary again once the next pass is due (``read_again_at``): with a summary held a whole second
the same rule made only 24.7 / 20.2 / 18.9 %.

**The longest wait** (``longest_wait``). When the fleet is full for long, Little's law over the
whole queue overshoots by far: players give up (a client's timeout, the ticket TTL) and the pool
is not served first come, first served (released matches go back, newer tickets fill the next
one), so the tickets that do match waited anything up to the age players give up at. Each pass
therefore also publishes, per key, the longest recent time to match (``Peak``, fields
``p:<key>``, halving every ``PEAK_HALF_LIFE_SECONDS``); no estimate goes beyond
``LONGEST_FACTOR`` times the longer of it and the age of the oldest ticket still waiting (replayed
on a launch-day run where a quarter of the players gave up after 90 s: 12.2 % -> 14.6 % within
+-25 %; the factor leaves room for a queue that is still growing, where the players ahead are
right and nobody has waited long yet).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Self

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
RATE_HALF_LIFE_SECONDS = 15.0
"""Half-life of the match rate: short, so a rate that drops (the fleet is full) shows within seconds."""
MIN_RATE_SPAN_SECONDS = 10.0
"""A match rate counted over less time than this is noise (the first pass's matches over no time at all)."""
DEPTH_STALE_SECONDS = 10.0
"""Depths older than this are ignored (no director published them lately: no queue term)."""
QUEUE_WEIGHT = 0.75
"""Share of the queue term in the blend with the recent time to match (``expected_remaining``)."""
PEAK_HALF_LIFE_SECONDS = 120.0
"""Half-life of the longest recent wait (``Peak``)."""
DEPTH_PREFIX = "n:"
RATE_PREFIX = "r:"
PEAK_PREFIX = "p:"
NEXT_PASS_QUEUE_SECONDS = 4.0
"""The next-pass rule (``next_pass``) holds only while the queue ahead clears within this long: the
fleet keeps up. Beyond it the fleet is full and a match formed at the next pass waits for a server
(chosen in ``loadtest.wait_ceiling``'s simulated launch days: 2 s caught too few, 10 s let the
rule into the raid)."""
PUBLISH_SLACK_SECONDS = 0.05
"""How long after a pass is due a frontend reads the summary again: a pass takes a moment to publish."""
LONGEST_FACTOR = 1.5
"""No estimate beyond this many times the longest wait seen lately (``longest_wait``): 1 caps a
growing queue too early (the arrival-spike test), 2 hardly ever caps."""


class _Stored:
    """A frozen dataclass of floats stored as one hash field: its values, space-separated. Decoding
    refuses anything malformed (None: an estimate is never worth an error), a non-finite value, or
    a negative first value (a weight, a count, a duration)."""

    __slots__ = ()

    def encode(self) -> str:
        return " ".join(repr(getattr(self, f.name)) for f in fields(self))  # type: ignore[arg-type]

    @classmethod
    def decode(cls, text: str) -> Self | None:
        count = len(fields(cls))  # type: ignore[arg-type]
        try:
            values = [float(v) for v in text.split()]
        except ValueError:
            return None
        if len(values) != count or not all(map(math.isfinite, values)) or values[0] < 0:
            return None
        return cls(*values)


@dataclass(frozen=True, slots=True)
class Cell(_Stored):
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


def decode_cells(fields: Mapping[str, str]) -> dict[str, Cell]:
    """A stored summary (hash field -> encoded cell), skipping malformed entries."""
    out = {}
    for key, text in fields.items():
        if key.startswith((DEPTH_PREFIX, RATE_PREFIX, PEAK_PREFIX)):
            continue
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


# -- the queue ahead ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Depth(_Stored):
    """Players waiting under one key when a director last looked."""

    players: float
    oldest: float
    """When the longest-waiting of them was queued (epoch seconds)."""
    at: float

    def ahead_of(self, enqueued_at: float) -> float:
        """Players queued before a ticket queued at ``enqueued_at``, assuming arrivals spread
        evenly since ``oldest`` (a ticket queued after ``at`` has them all ahead)."""
        if enqueued_at >= self.at or self.at <= self.oldest:
            return self.players
        return self.players * min(1.0, max(0.0, (enqueued_at - self.oldest) / (self.at - self.oldest)))


@dataclass(frozen=True, slots=True)
class Rate(_Stored):
    """One key's decayed count of matched players, for a rate per second."""

    weight: float
    since: float
    """When the first sample came: a young rate is over the time it has been counted, not a full window."""
    at: float

    def decayed(self, now: float, half_life: float = RATE_HALF_LIFE_SECONDS) -> Rate:
        factor = 0.5 ** (max(0.0, now - self.at) / half_life)
        return Rate(self.weight * factor, self.since, max(now, self.at))

    def per_second(self, now: float, half_life: float = RATE_HALF_LIFE_SECONDS) -> float | None:
        """Matched players per second: decayed weight over the decayed time it was counted in (None
        before ``MIN_RATE_SPAN_SECONDS``)."""
        rate = self.decayed(now, half_life)
        span = max(0.0, now - self.since)
        if span < MIN_RATE_SPAN_SECONDS:
            return None
        exposure = half_life / math.log(2) * (1 - 0.5 ** (span / half_life))
        return rate.weight / exposure if exposure > 0 and rate.weight > 0 else None


@dataclass(frozen=True, slots=True)
class Peak(_Stored):
    """The longest wait a ticket under one key matched after lately: halved every
    ``PEAK_HALF_LIFE_SECONDS``, raised by any longer one."""

    seconds: float
    at: float

    def decayed(self, now: float, half_life: float = PEAK_HALF_LIFE_SECONDS) -> float:
        return float(self.seconds * 0.5 ** (max(0.0, now - self.at) / half_life))


def merge_peaks(
    peaks: Mapping[str, Peak],
    samples: Iterable[tuple[tuple[str, ...], float]],
    now: float,
    *,
    max_cells: int = MAX_CELLS,
) -> dict[str, Peak]:
    """The peaks that change when ``samples`` ((keys, wait seconds) per matched ticket) come at
    ``now``: each key's decayed peak, raised to the longest new wait. A key not in ``peaks`` is only
    added while there are fewer than ``max_cells``."""
    changed: dict[str, Peak] = {}
    count = len(peaks)
    for keys, wait in samples:
        for key in keys:
            peak = changed.get(key) or peaks.get(key)
            if peak is None:
                if count >= max_cells:
                    continue
                count += 1
                peak = Peak(0.0, now)
            changed[key] = Peak(max(peak.decayed(now), wait), now)
    return changed


@dataclass(frozen=True, slots=True)
class Summary:
    """A queue's whole stored summary: times to match, depths and match rates by key."""

    waits: Mapping[str, Cell] = field(default_factory=dict)
    depths: Mapping[str, Depth] = field(default_factory=dict)
    rates: Mapping[str, Rate] = field(default_factory=dict)
    peaks: Mapping[str, Peak] = field(default_factory=dict)


def decode_summary(fields: Mapping[str, str]) -> Summary:
    """A stored summary (hash field -> encoded value), skipping malformed entries."""
    depths: dict[str, Depth] = {}
    rates: dict[str, Rate] = {}
    peaks: dict[str, Peak] = {}
    for key, text in fields.items():
        if key.startswith(DEPTH_PREFIX):
            depth = Depth.decode(text)
            if depth is not None:
                depths[key.removeprefix(DEPTH_PREFIX)] = depth
        elif key.startswith(RATE_PREFIX):
            rate = Rate.decode(text)
            if rate is not None:
                rates[key.removeprefix(RATE_PREFIX)] = rate
        elif key.startswith(PEAK_PREFIX):
            peak = Peak.decode(text)
            if peak is not None:
                peaks[key.removeprefix(PEAK_PREFIX)] = peak
    return Summary(decode_cells(fields), depths, rates, peaks)


def depths_of(waiting: Iterable[tuple[tuple[str, ...], int, float]], now: float) -> dict[str, Depth]:
    """Depth per key of the waiting tickets, each given as (keys, players, enqueued at)."""
    players: dict[str, float] = {}
    oldest: dict[str, float] = {}
    for keys, size, enqueued in waiting:
        for key in keys:
            players[key] = players.get(key, 0.0) + size
            oldest[key] = min(oldest.get(key, enqueued), enqueued)
    return {key: Depth(players[key], oldest[key], now) for key in players}


def merge_rates(
    rates: Mapping[str, Rate],
    matched: Iterable[tuple[tuple[str, ...], int]],
    now: float,
    *,
    half_life: float = RATE_HALF_LIFE_SECONDS,
    max_cells: int = MAX_CELLS,
) -> dict[str, Rate]:
    """The rate cells that change when ``matched`` ((keys, players) per matched ticket) are
    counted at ``now`` (a cell that matched nothing needs no write: it decays when read). A key
    not in ``rates`` is only added while there are fewer than ``max_cells``."""
    changed: dict[str, Rate] = {}
    count = len(rates)
    for keys, size in matched:
        for key in keys:
            rate = changed.get(key)
            if rate is None:
                stored = rates.get(key)
                if stored is None:
                    if count >= max_cells:
                        continue
                    count += 1
                    stored = Rate(0.0, now, now)
                rate = stored.decayed(now, half_life)
            changed[key] = Rate(rate.weight + size, rate.since, rate.at)
    return changed


def publish(
    summary: Summary,
    matched: Iterable[tuple[tuple[str, ...], float, int]],
    depths: Mapping[str, Depth],
    now: float,
) -> dict[str, str]:
    """The hash fields a director writes after a pass: the waits and rates of the tickets it
    matched ((keys, wait seconds, players) each), and the depth of every key, 0 for keys that
    were waited in before and are empty now (at most ``MAX_CELLS`` depths: the fullest)."""
    matched = list(matched)
    if len(depths) > MAX_CELLS:
        depths = dict(sorted(depths.items(), key=lambda kv: -kv[1].players)[:MAX_CELLS])
    fields = {key: cell.encode() for key, cell in merge(summary.waits, [(k, w) for k, w, _ in matched], now).items()}
    rates = merge_rates(summary.rates, [(k, n) for k, _, n in matched], now)
    fields.update({RATE_PREFIX + key: rate.encode() for key, rate in rates.items()})
    peaks = merge_peaks(summary.peaks, [(k, w) for k, w, _ in matched], now)
    fields.update({PEAK_PREFIX + key: peak.encode() for key, peak in peaks.items()})
    emptied = {k: Depth(0.0, now, now) for k, depth in summary.depths.items() if depth.players and k not in depths}
    fields.update({DEPTH_PREFIX + key: depth.encode() for key, depth in {**emptied, **depths}.items()})
    return fields


def queue_term(
    summary: Summary,
    keys: Iterable[str],
    *,
    size: int,
    needed: int,
    enqueued_at: float,
    now: float,
    min_weight: float = MIN_WEIGHT,
) -> float | None:
    """Seconds until the players ahead of the ticket (at least a match's worth) have left at the
    recent match rate of the finest key that has one; None without a fresh depth and rate."""
    for key in keys:
        rate = summary.rates.get(key)
        if rate is None or rate.decayed(now).weight < min_weight:
            continue
        per_second = rate.per_second(now)
        depth = summary.depths.get(key)
        if per_second is None or depth is None or now - depth.at > DEPTH_STALE_SECONDS:
            continue
        ahead = depth.ahead_of(enqueued_at)
        return max(ahead, needed - size, 0) / per_second
    return None


def longest_wait(summary: Summary, keys: Iterable[str], now: float) -> float | None:
    """The longest a ticket under the finest of ``keys`` that has a peak is seen to wait: the longest
    recent time to match, or the age of the oldest ticket still waiting, whichever is longer (None
    without a peak)."""
    for key in keys:
        peak = summary.peaks.get(key)
        if peak is None:
            continue
        depth = summary.depths.get(key)
        oldest = now - depth.oldest if depth is not None and depth.players else 0.0
        return max(peak.decayed(now), oldest)
    return None


def near(keys: tuple[str, ...]) -> tuple[str, ...]:
    """The keys of the players within a ticket's narrowest skill window: its band and the bands on
    either side, in its region (its region, without a band)."""
    region, _, band_ = keys[0].partition("|")
    if not band_.lstrip("-").isdigit():
        return keys[1:2]
    return tuple(f"{region}|{int(band_) + step}" for step in (-1, 0, 1))


def next_pass(
    summary: Summary, keys: Iterable[str], *, size: int, needed: int, enqueued_at: float, now: float, tick: float
) -> float | None:
    """Seconds until the director's next pass, when a ticket it has not seen yet joins a match's
    worth of players near its skill (``near``); None otherwise. Such a ticket is most likely
    matched at that pass, and the wait is then the time to the pass, which the last pass's publish
    time and the queue's ``tickSeconds`` give (passes start every tick)."""
    depths = [
        d
        for key in near(tuple(keys))
        if (d := summary.depths.get(key)) is not None and now - d.at <= DEPTH_STALE_SECONDS
    ]
    if not depths or tick <= 0 or needed <= 0:
        return None  # no match size (a queue without rules): no match's worth to count
    published = max(d.at for d in depths)
    if enqueued_at <= published or sum(d.players for d in depths) < needed - size:
        return None  # the last pass saw this ticket and left it, or not enough players are near
    steps = max(1, math.ceil((now - published) / tick))
    return max(FLOOR_SECONDS, published + steps * tick - now)


def read_again_at(summary: Summary, now: float, *, ttl: float, tick: float | None) -> float:
    """When a frontend that read ``summary`` at ``now`` reads it again: after ``ttl``, but no
    later than once the director's next pass has published (its last publish plus ``tick``, the
    queue's pass interval, plus ``PUBLISH_SLACK_SECONDS``), since ``next_pass`` counts the players
    that pass will match. A pass overdue (a slow or stopped director) is looked for every half tick."""
    if tick is None or tick <= 0 or not summary.depths:
        return now + ttl
    due = max(d.at for d in summary.depths.values()) + tick + PUBLISH_SLACK_SECONDS
    return min(now + ttl, due if due > now else now + tick / 2)


def expected_remaining(
    summary: Summary,
    keys: Iterable[str],
    *,
    size: int,
    needed: int,
    enqueued_at: float,
    now: float,
    tick: float | None = None,
    queue_weight: float = QUEUE_WEIGHT,
) -> float | None:
    """Seconds the ticket may still wait: the time to the next pass when ``next_pass`` says it
    will be matched there and the queue ahead clears within ``NEXT_PASS_QUEUE_SECONDS`` (with
    ``tick``, the queue's pass interval); else the queue term blended with the recent time to match
    less what it waited (either alone when the other is unknown; None when neither is known),
    never beyond the longest wait seen lately (``longest_wait``) less what it waited."""
    keys = tuple(keys)
    waited = now - enqueued_at
    recent = remaining(estimate(summary.waits, keys, now), waited)
    coarse = keys[1:]  # region, then queue: a band's depth over its rate is too thin to divide (module docstring)
    queued = queue_term(summary, coarse, size=size, needed=needed, enqueued_at=enqueued_at, now=now)
    if tick is not None and (queued is None or queued <= NEXT_PASS_QUEUE_SECONDS):
        soon = next_pass(summary, keys, size=size, needed=needed, enqueued_at=enqueued_at, now=now, tick=tick)
        if soon is not None:
            return round(soon, 2)
    if queued is None:
        return recent
    blend = queued if recent is None else queue_weight * queued + (1 - queue_weight) * recent
    longest = longest_wait(summary, coarse, now)
    if longest is not None:
        blend = min(blend, max(0.0, LONGEST_FACTOR * longest - waited))
    return round(blend, 1)
