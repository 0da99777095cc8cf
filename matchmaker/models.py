"""The matchmaker's wire types: tickets, their players, assignments, and match proposals.

A **ticket** is one request to play: one player, or a party of several who must land in the same
match and on the same team. Its id starts with its queue's name (``duel.01JD...``), so every
operation finds the ticket's keys (one Redis hash slot per queue) from the id alone.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from fleetmatch.codec import Timestamp
from fleetmatch.errors import ValidationError
from fleetmatch.models import PortStatus
from fleetmatch.names import namespace_error

PLAYER_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$"
NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
"""Attribute and region names. Both patterns as JSON Schema reads them (``$``: the end of the text)."""
_PLAYER_ID = re.compile(PLAYER_ID_PATTERN.replace("$", r"\Z"))  # Python's $ also matches before a final newline
_NAME = re.compile(NAME_PATTERN.replace("$", r"\Z"))
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_ID_CHARACTERS = frozenset(_ID_ALPHABET)
_ID_PAIRS = tuple(a + b for a in _ID_ALPHABET for b in _ID_ALPHABET)
"""Every 10-bit number as its two digits."""
_PAIR_SHIFTS = tuple(range(120, -1, -10))

MAX_PARTY = 16
"""Players in one ticket, at most (a party larger than a team is also refused, per queue)."""
RESERVED_PLAYER_PREFIX = "key:"
"""What an API key's principal is called (``key:<name>``): no player may be named so."""
MAX_ATTRIBUTE = 1e15
"""Bound of a numeric attribute's magnitude: integers up to it are exact in a float, and a party's
sum or average (a match's team sums) stays finite."""
MAX_LATENCY_MS = 60_000
MAX_ROLES = 16
"""Roles one player may offer, at most (a queue's teams have at most this many roles too)."""
MAX_BLOCKS = 100
"""Players one ticket's ``blockedPlayers`` may name, and one player's stored block list, at most."""


def player_id_error(value: str) -> str | None:
    if not _PLAYER_ID.match(value):
        return "must be 1-64 characters: letters, digits and . _ : @ -, starting with a letter or digit"
    if value.startswith(RESERVED_PLAYER_PREFIX):
        return f"must not start with {RESERVED_PLAYER_PREFIX!r} (reserved for API keys)"
    return None


class TicketState(StrEnum):
    QUEUED = "queued"
    LEASED = "leased"
    """Claimed by a director for a proposed match; back to queued if the lease runs out. Shown to
    players as ``queued``: a lease is an internal step."""
    PROPOSED = "proposed"
    """In a proposed match of a queue with acceptance, waiting for every ticket to accept it (a ticket
    whose match everyone accepted is leased, and still shown as ``proposed`` until it is matched)."""
    MATCHED = "matched"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def public(self) -> str:
        return TicketState.QUEUED.value if self is TicketState.LEASED else self.value


def check_roles(roles: tuple[str, ...]) -> None:
    """Roles a player offers: at most ``MAX_ROLES`` names, each valid and once (field ``roles[i]``)."""
    if len(roles) > MAX_ROLES:
        raise ValidationError("roles", f"at most {MAX_ROLES} roles, got {len(roles)}")
    for i, role in enumerate(roles):
        if not _NAME.match(role):
            raise ValidationError(f"roles[{i}]", f"{role[:100]!r} is not a valid role name")
        if role in roles[:i]:
            raise ValidationError(f"roles[{i}]", f"role {role!r} appears twice")


