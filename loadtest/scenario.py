"""Load-test scenarios as data: the ``LoadTest`` resource, read from YAML with errors that name field and line.

A scenario file holds one document::

    apiVersion: fleetmatch.dev/v1
    kind: LoadTest
    metadata: {name: smoke}
    spec:
      players: 100                 # players to simulate, at most (or durationSeconds; at least one of the two)
      durationSeconds: 20          # arrivals stop after this many seconds
      hardStopSeconds: 55          # the run ends here whatever happens
      matchTimeoutSeconds: 30      # a player not matched by then fails with "match-timeout"
      arrival:                     # players (not tickets) per second, phase after phase
        process: poisson           # poisson (default) | even
        phases:
          - {type: ramp, from: 2, to: 6, seconds: 10}
          - {type: spike, base: 6, peak: 20, atSeconds: 5, forSeconds: 5, seconds: 15}
          - {type: constant, rate: 6}           # the last phase may leave out seconds
      parties: {1: 0.6, 2: 0.3, 4: 0.1}         # party size -> weight; default {1: 1}: everyone solo
      queues:                                   # queue -> share of the tickets (parties), optionally its own parties
        duel: {weight: 1, parties: {1: 1}}
        4v4: {weight: 2}
        dungeon:                                # optional, per queue (loadtest/scenarios/features-*.yaml):
          acceptance: {declineRate: 0.1, silentRate: 0.1, delaySeconds: 0.2}   # how tickets answer a ready check
          roles: [{roles: [tank], weight: 1}, {roles: [dps, healer], weight: 2}] # what each player offers
          match: {teams: 2, roles: {tank: 1, healer: 1, dps: 3}}                # what every match must be
      attributes:                               # player attribute -> distribution
        skill: {distribution: normal, mean: 1500, stddev: 200, min: 0}
      regions:                                  # region -> latency in ms; at least one
        local: {distribution: normal, mean: 5, stddev: 1, min: 1}
      sessionSeconds: {distribution: uniform, low: 3, high: 8}   # default: constant 10
      clients: {sse: 0.6, websocket: 0.2, longpoll: 0.2}          # default: {sse: 1}
      limits: {maxPlayers: 1000, maxRate: 50}                     # default: 10000 players, 500 players/s

What each part means:

- **When arrivals stop**: at the first of ``players`` (or ``limits.maxPlayers``) players,
  ``durationSeconds``, and ``hardStopSeconds``. A party that would overshoot the player count is not
  sent, so a run may fall short of ``players`` by less than its largest party (``planned_players``
  says exactly). The run itself ends at ``hardStopSeconds``: players still waiting then are counted
  as timed out.
- **arrival.phases** run one after another and give the rate in *players* per second:
  ``constant {rate}``; ``ramp {from, to, seconds}`` (linear); ``spike {base, peak, atSeconds,
  forSeconds}``: ``base``, except ``peak`` from ``atSeconds`` for ``forSeconds`` (its ``seconds``
  default to ``atSeconds + forSeconds``). Every phase but the last needs a length; after the last
  one its final rate holds. A spike is also a sequence of constant phases; the spike phase just
  reads better.
- **arrival.process**: ``poisson`` draws a non-homogeneous Poisson process over the curve (random
  gaps, bursts included: what real players do); ``even`` spaces arrivals exactly (arrival *k* when
  the curve's integral reaches *k* + 1/2), for runs that must compare like with like. Both are
  deterministic for a given ``random.Random`` seed. Either way, no one-second window ever holds more
  than ``limits.maxRate`` players: a Poisson burst above it is delayed, not sent.
- **parties and queues**: each arrival is one *party*, i.e. one ticket. A ticket goes to a queue
  with probability proportional to the queue's ``weight``; its size follows that queue's ``parties``
  (else ``spec.parties``). Queue and size are a pure function of the ticket's index, drawn from a
  low-discrepancy sequence rather than dice: every stretch of tickets has the mix asked for, and the
  schedule knows each ticket's size without the random stream. Keep sizes within what each queue
  accepts (the demo ``duel`` takes solo players only; ``4v4`` parties of up to 4).
- **distributions** (attributes, regions, sessionSeconds): ``normal {mean, stddev}``, ``uniform
  {low, high}``, ``constant {value}``, ``choice {values, weights}``; numeric ones may be clamped with
  ``min``/``max``. Attributes may be words (``constant``/``choice`` of strings); latencies and
  session lengths must be numbers. Every player reports a latency to every region (clamped to
  0..60000 ms). Each player of a party is drawn independently.
- **acceptance** (per queue, for a queue with a ready check): each *ticket* draws once whether it
  declines (``declineRate``: every match proposed to it, so its ticket is cancelled), stays silent
  (``silentRate``: never answers, the server cancels it at the deadline) or accepts after
  ``delaySeconds``. Players who decline or stay silent end failed ``declined`` / ``not-accepted``:
  by choice, so the verdict's failure rate leaves them out.
- **roles** (per queue): each player draws one offer (roles it may play, by weight); players of a
  party draw independently, so parties span roles (a party that could not take distinct slots of
  one team, which the ticket API refuses, draws again).
- **match** (per queue): what every match must be, ``teams`` teams of ``teamSize`` players (default:
  the sum of ``roles``, the slots per team). The verdict checks every match its players saw: full,
  every role slot filled, and every player in a role it offered (``summary.features``).
- **sessionSeconds**: how long a matched player plays before leaving (one draw per party).
- **clients**: how a party awaits its assignment: Server-Sent Events, WebSocket, or long-poll GET.
- **limits**: safety caps the scenario may not exceed (checked at load time); they may not exceed
  the absolute caps either (``MAX_PLAYERS``, ``MAX_RATE``, ``MAX_SECONDS``), whatever the file says.

Targets: ``is_loopback`` and ``check_target`` decide whether a URL may be load-tested. A URL that
reaches this machine is always fine; any other host only when the user named it explicitly
(``--target``): a stale ``FLEETMATCH_MATCHMAKER_URL`` or ``stack.json`` must never aim a thousand
simulated players at somebody's production.

This module is pure (no asyncio, no network): the runner drives it with its own clock and ``rng``.
"""

