"""Backfill, pure: which waiting tickets join a running match that has open slots.

A **backfill** is a running match asking for players: a player left (the game removed them from
its ``players`` List) or it started below full, or its backend asked through ``POST /v1/backfills``.
Each director pass fills the queue's open backfills from the pool **before** forming new matches,
with the queue's own rules against the match as it was formed (``MatchProfile``, written on the
server at allocation):

- a ticket joins only whole: its party fits the open slots of one team;
- every distance (and rating) rule: the party's value is within the rule's window of the match's
  value (``anchors``: the mean of the match's tickets); the window widens with the longer of the
  ticket's wait and the backfill's age, so an old backfill takes what the queue would take by then;
- every equal rule: the same value as the match;
- the latency rule: every player within the window of the match's region;
- blocks, both ways: nobody in the match blocked by a newcomer, no newcomer blocked by the match
  (``profile.blocked``) or by another newcomer;
- a player already in the match (or given to another backfill this pass) is never added.

Oldest backfill first, oldest ticket first (the pool as the store gives it: by enqueue time); a
backfill may be filled in part (the rest later). Work is bounded like the matcher's per seed: a
backfill looks at most ``SCAN_PER_SLOT`` waiting tickets per open slot (at least ``MIN_SCAN``), so
a pass costs O(backfills), not O(backfills x pool); one that none of the oldest tickets fits waits
for its windows to widen with its age.

**Roles.** In a queue whose teams have role slots, an open slot is a slot for a role: the team's
roles minus the roles its remaining players hold (``open_roles``, from the server's
``fleetmatch.dev/player-roles``). A party joins a team only if the roles its players offer, beside
the newcomers the team already got this pass, can take distinct open role slots (``roles_fit``);
the running players keep their roles. ``Fill.roles`` says who plays what (``assign_roles``).
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from fleetmatch.allocation import GameServerAllocationSpec, ListAction
from fleetmatch.codec import evolve
from fleetmatch.errors import ValidationError
from matchmaker.composition import RoleOffer, assign_roles, roles_fit
from matchmaker.models import Proposal, Ticket, TicketState
from matchmaker.rules import PartyAggregation, Queue, Rule, RuleType

PLAYERS_LIST = "players"
"""The Agones List a game server keeps its connected players in (capacity: the match's size). The
director adds matched players to it in the allocation write and newcomers in the fill write; the
game removes a player who leaves. Fewer values than capacity on an Allocated server of a match
opens a backfill."""
PLAYER_TEAMS_ANNOTATION = "fleetmatch.dev/player-teams"
"""JSON ``{player id: team index}`` on the allocated server: whose slot a leaver frees."""
MATCH_PROFILE_ANNOTATION = "fleetmatch.dev/match-profile"
"""JSON ``MatchProfile`` on the allocated server: what a newcomer must fit."""
BACKFILL_FILLS_ANNOTATION = "fleetmatch.dev/backfill-fills"
"""Space-separated ids of the fills already written on the server: a repeated write adds nothing."""


SCAN_PER_SLOT = 32
MIN_SCAN = 256


class BackfillState(StrEnum):
    OPEN = "open"
    FILLED = "filled"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class MatchProfile:
    """A running match as its newcomers must fit it (``MATCH_PROFILE_ANNOTATION``)."""

    region: str = ""
    anchors: Mapping[str, float] = field(default_factory=dict)
    """Distance (and rating) rule attribute -> the match's value: the mean of its tickets' values."""
    equal: Mapping[str, float | str] = field(default_factory=dict)
    """Equal rule attribute -> the match's value."""
    blocked: tuple[str, ...] = ()
    """Players somebody in the match blocks."""

    def encode(self) -> str:
        doc = {"region": self.region, "anchors": dict(self.anchors), "equal": dict(self.equal)}
        return json.dumps({**doc, "blocked": list(self.blocked)}, sort_keys=True)

    @classmethod
    def decode(cls, text: str | None) -> MatchProfile:
        """The profile an annotation holds; an empty one (no rule constrains) if absent or unreadable."""
        try:
            doc = json.loads(text) if text else {}
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):
            return cls()
        anchors = {k: float(v) for k, v in _mapping(doc.get("anchors")).items() if isinstance(v, int | float)}
        equal = {k: v for k, v in _mapping(doc.get("equal")).items() if isinstance(v, str | int | float)}
        blocked = tuple(p for p in doc.get("blocked") or () if isinstance(p, str))
        region = doc.get("region")
        return cls(region if isinstance(region, str) else "", anchors, equal, blocked)