@dataclass(frozen=True, slots=True)
class Player:
    id: str
    attributes: Mapping[str, float | str] = field(default_factory=dict)
    """Numbers (``skill``) and words (``mode``) the queue's rules look at."""
    latencies: Mapping[str, float] = field(default_factory=dict)
    """Region -> round-trip milliseconds, as the client measured them."""
    roles: tuple[str, ...] = ()
    """The roles the player offers to play in a queue whose teams have role slots (none: any)."""

    def __post_init__(self) -> None:
        err = player_id_error(self.id)
        if err:
            raise ValidationError("id", f"{self.id!r} {err}")
        check_roles(self.roles)
        for key, value in self.attributes.items():
            if not _NAME.match(key):
                raise ValidationError(f"attributes.{key}", "invalid attribute name")
            if not isinstance(value, str) and not -MAX_ATTRIBUTE <= value <= MAX_ATTRIBUTE:
                raise ValidationError(f"attributes.{key}", f"must be a number within +-{MAX_ATTRIBUTE:g}, got {value}")
        for region, ms in self.latencies.items():
            if not _NAME.match(region):
                raise ValidationError(f"latencies.{region}", "invalid region name")
            if not 0 <= ms <= MAX_LATENCY_MS:
                raise ValidationError(f"latencies.{region}", f"must be within 0..{MAX_LATENCY_MS} ms, got {ms}")


@dataclass(frozen=True, slots=True)
class TicketRequest:
    """What a client sends to open a ticket."""

    queue: str
    players: tuple[Player, ...]
    blocked_players: tuple[str, ...] = ()
    """Players none of this ticket's players may be matched with (in either team)."""

    def __post_init__(self) -> None:
        err = namespace_error(self.queue)
        if err:
            raise ValidationError("queue", f"{self.queue!r} {err}")
        if not 1 <= len(self.players) <= MAX_PARTY:
            raise ValidationError("players", f"must hold 1..{MAX_PARTY} players, got {len(self.players)}")
        ids = [p.id for p in self.players]
        for i, pid in enumerate(ids):
            if pid in ids[:i]:
                raise ValidationError(f"players[{i}].id", f"player {pid!r} appears twice")
        check_blocks(self.blocked_players, "blockedPlayers")
        for i, pid in enumerate(self.blocked_players):
            if pid in ids:
                raise ValidationError(
                    f"blockedPlayers[{i}]", f"player {pid!r} is in the party: a party cannot block its own player"
                )


@dataclass(frozen=True, slots=True)
class BlockList:
    """A player's stored block list (``PUT /v1/players/{id}/blocks``): players they must never be
    matched with, in any queue. Applies to tickets opened after it was stored."""

    players: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_blocks(self.players, "players")


def check_blocks(blocked: tuple[str, ...], where: str) -> None:
    """A block list: at most ``MAX_BLOCKS`` valid player ids, none twice (``ValidationError`` naming
    ``where[i]``)."""
    if len(blocked) > MAX_BLOCKS:
        raise ValidationError(where, f"at most {MAX_BLOCKS} players, got {len(blocked)}")
    for i, pid in enumerate(blocked):
        err = player_id_error(pid)
        if err:
            raise ValidationError(f"{where}[{i}]", f"{pid[:100]!r} {err}")
        if pid in blocked[:i]:
            raise ValidationError(f"{where}[{i}]", f"player {pid!r} appears twice")


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where a matched ticket's players go. ``tokens`` holds one connection token per player of
    this ticket only: the game server accepts a player who presents it."""

    match_id: str
    game_server: str
    address: str
    port: int
    ports: tuple[PortStatus, ...] = ()
    team: int = 0
    region: str = ""
    tokens: Mapping[str, str] = field(default_factory=dict)
    team_name: str = ""
    """The team's name in a queue of named teams (``teams.named``); "" otherwise."""
    roles: Mapping[str, str] = field(default_factory=dict)
    """Player id -> the role slot they fill, in a queue whose teams have roles (every player of this
    ticket); empty otherwise."""
    backfill_id: str = ""
    """The backfill this ticket filled: it joined the match while it was running (``matchmaker.backfill``);
    "" for a ticket matched with the match's first players."""
    fill_id: str = ""
    """The fill of that backfill that brought it (one backfill may be filled several times, as
    players leave): the tickets told together share it; "" for a match's first players."""


