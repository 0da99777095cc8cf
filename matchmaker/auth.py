"""Who is calling the ticket API, what they may see, and how fast they may ask (pure: no I/O).

**Player tokens** are signed by the matchmaker's secret, so a frontend checks them without a
round trip to anyone::

    fmp1.<base64url(json {"sub": player, "iat": issued, "exp": expires, "party"?: [players]})>.<base64url(signature)>

The signature is HMAC-SHA256 with the secret over the ASCII text before the last dot
(``fmp1.<payload>``): the version prefix is signed with the claims, as JWT signs its header, so a
later format cannot be confused with this one. Times are integer epoch seconds. A token is refused
once expired, when issued more than ``CLOCK_SKEW`` seconds in the future (a minting host's clock
gone wrong), and when it lives longer than the frontend's maximum (``exp - iat``; 24 h by
default): a leaked token cannot be good for years. Base64url has no padding; any other character
makes the token malformed (the decoder would otherwise skip it, and a token should have exactly one
spelling).

**Parties need proof.** A player token opens tickets that include its own player, alone or with
the players its ``party`` claim lists: the game backend, which mints the tokens, vouches that those
players agreed to queue together (it runs the party or lobby service). A token without the claim
opens solo tickets only, so nobody can put a stranger in their ticket and make them see, and be
bound by, a match they never asked for. Trusted backends use an API key instead.

**API keys** (``MatchmakerSettings.api_keys``, name -> key) are for trusted game backends: the
principal ``key:<name>`` may open tickets for any players and see or cancel any ticket. Player ids
may not start with ``key:`` (``matchmaker.models``), so no player can impersonate a backend.

**Rate limits** are token buckets per principal, in a bounded table (least recently seen first out).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fleetmatch.errors import ConfigError, ValidationError
from matchmaker.errors import AuthError, MalformedCredentialsError, PartyConsentError, RateLimitedError
from matchmaker.models import MAX_PARTY, RESERVED_PLAYER_PREFIX, Player, Ticket, player_id_error

TOKEN_PREFIX = "fmp1"
KEY_PREFIX = RESERVED_PLAYER_PREFIX
MAX_TOKEN_LENGTH = 2048
"""Room for a party claim of ``MAX_PARTY`` players of the longest ids."""
CLOCK_SKEW = 60
"""Seconds a token may claim to be issued in the future (clocks of the minting host and this one differ)."""
DEFAULT_MAX_TOKEN_TTL = 24 * 3600.0
"""The longest lifetime (``exp - iat``) a token may have unless the frontend says otherwise."""
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not _B64URL.match(text):
        raise AuthError("malformed token: not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise AuthError("malformed token: not base64url") from None


def _sign(secret: str, signed: str) -> bytes:
    return hmac.new(secret.encode(), signed.encode("ascii"), hashlib.sha256).digest()


def _time(value: Any) -> int | None:
    """An integer epoch time, or None (a bool is not one; a huge one cannot be a date)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    return None


def _party_error(sub: str, party: Collection[str]) -> str | None:
    if len(party) > MAX_PARTY - 1:
        return f"a party claim lists at most {MAX_PARTY - 1} players besides the token's own"
    if sub in party or len(set(party)) != len(party):
        return "a party claim lists each player once, not the token's own"
    for member in party:
        err = player_id_error(member)
        if err:
            return f"party member {member!r} {err}"
    return None