def _mapping(value: object) -> dict[str, object]:
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class Backfill:
    """A running match's request for players, as the store keeps it."""

    id: str
    queue: str
    match_id: str
    game_server: str
    open_slots: tuple[int, ...]
    """Per team (in the match's team order): players still wanted."""
    created_at: float = 0.0
    source: str = "api"
    """``api`` (``POST /v1/backfills``) or ``list`` (the game's ``players`` List lost a player)."""
    state: BackfillState = BackfillState.OPEN
    filled: int = 0
    """Players added so far."""

    KIND: ClassVar[str] = "Backfill"

    @property
    def wanted(self) -> int:
        return sum(self.open_slots)


@dataclass(frozen=True, slots=True)
class Opening:
    """A backfill with what the director read from its server: who is in the match, and its profile."""

    backfill: Backfill
    players: frozenset[str] = frozenset()
    profile: MatchProfile = MatchProfile()
    roles: tuple[Mapping[str, int], ...] = ()
    """In a queue with role slots: per team, its open role slots (``open_roles``). A team of such a
    queue missing here has none open; a team without role slots takes anybody."""


@dataclass(frozen=True, slots=True)
class Fill:
    """Tickets for one backfill, per team index (as ``Backfill.open_slots``)."""

    backfill_id: str
    teams: tuple[tuple[str, ...], ...]
    roles: Mapping[str, str] = field(default_factory=dict)
    """In a queue with role slots: newcomer's player id -> the role they take."""

    @property
    def ticket_ids(self) -> tuple[str, ...]:
        return tuple(t for team in self.teams for t in team)


def slots_by_name(slots: Mapping[str, int], queue: Queue) -> tuple[int, ...]:
    """``openSlots`` as the API takes it (team index or name -> players) as a tuple per team;
    ``ValidationError`` naming ``openSlots.<key>``."""
    teams = queue.spec.teams
    caps, names = teams.caps, teams.names
    out = [0] * len(caps)
    if not slots:
        raise ValidationError("openSlots", "name at least one team and how many players it needs")
    for key, count in slots.items():
        where = f"openSlots.{key}"
        index = names.index(key) if key in names else int(key) if key.isascii() and key.isdigit() else -1
        if not 0 <= index < len(caps):
            known = ", ".join(names) if names else f"0..{len(caps) - 1}"
            raise ValidationError(where, f"no such team in queue {queue.name!r} (teams: {known})")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= caps[index]:
            raise ValidationError(where, f"must be a whole number within 1..{caps[index]} (the team's size)")
        out[index] = count
    return tuple(out)


def slots_from_list(values: Iterable[str], teams_of: Mapping[str, int], caps: Sequence[int]) -> tuple[int, ...]:
    """Open slots per team of a match whose ``players`` List holds ``values``: each team's size
    minus its players still listed (a listed player of no known team takes no team's slot)."""
    present = [0] * len(caps)
    for player in values:
        team = teams_of.get(player)
        if team is not None and 0 <= team < len(caps):
            present[team] += 1
    return tuple(max(0, cap - n) for cap, n in zip(caps, present, strict=True))


def open_roles(
    team_roles: Sequence[Mapping[str, int]],
    present: Iterable[str],
    teams_of: Mapping[str, int],
    roles_of: Mapping[str, str],
) -> tuple[dict[str, int], ...]:
    """Per team, its role slots the ``present`` players do not hold (by their recorded team and
    role): the roles a newcomer may take. A present player of no known role holds no slot."""
    held = [Counter[str]() for _ in team_roles]
    for player in present:
        team, role = teams_of.get(player), roles_of.get(player)
        if team is not None and role is not None and 0 <= team < len(held):
            held[team][role] += 1
    return tuple(
        {role: n - held[i][role] for role, n in roles.items() if n > held[i][role]}
        for i, roles in enumerate(team_roles)
    )


