"""Why a ticket is still waiting (pure): its queue's rules, one by one, against a bounded sample of
the other waiting tickets.

``explain(ticket, candidates, queue, now)`` looks at up to ``limit`` other queued tickets and says,
with the windows of the current widening (``Rule.window``):

- per rule, how many candidates pass it and how many fail it;
- the best candidates (those failing the fewest rules, then the nearest), each with the **first**
  rule it fails in the queue's order and why, e.g. ``skill: distance 340 > 180 (widens to 600 in
  21 s)`` or ``ping: no region within 80 ms for both (closest: eu at 95 ms, reached in 8 s)``;
- how many players pass every rule against the ticket, against the players a match needs
  (``count x maxSize``, or ``count x minSize`` once ``waitForFullSeconds`` passed), and with a
  latency rule, per region;
- what holds it back (``blocked_by``): the first rule the best candidate fails, ``players`` when
  every candidate fits but there are too few of them (or none at all), the latency rule's name when
  there are enough players but not within reach of one region, or None when enough compatible
  players wait (the next passes should match it).

The checks are the rules' own (``Rule.window``, ``PartyAggregation``, the latency rule's
regions), pairwise: a pair is judged with the windows of the older ticket's wait, as the matcher
does (the oldest ticket of a match seeds it). Passing pairwise is necessary, not sufficient (a
match's spread covers all its tickets), so the compatible count is an upper bound.

``blocked_counts`` applies it to the longest-waiting tickets a director pass left unmatched, for the
per-rule metric (``fleetmatch_tickets_blocked``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from matchmaker.models import Ticket, TicketState
from matchmaker.rules import Queue, Rule, RuleType

LIMIT = 1000
"""Candidates one explanation looks at, at most (the oldest waiting)."""
BEST = 5
"""Best candidates reported."""
PLAYERS = "players"
"""``blocked_by`` when too few players wait (whatever the rules)."""
SAME_PLAYER = "player"
"""The pseudo-rule a candidate fails when one of its players is in the ticket too."""


@dataclass(frozen=True, slots=True)
class RuleCount:
    name: str
    type: str
    window: float | None
    """The window at the ticket's wait (distance, or ms for a latency rule; None for an equal rule)."""
    widest: float | None
    passed: int
    failed: int


@dataclass(frozen=True, slots=True)
class Candidate:
    ticket_id: str
    players: int
    failed_rule: str | None
    """The first rule it fails, in the queue's order (None: it passes every rule)."""
    detail: str
    failures: int


@dataclass(frozen=True, slots=True)
class Explanation:
    ticket_id: str
    wait_seconds: float
    sampled: int
    """Other waiting tickets looked at."""
    rules: tuple[RuleCount, ...]
    compatible_tickets: int
    compatible_players: int
    """Players of the ticket and of every candidate passing every rule against it."""
    players_needed: int
    by_region: Mapping[str, int]
    """With a latency rule: the compatible players who can play in each region."""
    blocked_by: str | None
    reason: str
    best: tuple[Candidate, ...] = field(default=())

    def as_json(self, *, ids: bool) -> dict[str, Any]:
        """The wire form; ``ids``: name the candidates' tickets (API keys only: a player learns
        why, not who else waits)."""
        return {
            "waitSeconds": round(self.wait_seconds, 3),
            "sampled": self.sampled,
            "playersNeeded": self.players_needed,
            "compatiblePlayers": self.compatible_players,
            "compatibleTickets": self.compatible_tickets,
            "byRegion": dict(sorted(self.by_region.items())),
            "blockedBy": self.blocked_by,
            "reason": self.reason,
            "rules": [
                {
                    "name": r.name,
                    "type": r.type,
                    "window": r.window,
                    "widest": r.widest,
                    "passed": r.passed,
                    "failed": r.failed,
                }
                for r in self.rules
            ],
            "best": [
                {
                    **({"ticket": c.ticket_id} if ids else {}),
                    "players": c.players,
                    "failedRule": c.failed_rule,
                    "detail": c.detail,
                }
                for c in self.best
            ],
        }


# -- the rules' checks, pairwise ---------------------------------------------------------------------


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def party_value(ticket: Ticket, rule: Rule) -> float | None:
    """The party's value of a distance rule's attribute (``partyAggregation``), None if a player lacks it."""
    values = [p.attributes.get(rule.attribute) for p in ticket.players]
    numbers = [float(v) for v in values if isinstance(v, int | float) and _number(v)]
    if not numbers or len(numbers) != len(values):
        return None
    return rule.party_aggregation.of(numbers)


