"""The default match function (pure): a queue's pool snapshot and ``now`` in, proposed matches out.

One tick, ``find_matches(pool, queue, now)``:

1. **Eligible tickets** are the queued, unexpired ones whose players carry what the rules need
   (``Queue.check_ticket`` refuses the others at the door; a pool may still hold some made under
   older rules, and they are skipped). Each ticket gets its rule values once: per distance rule its
   party's aggregate, its players' balance sum, and per region its worst player's latency. A
   director's ``QueueMatcher`` keeps them between ticks (``matchmaker.tickcache``, by ticket object:
   the store decodes a changed ticket into a new one), so a tick derives only the tickets it has not
   seen; ``find_matches`` starts from nothing. Both give the same proposals.
2. **Seeds** are taken oldest first (``enqueued_at``, then id). The seed's wait sets every window
   (``Rule.window``). The seed is the oldest ticket not matched yet in this tick, so the oldest
   ticket of a match governs its windows; the one exception is an older ticket that failed as a seed
   joining a younger seed's match, which then obeys the younger (narrower) windows: stricter, never
   looser. Tickets that share an equal-rule value form a partition; a seed looks only at its own.
3. **Gather** through a sorted index (per partition: by the first distance rule's value, or by age
   without one), walking outward from the seed, nearest value first (ties: the older ticket),
   within the seed value +- the window, skipping matched tickets in amortised O(1) (union-find
   links). At most ``SCAN_PER_PLAYER * players_needed`` candidates (at least ``MIN_SCAN``) are
   looked at per seed, so a tick is O(n log n): the sorts, plus bounded work per seed.
4. **Select** greedily in walk order: a candidate joins if the match stays within every distance
   window (spread = max - min of ticket values), shares a region with everyone within the latency
   window, has no player already in the match (a player in two open tickets never meets
   themselves), and all parties still pack into ``count`` teams of ``maxSize``. The match is formed as
   soon as it has ``count * maxSize`` players. If no full match formed, the seed could use several
   regions and latency turned candidates away, the gathered candidates are tried again one region at
   a time (the seed's best region first): early picks may have narrowed the match to a region the
   others do not share.
5. **Smaller teams**: with no full match and the seed's wait at least ``waitForFullSeconds``, the
   largest size ``s`` in ``minSize..maxSize-1`` that the selected tickets can fill exactly (``count``
   teams of ``s``, parties whole) is formed. Teams in one match always have the same size.
6. **Teams** are balanced on ``balanceAttribute`` (players' sum): parties largest first, each into
   the team with the lowest sum that has room (an exact packing if that greedy cannot fit them),
   then swaps of equal-size tickets between the strongest and the weakest team while that narrows
   the gap.
   With a rating rule, ``matchmaker.ratings.balance`` then picks the split whose predicted win
   probability is closest to even, and the predicted draw probability is the match's quality.
7. **Region**: of the regions every ticket of the match can use within the window, the one with the
   lowest worst latency (ties: by name).

**Composition** (issue 15): in a queue with role slots or named teams of their own sizes, step 4
places each candidate in the first team with room whose players can still take distinct role
slots (``_Placer``, ``matchmaker.composition.assign_roles``), and the teams are the ones placed
(teams alike are then balanced by swapping tickets whose players offer the same roles); queues
without either keep the path above. **Blocks**: a candidate joins only if none of its players is
blocked by, or blocks, a player already chosen (checked only when some ticket of the pool blocks
somebody).

**The inner loop in C** (``matchmaker/_matchloop.c``, built by ``pip install`` where there is a C
compiler; ``COMPILED``): the walk (3) for every queue, the selection (4) for queues of teams alike
with one distance rule at most, no blocks and no player in two tickets, and the teams (6) of teams
alike, on flat arrays made once per tick. It is the Python code below step for step and proposes
exactly the same matches (tests/unit/test_matchloop.py compares the two on random pools); what it
cannot hold exactly (more than 62 regions, integers past 2**53, integer strengths past 2**40) runs in
Python.

Cost: at 100,000 tickets (``loadtest/bench_match.py``), with the rule values kept and the C loop,
most of a tick is Python object work: laying out the tick's columns and sorts, the proposals; in
the Python loop about half of it is the per-seed walk and rules (two thirds of the walk's steps
pass over parties too big for the room left in the match). A rating queue keeps its tickets'
ratings in their rows and predicts from mu and sigma directly (``matchmaker.ratings.predict``); a
queue with roles remembers role assignments by offers. The director runs each tick with the cyclic
garbage collector paused (``fleetmatch.gctune``): a tick's many short-lived objects beside a large
live pool would otherwise trigger collections that walk the pool again and again.

A ticket is in at most one proposal, a player in at most one ticket of a proposal; proposals come in
seed order (oldest first), and the result is the same for the same pool in any order.
"""

from __future__ import annotations

import itertools
import math
import operator
import sys
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

from matchmaker import ratings
from matchmaker.composition import RoleOffer, RoleSlots, assigned_roles, avoid_sets, roles_fit
from matchmaker.models import MatchQuality, Player, Proposal, Ticket, TicketState
from matchmaker.rules import PartyAggregation, Queue, Rule
from matchmaker.tickcache import Row, TicketCache

try:
    from matchmaker import _matchloop
except ImportError:  # installed without a C compiler: the same loop, in Python
    _matchloop = None  # type: ignore[assignment]

COMPILED = _matchloop is not None and sys.version_info < (3, 12)
"""Run the walk and the selection in C (``matchmaker/_matchloop.c``) when it was built. Both loops
propose exactly the same matches (tests/unit/test_matchloop.py); tests turn this off to check. The C
loop sums team strengths left to right, as CPython 3.11's ``sum()`` adds floats; 3.12's compensates,
so there the Python loop runs (as ``ratings.COMPILED``)."""

SCAN_PER_PLAYER = 8
"""Candidates looked at per seed, per player of a full match (see ``MIN_SCAN``)."""
MIN_SCAN = 64
PACK_BUDGET = 2_000
"""Search steps one exact team packing may take; beyond it the tickets count as not packable."""

_INF = math.inf
_QUEUED = TicketState.QUEUED


def find_matches(pool: Sequence[Ticket], queue: Queue, now: float) -> list[Proposal]:
    """Proposed matches for ``queue`` from ``pool`` (queued tickets, any order) at time ``now``."""
    return _Tick(queue, now, TicketCache()).run(pool)