@dataclass(frozen=True, slots=True)
class MatchProposal:
    """A match proposed to a ticket of a queue with acceptance, as the ticket's players see it."""

    match_id: str
    deadline: Timestamp
    """Accept before then; a ticket that has not is cancelled, and the others go back to the pool."""
    team: int
    """This ticket's team (0-based)."""
    team_sizes: tuple[int, ...]
    """Players per team."""
    tickets: int
    """Tickets in the match (a party is one)."""
    accepted_tickets: int
    """How many of them accepted so far; the server is allocated once all have."""
    accepted: bool
    """Whether this ticket accepted (a party's once every one of its players has)."""
    accepted_players: tuple[str, ...] = ()
    """Which of this ticket's players accepted so far: each member of a party accepts with their own
    token (an API key accepts for the whole ticket)."""


@dataclass(frozen=True, slots=True)
class Ticket:
    id: str
    queue: str
    owner: str
    """Who opened it: a player id, or ``key:<name>`` for a trusted backend's API key."""
    players: tuple[Player, ...]
    state: TicketState = TicketState.QUEUED
    created_at: Timestamp = 0.0
    enqueued_at: Timestamp = 0.0
    """Its place in line: kept when a lease runs out or an allocation fails."""
    expires_at: Timestamp = 0.0
    assignment: Assignment | None = None
    reason: str = ""
    """Why it was cancelled or expired."""
    blocked_players: tuple[str, ...] = ()
    """Players this ticket's players must never be matched with: the request's ``blockedPlayers``
    and its players' stored block lists, as they were when it was opened. Never shown to clients."""
    proposal: MatchProposal | None = None
    """The match awaiting this ticket's acceptance (``proposed`` tickets only)."""

    KIND: ClassVar[str] = "Ticket"

    @property
    def size(self) -> int:
        return len(self.players)


def new_ticket_id(queue: str, now: float | None = None) -> str:
    """``<queue>.<time-ordered random id>``: sortable by creation, unguessable (80 random bits), and
    naming its queue."""
    ms = int((time.time() if now is None else now) * 1000)
    return f"{queue}.{id_text((ms << 80) | int.from_bytes(secrets.token_bytes(10), 'big'))}"


def id_text(value: int) -> str:
    """The low 130 bits of ``value`` as 26 characters of ``_ID_ALPHABET``, most significant first:
    13 lookups of two characters (10 bits) each, a third of the cost of 26 single ones."""
    return "".join([_ID_PAIRS[(value >> shift) & 1023] for shift in _PAIR_SHIFTS])


def queue_of(ticket_id: str) -> str | None:
    """The queue a ticket id names, or None if the id is malformed."""
    queue, dot, rest = ticket_id.partition(".")
    if not dot or len(rest) != 26 or namespace_error(queue) or not _ID_CHARACTERS.issuperset(rest):
        return None
    return queue


@dataclass(frozen=True, slots=True)
class MatchQuality:
    skill_spread: float = 0.0
    """Difference between the strongest and the weakest team's mean skill (0 without a skill rule)."""
    worst_latency_ms: float | None = None
    """Highest latency of any player to the chosen region (None without a latency rule)."""
    longest_wait_seconds: float = 0.0
    draw_probability: float | None = None
    """Predicted probability of a draw (None without a rating rule): highest for even teams."""
    win_probabilities: tuple[float, ...] = ()
    """Per team, its predicted probability of winning (empty without a rating rule)."""


@dataclass(frozen=True, slots=True)
class Proposal:
    """A match the matching function proposes: tickets per team, the region, and its quality."""

    teams: tuple[tuple[str, ...], ...]
    region: str = ""
    quality: MatchQuality = MatchQuality()
    roles: Mapping[str, str] = field(default_factory=dict)
    """Player id -> role slot, for a queue whose teams have roles (empty otherwise)."""
    team_names: tuple[str, ...] = ()
    """Per team (as in ``teams``), its name, for a queue of named teams (empty otherwise)."""

    @property
    def ticket_ids(self) -> tuple[str, ...]:
        return tuple(t for team in self.teams for t in team)