from __future__ import annotations

import bisect
import ipaddress
import math
import re
import urllib.parse
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from random import Random
from typing import Any, ClassVar

from fleetmatch.documents import Kind, decode_document, read_text
from fleetmatch.errors import ValidationError
from fleetmatch.models import ObjectMeta
from fleetmatch.names import namespace_error
from fleetmatch.yamlsrc import load_documents
from matchmaker.composition import assign_roles
from matchmaker.models import MAX_PARTY, Player, check_roles
from matchmaker.rules import MAX_PLAYERS as MAX_MATCH_PLAYERS
from matchmaker.rules import MAX_TEAMS

MAX_PLAYERS = 100_000
"""Players in one run, at most, whatever the scenario's limits say."""
MAX_RATE = 5_000.0
"""Players per second, at most, whatever the scenario's limits say."""
MAX_SECONDS = 6 * 3600.0
"""A run's hard stop, at most: a forgotten run ends by itself."""
MAX_PHASES = 64
MAX_LATENCY_MS = 60_000.0
"""What ``matchmaker.models.Player`` accepts."""
CLIENTS = ("sse", "websocket", "longpoll")
"""How a party may await its assignment (the ticket API's three ways)."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
"""Attribute and region names, as ``matchmaker.models.Player`` accepts them."""
_RUN_ID = re.compile(r"^[a-z0-9]{1,16}$")
_GOLDEN = (math.sqrt(5) - 1) / 2
"""Step of the low-discrepancy (Weyl) sequence that picks each ticket's queue and size."""
_SILVER = math.sqrt(2) - 1
"""Step of the one that picks a ticket's answer to a ready check (independent of the first)."""


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def _non_negative(value: float) -> bool:
    return math.isfinite(value) and value >= 0


# -- distributions ---------------------------------------------------------------------------------


class DistributionType(StrEnum):
    NORMAL = "normal"
    UNIFORM = "uniform"
    CONSTANT = "constant"
    CHOICE = "choice"


_DIST_FIELDS: dict[DistributionType, tuple[set[str], set[str]]] = {
    # type -> (required, allowed) wire fields besides ``distribution``
    DistributionType.NORMAL: ({"mean", "stddev"}, {"mean", "stddev", "min", "max"}),
    DistributionType.UNIFORM: ({"low", "high"}, {"low", "high", "min", "max"}),
    DistributionType.CONSTANT: ({"value"}, {"value"}),
    DistributionType.CHOICE: ({"values"}, {"values", "weights"}),
}