class QueueMatcher:
    """``find_matches`` bound to one queue, keeping each ticket's derived rule values between ticks
    (``matchmaker.tickcache``): a tick derives only the tickets it has not seen. The result is the
    same as ``find_matches`` on the same pool; the cache only saves work. One tick at a time: a call
    made while another runs (another thread) works without the cache."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.cache = TicketCache()
        self._busy = threading.Lock()

    def __call__(self, pool: Sequence[Ticket], now: float) -> list[Proposal]:
        if not self._busy.acquire(blocking=False):
            return find_matches(pool, self.queue, now)
        try:
            return _Tick(self.queue, now, self.cache).run(pool)
        finally:
            self._busy.release()


def _find(links: list[int], i: int) -> int:
    """The nearest position from ``i`` (in the links' direction) not yet matched: path halving."""
    while links[i] != i:
        links[i] = links[links[i]]
        i = links[i]
    return i


class _Index:
    """One partition's tickets sorted by key, with links that skip matched positions.

    Positions 1..n hold tickets; 0 and n+1 are sentinels. ``right[i] == i`` (``left[i] == i``)
    while position i is free; a matched position links to its neighbour, and ``_find`` compresses.
    """

    __slots__ = ("keys", "left", "members", "right")  # matched position p: right[p] = p + 1, left[p] = p - 1

    def __init__(self, members: list[int], keys: Sequence[Any]) -> None:
        members.sort(key=keys.__getitem__)  # stable: members come in age order, so equal keys stay so
        self.members = [-1, *members, -1]
        self.keys = [-_INF, *map(keys.__getitem__, members), _INF]
        self.right = list(range(len(self.members)))
        self.left = list(range(len(self.members)))


_BY_ID = operator.attrgetter("id")
_BY_ENQUEUED = operator.attrgetter("enqueued_at")
_BY_BLOCKED = operator.attrgetter("blocked_players")
_BY_EXPIRES = operator.attrgetter("expires_at")


_PIDS = operator.itemgetter(0)
_TICKET = operator.itemgetter(1)
_TID = operator.itemgetter(2)
_ENQ = operator.itemgetter(3)
_SIZE, _KEY, _OTHERS, _STRENGTH, _LATS, _GROUP, _OK, _OFFERS, _RATED, _BLOCKED = map(operator.itemgetter, range(6, 16))
_STUB: Row = (None,) * 10
"""The rule values of a ticket that is not queued or has no players: never read."""


def _by_age(rows: list[Row], now: float) -> list[Row]:
    """Rows (``_Tick._derive``) of the queued, unexpired tickets, oldest first (equal times: by id);
    the same ticket twice (same id and time, as a snapshot may repeat it) is kept once."""
    live = [row for row in rows if row[5] and not 0 < row[4] <= now]
    live.sort(key=_ENQ)
    times = list(map(_ENQ, live))
    if not any(map(operator.eq, times, itertools.islice(times, 1, None))):
        return live
    # ties: each run of equal times in id order, then the same id twice in a row dropped
    ties = list(itertools.compress(range(len(times)), map(operator.eq, times, itertools.islice(times, 1, None))))
    start = ties[0]
    for i, after in zip(ties, [*ties[1:], -1], strict=True):
        if after != i + 1:  # the run ends: live[start : i + 2]
            live[start : i + 2] = sorted(live[start : i + 2], key=_TID)
            start = after
    ids = list(map(_TID, live))
    if not any(map(operator.eq, ids, itertools.islice(ids, 1, None))):
        return live
    return [live[0], *itertools.compress(live[1:], map(operator.ne, ids, itertools.islice(ids, 1, None)))]


_REAL = frozenset({float, int})


def _finite(value: object) -> bool:
    """A real number (not a word, a bool, NaN or infinity): ``x - x`` is 0 only for finite x."""
    return type(value) in _REAL and value - value == 0  # type: ignore[operator]


class _Bits(dict[str, int]):
    """Region name -> its bit in a region mask, numbering regions as they are first seen; 0 for a
    region the latency rule does not list (so it is never usable)."""

    def __init__(self, allowed: Collection[str]) -> None:
        super().__init__()
        self.allowed = frozenset(allowed)
        self.names: list[str] = []

    def __missing__(self, region: str) -> int:
        bit = 0
        if not self.allowed or region in self.allowed:
            bit = 1 << len(self.names)
            self.names.append(region)
        self[region] = bit
        return bit

    def name(self, bit: int) -> str:
        return self.names[bit.bit_length() - 1]


def _aggregate(values: list[Any], aggregation: PartyAggregation | None) -> float | None:
    """A party's value (None: the sum) from its players' values; None if one is not a finite number."""
    try:
        total = sum(values)
    except TypeError:  # a word or a missing value
        return None
    if total - total != 0 or bool in map(type, values):  # inf, NaN, or a bool
        return None
    if aggregation is None:
        return float(total)
    if aggregation is PartyAggregation.AVG:
        return float(total) / len(values)
    return float(min(values) if aggregation is PartyAggregation.MIN else max(values))


class _Tick:
    """The state of one tick. Tickets are numbered by age (0 = the oldest eligible one)."""

    def __init__(self, queue: Queue, now: float, cache: TicketCache) -> None:
        spec = queue.spec
        self.cache = cache
        teams = spec.teams
        self.now = now
        self.count = teams.count
        self.max_size = teams.max_size
        self.smallest = teams.smallest
        self.wait_for_full = teams.wait_for_full_seconds
        self.general = not teams.uniform
        """Named teams of their own sizes, or role slots: placement per team (``_Placer``)."""
        self.named = bool(teams.named)
        self.caps = teams.caps
        self.team_roles = teams.team_roles
        self.role_slots: tuple[RoleSlots, ...] = tuple(tuple(roles.items()) for roles in self.team_roles)
        self.names = teams.names
        self.placement: list[int] = []
        """Team per chosen ticket of the last full ``_select`` (general queues only)."""
        self.distance: tuple[Rule, ...] = spec.distance_rules
        self.equal: tuple[Rule, ...] = spec.equal_rules
        self.latency: Rule | None = spec.latency_rule
        self.balance = spec.balance_by
        self.rating: Rule | None = spec.rating_rule
        self.scan = max(MIN_SCAN, SCAN_PER_PLAYER * sum(self.caps))
        self.windows = [_window_function(rule) for rule in self.distance]
        self.latency_window = _window_function(self.latency) if self.latency is not None else _no_window
        # per eligible ticket, by age
        self.live: Sequence[Ticket] = ()
        self.tids: Sequence[str] = ()
        self.enqueued: Sequence[float] = ()
        self.regions: dict[int, list[tuple[str, Callable[[Mapping[str, float]], float]]]] = {}
        """Region mask -> (name, latency getter) per region in it, for ``_proposal``."""
        self.sizes: Sequence[int] = ()
        self.keys: Sequence[Any] = ()
        """The first distance rule's value (the index key), or the age rank without one."""
        self.others: Sequence[tuple[float, ...]] = ()
        """Values for the other distance rules."""
        self.strength: Sequence[float] = ()
        """Sum of the balance attribute over the ticket's players."""
        self.lats: Sequence[Mapping[str, float]] = ()
        """Region -> worst player latency (a solo player's own ``latencies``)."""
        self.part: list[int] = []
        self.pos: list[int] = []
        self.contested: Sequence[tuple[str, ...]] = ()
        """Per ticket, its players who are also in another ticket of the pool; empty (the usual case:
        the store keeps one open ticket per player) when no player is in two."""
        self.latency_misses = 0
        """Candidates the last ``_select`` turned away for latency alone."""
        self.avoid: list[frozenset[str]] | None = None
        """Per ticket, the players it must not be matched with (blocks, both ways); None when no
        ticket of the pool blocks anybody."""
        self.ids: list[frozenset[str]] = []
        """Per ticket, its player ids (only with ``avoid``)."""
        self.pids: Sequence[tuple[str, ...]] = ()
        """Per ticket, its player ids (with roles, blocks, or a player in two tickets)."""
        self.offers: Sequence[tuple[RoleOffer, ...]] = ()
        """Per ticket, its players' offered roles (only in a queue with roles)."""
        self.rated: Sequence[tuple[ratings.Rating, ...] | None] = ()
        """Per ticket, its players' ratings (only in a queue with a rating rule)."""
        self.bits = _Bits(self.latency.regions if self.latency is not None else ())
        self.taken: list[bool] = []
        self.indexes: list[_Index] = []
        self.loop: _matchloop.Loop | None = None
        """The tick's tickets and indexes in C (``COMPILED``), or None: the Python loop."""
        self.fused = False
        """Whether the C loop also selects (teams alike, or role slots it places; one distance rule
        at most; no player in two tickets), or only walks (the selection in Python)."""
        self.placing = False
        """Whether the C loop places tickets in role slots (``Loop.set_roles``): it keeps the last
        full selection's placement, and ``Loop.placed_teams`` makes the teams and roles from it."""
        self.sorted_bits = False
        """Whether the regions' bits follow their names (the C loop then picks the region)."""

    # -- 1. eligible tickets --------------------------------------------------------------------

    def _load(self, pool: Sequence[Ticket]) -> None:
        """Every eligible ticket's rule values, in age order, from the cache (``matchmaker.tickcache``:
        only tickets not seen last tick are derived, and a tick touches rows, not tickets).
        Ineligible tickets keep a row but start out taken and stay out of the indexes."""
        rows = self.cache.rows(pool, self._derive)
        aged = _matchloop.by_age(rows, self.now) if COMPILED else None  # the same, in C
        rows = aged if aged is not None else _by_age(rows, self.now)
        if not rows:
            return
        self.live = list(map(_TICKET, rows))
        self.tids = list(map(_TID, rows))
        self.enqueued = list(map(_ENQ, rows))
        self.sizes = list(map(_SIZE, rows))
        self.keys = list(map(_KEY, rows)) if self.distance else [float(i) for i in range(len(rows))]
        if len(self.distance) > 1:
            self.others = list(map(_OTHERS, rows))
        self.strength = list(map(_STRENGTH, rows))
        if self.latency is not None:
            self.lats = list(map(_LATS, rows))
        cache = self.cache
        roles = self.general and any(self.team_roles)
        if cache.shared_players or cache.blocking or roles:
            self.pids = pids = list(map(_PIDS, rows))
            if cache.shared_players:
                self.contested = _contested(pids)
            blocked = list(map(_BLOCKED, rows))
            if any(blocked):
                self.avoid = avoid_sets(pids, blocked)
                self.ids = list(map(frozenset, pids))
        if roles:
            self.offers = list(map(_OFFERS, rows))
        if self.rating is not None:
            self.rated = list(map(_RATED, rows))
        ok = list(map(_OK, rows))
        self.taken = [not o for o in ok]
        if COMPILED:
            self.loop = self._compiled(ok)
        self._index(ok, list(map(_GROUP, rows)) if self.equal else [])

    def _compiled(self, ok: list[bool]) -> _matchloop.Loop | None:
        """The tick's columns in C, every region numbered first (its bit is its column); None (the
        Python loop) for what C does not hold exactly: more than 62 regions, or an integer past 2**53."""
        names: list[str] = []
        if self.latency is not None:
            for region in sorted(self.cache.regions):  # every ticket's regions, perhaps a few more
                self.bits[region]  # numbered now, in a fixed order: the bits are the C loop's columns
            names = self.bits.names
            self.sorted_bits = names == sorted(names)  # then a tie between regions goes to the lower bit
            if len(names) > _matchloop.MAX_REGIONS:
                return None
        try:
            loop = _matchloop.Loop(
                list(self.sizes),
                list(self.keys),
                list(self.strength),
                ok,
                list(self.lats) if self.latency is not None else None,
                names,
            )
        except ValueError:
            return None
        if self.avoid is not None:
            _number_blocks(loop, self.avoid, self.ids)
        selects = len(self.distance) <= 1 and not self.contested  # what the C selection leaves to Python
        self.placing = selects and self.general and bool(self.offers) and self._roles_in_c(loop)
        self.fused = selects and (not self.general or self.placing)
        return loop

    def _roles_in_c(self, loop: _matchloop.Loop) -> bool:
        """Whether the C loop places tickets in role slots (``_Placer``'s decisions on role masks);
        not for a team of more roles than it counts subsets of (the selection stays in Python)."""
        try:
            loop.set_roles(
                list(self.offers), list(self.pids), list(self.role_slots), list(self.caps), self.named, self.max_size
            )
        except ValueError:
            return False
        return True

    def _derive(self, tickets: list[Ticket]) -> list[Row]:
        """Each ticket's row: player ids, the ticket, its id, enqueue and expiry times, whether it is
        queued with players, then its rule values (for the others: never read)."""
        queued = [t.state is _QUEUED and bool(t.players) for t in tickets]
        if all(queued):
            return self._values(tickets)
        rows = iter(self._values(list(itertools.compress(tickets, queued))))
        return [
            next(rows) if q else ((), t, t.id, t.enqueued_at, t.expires_at, False, *_STUB)
            for t, q in zip(tickets, queued, strict=True)
        ]

    def _values(self, tickets: list[Ticket]) -> list[Row]:
        """The rows of queued tickets with players, column by column: at 100,000 new tickets this is
        a good part of a tick, so it touches each ticket's objects as few times as it can."""
        max_size = self.max_size
        count = len(tickets)
        everyone = [t.players for t in tickets]
        sizes = [len(players) for players in everyone]
        firsts = [players[0] for players in everyone]
        attributes = [p.attributes for p in firsts]
        ok = [size <= max_size for size in sizes]
        names = [r.attribute for r in self.distance]
        keys: list[Any] = [None] * count
        if names:
            keys = [a.get(names[0]) for a in attributes]
            ok = [o and type(k) in _REAL and k - k == 0 for o, k in zip(ok, keys, strict=True)]  # finite numbers
        others: list[tuple[Any, ...]] = [()] * count
        if len(names) > 1:
            others = [tuple([a.get(name) for name in names[1:]]) for a in attributes]
            ok = [o and all(map(_finite, v)) for o, v in zip(ok, others, strict=True)]
        strengths: list[Any] = [0.0] * count
        if self.balance:
            balance = self.balance
            if names and balance == names[0]:
                strengths = keys.copy()  # checked above
            else:
                strengths = [a.get(balance) for a in attributes]
                ok = [o and _finite(v) for o, v in zip(ok, strengths, strict=True)]
        lats: list[Mapping[str, float]] = [p.latencies for p in firsts] if self.latency is not None else [{}] * count
        if self.latency is not None:
            self.cache.regions.update(set().union(*lats))  # a party's worst latencies: its first player's regions
        groups: list[tuple[object, ...]] = [()] * count
        if self.equal:
            equal = [r.attribute for r in self.equal]
            groups = [tuple([a.get(name) for name in equal]) for a in attributes]
            ok = [o and None not in g for o, g in zip(ok, groups, strict=True)]
        for i in [i for i, size in enumerate(sizes) if 1 < size <= max_size] if max_size > 1 else ():
            ok[i] = self._party(everyone[i], i, keys, others, strengths, lats, groups)
        pids = [tuple([p.id for p in players]) for players in everyone]
        offers: list[tuple[RoleOffer, ...]] = [()] * count
        if self.general and any(self.team_roles):
            offers = [tuple([p.roles for p in players]) for players in everyone]
        rated: list[tuple[ratings.Rating, ...] | None] = [None] * count
        if self.rating is not None:
            rated = [self._ratings(players) if o else None for players, o in zip(everyone, ok, strict=True)]
        blocked = list(map(_BY_BLOCKED, tickets))
        heads = (map(_BY_ID, tickets), map(_BY_ENQUEUED, tickets), map(_BY_EXPIRES, tickets), [True] * count)
        columns = (sizes, keys, others, strengths, lats, groups, ok, offers, rated, blocked)
        return list(zip(pids, tickets, *heads, *columns, strict=True))

    def _ratings(self, players: tuple[Player, ...]) -> tuple[ratings.Rating, ...] | None:
        """A ticket's players' ratings, kept in its row: a rating queue balances and predicts every
        match from them. None if one is not a number (``_rated`` then reads them again, and fails as
        it always did, only if the ticket is matched)."""
        assert self.rating is not None
        try:
            return tuple(ratings.party_ratings(players, self.rating.attribute))
        except (TypeError, ValueError):
            return None

    def _index(self, ok: Sequence[bool], groups: Sequence[tuple[object, ...]]) -> None:
        """One sorted index per partition (equal-rule values) of the eligible tickets."""
        count, keys = len(ok), self.keys
        partitions: dict[tuple[object, ...], list[int]] = {}
        if self.equal:
            for t in range(count):
                if ok[t]:
                    partitions.setdefault(groups[t], []).append(t)
        else:
            partitions[()] = list(range(count)) if all(ok) else [t for t in range(count) if ok[t]]
        loop = self.loop
        if loop is not None:
            for members in partitions.values():
                loop.add_index(members)  # sorted there by key, equal keys in age order, as _Index
            return
        self.part = part = [0] * count
        self.pos = pos = [0] * count
        for number, members in enumerate(partitions.values()):
            index = _Index(members, keys)
            for position, t in enumerate(members, 1):  # members: sorted by the index
                pos[t] = position
            if number:
                for t in members:
                    part[t] = number
            self.indexes.append(index)

    def _party(
        self,
        players: tuple[Player, ...],
        i: int,
        keys: list[Any],
        others: list[tuple[Any, ...]],
        strengths: list[Any],
        lats: list[Mapping[str, float]],
        groups: list[tuple[object, ...]],
    ) -> bool:
        """Fill row ``i`` for a party (aggregates, worst latencies); False if it cannot be matched."""
        values = []
        for rule in self.distance:
            value = _aggregate([p.attributes.get(rule.attribute) for p in players], rule.party_aggregation)
            if value is None:
                return False
            values.append(value)
        if values:
            keys[i], others[i] = values[0], tuple(values[1:])
        if self.balance:
            total = _aggregate([p.attributes.get(self.balance) for p in players], None)
            if total is None:
                return False
            strengths[i] = total
        if self.latency is not None:
            worst = dict(players[0].latencies)
            for player in players[1:]:
                theirs = player.latencies
                for region, ms in worst.items():
                    mine = theirs.get(region, _INF)
                    if mine > ms:
                        worst[region] = mine  # an existing key: safe while iterating
            lats[i] = worst
        if self.equal:
            group = groups[i]
            return None not in group and all(
                p.attributes.get(r.attribute) == v for p in players for r, v in zip(self.equal, group, strict=True)
            )
        return True

    def _usable(self, latencies: Mapping[str, float], window: float) -> int:
        """Bit mask of the regions within ``window`` milliseconds."""
        bits = self.bits
        mask = 0
        for region, ms in latencies.items():
            if ms <= window:
                mask |= bits[region]
        return mask

    # -- 2-7. seeds, gathering, selection, teams ------------------------------------------------

    def run(self, pool: Sequence[Ticket]) -> list[Proposal]:
        self._load(pool)
        if self.loop is not None and self.fused:
            return self._run_compiled(self.loop)
        out = []
        taken, pos, loop = self.taken, self.pos, self.loop
        for seed in range(len(self.live)):
            if taken[seed]:
                continue
            found = self._match(seed)
            if found is None:
                continue
            chosen, size, mask = found
            if loop is not None:
                for t in chosen:
                    taken[t] = True
                    loop.take(t)
                out.append(self._proposal(chosen, size, mask))
                continue
            index = self.indexes[self.part[seed]]
            right, left = index.right, index.left
            for t in chosen:
                taken[t] = True
                right[pos[t]] = pos[t] + 1
                left[pos[t]] = pos[t] - 1
            out.append(self._proposal(chosen, size, mask))
        return out

    def _run_compiled(self, loop: _matchloop.Loop) -> list[Proposal]:
        """``run`` with the seeds, their windows and first passes in C (``Loop.next``): Python takes
        over for a seed only to try its regions one at a time or smaller teams, as ``_match`` would."""
        distance = _window_spec(self.distance[0]) if self.distance else None
        latency = _window_spec(self.latency) if self.latency is not None else None
        cap = self.max_size
        loop.configure(
            self.now, list(self.enqueued), [not t for t in self.taken], distance, latency,
            cap, self.count, self.scan, self.smallest, self.wait_for_full,
        )  # fmt: skip
        out = []
        proposal: Callable[[list[int], int, int], Proposal] = self._proposal
        next_match, seed = loop.next, 0
        if self.rating is None and not self.general and (self.latency is None or self.sorted_bits):
            # teams alike without a rating rule: the C loop makes the Proposal from its own figures
            # (the teams' ids, spread, longest wait, region)
            lats = list(self.lats) if self.latency is not None else None
            loop.set_proposals(
                list(self.tids), lats, self.bits.names, self.names, bool(self.balance), Proposal, MatchQuality
            )
            proposal = loop.propose
        while (got := next_match(seed)) is not None:
            seed, best, mask, best_mask, full, gathered, self.latency_misses = got
            if full:
                out.append(proposal(best, cap, best_mask))
            else:
                wait, windows, latency_window = self._windows(seed)
                found = self._go_on(seed, wait, windows, latency_window, mask, best, best_mask, gathered)
                if found is not None:
                    for t in found[0]:
                        loop.take(t)
                    out.append(proposal(*found))
            seed += 1
        return out

    def _windows(self, seed: int) -> tuple[float, list[float], float]:
        """The seed's wait, the distance rules' windows and the latency window for it."""
        wait = max(0.0, self.now - self.enqueued[seed])
        windows = [self.windows[0](wait)] if len(self.windows) == 1 else [window(wait) for window in self.windows]
        return wait, windows, self.latency_window(wait)

    def _match(self, seed: int) -> tuple[list[int], int, int] | None:
        """(tickets, team size, usable regions as a bit mask) of the seed's match, or None."""
        wait, windows, latency_window = self._windows(seed)
        loop = self.loop
        mask = 0
        if self.latency is not None:
            mask = self._usable(self.lats[seed], latency_window) if loop is None else loop.usable(seed, latency_window)
            if not mask:
                return None
        key = self.keys[seed]
        low, high = (key - windows[0], key + windows[0]) if windows else (-_INF, _INF)
        cap = self.max_size
        if loop is not None:
            gathered = loop.walk(seed, low, high, self.scan)
            best, best_mask, full = self._select(seed, gathered, cap, mask, windows, latency_window)
        else:
            gathered = []
            walk = self._walk(self.indexes[self.part[seed]], self.pos[seed], low, high, gathered)
            best, best_mask, full = self._select(seed, walk, cap, mask, windows, latency_window)
        if full:
            return best, cap, best_mask
        return self._go_on(seed, wait, windows, latency_window, mask, best, best_mask, gathered)

    def _go_on(
        self,
        seed: int,
        wait: float,
        windows: list[float],
        latency_window: float,
        mask: int,
        best: list[int],
        best_mask: int,
        gathered: list[int],
    ) -> tuple[list[int], int, int] | None:
        """After a first pass that formed no full match: the seed's regions one at a time, then
        smaller teams. ``mask``: the seed's usable regions; ``best``, ``best_mask``: the first pass."""
        cap = self.max_size
        if mask & (mask - 1) and self.latency_misses:
            # several regions, and latency turned candidates away: the first picks may have locked
            # the match into a region that a better set of tickets does not share
            seed_lats = self.lats[seed]
            name = self.bits.name
            for bit in sorted(_bits(mask), key=lambda b: (seed_lats[name(b)], name(b))):
                chosen, bit_mask, full = self._select_any(seed, gathered, cap, bit, windows, latency_window)
                if full:  # every region the chosen tickets share, not just the one tried
                    return chosen, cap, self._shared(chosen, latency_window)
                if self._players(chosen) > self._players(best):
                    best, best_mask = chosen, bit_mask
        if wait < self.wait_for_full or self.smallest >= cap or self.named:
            return None
        for size in range(min(cap - 1, self._players(best) // self.count), self.smallest - 1, -1):
            chosen, _, full = self._select_any(seed, best[1:], size, best_mask, windows, latency_window)
            if full:
                return chosen, size, self._shared(chosen, latency_window) if self.latency is not None else 0
        return None

    def _select_any(
        self, seed: int, candidates: list[int], cap: int, mask: int, windows: list[float], latency_window: float
    ) -> tuple[list[int], int, bool]:
        """``_select`` over a list of candidates, in C where the C loop selects."""
        if self.loop is not None and self.fused:
            spread = windows[0] if windows else _INF
            check = self.latency is not None
            chosen, mask, full, _ = self.loop.select_from(
                seed, candidates, cap, self.count, mask, spread, check, latency_window
            )
            return chosen, mask, full
        return self._select(seed, candidates, cap, mask, windows, latency_window)

    def _shared(self, tickets: list[int], latency_window: float) -> int:
        """The regions every one of ``tickets`` can use within the window."""
        mask = -1
        for t in tickets:
            mask &= self._usable(self.lats[t], latency_window)
        return mask

    def _players(self, tickets: list[int]) -> int:
        return sum(map(self.sizes.__getitem__, tickets))

    def _walk(self, index: _Index, position: int, low: float, high: float, gathered: list[int]) -> Iterator[int]:
        """Free tickets of the index nearest the seed's key first, within [low, high], up to the scan
        limit; each is also appended to ``gathered`` for later passes."""
        keys, members, right, left = index.keys, index.members, index.right, index.left
        center = keys[position]
        lo = position - 1 if left[position - 1] == position - 1 else _find(left, position - 1)
        hi = position + 1 if right[position + 1] == position + 1 else _find(right, position + 1)
        down = center - keys[lo] if keys[lo] >= low else _INF  # the sentinels' keys are -inf and +inf
        up = keys[hi] - center if keys[hi] <= high else _INF
        for _ in range(self.scan):
            if up < down or (up == down and up != _INF and members[hi] < members[lo]):
                ticket = members[hi]
                hi = hi + 1 if right[hi + 1] == hi + 1 else _find(right, hi + 1)
                up = keys[hi] - center if keys[hi] <= high else _INF
            elif down != _INF:
                ticket = members[lo]
                lo = lo - 1 if left[lo - 1] == lo - 1 else _find(left, lo - 1)
                down = center - keys[lo] if keys[lo] >= low else _INF
            else:
                return
            gathered.append(ticket)
            yield ticket

    def _select(  # noqa: C901 - the hot loop: every rule inline
        self,
        seed: int,
        candidates: Iterable[int],
        cap: int,
        mask: int,
        windows: list[float],
        latency_window: float,
    ) -> tuple[list[int], int, bool]:
        """Greedy selection of tickets for ``count`` teams of ``cap`` (named teams: each its own
        size): (tickets, regions mask, full?)."""
        sizes, keys, lats = self.sizes, self.keys, self.lats
        count = self.count
        target = count * cap
        self.latency_misses = 0
        chosen = [seed]
        players = sizes[seed]
        placer = None
        if self.general:
            placer = _Placer(self, cap)
            target = sum(placer.caps)
            if placer.place(seed) < 0:
                return chosen, mask, False
        elif players > cap:
            return chosen, mask, False
        fills = [0] * count
        fills[0] = players
        avoid = self.avoid
        banned = set(avoid[seed]) if avoid is not None else None  # players the chosen tickets must not meet
        check_latency, bits = self.latency is not None, self.bits
        spread = windows[0] if windows else _INF
        low = high = keys[seed]
        extra = list(zip(windows[1:], self.others[seed], self.others[seed], strict=True)) if len(windows) > 1 else None
        moved = None
        contested = self.contested
        held = set(contested[seed]) if contested else None  # chosen players who are in other tickets too
        for ticket in candidates:
            size = sizes[ticket]
            if players + size > target:
                continue
            key = keys[ticket]
            new_low = key if key < low else low
            new_high = key if key > high else high
            if new_high - new_low > spread:
                continue
            if extra is not None:
                moved = _widened(extra, self.others[ticket])
                if moved is None:
                    continue
            if held is not None and contested[ticket] and not held.isdisjoint(contested[ticket]):
                continue  # one of its players is in the match already, in another ticket
            if banned is not None and not banned.isdisjoint(self.ids[ticket]):
                continue  # a chosen ticket's player blocks one of its players, or the other way round
            if check_latency:
                shared = 0
                for region, ms in lats[ticket].items():
                    if ms <= latency_window:
                        shared |= bits[region]
                shared &= mask
                if not shared:
                    self.latency_misses += 1
                    continue
            if placer is not None:
                if placer.place(ticket) < 0:
                    continue
            else:
                for team in range(count):
                    if fills[team] + size <= cap:
                        fills[team] += size
                        break
                else:
                    together = [sizes[t] for t in chosen] + [size]
                    repacked = _fills(_pack(together, count, cap), together, count)
                    if repacked is None:
                        continue
                    fills = repacked
            if check_latency:
                mask = shared
            low, high, extra = new_low, new_high, moved
            chosen.append(ticket)
            if held is not None:
                held.update(contested[ticket])
            if banned is not None:
                banned.update(avoid[ticket])  # type: ignore[index]  # not None with banned
            players += size
            if players == target:
                if placer is not None:
                    if not placer.complete():
                        return chosen, mask, False
                    self.placement = placer.placement
                return chosen, mask, True
        return chosen, mask, False

    def _proposal(self, chosen: list[int], size: int, mask: int) -> Proposal:
        # map/itemgetter rather than comprehensions, two teams unrolled: this runs once per match,
        # and a comprehension is a function call of its own (Python 3.11)
        region, worst = self._region(chosen, mask) if self.latency is not None else ("", None)
        roles: dict[str, str] = {}
        prediction = None
        if self.general:
            if self.placing and self.loop is not None:  # the C loop kept the placement, and assigns roles
                teams, sums, roles = self.loop.placed_teams(chosen, bool(self.balance), size)
            else:
                teams, sums = self._placed_teams(chosen, size)
                if self.offers:
                    roles = self._roles(teams, size)
            caps = self.caps if self.named else (size,) * self.count
            means = [total / cap for total, cap in zip(sums, caps, strict=True)]
            spread = max(means) - min(means) if self.balance and len(means) > 1 else 0.0
        else:
            if self.loop is not None:
                teams, sums = self.loop.teams(chosen, size, self.count, bool(self.balance))
            elif self.count == 2:
                teams, sums = self._two_teams(chosen, size)
            else:
                teams, sums = self._teams(chosen, size)
            if self.rating is not None:
                teams, sums, prediction = self._rated(teams, size)
            if not self.balance or len(sums) < 2:
                spread = 0.0
            elif len(sums) == 2:  # max(sums) - min(sums), the same operands
                first, second = sums
                spread = ((second if second > first else first) - (second if second < first else first)) / size
            else:
                spread = (max(sums) - min(sums)) / size
        ticket_id = self.tids.__getitem__
        if len(teams) == 2:
            ids: tuple[tuple[str, ...], ...] = (tuple(map(ticket_id, teams[0])), tuple(map(ticket_id, teams[1])))
        else:
            ids = tuple([tuple(map(ticket_id, team)) for team in teams])
        return Proposal(  # fields by position (models.py's order): cheaper than by keyword
            ids,
            region,
            MatchQuality(
                spread,
                worst,
                max(0.0, self.now - self.enqueued[min(chosen)]),  # numbered by age
                prediction.draw if prediction is not None else None,
                prediction.win if prediction is not None else (),
            ),
            roles,
            self.names,
        )

    def _region(self, chosen: list[int], mask: int) -> tuple[str, float]:
        """Of the regions in ``mask``, the one whose worst latency over ``chosen`` is lowest (ties:
        by name), and that latency."""
        if self.loop is not None and self.sorted_bits:
            column, ticket = self.loop.region(chosen, mask)
            region = self.bits.names[column]
            return region, self.lats[ticket][region]  # the value itself (an int stays an int)
        regions = self.regions.get(mask)
        if regions is None:
            regions = self.regions[mask] = [
                (name, operator.itemgetter(name)) for name in map(self.bits.name, _bits(mask))
            ]
        if len(regions) == 1:  # about half the matches: no list of the tickets' latencies
            region, latency_of = regions[0]
            return region, max(map(latency_of, map(self.lats.__getitem__, chosen)))
        region, worst = "", _INF
        lats = list(map(self.lats.__getitem__, chosen))
        for here, latency_of in regions:
            highest = max(map(latency_of, lats))
            if not region or highest < worst or (highest == worst and here < region):
                region, worst = here, highest
        return region, worst

    def _placed_teams(self, chosen: list[int], size: int) -> tuple[list[list[int]], list[float]]:
        """Teams as the selection placed them (named teams keep their order); teams alike with role
        slots are then balanced by swapping tickets whose players offer the same roles."""
        strength = self.strength
        teams: list[list[int]] = [[] for _ in range(self.count)]
        for ticket, team in zip(chosen, self.placement, strict=True):
            teams[team].append(ticket)
        if self.balance and not self.named and self.count > 1:
            _swap_to_balance(teams, self.offers or self.sizes, strength)  # kinds: roles offered, or sizes
        for members in teams:
            members.sort()
        return teams, [sum(map(strength.__getitem__, members)) for members in teams]

    def _roles(self, teams: list[list[int]], size: int) -> dict[str, str]:
        """Player id -> role slot, team by team (``_Placer`` made sure each team has one)."""
        out: dict[str, str] = {}
        smaller = size < self.max_size
        offers, pids, chain = self.offers.__getitem__, self.pids.__getitem__, itertools.chain.from_iterable
        for members, slots in zip(teams, self.role_slots, strict=True):
            if not slots:
                continue  # a named team without role slots
            got = assigned_roles(tuple(chain(map(offers, members))), slots, smaller)
            assert got is not None, "selection only keeps teams whose players fill their slots"
            out.update(zip(chain(map(pids, members)), got, strict=True))
        return out

    def _teams(self, chosen: list[int], size: int) -> tuple[list[list[int]], list[float]]:
        """``count`` teams of exactly ``size`` players balanced on strength (each in age order), and
        their strength sums."""
        count, sizes, strength = self.count, self.sizes, self.strength
        if len(chosen) == count:  # one ticket per team (1v1, or parties that fill whole teams)
            chosen = sorted(chosen)
            return [[t] for t in chosen], [strength[t] for t in chosen]
        order = sorted(chosen, key=strength.__getitem__, reverse=True)
        order.sort(key=sizes.__getitem__, reverse=True)  # stable: largest parties, strongest first
        teams: list[list[int]] = [[] for _ in range(count)]
        fills = [0] * count
        sums = [0.0] * count
        for ticket in order:
            best = -1
            for team in range(count):
                if fills[team] + sizes[ticket] <= size and (best < 0 or sums[team] < sums[best]):
                    best = team
            if best < 0:
                teams = self._packed_teams(order, size)
                break
            teams[best].append(ticket)
            fills[best] += sizes[ticket]
            sums[best] += strength[ticket]
        if self.balance and count > 1:
            _swap_to_balance(teams, sizes, strength)
        for members in teams:
            members.sort()
        return teams, [sum(map(strength.__getitem__, members)) for members in teams]

    def _two_teams(self, chosen: list[int], size: int) -> tuple[list[list[int]], list[float]]:
        """``_teams`` for two teams (most queues), unrolled: it runs once per match. The same
        decisions on the same floats: the greedy puts a ticket in the second team only if both have
        room and the second's sum is lower (``<``: ties go to the first)."""
        strength = self.strength
        if len(chosen) == 2:  # one ticket per team (1v1, or parties that fill whole teams)
            a, b = chosen
            if b < a:
                a, b = b, a
            return [[a], [b]], [strength[a], strength[b]]
        sizes = self.sizes
        order = sorted(chosen, key=strength.__getitem__, reverse=True)
        order.sort(key=sizes.__getitem__, reverse=True)  # stable: largest parties, strongest first
        first: list[int] = []
        second: list[int] = []
        fill_first = fill_second = 0
        sum_first = sum_second = 0.0
        for ticket in order:
            players = sizes[ticket]
            if fill_first + players <= size and (fill_second + players > size or not sum_second < sum_first):
                first.append(ticket)
                fill_first += players
                sum_first += strength[ticket]
            elif fill_second + players <= size:
                second.append(ticket)
                fill_second += players
                sum_second += strength[ticket]
            else:
                first, second = self._packed_teams(order, size)
                break
        if self.balance:
            _swap_two(first, second, sizes, strength)
        first.sort()
        second.sort()
        return [first, second], [sum(map(strength.__getitem__, first)), sum(map(strength.__getitem__, second))]

    def _rated(self, teams: list[list[int]], size: int) -> tuple[list[list[int]], list[float], ratings.Prediction]:
        """The rating rule's teams (even predicted win probability) and their strength sums."""
        # once per match, two teams unrolled (as _proposal): what is left of a rated tick in Python
        assert self.rating is not None
        if len(teams) == 2:
            first, second = teams
            members = first + second
            greedy = [list(range(len(first))), list(range(len(first), len(members)))]
        else:
            members = [t for team in teams for t in team]
            greedy, start = [], 0
            for team in teams:  # each team's positions in ``members``: consecutive, no dict needed
                greedy.append(list(range(start, start + len(team))))
                start += len(team)
        attribute, rated = self.rating.attribute, self.rated
        parties = [rated[t] or ratings.party_ratings(self.live[t].players, attribute) for t in members]
        split, prediction = ratings.balance(parties, greedy, size)
        at, strength = members.__getitem__, self.strength.__getitem__
        if len(split) == 2:
            one, two = sorted(map(at, split[0])), sorted(map(at, split[1]))
            return [one, two], [sum(map(strength, one)), sum(map(strength, two))], prediction
        teams = [sorted(map(at, team)) for team in split]
        return teams, [sum(map(strength, team)) for team in teams], prediction

    def _packed_teams(self, order: list[int], size: int) -> list[list[int]]:
        placement = _pack([self.sizes[t] for t in order], self.count, size)
        assert placement is not None, "selection only keeps tickets that pack"
        teams: list[list[int]] = [[] for _ in range(self.count)]
        for ticket, team in zip(order, placement, strict=True):
            teams[team].append(ticket)
        return teams


class _Placer:
    """Team placement in a queue of named teams or role slots, during one ``_select``: a ticket goes
    to the first team (in order) with room whose players, with the ticket's, can still take distinct
    role slots (greedy: a candidate that fits no team as placed so far is passed over); without
    roles, the tickets are repacked when no team has room as they stand."""

    __slots__ = ("caps", "fills", "offers", "placement", "roles", "sizes", "slots", "smaller", "team_offers", "tickets")

    def __init__(self, tick: _Tick, cap: int) -> None:
        self.caps = tick.caps if tick.named else (cap,) * tick.count
        self.smaller = cap < tick.max_size
        self.roles = tick.team_roles
        self.slots = tick.role_slots
        self.sizes = tick.sizes
        self.offers = tick.offers  # empty without roles
        self.fills = [0] * len(self.caps)
        self.team_offers: list[list[RoleOffer]] = [[] for _ in self.caps]
        self.placement: list[int] = []
        """The team of each placed ticket, in the order they were placed."""
        self.tickets: list[int] = []

    def place(self, ticket: int) -> int:
        """The team ``ticket`` joins (it is placed), or -1 (nothing changed)."""
        size, offers = self.sizes[ticket], self.offers
        for team, cap in enumerate(self.caps):
            if self.fills[team] + size > cap:
                continue
            if offers and self.roles[team]:
                together = [*self.team_offers[team], *offers[ticket]]
                # a smaller team must still play every role: the room left is counted as players
                # who take any role, so a team is never filled past the point of no healer
                room = [()] * (cap - self.fills[team] - size) if self.smaller else []
                if not roles_fit([*together, *room], self.slots[team], every_role=self.smaller):
                    continue
                self.team_offers[team] = together
            self.fills[team] += size
            self.placement.append(team)
            self.tickets.append(ticket)
            return team
        if offers:
            return -1
        sizes = [*map(self.sizes.__getitem__, self.tickets), size]
        packed = _pack_caps(sizes, self.caps)
        if packed is None:
            return -1
        self.placement = packed
        self.tickets.append(ticket)
        self.fills = _fills(packed, sizes, len(self.caps)) or self.fills
        return packed[-1]

    def complete(self) -> bool:
        """Whether the full placement is a match: teams smaller than their slots play every role
        (``place`` made sure of it; checked again, cheaply, before a match is proposed)."""
        if not (self.smaller and self.offers):
            return True
        return all(
            roles_fit(offers, slots, every_role=True)
            for offers, slots in zip(self.team_offers, self.slots, strict=True)
            if slots
        )


def _contested(everyone: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Per ticket (its player ids), its players who also play in another ticket; ``[]`` when no
    player is in two (the selection loop then skips the check entirely). Only called when the cache
    saw a player in two tickets of the pool."""
    ids = [pid for players in everyone for pid in players]
    if len(set(ids)) == len(ids):
        return []
    tickets_of: dict[str, int] = {}
    for pid in ids:
        tickets_of[pid] = tickets_of.get(pid, 0) + 1
    return [tuple([pid for pid in players if tickets_of[pid] > 1]) for players in everyone]


def _widened(
    extra: list[tuple[float, float, float]], values: tuple[float, ...]
) -> list[tuple[float, float, float]] | None:
    """(window, low, high) per further distance rule with ``values`` added, or None if one overflows."""
    out = []
    for (window, low, high), value in zip(extra, values, strict=True):
        low, high = min(low, value), max(high, value)
        if high - low > window:
            return None
        out.append((window, low, high))
    return out


def _number_blocks(loop: _matchloop.Loop, avoid: list[frozenset[str]], ids: list[frozenset[str]]) -> None:
    """The blocks in C: the players anyone must not meet, numbered; per ticket, those it must not
    meet and those among its own players."""
    number: dict[str, int] = {}
    avoided = [tuple([number.setdefault(p, len(number)) for p in a]) if a else () for a in avoid]
    known = number.keys()
    own = [tuple(map(number.__getitem__, known & players)) if not known.isdisjoint(players) else () for players in ids]
    loop.set_blocks(avoided, own)


def _window_spec(rule: Rule) -> tuple[float, float, float, tuple[tuple[float, float], ...]]:
    """A rule's window as data: (base, per second, cap, steps), the window after a wait being the
    last step reached (from base) with steps, else ``min(cap, base + rate * wait)``. The C seed loop
    computes it from this; ``_window_function`` makes the Python function of it."""
    widen = rule.widen
    if widen is None:
        return rule.base or 0.0, 0.0, _INF, ()
    if widen.steps or widen.cap is None:  # Rule.window: 0 without a base
        if rule.base is None:
            return 0.0, 0.0, _INF, ()
        return rule.base, 0.0, _INF, tuple((step.after_seconds, step.value) for step in widen.steps)
    return rule.base or 0.0, widen.per_second, widen.cap, ()


def _no_window(wait: float) -> float:
    return _INF


def _window_function(rule: Rule) -> Callable[[float], float]:
    """``rule.window`` as a plain function of the wait (``_window_spec``): it runs once per seed and rule."""
    base, rate, cap, steps = _window_spec(rule)
    if steps:
        return rule.window
    if not rate:
        return lambda wait: base
    return lambda wait: min(cap, base + rate * wait)


def _bits(mask: int) -> Iterator[int]:
    """The set bits of ``mask``, lowest first, each as a mask of its own."""
    while mask:
        bit = mask & -mask
        yield bit
        mask ^= bit


def _pack(sizes: list[int], bins: int, cap: int) -> list[int] | None:
    """A bin per item so that no bin exceeds ``cap``, or None (also when the search budget runs out).

    Largest items first; bins with the same fill are interchangeable, so only one of them is tried;
    failed (item, fills) states are remembered.
    """
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    if sum(sizes) > bins * cap or (order and sizes[order[0]] > cap):
        return None
    fills = [0] * bins
    placement = [0] * len(sizes)
    failed: set[tuple[int, tuple[int, ...]]] = set()
    budget = PACK_BUDGET

    def place(k: int) -> bool:
        nonlocal budget
        if k == len(order):
            return True
        state = (k, tuple(sorted(fills)))
        if state in failed or budget <= 0:
            return False
        budget -= 1
        size = sizes[order[k]]
        tried = set()
        for b in range(bins):
            if fills[b] + size > cap or fills[b] in tried:
                continue
            tried.add(fills[b])
            fills[b] += size
            placement[order[k]] = b
            if place(k + 1):
                return True
            fills[b] -= size
        failed.add(state)
        return False

    return placement if place(0) else None


def _pack_caps(sizes: list[int], caps: Sequence[int]) -> list[int] | None:
    """``_pack`` for bins of their own caps (named teams): slower, so only they use it.

    Largest items first; bins with the same fill and cap are interchangeable, so only one of them is
    tried; failed (item, fills) states are remembered.
    """
    bins = len(caps)
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    if sum(sizes) > sum(caps) or (order and sizes[order[0]] > max(caps)):
        return None
    fills = [0] * bins
    placement = [0] * len(sizes)
    failed: set[tuple[int, tuple[tuple[int, int], ...]]] = set()
    budget = PACK_BUDGET

    def place(k: int) -> bool:
        nonlocal budget
        if k == len(order):
            return True
        state = (k, tuple(sorted(zip(fills, caps, strict=True))))
        if state in failed or budget <= 0:
            return False
        budget -= 1
        size = sizes[order[k]]
        tried = set()
        for b in range(bins):
            if fills[b] + size > caps[b] or (fills[b], caps[b]) in tried:
                continue
            tried.add((fills[b], caps[b]))
            fills[b] += size
            placement[order[k]] = b
            if place(k + 1):
                return True
            fills[b] -= size
        failed.add(state)
        return False

    return placement if place(0) else None


def _fills(placement: list[int] | None, sizes: list[int], bins: int) -> list[int] | None:
    """Players per bin after ``_pack`` (None stays None)."""
    if placement is None:
        return None
    fills = [0] * bins
    for size, b in zip(sizes, placement, strict=True):
        fills[b] += size
    return fills


def _swap_to_balance(
    teams: list[list[int]], sizes: Mapping[int, object] | Sequence[object], strength: Sequence[float]
) -> None:
    """Swap tickets of the same kind (``sizes``: their sizes, or anything a swap must keep equal,
    such as the roles their players offer) between the strongest and the weakest team while the
    gap narrows (each swap takes the pair that narrows it most; a few rounds at most)."""
    if len(teams) == 2:
        _swap_two(teams[0], teams[1], sizes, strength)
        return
    sums = [sum([strength[t] for t in team]) for team in teams]
    for _ in range(4 * len(teams)):
        strong, weak = sums.index(max(sums)), sums.index(min(sums))
        gap = sums[strong] - sums[weak]
        best, pick = gap, (0, 0)
        for i, a in enumerate(teams[strong]):
            size, value = sizes[a], strength[a]
            for j, b in enumerate(teams[weak]):
                if sizes[b] == size:
                    after = abs(gap - 2 * (value - strength[b]))
                    if after < best:
                        best, pick = after, (i, j)
        if best >= gap:
            return
        i, j = pick
        a, b = teams[strong][i], teams[weak][j]
        teams[strong][i], teams[weak][j] = b, a
        sums[strong] -= strength[a] - strength[b]
        sums[weak] += strength[a] - strength[b]


def _swap_two(
    first: list[int], second: list[int], sizes: Mapping[int, object] | Sequence[object], strength: Sequence[float]
) -> None:
    """``_swap_to_balance`` for two teams, unrolled (it runs once per match): the same sums, the same
    arithmetic in the same order, and the same ties (equal sums: no swap; the first best pair)."""
    sum_first = sum(map(strength.__getitem__, first))
    sum_second = sum(map(strength.__getitem__, second))
    for _ in range(8):
        if sum_second > sum_first:
            strong, weak, gap = second, first, sum_second - sum_first
        elif sum_second < sum_first:
            strong, weak, gap = first, second, sum_first - sum_second
        else:  # even (the general loop would take one team as both strongest and weakest: no swap)
            return
        best, pick_a, pick_b = gap, 0, 0
        i = 0
        for a in strong:  # counters rather than enumerate: cheaper for a handful of tickets
            size, value = sizes[a], strength[a]
            j = 0
            for b in weak:
                # only a weaker ticket can narrow the gap: with ``value <= strength[b]`` the gap after
                # is at least ``gap`` (rounding is monotonic), so the pair is never picked
                if sizes[b] == size and strength[b] < value:
                    after = abs(gap - 2 * (value - strength[b]))
                    if after < best:
                        best, pick_a, pick_b = after, i, j
                j += 1
            i += 1
        if best >= gap:
            return
        a, b = strong[pick_a], weak[pick_b]
        strong[pick_a], weak[pick_b] = b, a
        if strong is first:
            sum_first -= strength[a] - strength[b]
            sum_second += strength[a] - strength[b]
        else:
            sum_second -= strength[a] - strength[b]
            sum_first += strength[a] - strength[b]