def profile_of(tickets: Sequence[Ticket], queue: Queue, region: str) -> MatchProfile:
    """The profile of a match of ``tickets`` in ``region``: written on its server at allocation."""
    spec = queue.spec
    anchors: dict[str, float] = {}
    for rule in _ranged(queue):
        values = [v for t in tickets if (v := _party_value(t, rule)) is not None]
        if values:
            anchors[rule.attribute] = sum(values) / len(values)
    equal: dict[str, float | str] = {}
    for rule in spec.equal_rules:
        value = next((p.attributes.get(rule.attribute) for t in tickets for p in t.players), None)
        if value is not None:
            equal[rule.attribute] = value
    blocked = sorted({b for t in tickets for b in t.blocked_players})
    return MatchProfile(region, anchors, equal, tuple(blocked))


def _ranged(queue: Queue) -> tuple[Rule, ...]:
    rating = queue.spec.rating_rule
    return (*queue.spec.distance_rules, *((rating,) if rating is not None else ()))


def _party_value(ticket: Ticket, rule: Rule) -> float | None:
    values = [v for p in ticket.players if _number(v := p.attributes.get(rule.attribute))]
    if len(values) != len(ticket.players) or not values:
        return None
    aggregation = rule.party_aggregation if rule.type is RuleType.DISTANCE else PartyAggregation.AVG
    return aggregation.of([float(v) for v in values])  # type: ignore[arg-type]  # numbers: checked


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A waiting ticket with what every backfill checks it against, worked out once per pass."""

    ticket: Ticket
    ids: frozenset[str]
    values: tuple[float | None, ...]
    """Per ranged rule (``_ranged``), the party's value."""

    @classmethod
    def of(cls, ticket: Ticket, ranged: Sequence[Rule]) -> _Candidate:
        ids = frozenset(p.id for p in ticket.players)
        return cls(ticket, ids, tuple(_party_value(ticket, rule) for rule in ranged))

    def fits(self, opening: Opening, queue: Queue, ranged: Sequence[Rule], now: float) -> bool:
        ticket, profile = self.ticket, opening.profile
        if ticket.state is not TicketState.QUEUED or (ticket.expires_at and ticket.expires_at <= now):
            return False
        if not opening.players.isdisjoint(self.ids) or not self.ids.isdisjoint(profile.blocked):
            return False
        if not opening.players.isdisjoint(ticket.blocked_players):
            return False
        wait = max(now - ticket.enqueued_at, now - opening.backfill.created_at, 0.0)
        for rule, value in zip(ranged, self.values, strict=True):
            anchor = profile.anchors.get(rule.attribute)
            if anchor is not None and (value is None or abs(value - anchor) > rule.window(wait)):
                return False
        for rule in queue.spec.equal_rules:
            wanted = profile.equal.get(rule.attribute)
            if wanted is not None and any(p.attributes.get(rule.attribute) != wanted for p in ticket.players):
                return False
        latency = queue.spec.latency_rule
        if latency is not None and profile.region:
            window = latency.window(wait)
            for player in ticket.players:
                ms = player.latencies.get(profile.region)
                if ms is None or ms > window:
                    return False
        return True


def fits(ticket: Ticket, opening: Opening, queue: Queue, now: float) -> bool:
    """Whether ``ticket`` may join the match of ``opening`` by the queue's rules (not slots, not
    blocks between newcomers: ``plan_fills`` checks those)."""
    ranged = _ranged(queue)
    return _Candidate.of(ticket, ranged).fits(opening, queue, ranged, now)


