"""Queue rules as data: the ``Queue`` resource, read from YAML with errors that name field and line.

A queue file holds one or more documents::

    apiVersion: fleetmatch.dev/v1
    kind: Queue
    metadata: {name: 4v4}              # a DNS-1123 label: ticket ids start with it (``4v4.01jd...``)
    spec:
      teams: {count: 2, minSize: 2, maxSize: 4, waitForFullSeconds: 20}
      ticketTTLSeconds: 600
      tickSeconds: 0.5
      matchFunction: default           # or a name under the entry-point group "fleetmatch.match_functions"
      balanceAttribute: skill          # default: the first distance rule's attribute
      rules:
        - {name: skill, type: distance, attribute: skill, maxDistance: 100, widen: {perSecond: 10, max: 800}}
        - {name: level, type: distance, attribute: level, maxDistance: 5,
           widen: {steps: [{afterSeconds: 10, value: 10}, {afterSeconds: 30, value: 20}]}}
        - {name: ping, type: latency, maxLatencyMs: 80, regions: [eu, us], widen: {perSecond: 2, max: 200}}
        - {name: mode, type: equal, attribute: mode}
        - {name: rating, type: rating, attribute: skill, maxDistance: 5, widen: {perSecond: 0.5, max: 15}}
      allocation:                      # the GameServerAllocationSpec requested for each match
        selectors: [{matchLabels: {agones.dev/fleet: arena, region: "{region}"}}]
      acceptance: {timeoutSeconds: 20} # optional: a ready check before any server is allocated
      shadow:                          # optional: a second function tried on the same pool, never played
        matchFunction: default
        rules: [{name: skill, type: distance, attribute: skill, maxDistance: 50}]

What each part means (``matchmaker.matching`` implements it):

- **teams**: every match has ``count`` teams of the *same* size ``s``, ``minSize <= s <= maxSize``
  (``minSize`` defaults to ``maxSize``). A ticket (a party) is never split, so a party larger than
  ``maxSize`` is refused when the ticket is opened. Full teams (``maxSize``) are always preferred;
  smaller ones are formed only once the seed has waited ``waitForFullSeconds`` (default 0: as soon
  as no full match is at hand).
- **teams.roles** (``{tank: 1, healer: 1, dps: 3}``): role slots per team, adding up to
  ``maxSize``; players offer roles (``Player.roles``, none: any) and each takes a slot of a role
  they offered (``matchmaker.composition``). A smaller team plays every role once.
- **teams.named** (``[{name: hunter, size: 1}, {name: prey, size: 4}]``): teams of their own
  names, sizes and roles; always full. ``caps``, ``team_roles`` and ``names`` read both shapes.
- **distance** rule: the spread (largest minus smallest) of the match's ticket values is at most
  the window. A ticket's value is its players' ``partyAggregation`` (``avg`` by default, or ``min``,
  ``max``) of the numeric ``attribute``.
- **latency** rule: the match is played in one region; every player's latency to it is at most the
  window. A party's latency to a region is its worst player's; a region a player did not report is
  unusable for the ticket. ``regions`` limits the regions considered (default: any reported). Of the
  regions every ticket can use, the match takes the one with the lowest worst latency.
- **equal** rule: every player of the match has the same value of ``attribute`` (a word or a number).
- **rating** rule (at most one): ``attribute`` is the player's OpenSkill rating, kept by the
  matchmaker from match results (``matchmaker.ratings``): a ticket that omits it gets the stored one
  (``attribute`` = mu, ``attribute.sigma`` = sigma). It works as a distance rule on mu, teams are
  balanced to the split whose predicted win probability is closest to even, and the predicted draw
  probability is the match's quality.
- **widen**: the window grows with the seed's wait (the oldest ticket not yet matched, see
  ``matchmaker.matching``): ``perSecond`` + ``max`` gives ``min(max, base + perSecond * wait)``;
  ``steps`` gives the ``value`` of the last step whose ``afterSeconds <= wait`` (the base before the
  first). Windows never shrink with wait.
- **balanceAttribute**: teams are balanced on the sum of this numeric player attribute.
- **matchFunction**: ``default`` or a plug-in's name. This module keeps it as data; the matchmaker
  resolves it when its directors start (``matchmaker.functions``, ``matchmaker.app``).
- **acceptance**: every ticket of a proposed match must accept it within ``timeoutSeconds``
  (1..600, as FlexMatch's ``AcceptanceTimeoutSeconds``) before a server is allocated
  (``matchmaker.director``); a ticket that declines or lets the time run out is cancelled, and the
  others go back to the pool at their original place.
- **shadow**: a second match function (``matchFunction``, default ``default``) and optionally its
  own ``rules`` (default: the live ones), run each pass on the same pool snapshot; its proposals
  are only compared with the live ones in metrics, never claimed or played (``matchmaker.shadow``).
  ``timeoutSeconds`` (default 1) bounds one run. Tickets are still checked against the live rules.
- **allocation**: the allocation request made for each match. ``{region}`` in any string value is
  replaced by the match's region (only with a latency rule, which is what chooses a region).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from fleetmatch.allocation import GameServerAllocationSpec
from fleetmatch.codec import from_wire
from fleetmatch.documents import Kind, parse_documents, read_text
from fleetmatch.errors import ValidationError
from fleetmatch.models import ObjectMeta
from fleetmatch.names import namespace_error
from matchmaker.composition import assign_roles
from matchmaker.models import MAX_ROLES, TicketRequest
from matchmaker.ratings import SIGMA_SUFFIX

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matchmaker.models import Player

_RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_ATTRIBUTE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
"""The attribute and region names ``matchmaker.models.Player`` accepts."""
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
REGION_PLACEHOLDER = "{region}"
MAX_TEAMS = 64
MAX_PLAYERS = 200
"""Players in one match, at most: the most a FlexMatch large match holds
(https://docs.aws.amazon.com/gamelift/latest/flexmatchguide/match-design-rulesets-large.html)."""
MAX_RULES = 16
MAX_ACCEPTANCE_SECONDS = 600.0
"""Longest acceptance window (FlexMatch's ``AcceptanceTimeoutSeconds`` is 1..600 too)."""
DEFAULT_MATCH_FUNCTION = "default"
"""``matchmaker.matching.find_matches``; any other name is a plug-in (``matchmaker.functions``)."""


class RuleType(StrEnum):
    DISTANCE = "distance"
    LATENCY = "latency"
    EQUAL = "equal"
    RATING = "rating"


class PartyAggregation(StrEnum):
    AVG = "avg"
    MIN = "min"
    MAX = "max"

    def of(self, values: Sequence[float]) -> float:
        if self is PartyAggregation.MIN:
            return min(values)
        if self is PartyAggregation.MAX:
            return max(values)
        return sum(values) / len(values)


@dataclass(frozen=True, slots=True)
class WidenStep:
    after_seconds: float
    value: float


@dataclass(frozen=True, slots=True)
class Widen:
    """How a rule's window grows with wait: linearly up to a cap, or in steps (the last is the cap)."""

    per_second: float = 0.0
    cap: float | None = field(default=None, metadata={"wire": "max"})
    steps: tuple[WidenStep, ...] = ()

    def __post_init__(self) -> None:
        if self.per_second < 0 or not math.isfinite(self.per_second):
            raise ValidationError("perSecond", f"must not be negative, got {self.per_second}")
        if self.steps:
            if self.per_second or self.cap is not None:
                raise ValidationError("steps", "give either steps or perSecond with max, not both")
            for i, step in enumerate(self.steps):
                if step.after_seconds < 0 or not math.isfinite(step.after_seconds):
                    raise ValidationError(f"steps[{i}].afterSeconds", "must be a non-negative number")
                if not math.isfinite(step.value):
                    raise ValidationError(f"steps[{i}].value", "must be a finite number")
                if i and step.after_seconds <= self.steps[i - 1].after_seconds:
                    raise ValidationError(f"steps[{i}].afterSeconds", "must be later than the step before")
                if i and step.value < self.steps[i - 1].value:
                    raise ValidationError(f"steps[{i}].value", "must not be below the step before: windows only widen")
        elif self.per_second:
            if self.cap is None:
                raise ValidationError("max", "is required with perSecond: the widest the window may get")
            if not math.isfinite(self.cap):
                raise ValidationError("max", "must be a finite number")
        else:
            raise ValidationError("", "give perSecond with max, or steps")

    def window(self, base: float, wait: float) -> float:
        if self.steps:
            value = base
            for step in self.steps:
                if step.after_seconds > wait:
                    break
                value = step.value
            return value
        assert self.cap is not None  # __post_init__: perSecond comes with max
        return min(self.cap, base + self.per_second * max(0.0, wait))

    def widest(self, base: float) -> float:
        return self.steps[-1].value if self.steps else self.cap if self.cap is not None else base


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule; which fields apply depends on ``type`` (see the module docstring)."""

    name: str
    type: RuleType
    attribute: str = ""
    max_distance: float | None = None
    max_latency_ms: float | None = None
    regions: tuple[str, ...] = ()
    party_aggregation: PartyAggregation = PartyAggregation.AVG
    widen: Widen | None = None

    def __post_init__(self) -> None:
        if not _RULE_NAME.match(self.name):
            raise ValidationError("name", f"{self.name!r}: 1-63 letters, digits, - or _, starting alphanumeric")
        self._check_fields()
        if self.attribute and not _ATTRIBUTE.match(self.attribute):
            raise ValidationError("attribute", f"{self.attribute!r} is not a valid attribute name")
        for i, region in enumerate(self.regions):
            if not _ATTRIBUTE.match(region):
                raise ValidationError(f"regions[{i}]", f"{region!r} is not a valid region name")
            if region in self.regions[:i]:
                raise ValidationError(f"regions[{i}]", f"region {region!r} appears twice")
        base = self.base
        if base is None:
            return
        if base < 0 or not math.isfinite(base):
            raise ValidationError(self._base_wire, f"must be a non-negative number, got {base}")
        widen = self.widen
        start = None if widen is None else widen.steps[0].value if widen.steps else widen.cap
        if widen is not None and start is not None and start < base:
            where = "widen.steps[0].value" if widen.steps else "widen.max"
            raise ValidationError(where, f"must not be below {self._base_wire} ({base:g}): windows only widen")

    def _check_fields(self) -> None:
        """Each type's required fields are present, and no field of another type is."""
        needs = {
            RuleType.DISTANCE: ("attribute", "maxDistance"),
            RuleType.LATENCY: ("maxLatencyMs",),
            RuleType.EQUAL: ("attribute",),
            RuleType.RATING: ("attribute", "maxDistance"),
        }[self.type]
        given = {
            "attribute": bool(self.attribute),
            "maxDistance": self.max_distance is not None,
            "maxLatencyMs": self.max_latency_ms is not None,
            "regions": bool(self.regions),
            "widen": self.widen is not None,
            "partyAggregation": self.party_aggregation is not PartyAggregation.AVG,
        }
        allowed = {
            RuleType.DISTANCE: {"attribute", "maxDistance", "widen", "partyAggregation"},
            RuleType.LATENCY: {"maxLatencyMs", "regions", "widen"},
            RuleType.EQUAL: {"attribute"},
            RuleType.RATING: {"attribute", "maxDistance", "widen"},
        }[self.type]
        for wire, present in given.items():
            if wire in needs and not present:
                raise ValidationError(wire, f"is required by a {self.type} rule")
            if present and wire not in allowed:
                raise ValidationError(wire, f"does not apply to a {self.type} rule")

    @property
    def _base_wire(self) -> str:
        return "maxLatencyMs" if self.type is RuleType.LATENCY else "maxDistance"

    @property
    def base(self) -> float | None:
        """The window before any widening (None for an equal rule)."""
        return self.max_latency_ms if self.type is RuleType.LATENCY else self.max_distance

    def window(self, wait: float) -> float:
        """The window after ``wait`` seconds (distance, or milliseconds for a latency rule)."""
        base = self.base
        if base is None:
            return 0.0
        return base if self.widen is None else self.widen.window(base, wait)

    @property
    def widest(self) -> float:
        base = self.base
        if base is None:
            return 0.0
        return base if self.widen is None else self.widen.widest(base)


@dataclass(frozen=True, slots=True)
class NamedTeam:
    """One team of a queue whose teams differ (``teams.named``): its name, size and role slots."""

    name: str
    size: int
    roles: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _RULE_NAME.match(self.name):
            raise ValidationError("name", f"{self.name!r}: 1-63 letters, digits, - or _, starting alphanumeric")
        if not 1 <= self.size <= MAX_PLAYERS:
            raise ValidationError("size", f"must be within 1..{MAX_PLAYERS}, got {self.size}")
        _check_roles(self.roles)
        if self.roles and sum(self.roles.values()) != self.size:
            slots = sum(self.roles.values())
            raise ValidationError("roles", f"slots add up to {slots}, not the team's size {self.size}")


def _check_roles(roles: Mapping[str, int]) -> None:
    if len(roles) > MAX_ROLES:
        raise ValidationError("roles", f"at most {MAX_ROLES} roles, got {len(roles)}")
    for role, slots in roles.items():
        if not _ATTRIBUTE.match(role):
            raise ValidationError(f"roles.{role}", f"{role!r} is not a valid role name")
        if not 1 <= slots <= MAX_PLAYERS:
            raise ValidationError(f"roles.{role}", f"must be within 1..{MAX_PLAYERS} slots, got {slots}")


@dataclass(frozen=True, slots=True)
class Teams:
    """Either ``count`` teams alike (optionally with role ``roles`` slots), or ``named`` teams of their
    own sizes (and roles). Read ``caps``, ``team_roles`` and ``names`` for both shapes."""

    count: int = 0
    """0 (the default): 2, or with ``named`` the number of named teams."""
    max_size: int = 0
    """0 (the default): the sum of the ``roles`` slots, else 1; with ``named`` the largest team."""
    min_size: int = 0
    """0 (the default) means ``max_size``: only full teams."""
    wait_for_full_seconds: float = 0.0
    """How long the seed waits for full teams before smaller ones (down to ``min_size``) are formed."""
    roles: Mapping[str, int] = field(default_factory=dict)
    """Role -> slots in each team (they add up to ``maxSize``); empty: no roles."""
    named: tuple[NamedTeam, ...] = ()
    """Teams of their own names and sizes (``hunter`` 1, ``prey`` 4); only full teams are formed."""

    def __post_init__(self) -> None:
        if self.named:
            self._resolve_named()
        else:
            _check_roles(self.roles)
            slots = sum(self.roles.values())
            object.__setattr__(self, "count", self.count or 2)
            if self.roles and self.max_size and self.max_size != slots:
                raise ValidationError("maxSize", f"must be the sum of the roles' slots ({slots}), got {self.max_size}")
            object.__setattr__(self, "max_size", self.max_size or slots or 1)
        if not 1 <= self.count <= MAX_TEAMS:
            raise ValidationError("count", f"must be within 1..{MAX_TEAMS}, got {self.count}")
        if not 1 <= self.max_size <= MAX_PLAYERS:
            raise ValidationError("maxSize", f"must be within 1..{MAX_PLAYERS}, got {self.max_size}")
        if not 0 <= self.min_size <= self.max_size:
            raise ValidationError("minSize", f"must be within 1..maxSize ({self.max_size}), got {self.min_size}")
        if sum(self.caps) > MAX_PLAYERS:
            where = "named" if self.named else "maxSize"
            players = sum(self.caps)
            raise ValidationError(where, f"teams must hold at most {MAX_PLAYERS} players per match, got {players}")
        if self.wait_for_full_seconds < 0 or not math.isfinite(self.wait_for_full_seconds):
            raise ValidationError("waitForFullSeconds", "must be a non-negative number")
        if self.roles and self.smallest < self.max_size and self.smallest < len(self.roles):
            raise ValidationError(
                "minSize", f"must be at least the number of roles ({len(self.roles)}): a smaller team plays every role"
            )

    def _resolve_named(self) -> None:
        given = {
            "count": self.count,
            "maxSize": self.max_size,
            "minSize": self.min_size,
            "waitForFullSeconds": self.wait_for_full_seconds,
            "roles": self.roles,
        }
        for wire, value in given.items():
            if value:
                raise ValidationError(wire, "does not apply with named teams: give each team's size (and roles)")
        if len(self.named) > MAX_TEAMS:
            raise ValidationError("named", f"at most {MAX_TEAMS} teams, got {len(self.named)}")
        names = [t.name for t in self.named]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValidationError(f"named[{i}].name", f"team {name!r} appears twice")
        object.__setattr__(self, "count", len(self.named))
        object.__setattr__(self, "max_size", max(t.size for t in self.named))
        object.__setattr__(self, "min_size", 0)

    @property
    def smallest(self) -> int:
        return self.min_size or self.max_size

    @property
    def caps(self) -> tuple[int, ...]:
        """Each team's full size."""
        if self.named:
            return tuple(t.size for t in self.named)
        return (self.max_size,) * self.count

    @property
    def team_roles(self) -> tuple[Mapping[str, int], ...]:
        """Each team's role slots (empty mappings: no roles)."""
        if self.named:
            return tuple(t.roles for t in self.named)
        return (self.roles,) * self.count

    @property
    def names(self) -> tuple[str, ...]:
        """Each team's name (empty unless ``named``)."""
        return tuple(t.name for t in self.named)

    @property
    def has_roles(self) -> bool:
        return any(self.team_roles)

    @property
    def uniform(self) -> bool:
        """``count`` alike teams without roles: the matcher's fast path."""
        return not self.named and not self.roles


@dataclass(frozen=True, slots=True)
class Acceptance:
    """The ready check: players of a proposed match have ``timeout_seconds`` to accept it."""

    timeout_seconds: float

    def __post_init__(self) -> None:
        if not 1 <= self.timeout_seconds <= MAX_ACCEPTANCE_SECONDS or not math.isfinite(self.timeout_seconds):
            raise ValidationError(
                "timeoutSeconds", f"must be within 1..{MAX_ACCEPTANCE_SECONDS:g} seconds, got {self.timeout_seconds}"
            )


@dataclass(frozen=True, slots=True)
class Shadow:
    """A match function tried beside the live one for comparison only (A/B-testing rules safely)."""

    match_function: str = DEFAULT_MATCH_FUNCTION
    rules: tuple[Rule, ...] | None = None
    """None: the live rules."""
    timeout_seconds: float = 1.0
    """One run's time bound; a run still going when the next pass comes makes that pass skip it."""

    def __post_init__(self) -> None:
        if not self.match_function.strip():
            raise ValidationError("matchFunction", f"must name a match function, e.g. {DEFAULT_MATCH_FUNCTION}")
        if not 0.01 <= self.timeout_seconds <= 60 or not math.isfinite(self.timeout_seconds):
            raise ValidationError("timeoutSeconds", f"must be within 0.01..60 seconds, got {self.timeout_seconds}")


class TicketChecks(NamedTuple):
    """The parts of a queue's rules every new ticket is checked against."""

    numeric: tuple[tuple[str, str], ...]
    """(attribute, the rule that needs it to be a number)."""
    equal_rules: tuple[Rule, ...]
    latency_rule: Rule | None
    rating_rule: Rule | None


@dataclass(frozen=True, slots=True)
class QueueSpec:
    teams: Teams
    allocation: Mapping[str, Any]
    """A GameServerAllocationSpec template (wire form); see ``allocation_spec``."""
    rules: tuple[Rule, ...] = ()
    balance_attribute: str = ""
    ticket_ttl_seconds: float = field(default=600.0, metadata={"wire": "ticketTTLSeconds"})
    tick_seconds: float = 0.5
    match_function: str = DEFAULT_MATCH_FUNCTION
    """A name only: the matchmaker resolves it when its directors start (``matchmaker.app``)."""
    acceptance: Acceptance | None = None
    """None: matches go straight to allocation (no ready check)."""
    shadow: Shadow | None = None
    """None: no shadow match function."""
    _allocations: dict[str, GameServerAllocationSpec] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _ticket_checks: dict[str, TicketChecks] = field(default_factory=dict, init=False, repr=False, compare=False)

    def ticket_checks(self) -> TicketChecks:
        """What ``Queue.check_ticket`` asks of every ticket, derived once (the spec never changes):
        each create used to derive it again from the rules."""
        checks = self._ticket_checks.get("")
        if checks is None:
            checks = self._ticket_checks[""] = TicketChecks(
                tuple(self.numeric_attributes().items()), self.equal_rules, self.latency_rule, self.rating_rule
            )
        return checks

    def __post_init__(self) -> None:
        names = [r.name for r in self.rules]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValidationError(f"rules[{i}].name", f"rule {name!r} appears twice")
        if len(self.rules) > MAX_RULES:
            raise ValidationError("rules", f"at most {MAX_RULES} rules, got {len(self.rules)}")
        latency = [i for i, r in enumerate(self.rules) if r.type is RuleType.LATENCY]
        if len(latency) > 1:
            raise ValidationError(f"rules[{latency[1]}]", "a queue has at most one latency rule")
        rating = [i for i, r in enumerate(self.rules) if r.type is RuleType.RATING]
        if len(rating) > 1:
            raise ValidationError(f"rules[{rating[1]}]", "a queue has at most one rating rule")
        if self.balance_attribute and not _ATTRIBUTE.match(self.balance_attribute):
            raise ValidationError("balanceAttribute", f"{self.balance_attribute!r} is not a valid attribute name")
        if not 0 < self.ticket_ttl_seconds <= 86_400:
            raise ValidationError("ticketTTLSeconds", f"must be within (0, 86400], got {self.ticket_ttl_seconds}")
        if not 0.01 <= self.tick_seconds <= 60:
            raise ValidationError("tickSeconds", f"must be within 0.01..60, got {self.tick_seconds}")
        if self.tick_seconds > self.ticket_ttl_seconds:
            raise ValidationError("tickSeconds", "must not exceed ticketTTLSeconds")
        if not self.match_function.strip():
            raise ValidationError("matchFunction", f"must name a match function, e.g. {DEFAULT_MATCH_FUNCTION}")
        self._check_allocation()
        if self.shadow is not None:
            try:
                self.shadow_spec()
            except ValidationError as exc:
                raise exc.under("shadow") from None

    def shadow_spec(self) -> QueueSpec | None:
        """This spec as the shadow sees it: its function and rules, no shadow of its own."""
        shadow = self.shadow
        if shadow is None:
            return None
        rules = self.rules if shadow.rules is None else shadow.rules
        return replace(self, match_function=shadow.match_function, rules=rules, shadow=None)

    def _check_allocation(self) -> None:
        if "selectors" not in self.allocation:
            raise ValidationError(
                "allocation.selectors", "is required: e.g. [{matchLabels: {agones.dev/fleet: <fleet>}}]"
            )
        uses_region = False
        for path, text in _strings(self.allocation, "allocation"):
            rest = text.replace(REGION_PLACEHOLDER, "")
            uses_region = uses_region or rest != text
            unknown = _PLACEHOLDER.search(rest)
            if unknown:
                raise ValidationError(path, f"unknown placeholder {unknown.group()}; only {REGION_PLACEHOLDER}")
        if uses_region and self.latency_rule is None:
            raise ValidationError(
                "allocation", f"uses {REGION_PLACEHOLDER}, but only a latency rule chooses a match's region"
            )
        self.allocation_spec("region")

    # -- views the matcher and the API use -----------------------------------------------------

    @property
    def distance_rules(self) -> tuple[Rule, ...]:
        """Windows on a number: distance rules, and a rating rule (on the players' mu)."""
        return tuple(r for r in self.rules if r.type in (RuleType.DISTANCE, RuleType.RATING))

    @property
    def rating_rule(self) -> Rule | None:
        return next((r for r in self.rules if r.type is RuleType.RATING), None)

    @property
    def equal_rules(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.type is RuleType.EQUAL)

    @property
    def latency_rule(self) -> Rule | None:
        return next((r for r in self.rules if r.type is RuleType.LATENCY), None)

    @property
    def balance_by(self) -> str:
        """The attribute teams are balanced on ("" for none)."""
        if self.balance_attribute:
            return self.balance_attribute
        if self.rating_rule is not None:
            return self.rating_rule.attribute
        return next((r.attribute for r in self.rules if r.type is RuleType.DISTANCE), "")

    def numeric_attributes(self) -> dict[str, str]:
        """Attribute -> the rule (or ``balanceAttribute``) that needs it to be a number."""
        out = {r.attribute: f"rule {r.name!r}" for r in self.distance_rules}
        if self.balance_by and self.balance_by not in out:
            out[self.balance_by] = "balanceAttribute"
        return out

    def allocation_spec(self, region: str) -> GameServerAllocationSpec:
        """The allocation request for a match in ``region`` (validated; cached per region)."""
        spec = self._allocations.get(region)
        if spec is None:
            rendered = _render(self.allocation, region)
            spec = from_wire(GameServerAllocationSpec, rendered, "allocation")
            if len(self._allocations) >= 256:
                self._allocations.clear()
            self._allocations[region] = spec
        return spec


def _strings(value: Any, path: str) -> list[tuple[str, str]]:
    """Every string value in a wire tree, with its path."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, Mapping):
        return [item for k, v in value.items() for item in _strings(v, f"{path}.{k}")]
    if isinstance(value, list | tuple):
        return [item for i, v in enumerate(value) for item in _strings(v, f"{path}[{i}]")]
    return []


def _render(value: Any, region: str) -> Any:
    if isinstance(value, str):
        return value.replace(REGION_PLACEHOLDER, region)
    if isinstance(value, Mapping):
        return {k: _render(v, region) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_render(v, region) for v in value]
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class Queue:
    metadata: ObjectMeta
    spec: QueueSpec

    KIND: ClassVar[str] = "Queue"

    def __post_init__(self) -> None:
        err = namespace_error(self.metadata.name)
        if err:
            raise ValidationError("metadata.name", f"{self.metadata.name!r} {err} (ticket ids start with it)")

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def tick_seconds(self) -> float:
        return self.spec.tick_seconds

    @property
    def ticket_ttl_seconds(self) -> float:
        return self.spec.ticket_ttl_seconds

    @property
    def acceptance_seconds(self) -> float | None:
        """Seconds the players of a proposed match have to accept it; None: no ready check."""
        return None if self.spec.acceptance is None else self.spec.acceptance.timeout_seconds

    @property
    def players_needed(self) -> int:
        """Players in a full match (every team at ``maxSize``, or each named team at its size)."""
        return sum(self.spec.teams.caps)

    @property
    def min_players(self) -> int:
        """Players in the smallest match the queue forms (every team at ``minSize``)."""
        teams = self.spec.teams
        return sum(teams.caps) if teams.named else teams.count * teams.smallest

    def allocation_spec(self, region: str = "") -> GameServerAllocationSpec:
        return self.spec.allocation_spec(region)

    def shadow_queue(self) -> Queue | None:
        """The queue the shadow match function is given (``spec.shadow``); None without one."""
        spec = self.spec.shadow_spec()
        return None if spec is None else Queue(self.metadata, spec)

    def check_ticket(self, request: TicketRequest) -> None:
        """Refuse a ticket this queue could never match, naming the field (``players[1].latencies``)."""
        spec = self.spec
        if request.queue != self.name:
            raise ValidationError("queue", f"this is queue {self.name!r}, not {request.queue!r}")
        players = request.players
        if len(players) > spec.teams.max_size:
            raise ValidationError(
                "players",
                f"a party of {len(players)} cannot be split and does not fit a team of at most "
                f"{spec.teams.max_size} in queue {self.name!r}",
            )
        _check_roles_offered(players, spec.teams, self.name)
        checks = spec.ticket_checks()
        for attribute, why in checks.numeric:
            for i, player in enumerate(players):
                value = player.attributes.get(attribute)
                where = f"players[{i}].attributes.{attribute}"
                if value is None:
                    raise ValidationError(where, f"is required by {why}: a number")
                if not _is_number(value):
                    raise ValidationError(where, f"must be a number for {why}, got {value!r}")
        for rule in checks.equal_rules:
            first = players[0].attributes.get(rule.attribute)
            for i, player in enumerate(players):
                value = player.attributes.get(rule.attribute)
                where = f"players[{i}].attributes.{rule.attribute}"
                if value is None:
                    raise ValidationError(where, f"is required by rule {rule.name!r}")
                if value != first:
                    raise ValidationError(
                        where, f"must equal the party's first player's ({first!r}) for rule {rule.name!r}"
                    )
        if checks.latency_rule is not None:
            _check_latencies(players, checks.latency_rule)
        if checks.rating_rule is not None:
            _check_sigmas(players, checks.rating_rule)


def _check_sigmas(players: Sequence[Player], rule: Rule) -> None:
    """A rating's sigma, when a ticket gives one (``<attribute>.sigma``), is a positive number."""
    sigma = rule.attribute + SIGMA_SUFFIX
    for i, player in enumerate(players):
        value = player.attributes.get(sigma)
        if value is not None and not (_is_number(value) and 0 < float(value) <= 1e6):
            raise ValidationError(f"players[{i}].attributes.{sigma}", f"must be a positive number, got {value!r}")


def _check_roles_offered(players: Sequence[Player], teams: Teams, queue: str) -> None:
    """Roles only where the queue has them, each one a team has; a party fills slots of one team."""
    if not teams.has_roles:
        for i, player in enumerate(players):
            if player.roles:
                raise ValidationError(f"players[{i}].roles", f"queue {queue!r} has no roles")
        return
    known = {role for roles in teams.team_roles for role in roles}
    for i, player in enumerate(players):
        for j, role in enumerate(player.roles):
            if role not in known:
                raise ValidationError(
                    f"players[{i}].roles[{j}]", f"queue {queue!r} has no role {role!r} (roles: {', '.join(known)})"
                )
    offers = [p.roles for p in players]
    if not any(
        len(players) <= cap and (not roles or assign_roles(offers, roles) is not None)
        for cap, roles in zip(teams.caps, teams.team_roles, strict=True)
    ):
        raise ValidationError("players", "the party's players cannot take distinct role slots of one team")


def _check_latencies(players: Sequence[Player], rule: Rule) -> None:
    allowed = set(rule.regions)
    usable: set[str] | None = None
    for i, player in enumerate(players):
        where = f"players[{i}].latencies"
        if not player.latencies:
            raise ValidationError(where, f"are required by rule {rule.name!r}: milliseconds per region")
        mine = {r for r in player.latencies if not allowed or r in allowed}
        if not mine:
            raise ValidationError(where, f"name none of the queue's regions ({', '.join(rule.regions)})")
        usable = mine if usable is None else usable & mine
    if not usable:
        raise ValidationError("players", "the party's players report no region in common")
    worst = {r: max(p.latencies[r] for p in players) for r in usable}
    best = min(usable, key=lambda r: (worst[r], r))
    if worst[best] > rule.widest:
        far = max(range(len(players)), key=lambda i: players[i].latencies[best])
        raise ValidationError(
            f"players[{far}].latencies",
            f"every region is too far: the best, {best}, is {worst[best]:g} ms; "
            f"rule {rule.name!r} accepts at most {rule.widest:g} ms",
        )


# -- documents and files -------------------------------------------------------------------------


QUEUE = Kind(Queue)


def decode_queue(doc: Any) -> Queue:
    """A Queue document; ``apiVersion`` and ``kind`` are checked when present."""
    return QUEUE.decode(doc)


def parse_queues(text: str, source: str = "<input>") -> dict[str, Queue]:
    """Every Queue in ``text`` by name, in file order; errors name the source, field and line."""
    out: dict[str, Queue] = {}

    def unique(queue: Queue) -> None:
        if queue.name in out:
            raise ValidationError("metadata.name", f"queue {queue.name!r} is declared twice")
        out[queue.name] = queue

    parse_documents(text, source, (QUEUE,), unique)
    return out


def load_queues(path: Path) -> dict[str, Queue]:
    return parse_queues(read_text(path), str(path))