def party_latencies(ticket: Ticket, rule: Rule) -> dict[str, float]:
    """Region -> the party's worst latency, over the regions every player reported (and the rule allows)."""
    worst: dict[str, float] | None = None
    for player in ticket.players:
        mine = {r: ms for r, ms in player.latencies.items() if not rule.regions or r in rule.regions}
        worst = mine if worst is None else {r: max(ms, mine[r]) for r, ms in worst.items() if r in mine}
    return worst or {}


def _when(rule: Rule, wait: float, needed: float) -> str:
    """When the rule's window reaches ``needed`` for a pair whose older ticket waited ``wait``."""
    widen, base = rule.widen, rule.base or 0.0
    if widen is None:
        return "never widens"
    if widen.steps:
        for step in widen.steps:
            if step.value >= needed and step.after_seconds > wait:
                return f"widens to {step.value:g} in {math.ceil(step.after_seconds - wait)} s"
    elif widen.cap is not None and widen.cap >= needed and widen.per_second > 0:
        seconds = (needed - base) / widen.per_second - wait
        if seconds > 0:
            return f"widens to {needed:g} in {math.ceil(seconds)} s"
    return f"widest {rule.widest:g}"


def check(rule: Rule, mine: Ticket, theirs: Ticket, wait: float) -> tuple[str | None, float]:
    """(None, closeness) if the pair passes ``rule`` with the windows of ``wait`` seconds, else (why,
    closeness): closeness is how far past the window the pair is (0 within; ``inf`` when widening
    cannot help), so the nearest candidates come first."""
    if rule.type is RuleType.DISTANCE:
        value, other = party_value(mine, rule), party_value(theirs, rule)
        if value is None or other is None:
            return f"{rule.name}: no {rule.attribute} to compare", math.inf
        distance, window = abs(value - other), rule.window(wait)
        if distance <= window:
            return None, distance / window if window else 0.0
        return (
            f"{rule.name}: distance {distance:g} > {window:g} ({_when(rule, wait, distance)})",
            distance / window if window else math.inf,
        )
    if rule.type is RuleType.LATENCY:
        window = rule.window(wait)
        a, b = party_latencies(mine, rule), party_latencies(theirs, rule)
        shared = {r: max(ms, b[r]) for r, ms in a.items() if r in b}
        if not shared:
            return f"{rule.name}: no region in common", math.inf
        region = min(shared, key=lambda r: (shared[r], r))
        if shared[region] <= window:
            return None, shared[region] / window if window else 0.0
        return (
            f"{rule.name}: no region within {window:g} ms for both (closest: {region} at {shared[region]:g} ms, "
            f"{_when(rule, wait, shared[region])})",
            shared[region] / window if window else math.inf,
        )
    a_value = mine.players[0].attributes.get(rule.attribute)
    b_value = theirs.players[0].attributes.get(rule.attribute)
    if a_value == b_value and a_value is not None:
        return None, 0.0
    return f"{rule.name}: {b_value!r} is not {a_value!r}", math.inf


def _shared_regions(rule: Rule, mine: Ticket, theirs: Ticket, wait: float) -> set[str]:
    window = rule.window(wait)
    a, b = party_latencies(mine, rule), party_latencies(theirs, rule)
    return {r for r, ms in a.items() if r in b and max(ms, b[r]) <= window}


# -- one ticket ----------------------------------------------------------------------------------------


def _sample(ticket: Ticket, candidates: Iterable[Ticket], limit: int) -> list[Ticket]:
    """At most ``limit`` queued tickets of ``candidates`` other than ``ticket``, in the order given."""
    sample: list[Ticket] = []
    for other in candidates:
        if len(sample) >= limit:
            break
        if other.id != ticket.id and other.state is TicketState.QUEUED and other.players:
            sample.append(other)
    return sample


def _judge(
    ticket: Ticket, other: Ticket, rules: Sequence[Rule], wait: float, passed: list[int], failed: list[int]
) -> tuple[float, Candidate]:
    """``other`` against every rule (counting passes and failures per rule): (closeness, candidate)."""
    first: str | None = None
    detail, failures, closeness = "passes every rule", 0, 0.0
    if {p.id for p in ticket.players} & {p.id for p in other.players}:
        first, detail, failures, closeness = SAME_PLAYER, "player: one of its players is in this ticket", 1, math.inf
    for i, rule in enumerate(rules):
        why, near = check(rule, ticket, other, wait)
        if why is None:
            passed[i] += 1
            continue
        failed[i] += 1
        failures += 1
        if first is None:
            first, detail, closeness = rule.name, why, near
    return closeness, Candidate(other.id, other.size, first, detail, failures)