def mint_player_token(secret: str, player_id: str, ttl: float, now: float, *, party: Collection[str] = ()) -> str:
    """A token for ``player_id`` valid from ``now`` for ``ttl`` seconds (at least one). ``party``:
    the players it may open a ticket with (the game backend vouches they agreed)."""
    err = player_id_error(player_id)
    if err:
        raise ValidationError("player", f"{player_id!r} {err}")
    if not 1 <= ttl <= 2**40:  # finite; whether a frontend accepts this long is its own setting
        raise ValidationError("ttl", f"must be a number of seconds, at least 1, got {ttl}")
    party = list(party)
    err = _party_error(player_id, party)
    if err:
        raise ValidationError("party", err)
    claims: dict[str, Any] = {"sub": player_id, "iat": int(now), "exp": int(now + ttl)}
    if party:
        claims["party"] = party
    payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    signed = f"{TOKEN_PREFIX}.{payload}"
    return f"{signed}.{_b64encode(_sign(secret, signed))}"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified player token says."""

    player: str
    issued_at: int
    expires_at: int
    party: frozenset[str] = frozenset()
    """Players the token may open a ticket with, besides its own."""


def verify_player_token(secret: str, token: str, now: float, *, max_ttl: float = DEFAULT_MAX_TOKEN_TTL) -> TokenClaims:
    """What a token says; ``AuthError`` saying why if it is malformed, forged, expired, issued in
    the future or longer-lived than ``max_ttl`` seconds.

    The signature is checked (in constant time) before the payload is parsed: nothing of an
    unsigned token is interpreted.
    """
    parts = token.split(".") if len(token) <= MAX_TOKEN_LENGTH else []
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise AuthError(f"malformed token: expected {TOKEN_PREFIX}.<payload>.<signature>")
    payload, signature = _b64decode(parts[1]), _b64decode(parts[2])
    if not hmac.compare_digest(signature, _sign(secret, f"{TOKEN_PREFIX}.{parts[1]}")):
        raise AuthError("invalid token: bad signature (forged, altered, or signed with another secret)")
    try:
        claims = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise AuthError("malformed token: payload is not JSON") from None
    if not isinstance(claims, dict):
        claims = {}
    sub, party = claims.get("sub"), claims.get("party", [])
    iat, exp = _time(claims.get("iat")), _time(claims.get("exp"))
    if not isinstance(sub, str) or player_id_error(sub) or iat is None or exp is None or exp <= iat:
        raise AuthError("malformed token: payload needs a valid player id in sub and integer times iat < exp")
    if not isinstance(party, list) or not all(isinstance(m, str) for m in party) or _party_error(sub, party):
        raise AuthError("malformed token: party must list other valid player ids, each once")
    if now >= exp:
        raise AuthError(f"token expired at {_when(exp)}; get a new one")
    if iat > now + CLOCK_SKEW:
        raise AuthError(f"token issued in the future ({_when(iat)}): the clock of whoever minted it is wrong")
    if exp - iat > max_ttl:
        raise AuthError(f"token lives {exp - iat} s, longer than the {max_ttl:g} s allowed here; mint shorter ones")
    return TokenClaims(sub, iat, exp, frozenset(party))


def _when(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: a player, or a trusted backend's API key (``key:<name>``)."""

    id: str
    trusted: bool = False
    party: frozenset[str] = field(default=frozenset())
    """Players a player's token may open a ticket with, besides its own (its ``party`` claim)."""

    @classmethod
    def player(cls, player_id: str, party: frozenset[str] = frozenset()) -> Principal:
        return cls(player_id, party=party)

    @classmethod
    def api_key(cls, name: str) -> Principal:
        return cls(f"{KEY_PREFIX}{name}", trusted=True)

    def check_may_open(self, players: Sequence[Player]) -> None:
        """Raise unless this principal may open a ticket for ``players``: a key for anyone; a
        player for themselves, with only the players their token's party claim lists."""
        if self.trusted:
            return
        if all(p.id != self.id for p in players):
            raise ValidationError(
                "players",
                f"a player token opens tickets that include its own player ({self.id!r}); "
                "a game backend opens tickets for others with an API key",
            )
        for i, p in enumerate(players):
            if p.id != self.id and p.id not in self.party:
                raise PartyConsentError(f"players[{i}].id", p.id)

    def can_see(self, ticket: Ticket) -> bool:
        """Keys see every ticket; a player sees tickets it opened or plays in (and may cancel them:
        being in a ticket took a key or a party claim the backend minted)."""
        return self.trusted or ticket.owner == self.id or any(p.id == self.id for p in ticket.players)


class Authenticator:
    """Turns an ``Authorization`` header into a ``Principal`` or an ``AuthError``."""

    def __init__(
        self,
        secret: str | None,
        api_keys: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.time,
        max_token_ttl: float = DEFAULT_MAX_TOKEN_TTL,
    ) -> None:
        if secret is None and not api_keys:
            raise ConfigError("the ticket API needs a player token secret or at least one API key")
        for name, key in api_keys.items():
            if key.startswith(f"{TOKEN_PREFIX}."):
                raise ConfigError(f"API key {name!r} must not start with {TOKEN_PREFIX!r}. (that is a player token)")
        self._secret = secret
        self._keys = [(name, key.encode()) for name, key in api_keys.items()]
        self._clock = clock
        self._max_ttl = max_token_ttl

    def authenticate(self, authorization: str | None) -> Principal:
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise AuthError("missing bearer token: send 'Authorization: Bearer <player token or API key>'")
        if not (credential.isascii() and credential.isprintable()):
            # aiohttp hands over undecodable header bytes as surrogates: refuse them here, before
            # anything encodes the text (tokens and keys are printable ASCII)
            raise MalformedCredentialsError("malformed bearer token: only printable ASCII characters are allowed")
        if credential.startswith(f"{TOKEN_PREFIX}."):
            if self._secret is None:
                raise AuthError("player tokens are not accepted here (no token secret is configured)")
            claims = verify_player_token(self._secret, credential, self._clock(), max_ttl=self._max_ttl)
            return Principal.player(claims.player, claims.party)
        given = credential.encode()
        found = None
        for name, key in self._keys:  # every key compared, in constant time each
            if hmac.compare_digest(given, key):
                found = name
        if found is None:
            raise AuthError(f"invalid bearer token: neither a player token ({TOKEN_PREFIX}.…) nor a known API key")
        return Principal.api_key(found)


class RateLimiter:
    """Token buckets per client: ``rate`` requests per second, bursts up to ``burst``.

    Memory is bounded by ``max_clients`` buckets; the least recently seen client is dropped first.
    A bucket idle for ``burst / rate`` seconds is full, the same as no bucket, so dropping it
    loses nothing; only a flood of more distinct clients than that could reset a busy one.
    """

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic, max_clients: int = 100_000
    ) -> None:
        if rate <= 0 or burst < 1 or max_clients < 1:
            raise ConfigError(f"rate limit needs rate > 0, burst >= 1 (got rate {rate}, burst {burst})")
        self._rate, self._burst, self._clock, self._max = rate, float(burst), clock, max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when); oldest first

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, client: str) -> None:
        """Take one token for ``client``, or raise ``RateLimitedError`` saying when one is due."""
        now = self._clock()
        bucket = self._buckets.pop(client, None)
        if bucket is None:
            tokens = self._burst
        else:
            tokens = min(self._burst, bucket[0] + max(0.0, now - bucket[1]) * self._rate)
        if tokens >= 1:
            self._buckets[client] = (tokens - 1, now)
            self._trim()
            return
        self._buckets[client] = (tokens, now)
        raise RateLimitedError((1 - tokens) / self._rate)

    def _trim(self) -> None:
        while len(self._buckets) > self._max:
            del self._buckets[next(iter(self._buckets))]