def plan_fills(openings: Sequence[Opening], pool: Sequence[Ticket], queue: Queue, now: float) -> list[Fill]:
    """The tickets each open backfill takes this pass from ``pool`` (oldest first; see the module
    docstring). A ticket, and a player, goes to at most one backfill; backfills that get nobody are
    left out."""
    if not openings:
        return []
    team_roles = queue.spec.teams.team_roles if queue.spec.teams.has_roles else ()
    ranged = _ranged(queue)
    # Every backfill looks at the oldest queued tickets only, up to its budget: those few are read once.
    deepest = max(max(MIN_SCAN, SCAN_PER_SLOT * o.backfill.wanted) for o in openings)
    queued = (t for t in pool if t.state is TicketState.QUEUED)
    waiting = [_Candidate.of(t, ranged) for t in itertools.islice(queued, deepest)]
    taken: set[str] = set()
    busy: set[str] = set()
    fills = []
    for opening in sorted(openings, key=lambda o: (o.backfill.created_at, o.backfill.id)):
        backfill = opening.backfill
        if backfill.state is not BackfillState.OPEN or backfill.queue != queue.name:
            continue
        left = list(backfill.open_slots)
        teams: list[list[str]] = [[] for _ in left]
        offers: list[list[RoleOffer]] = [[] for _ in left]
        players: list[list[str]] = [[] for _ in left]
        slots = _open_slots(team_roles, opening.roles)
        chosen: set[str] = set()
        avoid = set(busy)  # players no newcomer may be: in another fill, in this one, or blocked by this one's
        budget = max(MIN_SCAN, SCAN_PER_SLOT * backfill.wanted)
        for candidate in waiting[:budget]:
            if not any(left):
                break
            ticket, ids = candidate.ticket, candidate.ids
            if ticket.id in taken or not ids.isdisjoint(avoid):
                continue
            if not chosen.isdisjoint(ticket.blocked_players) or not candidate.fits(opening, queue, ranged, now):
                continue
            team = _team_for(ticket, left, offers, slots)
            if team is None:
                continue
            left[team] -= ticket.size
            teams[team].append(ticket.id)
            offers[team].extend(p.roles for p in ticket.players)
            players[team].extend(p.id for p in ticket.players)
            chosen |= ids
            avoid |= ids
            avoid.update(ticket.blocked_players)
            taken.add(ticket.id)
        if chosen:
            busy |= chosen
            fills.append(Fill(backfill.id, tuple(tuple(t) for t in teams), _roles_taken(slots, offers, players)))
    return fills


def _open_slots(
    team_roles: Sequence[Mapping[str, int]], open_per_team: Sequence[Mapping[str, int]]
) -> list[tuple[tuple[str, int], ...] | None]:
    """Per team, the role slots a newcomer may take (None: a team without roles, anybody fits)."""
    return [
        (tuple(open_per_team[i].items()) if i < len(open_per_team) else ()) if roles else None
        for i, roles in enumerate(team_roles)
    ]


def _team_for(
    ticket: Ticket,
    left: Sequence[int],
    offers: Sequence[Sequence[RoleOffer]],
    slots: Sequence[tuple[tuple[str, int], ...] | None],
) -> int | None:
    """The team ``ticket`` joins: of those with room for the whole party (and, with roles, open
    role slots its players and the team's other newcomers can take), the one wanting most."""
    if not slots:  # no roles (the usual case, and the hot loop): the team wanting most, if the party fits
        team = max(range(len(left)), key=lambda i: (left[i], -i))
        return team if left[team] >= ticket.size else None
    fitting = [
        i
        for i, room in enumerate(left)
        if room >= ticket.size
        and (
            i >= len(slots)
            or (roles := slots[i]) is None
            or roles_fit([*offers[i], *(p.roles for p in ticket.players)], roles)
        )
    ]
    return max(fitting, key=lambda i: (left[i], -i), default=None)


def _roles_taken(
    slots: Sequence[tuple[tuple[str, int], ...] | None],
    offers: Sequence[Sequence[RoleOffer]],
    players: Sequence[Sequence[str]],
) -> dict[str, str]:
    """Who plays what among a fill's newcomers (``_team_for`` checked that every team's fit)."""
    out: dict[str, str] = {}
    for team, roles in enumerate(slots):
        if roles is None or not players[team]:
            continue
        taken = assign_roles(offers[team], dict(roles))
        assert taken is not None, "roles_fit said they fit"
        out.update(zip(players[team], taken, strict=True))
    return out


def allocation_extras(
    spec: GameServerAllocationSpec, proposal: Proposal, tickets: Mapping[str, Ticket], queue: Queue
) -> tuple[dict[str, str], GameServerAllocationSpec]:
    """What a new match's allocation carries for backfill: the annotations (players' teams, the
    match profile) and the spec with the players added to the server's ``players`` List (a server
    without that List is left as it is)."""
    teams = {p.id: team for team, members in enumerate(proposal.teams) for tid in members for p in tickets[tid].players}
    profile = profile_of([tickets[tid] for tid in proposal.ticket_ids], queue, proposal.region)
    annotations = {
        PLAYER_TEAMS_ANNOTATION: json.dumps(teams, sort_keys=True),
        MATCH_PROFILE_ANNOTATION: profile.encode(),
    }
    action = spec.lists.get(PLAYERS_LIST, ListAction())
    lists = {**spec.lists, PLAYERS_LIST: evolve(action, add_values=(*action.add_values, *teams))}
    return annotations, evolve(spec, lists=lists)
