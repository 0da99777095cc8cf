"""Who is calling the ticket API, what they may see, and how fast they may ask (pure: no I/O).

**Player tokens** are signed by the matchmaker's secret, so a frontend checks them without a
round trip to anyone::

    fmp1.<base64url(json {"sub": player id, "iat": issued, "exp": expires})>.<base64url(signature)>

The signature is HMAC-SHA256 with the secret over the ASCII text before the last dot
(``fmp1.<payload>``): the version prefix is signed with the claims, as JWT signs its header, so a
later format cannot be confused with this one. Times are integer epoch seconds. Base64url has no
padding; any other character makes the token malformed (the decoder would otherwise skip it, and a
token should have exactly one spelling).

**API keys** (``MatchmakerSettings.api_keys``, name -> key) are for trusted game backends: the
principal ``key:<name>`` may open tickets for any players and see or cancel any ticket. Player ids
may not start with ``key:``, so no player token can impersonate a backend.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from fleetmatch.errors import ConfigError, ValidationError
from matchmaker.errors import AuthError, RateLimitedError
from matchmaker.models import Ticket, player_id_error

TOKEN_PREFIX = "fmp1"
KEY_PREFIX = "key:"
MAX_TOKEN_LENGTH = 1024
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


def _player_error(player_id: str) -> str | None:
    if player_id.startswith(KEY_PREFIX):
        return f"must not start with {KEY_PREFIX!r} (reserved for API keys)"
    return player_id_error(player_id)


def mint_player_token(secret: str, player_id: str, ttl: float, now: float) -> str:
    """A token for ``player_id`` valid from ``now`` for ``ttl`` seconds (at least one)."""
    err = _player_error(player_id)
    if err:
        raise ValidationError("player", f"{player_id!r} {err}")
    if ttl < 1:
        raise ValidationError("ttl", f"must be at least 1 second, got {ttl}")
    claims = {"sub": player_id, "iat": int(now), "exp": int(now + ttl)}
    payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    signed = f"{TOKEN_PREFIX}.{payload}"
    return f"{signed}.{_b64encode(_sign(secret, signed))}"


def verify_player_token(secret: str, token: str, now: float) -> str:
    """The player id a token names; ``AuthError`` saying why if it is malformed, forged or expired.

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
    sub = claims.get("sub") if isinstance(claims, dict) else None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if not isinstance(sub, str) or _player_error(sub) or not isinstance(exp, int) or isinstance(exp, bool):
        raise AuthError("malformed token: payload needs a valid player id in sub and an integer exp")
    if now >= exp:
        when = datetime.fromtimestamp(exp, UTC).isoformat().replace("+00:00", "Z")
        raise AuthError(f"token expired at {when}; get a new one")
    return sub


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: a player, or a trusted backend's API key (``key:<name>``)."""

    id: str
    trusted: bool = False

    @classmethod
    def player(cls, player_id: str) -> Principal:
        return cls(player_id)

    @classmethod
    def api_key(cls, name: str) -> Principal:
        return cls(f"{KEY_PREFIX}{name}", trusted=True)

    def can_see(self, ticket: Ticket) -> bool:
        """Keys see every ticket; a player sees tickets it opened or plays in (and may cancel them)."""
        return self.trusted or ticket.owner == self.id or any(p.id == self.id for p in ticket.players)


class Authenticator:
    """Turns an ``Authorization`` header into a ``Principal`` or an ``AuthError``."""

    def __init__(
        self, secret: str | None, api_keys: Mapping[str, str], *, clock: Callable[[], float] = time.time
    ) -> None:
        if secret is None and not api_keys:
            raise ConfigError("the ticket API needs a player token secret or at least one API key")
        for name, key in api_keys.items():
            if key.startswith(f"{TOKEN_PREFIX}."):
                raise ConfigError(f"API key {name!r} must not start with {TOKEN_PREFIX!r}. (that is a player token)")
        self._secret = secret
        self._keys = [(name, key.encode()) for name, key in api_keys.items()]
        self._clock = clock

    def authenticate(self, authorization: str | None) -> Principal:
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise AuthError("missing bearer token: send 'Authorization: Bearer <player token or API key>'")
        if credential.startswith(f"{TOKEN_PREFIX}."):
            if self._secret is None:
                raise AuthError("player tokens are not accepted here (no token secret is configured)")
            return Principal.player(verify_player_token(self._secret, credential, self._clock()))
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
