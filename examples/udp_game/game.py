"""The example game's rules, pure: who may join, what an input does, and when the match is over.

No sockets, no SDK, no clock: the server passes ``now`` (monotonic seconds) and the GameServer state
it learns from the SDK watch, and sends back whatever reply ``Match.handle`` returns. That keeps the
rules testable as tables. Joining needs the connection token the matchmaker gave the player
(``verify_match_token``); another ``TokenVerifier`` can be passed without touching the server.

A player the allocation does not name is refused with ``unknown-player``, not ``bad-token``: the
matchmaker adds players to a running match (backfill) by writing the server's annotation, then tells
them, and the player's join can arrive before the SDK watch brings that write (measured in the smoke
load test: 1.4 ms before it). Clients retry ``unknown-player`` for a few seconds, as they retry
``not-allocated``; a wrong token for a player it knows is refused at once with ``bad-token``.

A match is over (``Match.over`` names why) when:

- every player who joined has left (``all-players-left``), or the last ones went quiet for
  ``idle_timeout`` seconds (``players-idle``);
- ``time_limit`` seconds have passed since the server was allocated (``time-limit``);
- nobody joined within ``join_timeout`` seconds of the allocation (``no-players``);
- the GameServer was shut down from outside (``gameserver-shutdown``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from examples.udp_game import protocol
from examples.udp_game.protocol import Input, Join, Leave, Ping, PlayerView, Request

ALLOCATED = "Allocated"
SHUTDOWN = "Shutdown"

# Reasons in ``reject`` replies and ``Match.over``.
NOT_ALLOCATED = "not-allocated"
BAD_TOKEN = "bad-token"
UNKNOWN_PLAYER = "unknown-player"
FULL = "full"
MATCH_OVER = "match-over"
NOT_JOINED = "not-joined"
ALL_LEFT = "all-players-left"
IDLE = "players-idle"
TIME_LIMIT = "time-limit"
NO_PLAYERS = "no-players"
SHUT_DOWN = "gameserver-shutdown"


@dataclass(frozen=True, slots=True)
class Allocation:
    """What a token verifier may check a token against: this server and what the allocator wrote."""

    server: str
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


TokenVerifier = Callable[[str, str, Allocation], bool | None]
"""``verify(player, token, allocation)``: may this player join this match? True or False, or None
when the allocation does not name the player (yet): the join is refused with ``unknown-player``,
which the client retries (the server may not have learned of a player just added)."""


PLAYER_TOKENS_ANNOTATION = "fleetmatch.dev/player-tokens"
"""Set by the matchmaker on the allocated server: JSON ``{player id: sha256 hex of their token}``."""


def accept_any_token(player: str, token: str, allocation: Allocation) -> bool:
    """For servers allocated by hand (no matchmaker): any non-empty token is accepted."""
    return bool(token)


def _named(annotations: Mapping[str, str]) -> frozenset[str]:
    """The players the token annotation names (none if there is none, or it is not a JSON object)."""
    try:
        hashes = json.loads(annotations.get(PLAYER_TOKENS_ANNOTATION, "{}"))
    except ValueError:
        return frozenset()
    return frozenset(hashes) if isinstance(hashes, dict) else frozenset()


def verify_match_token(player: str, token: str, allocation: Allocation) -> bool | None:
    """The matchmaker's check: the player is in this match and the token hashes to their entry;
    None for a player the annotation does not name (not in this match, or not yet seen here).

    The server never learns the tokens themselves, only their hashes (in an annotation written in
    the same store write that allocated it, or by a later backfill), so a leaked annotation lets
    nobody join. Without the annotation (a server allocated by hand) any non-empty token is accepted.
    """
    expected = allocation.annotations.get(PLAYER_TOKENS_ANNOTATION)
    if expected is None:
        return accept_any_token(player, token, allocation)
    try:
        hashes = json.loads(expected)
    except ValueError:
        return False
    if not isinstance(hashes, dict):
        return False
    if player not in hashes:
        return None
    wanted = hashes[player]
    if not isinstance(wanted, str) or not token:
        return False
    return hmac.compare_digest(hashlib.sha256(token.encode()).hexdigest(), wanted)


@dataclass(slots=True)
class Player:
    id: str
    address: Any
    last_seen: float
    seq: int = -1
    """Highest input seq applied (-1: none yet)."""
    data: Any = None


class Match:
    """One match on one game server, from allocation to the end."""

    def __init__(
        self,
        server: str,
        *,
        max_players: int = 16,
        time_limit: float = 600.0,
        idle_timeout: float = 60.0,
        join_timeout: float = 60.0,
        verify: TokenVerifier = verify_match_token,
    ) -> None:
        self.server = server
        self.join_timeout = join_timeout
        self.max_players = max_players
        self.time_limit = time_limit
        self.idle_timeout = idle_timeout
        self.verify = verify
        self.state = ""
        self.allocation = Allocation(server)
        self.allocated_at: float | None = None
        self.players: dict[str, Player] = {}
        self.joined = 0
        """Players who ever joined (a rejoin after leaving counts again)."""
        self.tick = 0
        self.over: str | None = None
        self._named: frozenset[str] = frozenset()
        """The players the token annotation names (none: a server allocated by hand)."""
        self._backfilled: dict[str, float] = {}
        """Players named after the allocation (a backfill) who have not joined yet: when first named."""

    # -- what the SDK watch says ----------------------------------------------------------------

    def observe(self, state: str, labels: Mapping[str, str], annotations: Mapping[str, str], now: float) -> bool:
        """The GameServer's latest state; True when this update is the allocation."""
        self.state = state
        if state == SHUTDOWN:
            self._end(SHUT_DOWN)
        if state != ALLOCATED:
            return False
        first = self.allocated_at is None
        if first:
            self.allocated_at = now
        self.allocation = Allocation(self.server, MappingProxyType(dict(labels)), MappingProxyType(dict(annotations)))
        named = _named(annotations)
        if not first:
            for player in named - self._named:
                self._backfilled.setdefault(player, now)
        self._named = named
        return first

    # -- players --------------------------------------------------------------------------------

    def views(self) -> list[PlayerView]:
        return [PlayerView(p.id, p.seq) for p in self.players.values()]

    def handle(self, request: Request, address: Any, now: float) -> dict[str, Any]:
        """The reply to one request from ``address``."""
        if isinstance(request, Ping):
            return protocol.pong(self.server, self.state, len(self.players), self.allocation.labels)
        if isinstance(request, Join):
            return self._join(request, address, now)
        if isinstance(request, Input):
            return self._input(request, address, now)
        return self._leave(request, now)

    def _join(self, request: Join, address: Any, now: float) -> dict[str, Any]:
        if self.over is not None:
            return protocol.reject(request.player, MATCH_OVER)
        if self.state != ALLOCATED:
            return protocol.reject(request.player, NOT_ALLOCATED)
        verdict = self.verify(request.player, request.token, self.allocation)
        if verdict is None:
            return protocol.reject(request.player, UNKNOWN_PLAYER)
        if not verdict:
            return protocol.reject(request.player, BAD_TOKEN)
        player = self.players.get(request.player)
        if player is not None:  # a retransmitted join, or the player's address changed (NAT)
            player.address, player.last_seen = address, now
        elif len(self.players) >= self.max_players:
            return protocol.reject(request.player, FULL)
        else:
            self.players[request.player] = Player(request.player, address, now)
            self.joined += 1
            self._backfilled.pop(request.player, None)
        return protocol.welcome(request.player, self.server, self.tick, self.views())

    def _input(self, request: Input, address: Any, now: float) -> dict[str, Any]:
        player = self.players.get(request.player)
        if player is None:
            return protocol.error(NOT_JOINED)
        player.address, player.last_seen = address, now
        if request.seq > player.seq:  # older or repeated inputs are acknowledged, not re-applied
            player.seq, player.data = request.seq, request.data
        return protocol.state(player.id, player.seq, self.tick, self.views())

    def _leave(self, request: Leave, now: float) -> dict[str, Any]:
        if self.players.pop(request.player, None) is not None and not self.players and not self.awaited(now):
            self._end(ALL_LEFT)
        return protocol.bye(request.player)

    def awaited(self, now: float) -> list[str]:
        """Players a backfill sent who have not joined yet, named less than ``join_timeout`` ago:
        while one is on the way, the match does not end for want of players (they would arrive to
        ``match-over``). Players of the allocation itself who never came do not hold it open."""
        return sorted(p for p, named_at in self._backfilled.items() if now - named_at < self.join_timeout)

    # -- time -----------------------------------------------------------------------------------

    def advance(self, now: float) -> str | None:
        """One game tick: drop idle players, apply the time limit; the reason if the match is over."""
        self.tick += 1
        if self.over is not None:
            return self.over
        idle = [p.id for p in self.players.values() if now - p.last_seen >= self.idle_timeout]
        for player in idle:
            del self.players[player]
        if not self.players and self.joined and not self.awaited(now):
            self._end(IDLE if idle else ALL_LEFT)  # or the backfilled players awaited never came
        if self.allocated_at is not None and now - self.allocated_at >= self.time_limit:
            self._end(TIME_LIMIT)
        if self.allocated_at is not None and not self.joined and now - self.allocated_at >= self.join_timeout:
            self._end(NO_PLAYERS)  # allocated for a match nobody came to (e.g. its tickets were cancelled)
        return self.over

    def _end(self, reason: str) -> None:
        if self.over is None:
            self.over = reason