@dataclass(frozen=True, slots=True)
class Distribution:
    """A value drawn per player (or per party); which fields apply depends on ``distribution``."""

    distribution: DistributionType
    mean: float | None = None
    stddev: float | None = None
    low: float | None = None
    high: float | None = None
    value: float | str | None = None
    values: tuple[float | str, ...] = ()
    weights: tuple[float, ...] = ()
    minimum: float | None = field(default=None, metadata={"wire": "min"})
    maximum: float | None = field(default=None, metadata={"wire": "max"})

    def __post_init__(self) -> None:
        given = {
            "mean": self.mean is not None,
            "stddev": self.stddev is not None,
            "low": self.low is not None,
            "high": self.high is not None,
            "value": self.value is not None,
            "values": bool(self.values),
            "weights": bool(self.weights),
            "min": self.minimum is not None,
            "max": self.maximum is not None,
        }
        required, allowed = _DIST_FIELDS[self.distribution]
        for wire, present in given.items():
            if wire in required and not present:
                raise ValidationError(wire, f"is required by a {self.distribution} distribution")
            if present and wire not in allowed:
                raise ValidationError(wire, f"does not apply to a {self.distribution} distribution")
        self._check_numbers()

    def _check_numbers(self) -> None:
        for wire, number in (("mean", self.mean), ("low", self.low), ("high", self.high)):
            if number is not None and not math.isfinite(number):
                raise ValidationError(wire, f"must be a finite number, got {number}")
        if self.stddev is not None and not _non_negative(self.stddev):
            raise ValidationError("stddev", f"must not be negative, got {self.stddev}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValidationError("high", f"must not be below low ({self.low:g}), got {self.high:g}")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValidationError("max", f"must not be below min ({self.minimum:g}), got {self.maximum:g}")
        if self.weights and len(self.weights) != len(self.values):
            raise ValidationError(
                "weights", f"needs one weight per value ({len(self.values)}), got {len(self.weights)}"
            )
        for i, weight in enumerate(self.weights):
            if not _positive(weight):
                raise ValidationError(f"weights[{i}]", f"must be a positive number, got {weight}")

    @property
    def numeric(self) -> bool:
        """Whether every value it can draw is a number."""
        if self.distribution is DistributionType.CONSTANT:
            return not isinstance(self.value, str)
        if self.distribution is DistributionType.CHOICE:
            return not any(isinstance(v, str) for v in self.values)
        return True

    def sample(self, rng: Random) -> float | str:
        kind = self.distribution
        if kind is DistributionType.CONSTANT:
            assert self.value is not None  # __post_init__: required
            return self.value
        if kind is DistributionType.CHOICE:
            return rng.choices(self.values, weights=self.weights or None)[0]
        if kind is DistributionType.NORMAL:
            assert self.mean is not None and self.stddev is not None
            number = rng.gauss(self.mean, self.stddev)
        else:
            assert self.low is not None and self.high is not None
            number = rng.uniform(self.low, self.high)
        if self.minimum is not None:
            number = max(self.minimum, number)
        if self.maximum is not None:
            number = min(self.maximum, number)
        return number

    def sample_number(self, rng: Random) -> float:
        value = self.sample(rng)
        assert not isinstance(value, str)  # ScenarioSpec checks ``numeric`` where a number is needed
        return float(value)


# -- the arrival curve -----------------------------------------------------------------------------


class PhaseType(StrEnum):
    CONSTANT = "constant"
    RAMP = "ramp"
    SPIKE = "spike"


class ArrivalProcess(StrEnum):
    POISSON = "poisson"
    EVEN = "even"


_PHASE_FIELDS: dict[PhaseType, tuple[set[str], set[str]]] = {
    PhaseType.CONSTANT: ({"rate"}, {"rate", "seconds"}),
    PhaseType.RAMP: ({"from", "to", "seconds"}, {"from", "to", "seconds"}),
    PhaseType.SPIKE: (
        {"base", "peak", "atSeconds", "forSeconds"},
        {"base", "peak", "atSeconds", "forSeconds", "seconds"},
    ),
}


@dataclass(frozen=True, slots=True)
class Piece:
    """A stretch of the curve where the rate goes linearly from ``r0`` to ``r1`` (players/s)."""

    t0: float
    t1: float
    r0: float
    r1: float

    def rate(self, t: float) -> float:
        if self.r0 == self.r1:
            return self.r0
        return self.r0 + (self.r1 - self.r0) * (t - self.t0) / (self.t1 - self.t0)

    def area(self, t: float | None = None) -> float:
        """Players expected from ``t0`` to ``t`` (the whole piece by default)."""
        end = self.t1 if t is None else t
        if end == math.inf:
            return math.inf if self.r0 > 0 else 0.0
        return (self.r0 + self.rate(end)) / 2 * (end - self.t0)

    def time_for(self, area: float) -> float:
        """When the area since ``t0`` reaches ``area`` (which is at most this piece's area)."""
        # r0*x + a*x^2 = area with a = (r1-r0) / (2*length); the form below is stable as a -> 0.
        a = 0.0 if self.r0 == self.r1 else (self.r1 - self.r0) / (2 * (self.t1 - self.t0))
        root = math.sqrt(max(0.0, self.r0 * self.r0 + 4 * a * area))
        denominator = self.r0 + root
        return self.t0 + (2 * area / denominator if denominator > 0 else 0.0)


@dataclass(frozen=True, slots=True)
class Phase:
    """One phase of the arrival curve; which fields apply depends on ``type``."""

    type: PhaseType
    seconds: float | None = None
    rate: float | None = None
    start: float | None = field(default=None, metadata={"wire": "from"})
    end: float | None = field(default=None, metadata={"wire": "to"})
    base: float | None = None
    peak: float | None = None
    at_seconds: float | None = None
    for_seconds: float | None = None

    def __post_init__(self) -> None:
        given = {
            "seconds": self.seconds,
            "rate": self.rate,
            "from": self.start,
            "to": self.end,
            "base": self.base,
            "peak": self.peak,
            "atSeconds": self.at_seconds,
            "forSeconds": self.for_seconds,
        }
        required, allowed = _PHASE_FIELDS[self.type]
        for wire, value in given.items():
            if wire in required and value is None:
                raise ValidationError(wire, f"is required by a {self.type} phase")
            if value is not None and wire not in allowed:
                raise ValidationError(wire, f"does not apply to a {self.type} phase")
            if value is not None and not _non_negative(value):
                raise ValidationError(wire, f"must not be negative, got {value}")
        self._check_shape()

    def _check_shape(self) -> None:
        if self.seconds is not None and self.seconds <= 0:
            raise ValidationError("seconds", f"must be positive, got {self.seconds}")
        if self.rate is not None and self.rate <= 0:
            raise ValidationError("rate", f"must be positive, got {self.rate}")
        if self.type is PhaseType.RAMP and self.start == 0 and self.end == 0:
            raise ValidationError("to", "a ramp from 0 to 0 sends nobody")
        if self.type is PhaseType.SPIKE:
            assert self.base is not None and self.peak is not None and self.for_seconds is not None
            if self.peak <= self.base:
                raise ValidationError("peak", f"must be above base ({self.base:g}), got {self.peak:g}")
            if self.for_seconds <= 0:
                raise ValidationError("forSeconds", f"must be positive, got {self.for_seconds}")
            if self.seconds is not None and self.seconds < self._spike_end:
                raise ValidationError("seconds", f"must cover atSeconds + forSeconds ({self._spike_end:g})")

    @property
    def _spike_end(self) -> float:
        assert self.at_seconds is not None and self.for_seconds is not None
        return self.at_seconds + self.for_seconds

    @property
    def length(self) -> float | None:
        """Seconds this phase lasts (None: a constant phase without ``seconds``, open-ended)."""
        if self.seconds is not None:
            return self.seconds
        return self._spike_end if self.type is PhaseType.SPIKE else None

    @property
    def peak_rate(self) -> tuple[str, float]:
        """The highest rate of the phase, with the field that sets it."""
        if self.type is PhaseType.CONSTANT:
            assert self.rate is not None
            return "rate", self.rate
        if self.type is PhaseType.RAMP:
            assert self.start is not None and self.end is not None
            return ("from", self.start) if self.start > self.end else ("to", self.end)
        assert self.peak is not None
        return "peak", self.peak

    @property
    def final_rate(self) -> float:
        """The rate at the end of the phase, which holds on after the last phase."""
        if self.type is PhaseType.CONSTANT:
            assert self.rate is not None
            return self.rate
        if self.type is PhaseType.RAMP:
            assert self.end is not None
            return self.end
        assert self.base is not None
        return self.base

    def pieces(self, t0: float) -> list[Piece]:
        length = self.length
        end = math.inf if length is None else t0 + length
        if self.type is PhaseType.CONSTANT:
            assert self.rate is not None
            return [Piece(t0, end, self.rate, self.rate)]
        if self.type is PhaseType.RAMP:
            assert self.start is not None and self.end is not None
            return [Piece(t0, end, self.start, self.end)]
        assert self.base is not None and self.peak is not None and self.at_seconds is not None
        up, down = t0 + self.at_seconds, t0 + self._spike_end
        out = [Piece(t0, up, self.base, self.base), Piece(up, down, self.peak, self.peak)]
        out.append(Piece(down, end, self.base, self.base))
        return [p for p in out if p.t1 > p.t0]

    def scaled(self, factor: float) -> Phase:
        def times(value: float | None) -> float | None:
            return None if value is None else value * factor

        return replace(
            self,
            rate=times(self.rate),
            start=times(self.start),
            end=times(self.end),
            base=times(self.base),
            peak=times(self.peak),
        )


@dataclass(frozen=True, slots=True)
class Arrival:
    phases: tuple[Phase, ...]
    process: ArrivalProcess = ArrivalProcess.POISSON

    def __post_init__(self) -> None:
        if not self.phases:
            raise ValidationError("phases", "at least one phase is required, e.g. [{type: constant, rate: 5}]")
        if len(self.phases) > MAX_PHASES:
            raise ValidationError("phases", f"at most {MAX_PHASES} phases, got {len(self.phases)}")
        for i, phase in enumerate(self.phases[:-1]):
            if phase.length is None:
                raise ValidationError(f"phases[{i}].seconds", "is required on every phase but the last")

    def curve(self) -> Curve:
        pieces: list[Piece] = []
        t = 0.0
        for phase in self.phases:
            pieces.extend(phase.pieces(t))
            t = pieces[-1].t1
        if t < math.inf:
            rate = self.phases[-1].final_rate
            pieces.append(Piece(t, math.inf, rate, rate))
        return Curve(tuple(pieces))


@dataclass(frozen=True, slots=True)
class Curve:
    """The arrival rate as contiguous linear pieces from 0 to infinity, with their integral."""

    pieces: tuple[Piece, ...]
    starts: tuple[float, ...] = field(init=False)
    areas: tuple[float, ...] = field(init=False)
    """Players expected before each piece starts."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "starts", tuple(p.t0 for p in self.pieces))
        areas, total = [], 0.0
        for piece in self.pieces:
            areas.append(total)
            total += piece.area()
        object.__setattr__(self, "areas", tuple(areas))

    def rate_at(self, t: float) -> float:
        if t < 0:
            return 0.0
        return self.pieces[bisect.bisect_right(self.starts, t) - 1].rate(t)

    def area_until(self, t: float) -> float:
        """Players expected from 0 to ``t``."""
        if t <= 0:
            return 0.0
        i = bisect.bisect_right(self.starts, t) - 1
        return self.areas[i] + self.pieces[i].area(t)

    def time_at(self, area: float) -> float:
        """When the expected number of players reaches ``area`` (infinity if it never does)."""
        # The last piece starting at or below ``area``: past any zero-rate stretch (a spike with
        # base 0), so arrivals resume where the rate does.
        i = bisect.bisect_right(self.areas, area) - 1
        piece = self.pieces[i]
        if area - self.areas[i] >= piece.area():
            return math.inf
        return piece.time_for(area - self.areas[i])


# -- parties and the spec --------------------------------------------------------------------------


class Answer(StrEnum):
    """What a ticket does when a match is proposed to it (queues with ``acceptance``)."""

    ACCEPT = "accept"
    DECLINE = "decline"
    """Declines every match proposed to it: its ticket is cancelled at the first one that still waits."""
    SILENT = "silent"
    """Never answers: the server cancels its ticket at the proposal's deadline."""


@dataclass(frozen=True, slots=True)
class Answers:
    """How a queue's tickets answer a ready check: a share declines, a share stays silent, the rest
    accept after ``delaySeconds`` (a player reaching for the button)."""

    decline_rate: float = 0.0
    silent_rate: float = 0.0
    delay_seconds: float = 0.2

    def __post_init__(self) -> None:
        for wire, rate in (("declineRate", self.decline_rate), ("silentRate", self.silent_rate)):
            if not (math.isfinite(rate) and 0 <= rate <= 1):
                raise ValidationError(wire, f"must be a fraction within 0..1, got {rate}")
        if self.decline_rate + self.silent_rate > 1:
            total = self.decline_rate + self.silent_rate
            raise ValidationError("silentRate", f"declineRate + silentRate must be at most 1, got {total:g}")
        if not (_non_negative(self.delay_seconds) and self.delay_seconds <= 60):
            raise ValidationError("delaySeconds", f"must be within 0..60 seconds, got {self.delay_seconds}")

    def pick(self, index: int) -> Answer:
        """Ticket ``index``'s answer, from a low-discrepancy sequence as queue and size are: every
        stretch of tickets declines and stays silent about as often as asked, whatever the seed."""
        u = (0.5 + index * _SILVER) % 1.0
        if u < self.decline_rate:
            return Answer.DECLINE
        return Answer.SILENT if u < self.decline_rate + self.silent_rate else Answer.ACCEPT


@dataclass(frozen=True, slots=True)
class RoleOffer:
    """Roles a share of a queue's players offer (each player draws one offer; none: any role)."""

    roles: tuple[str, ...]
    weight: float = 1.0

    def __post_init__(self) -> None:
        check_roles(self.roles)
        if not _positive(self.weight):
            raise ValidationError("weight", f"must be a positive number, got {self.weight}")


@dataclass(frozen=True, slots=True)
class MatchShape:
    """What every match of a queue must look like: the verdict checks each match the players saw
    (``teams`` teams of ``teamSize`` players, each team filling every role slot)."""

    teams: int
    team_size: int | None = None
    """Default: the sum of ``roles``."""
    roles: Mapping[str, int] = field(default_factory=dict)
    """Role -> slots per team."""

    def __post_init__(self) -> None:
        if not 1 <= self.teams <= MAX_TEAMS:
            raise ValidationError("teams", f"must be within 1..{MAX_TEAMS}, got {self.teams}")
        for role, slots in self.roles.items():
            if not _NAME.match(role):
                raise ValidationError(f"roles.{role}", "invalid role name")
            if not 1 <= slots <= MAX_MATCH_PLAYERS:
                raise ValidationError(f"roles.{role}", f"slots must be within 1..{MAX_MATCH_PLAYERS}, got {slots}")
        if self.team_size is None and not self.roles:
            raise ValidationError("teamSize", "give teamSize, or roles whose slots add up to it")
        if self.team_size is not None and self.roles and self.team_size != sum(self.roles.values()):
            raise ValidationError(
                "teamSize", f"must equal the role slots' sum ({sum(self.roles.values())}), got {self.team_size}"
            )
        if not 1 <= self.size <= MAX_MATCH_PLAYERS // self.teams:
            raise ValidationError(
                "teamSize", f"{self.teams} teams of {self.size} are not within 1..{MAX_MATCH_PLAYERS} players"
            )

    @property
    def size(self) -> int:
        """Players per team."""
        return self.team_size if self.team_size is not None else sum(self.roles.values())

    @property
    def players(self) -> int:
        return self.teams * self.size


@dataclass(frozen=True, slots=True)
class QueueMix:
    """A queue's share of the tickets, optionally its own party sizes (else ``spec.parties``), how
    its tickets answer a ready check, the roles its players offer, and what its matches must be."""

    weight: float = 1.0
    parties: Mapping[str, float] | None = None
    acceptance: Answers | None = None
    roles: tuple[RoleOffer, ...] = ()
    match: MatchShape | None = None

    def __post_init__(self) -> None:
        if not _positive(self.weight):
            raise ValidationError("weight", f"must be a positive number, got {self.weight}")
        if self.parties is not None:
            _check_parties(self.parties, "parties")
        slots = self.match.roles if self.match is not None else {}
        for i, offer in enumerate(self.roles):
            for k, role in enumerate(offer.roles):
                if slots and role not in slots:
                    raise ValidationError(
                        f"roles[{i}].roles[{k}]", f"{role!r} is not a role of match.roles ({', '.join(slots)})"
                    )
        if self.match is not None and self.parties is not None:
            largest = max(int(size) for size in self.parties)
            if largest > self.match.size:
                raise ValidationError(f"parties.{largest}", f"a party larger than a team ({self.match.size})")

    def draw_roles(self, rng: Random, size: int) -> list[tuple[str, ...]]:
        """The offers of a party of ``size`` (nothing drawn when the queue has no role offers). With
        ``match.roles``, redrawn until the players can take distinct slots of one team (the ticket
        API refuses a party that cannot: two tanks for one tank slot); after 20 tries, any role."""
        if not self.roles:
            return [()] * size
        weights = [o.weight for o in self.roles]
        slots = self.match.roles if self.match is not None else {}
        for _ in range(20):
            offers = [o.roles for o in rng.choices(self.roles, weights=weights, k=size)]
            if not slots or assign_roles(offers, slots) is not None:
                return offers
        return [()] * size


def _check_parties(parties: Mapping[str, float], where: str) -> None:
    if not parties:
        raise ValidationError(where, "at least one party size is required, e.g. {1: 1}")
    for key, weight in parties.items():
        if not key.isdigit() or not 1 <= int(key) <= MAX_PARTY:
            raise ValidationError(f"{where}.{key}", f"a party size must be a whole number within 1..{MAX_PARTY}")
        if not _positive(weight):
            raise ValidationError(f"{where}.{key}", f"weight must be a positive number, got {weight}")


def _check_weights(weights: Mapping[str, float], where: str, what: str) -> None:
    if not weights:
        raise ValidationError(where, f"at least one {what} is required")
    for key, weight in weights.items():
        if not _positive(weight):
            raise ValidationError(f"{where}.{key}", f"weight must be a positive number, got {weight}")


@dataclass(frozen=True, slots=True)
class Limits:
    """Safety caps the scenario itself may not exceed (and which may not exceed the absolute caps)."""

    max_players: int = 10_000
    max_rate: float = 500.0
    """Players per second, in any one-second window."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_players <= MAX_PLAYERS:
            raise ValidationError("maxPlayers", f"must be within 1..{MAX_PLAYERS}, got {self.max_players}")
        if not (_positive(self.max_rate) and self.max_rate <= MAX_RATE):
            raise ValidationError("maxRate", f"must be within (0, {MAX_RATE:g}] players/s, got {self.max_rate:g}")


@dataclass(frozen=True, slots=True)
class PartySpec:
    """One ticket to open: who is in it, how it waits, and how long its players play once matched."""

    queue: str
    players: tuple[Player, ...]
    client: str
    """``sse``, ``websocket`` or ``longpoll``."""
    session_seconds: float
    answer: Answer = Answer.ACCEPT
    """What the ticket does when a match is proposed to it (queues with acceptance)."""
    answer_delay: float = 0.0
    """Seconds it takes to accept or decline."""


@dataclass(frozen=True, slots=True)
class TicketMix:
    """Every (queue, party size) a ticket can be, with its probability; picked by ticket index."""

    kinds: tuple[tuple[str, int], ...]
    cumulative: tuple[float, ...]
    mean_size: float
    largest: int

    @classmethod
    def of(cls, queues: Mapping[str, QueueMix], default: Mapping[str, float]) -> TicketMix:
        kinds: list[tuple[str, int]] = []
        probabilities: list[float] = []
        total_weight = sum(q.weight for q in queues.values())
        for name, mix in queues.items():
            parties = mix.parties if mix.parties is not None else default
            party_total = sum(parties.values())
            for size, weight in sorted(parties.items(), key=lambda item: int(item[0])):
                kinds.append((name, int(size)))
                probabilities.append(mix.weight / total_weight * weight / party_total)
        cumulative, running = [], 0.0
        for p in probabilities:
            running += p
            cumulative.append(running)
        cumulative[-1] = 1.0
        mean = sum(p * size for p, (_, size) in zip(probabilities, kinds, strict=True))
        return cls(tuple(kinds), tuple(cumulative), mean, max(size for _, size in kinds))

    def pick(self, index: int) -> tuple[str, int]:
        """The queue and size of ticket ``index``: ``frac(1/2 + index * golden)`` against the mix."""
        u = (0.5 + index * _GOLDEN) % 1.0
        return self.kinds[min(bisect.bisect_right(self.cumulative, u), len(self.kinds) - 1)]


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    hard_stop_seconds: float
    arrival: Arrival
    queues: Mapping[str, QueueMix]
    regions: Mapping[str, Distribution]
    players: int | None = None
    duration_seconds: float | None = None
    match_timeout_seconds: float = 60.0
    parties: Mapping[str, float] = field(default_factory=lambda: {"1": 1.0})
    attributes: Mapping[str, Distribution] = field(default_factory=dict)
    session_seconds: Distribution = field(default_factory=lambda: Distribution(DistributionType.CONSTANT, value=10.0))
    clients: Mapping[str, float] = field(default_factory=lambda: {"sse": 1.0})
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        self._check_bounds()
        self._check_rates()
        self._check_population()

    def _check_bounds(self) -> None:
        if self.players is None and self.duration_seconds is None:
            raise ValidationError("players", "give players, durationSeconds, or both (whichever comes first)")
        if self.players is not None and not 1 <= self.players <= self.limits.max_players:
            raise ValidationError(
                "players", f"must be within 1..limits.maxPlayers ({self.limits.max_players}), got {self.players}"
            )
        if not (_positive(self.hard_stop_seconds) and self.hard_stop_seconds <= MAX_SECONDS):
            raise ValidationError(
                "hardStopSeconds", f"must be within (0, {MAX_SECONDS:g}], got {self.hard_stop_seconds:g}"
            )
        if self.duration_seconds is not None:
            if not _positive(self.duration_seconds):
                raise ValidationError("durationSeconds", f"must be positive, got {self.duration_seconds:g}")
            if self.duration_seconds > self.hard_stop_seconds:
                raise ValidationError(
                    "hardStopSeconds",
                    f"must not be before the end of arrivals (durationSeconds {self.duration_seconds:g}), "
                    f"got {self.hard_stop_seconds:g}",
                )
        if not _positive(self.match_timeout_seconds):
            raise ValidationError("matchTimeoutSeconds", f"must be positive, got {self.match_timeout_seconds:g}")

    def _check_rates(self) -> None:
        limit = self.limits.max_rate
        for i, phase in enumerate(self.arrival.phases):
            wire, rate = phase.peak_rate
            if rate > limit:
                raise ValidationError(
                    f"arrival.phases[{i}].{wire}", f"{rate:g} players/s is above limits.maxRate ({limit:g})"
                )

    def _check_population(self) -> None:
        """Who arrives: party sizes and queues."""
        _check_parties(self.parties, "parties")
        if not self.queues:
            raise ValidationError("queues", "at least one queue is required, e.g. {4v4: {weight: 1}}")
        for name in self.queues:
            err = namespace_error(name)
            if err:
                raise ValidationError(f"queues.{name}", f"{name!r} is not a queue name: it {err}")
        for name, queue in self.queues.items():
            if queue.match is not None and queue.parties is None:
                largest_here = max(int(size) for size in self.parties)
                if largest_here > queue.match.size:
                    raise ValidationError(
                        f"queues.{name}.match.teamSize",
                        f"a team of {queue.match.size} cannot take the parties of {largest_here} (spec.parties)",
                    )
        largest = self.mix().largest
        if largest > self.limits.max_rate:
            raise ValidationError(
                "limits.maxRate",
                f"must allow the largest party ({largest} players) per second, got {self.limits.max_rate:g}",
            )
        self._check_players()

    def _check_players(self) -> None:
        """What each simulated player reports and does."""
        if not self.regions:
            raise ValidationError(
                "regions", "at least one region is required, e.g. {local: {distribution: constant, value: 5}}"
            )
        for name, dist in self.regions.items():
            if not _NAME.match(name):
                raise ValidationError(f"regions.{name}", "invalid region name")
            if not dist.numeric:
                raise ValidationError(f"regions.{name}", "latencies must be numbers (milliseconds)")
        for name in self.attributes:
            if not _NAME.match(name):
                raise ValidationError(f"attributes.{name}", "invalid attribute name")
        if not self.session_seconds.numeric:
            raise ValidationError("sessionSeconds", "must draw numbers (seconds)")
        _check_weights(self.clients, "clients", "client")
        for name in self.clients:
            if name not in CLIENTS:
                raise ValidationError(f"clients.{name}", f"unknown client; one of {', '.join(CLIENTS)}")

    def mix(self) -> TicketMix:
        return TicketMix.of(self.queues, self.parties)

    @property
    def arrivals_end(self) -> float:
        """Seconds after the start when arrivals stop at the latest."""
        return min(self.duration_seconds or math.inf, self.hard_stop_seconds)

    @property
    def player_cap(self) -> int:
        return self.players if self.players is not None else self.limits.max_players


# -- the resource ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    """A load test: who arrives when, what they ask for, and when it all stops."""

    metadata: ObjectMeta
    spec: ScenarioSpec

    KIND: ClassVar[str] = "LoadTest"

    def __post_init__(self) -> None:
        if not self.metadata.name:
            raise ValidationError("metadata.name", "is required")

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def hard_stop_seconds(self) -> float:
        return self.spec.hard_stop_seconds

    @property
    def arrivals_end(self) -> float:
        return self.spec.arrivals_end

    @property
    def match_timeout_seconds(self) -> float:
        return self.spec.match_timeout_seconds

    def rate_at(self, t: float) -> float:
        """Planned arrivals in players per second at ``t`` seconds (0 outside the arrival window)."""
        if not 0 <= t < self.arrivals_end:
            return 0.0
        return self.spec.arrival.curve().rate_at(t)

    def expected_players(self, until: float | None = None) -> float:
        """Players the curve brings by ``until`` (default: the end of arrivals), before any cap."""
        end = self.arrivals_end if until is None else min(until, self.arrivals_end)
        return self.spec.arrival.curve().area_until(end)

    def planned_players(self) -> int:
        """Players the run sends if arrivals follow the curve's expectation: the curve's count by the
        end of arrivals, or, if the player cap comes first, the cap rounded down to whole parties."""
        cap, expected = self.spec.player_cap, self.expected_players()
        if expected < cap:
            return round(expected)
        mix = self.spec.mix()
        total = index = 0
        while total + mix.pick(index)[1] <= cap:
            total += mix.pick(index)[1]
            index += 1
        return total

    def arrival_times(self, rng: Random) -> Iterator[float]:
        """Seconds after the start at which ticket ``0, 1, 2...`` arrives (non-decreasing).

        Stops at the first of: the player cap (a party that would overshoot it is not sent), the end
        of arrivals, and the curve falling to zero for good. ``poisson`` draws from ``rng``;
        ``even`` does not. No one-second window gets more than ``limits.maxRate`` players.
        """
        spec = self.spec
        curve, mix = spec.arrival.curve(), spec.mix()
        end, cap, max_rate = spec.arrivals_end, spec.player_cap, spec.limits.max_rate
        poisson = spec.arrival.process is ArrivalProcess.POISSON
        window: deque[tuple[float, int]] = deque()
        in_window = total = index = 0
        units = 0.0  # tickets expected so far: the curve's players over the mean party size
        last = 0.0
        while True:
            units += rng.expovariate(1.0) if poisson else (0.5 if index == 0 else 1.0)
            t = max(last, curve.time_at(units * mix.mean_size))
            size = mix.pick(index)[1]
            if t >= end or total + size > cap:
                return
            # Keep (t - 1, t] at most max_rate players: a burst waits for the window to slide.
            while window and window[0][0] <= t - 1.0:
                in_window -= window.popleft()[1]
            while window and in_window + size > max_rate:
                # Wait until the oldest arrival leaves the window. Popped here, not by comparing
                # times: (u + 1) - 1 may round below u, and the window would never slide.
                oldest, n = window.popleft()
                in_window -= n
                t = max(t, oldest + 1.0)
                while window and window[0][0] <= t - 1.0:
                    in_window -= window.popleft()[1]
            if t >= end:
                return
            window.append((t, size))
            in_window += size
            total += size
            index += 1
            last = t
            yield t

    def party(self, rng: Random, index: int, run: str = "run") -> PartySpec:
        """Ticket ``index``'s party. Queue and size depend on ``index`` only (the schedule counts on
        it); client, session length, attributes and latencies are drawn from ``rng``. Player ids
        are ``lt-<run>-<index>-<k>``: unique within a run, and across runs given distinct ``run``."""
        if not _RUN_ID.match(run):
            raise ValueError(f"run id {run!r}: 1-16 lower-case letters or digits")
        spec = self.spec
        queue, size = spec.mix().pick(index)
        mix = spec.queues[queue]
        client = rng.choices(tuple(spec.clients), weights=tuple(spec.clients.values()))[0]
        session = max(0.0, spec.session_seconds.sample_number(rng))
        players = []
        offers = mix.draw_roles(rng, size)
        for k in range(size):
            attributes = {name: _rounded(dist.sample(rng)) for name, dist in spec.attributes.items()}
            latencies = {
                region: round(min(MAX_LATENCY_MS, max(0.0, dist.sample_number(rng))), 2)
                for region, dist in spec.regions.items()
            }
            players.append(Player(f"lt-{run}-{index}-{k}", attributes, latencies, offers[k]))
        answers = mix.acceptance
        answer = answers.pick(index) if answers is not None else Answer.ACCEPT
        delay = answers.delay_seconds if answers is not None else 0.0
        return PartySpec(queue, tuple(players), client, round(session, 3), answer, delay)

    def with_players(self, players: int, *, scale_rate: bool = True) -> Scenario:
        """The same scenario for ``players`` players (the CLI's ``--players``). With ``scale_rate``
        every rate of the curve is multiplied by ``players`` over the planned count, so the shape and
        timing stay and the crowd grows: launch day for 2,000 is launch day for 500, four times as
        busy. Validated against the scenario's limits and the absolute caps as the file was."""
        try:
            arrival = self.spec.arrival
            if scale_rate:
                factor = players / max(1, self.spec.players or round(self.expected_players()))
                arrival = replace(arrival, phases=tuple(p.scaled(factor) for p in arrival.phases))
            return replace(self, spec=replace(self.spec, players=players, arrival=arrival))
        except ValidationError as exc:
            raise ValidationError(
                "spec.players", f"{players} players do not fit scenario {self.name!r}: {exc.under('spec')}"
            ) from None


def _rounded(value: float | str) -> float | str:
    return value if isinstance(value, str) else round(value, 3)


# -- documents and files ---------------------------------------------------------------------------


def _party_keys(value: Any) -> Any:
    """YAML reads ``{1: 0.7}`` with integer keys; the codec's mappings have string keys."""
    if isinstance(value, Mapping):
        return {str(k) if isinstance(k, int) and not isinstance(k, bool) else k: v for k, v in value.items()}
    return value


def _queue_mix(value: Any) -> Any:
    """``4v4: 2`` is short for ``4v4: {weight: 2}``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"weight": value}
    if isinstance(value, Mapping) and "parties" in value:
        return {**value, "parties": _party_keys(value["parties"])}
    return value


def _normalized_spec(spec: Any) -> Any:
    if not isinstance(spec, Mapping):
        return spec
    out = dict(spec)
    if "parties" in out:
        out["parties"] = _party_keys(out["parties"])
    if isinstance(out.get("queues"), Mapping):
        out["queues"] = {name: _queue_mix(q) for name, q in out["queues"].items()}
    return out


def _expanded(body: dict[str, Any]) -> dict[str, Any]:
    if "spec" in body:
        body["spec"] = _normalized_spec(body["spec"])
    return body


LOADTEST = Kind(Scenario, expand=_expanded)


def decode_scenario(doc: Any) -> Scenario:
    """A LoadTest document; ``apiVersion`` and ``kind`` are checked when present."""
    return LOADTEST.decode(doc)


def parse_scenario(text: str, source: str = "<input>") -> Scenario:
    """The one LoadTest in ``text``; errors name the source, the field and its line."""
    docs = load_documents(text, source)
    if len(docs) != 1:
        raise ValidationError(
            "", f"{source}: a scenario file holds exactly one {Scenario.KIND} document, got {len(docs)}"
        )
    return decode_document(docs[0], (LOADTEST,))


def load_scenario(path: Path | str) -> Scenario:
    path = Path(path)
    return parse_scenario(read_text(path), str(path))


SCENARIOS = Path(__file__).resolve().parent / "scenarios"
"""The scenarios shipped with fleetmatch (``smoke.yaml``, ``launch-day.yaml``), installed with the package."""


# -- targets ---------------------------------------------------------------------------------------


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine without leaving it: ``localhost`` (and ``*.localhost``,
    RFC 6761), 127.0.0.0/8, ``::1``, or the unspecified address (0.0.0.0 / ``::``, which connects
    here). Decided from the text alone, without DNS: a name that merely resolves to 127.0.0.1 today
    is not trusted."""
    host = (urllib.parse.urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def check_target(url: str, *, explicit: bool) -> str:
    """``url`` as the base URL of a ticket API to load-test (scheme and host, no trailing slash).

    ``explicit``: the user typed it (``--target``). Any other source (``stack.json``,
    ``FLEETMATCH_MATCHMAKER_URL``) may only name this machine: a non-loopback URL from there is
    refused, since a leftover setting must never aim a load test at a shared or production stack.
    """
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("target", f"{url!r} is not an http(s) URL such as http://127.0.0.1:9190")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValidationError("target", f"{url!r}: give only scheme, host, port and path (no credentials or query)")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ValidationError("target", f"{url!r} has an invalid port") from None
    if not explicit and not is_loopback(url):
        raise ValidationError(
            "target",
            f"refusing to load-test {parts.hostname}: it is not this machine. "
            "Pass --target with the URL to aim at a remote stack deliberately",
        )
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