def explain(
    ticket: Ticket, candidates: Iterable[Ticket], queue: Queue, now: float, *, limit: int = LIMIT
) -> Explanation:
    """Why ``ticket`` waits, judged against at most ``limit`` of ``candidates`` (the queued ones,
    other than itself, in the order given)."""
    spec = queue.spec
    rules = spec.rules
    latency = spec.latency_rule
    wait = max(0.0, now - ticket.enqueued_at)
    sample = _sample(ticket, candidates, limit)
    passed = [0] * len(rules)
    failed = [0] * len(rules)
    judged: list[tuple[int, float, Candidate]] = []
    compatible: list[Ticket] = []
    by_region: dict[str, int] = {}
    for other in sample:
        pair_wait = max(wait, now - other.enqueued_at)
        closeness, candidate = _judge(ticket, other, rules, pair_wait, passed, failed)
        if candidate.failed_rule is None:
            compatible.append(other)
            if latency is not None:
                for region in _shared_regions(latency, ticket, other, pair_wait):
                    by_region[region] = by_region.get(region, 0) + other.size
        judged.append((candidate.failures, closeness, candidate))
    judged.sort(key=lambda j: (j[0], j[1]))
    teams = spec.teams
    needed = teams.count * (teams.smallest if wait >= teams.wait_for_full_seconds else teams.max_size)
    players = ticket.size + sum(t.size for t in compatible)
    if latency is not None:
        own = {r for r, ms in party_latencies(ticket, latency).items() if ms <= latency.window(wait)}
        by_region = {r: by_region.get(r, 0) + ticket.size for r in own}
    best = tuple(c for _, _, c in judged[:BEST])
    blocked_by, reason = _verdict(queue, sample, best, players, needed, latency, by_region)
    counts = tuple(
        RuleCount(
            r.name,
            str(r.type),
            None if r.base is None else r.window(wait),
            None if r.base is None else r.widest,
            passed[i],
            failed[i],
        )
        for i, r in enumerate(rules)
    )
    return Explanation(
        ticket.id, wait, len(sample), counts, len(compatible), players, needed, by_region, blocked_by, reason, best
    )


def _verdict(
    queue: Queue,
    sample: Sequence[Ticket],
    best: Sequence[Candidate],
    players: int,
    needed: int,
    latency: Rule | None,
    by_region: Mapping[str, int],
) -> tuple[str | None, str]:
    if not sample:
        return PLAYERS, f"no other ticket is waiting in queue {queue.name} (a match needs {needed} players)"
    if players >= needed:
        if latency is not None and max(by_region.values(), default=0) < needed:
            region = max(by_region, key=lambda r: (by_region[r], r)) if by_region else "-"
            have = by_region.get(region, 0)
            return latency.name, (
                f"not enough players in region {region}: {have} of {needed} within {latency.name}'s window "
                f"(compatible players are spread over regions)"
            )
        return None, (
            f"{players} players fit every rule (a match needs {needed}): the next passes should match them, "
            f"unless they are too far from each other or their parties do not pack into teams"
        )
    top = best[0] if best else None
    if top is None or top.failed_rule is None:
        return PLAYERS, f"only {players} of the {needed} players a match needs fit every rule: waiting for more"
    return top.failed_rule, (
        f"only {players} of the {needed} players a match needs fit every rule; the nearest other ticket fails "
        f"{top.detail}"
    )


# -- the per-rule metric ------------------------------------------------------------------------------


def blocked_counts(
    unmatched: Sequence[Ticket], queue: Queue, now: float, *, tickets: int = 16, limit: int = 128
) -> dict[str, int]:
    """Of the ``tickets`` longest-waiting of ``unmatched`` (oldest first), how many each rule (or
    ``players``) holds back, judged against the first ``limit`` of them; every rule of the queue
    and ``players`` are keys (0 when none)."""
    counts = dict.fromkeys([*(r.name for r in queue.spec.rules), PLAYERS], 0)
    sample = list(unmatched[:limit])
    for ticket in unmatched[:tickets]:
        blocked = explain(ticket, sample, queue, now, limit=limit).blocked_by
        if blocked is not None:
            counts[blocked] = counts.get(blocked, 0) + 1
    return counts
