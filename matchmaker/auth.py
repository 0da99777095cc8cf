"""Who is calling the ticket API, what they may see, and how fast they may ask (pure: no I/O).

**Player tokens** are standard JSON Web Tokens (RFC 7519) signed with HS256 (HMAC-SHA256) by the
matchmaker's secret, so a frontend checks them without a round trip to anyone, and any game backend
mints them with its own JWT library (Go, C#, Node, Python)::

    header  {"alg": "HS256", "typ": "JWT"}
    payload {"sub": player, "aud": audience, "iat": issued, "exp": expires, "party"?: [players]}

``aud`` must name this matchmaker's audience (``MatchmakerSettings.player_token_audience``,
``fleetmatch`` by default): a token a backend minted for another service with the same secret is
not one of ours. Only HS256 is accepted, whatever the header says (``alg: none`` and asymmetric
algorithms are refused before anything else is read), and the signature is checked before the
claims are interpreted. Times are epoch seconds (a fraction is dropped). A token is refused once
expired, when issued (``iat``) or valid from (``nbf``) more than ``CLOCK_SKEW`` seconds in the
future (a minting host's clock gone wrong), and when it lives longer than the frontend's maximum
(``exp - iat``; 24 h by default): a leaked token cannot be good for years.

**Deprecated: the fmp1 format** (``fmp1.<base64url(json claims)>.<base64url(HMAC-SHA256 over
"fmp1.<payload>")>``, no audience) is still accepted for one release with the same checks, so that
backends can move to JWTs; the ticket API counts every one it accepts and logs it (rate-limited).
Nothing mints it any more.

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
import contextlib
import hashlib
import hmac
import json
import math
import re
import time
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from jwt.algorithms import HMACAlgorithm
from jwt.warnings import InsecureKeyLengthWarning

from fleetmatch.errors import ConfigError, ValidationError
from fleetmatch.settings import DEFAULT_PLAYER_TOKEN_AUDIENCE
from matchmaker.errors import AuthError, MalformedCredentialsError, PartyConsentError, RateLimitedError
from matchmaker.models import MAX_PARTY, RESERVED_PLAYER_PREFIX, Player, Ticket, player_id_error

ALGORITHM = "HS256"
"""The one signature algorithm of player tokens (a fixed allow-list: never taken from the token)."""
LEGACY_PREFIX = "fmp1"
"""The deprecated token format's first part."""
KEY_PREFIX = RESERVED_PLAYER_PREFIX
MAX_TOKEN_LENGTH = 2048
"""Room for a party claim of ``MAX_PARTY`` players of the longest ids."""
CLOCK_SKEW = 60
"""Seconds a token may claim to be issued in the future (clocks of the minting host and this one differ)."""
DEFAULT_MAX_TOKEN_TTL = 24 * 3600.0
"""The longest lifetime (``exp - iat``) a token may have unless the frontend says otherwise."""
DEFAULT_AUDIENCE = DEFAULT_PLAYER_TOKEN_AUDIENCE
RECOMMENDED_SECRET_BYTES = 32
"""RFC 7518 asks HS256 keys for at least 256 bits; some JWT libraries (.NET's) refuse shorter ones."""
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_JWT_OPTIONS: Any = {
    # Times are checked below against the caller's clock (tests and the API inject one), with
    # the messages of this module; PyJWT checks the signature, the algorithm and the audience.
    "verify_exp": False,
    "verify_iat": False,
    "verify_nbf": False,
    "require": ["aud"],
}


class _PreparedHMAC(HMACAlgorithm):
    """HS256 that prepares each secret once. PyJWT checks the key on every token (is it a PEM, an
    SSH or a DER key, a JSON web key?): about a third of a ticket create's CPU. Our keys are the
    frontend's configured secrets, so the check's answer for one secret never changes."""

    MAX_KEYS = 8
    """Secrets remembered (one in practice; a few while one is rotated)."""

    def __init__(self) -> None:
        super().__init__(HMACAlgorithm.SHA256)
        self._prepared: dict[str | bytes, bytes] = {}

    def prepare_key(self, key: str | bytes) -> bytes:
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = super().prepare_key(key)  # raises for a key that is no HMAC secret: not kept
            if len(self._prepared) >= self.MAX_KEYS:
                self._prepared.clear()
            self._prepared[key] = prepared
        return prepared


_HS256 = _PreparedHMAC()


def _jwt_codec() -> jwt.PyJWT:
    """PyJWT has no public way to give ``PyJWT`` its algorithms: its ``PyJWS`` is replaced."""
    codec = jwt.PyJWT()
    codec._jws = jwt.PyJWS(algorithms=[], options=codec._jws.options)
    codec._jws.register_algorithm(ALGORITHM, _HS256)
    return codec


_JWT = _jwt_codec()
"""PyJWT with HS256 only, its secrets prepared once (``_PreparedHMAC``)."""
_PLAIN_HEADER_KEYS = frozenset({"alg", "typ", "kid"})
_plain_headers: set[str] = set()
"""Header segments seen to be plain HS256 headers (``_plain_header``): one per minting library."""
MAX_PLAIN_HEADERS = 64


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


def looks_like_token(credential: str) -> bool:
    """Is this bearer credential a player token (a JWT, or the deprecated fmp1 format) rather than
    an API key? A JWT's header is a JSON object, so its base64url starts with ``ey``."""
    return credential.startswith(f"{LEGACY_PREFIX}.") or (credential.startswith("ey") and credential.count(".") == 2)


def short_secret(secret: str) -> bool:
    """Shorter than HS256 asks for (RFC 7518 section 3.2): still accepted, but worth a warning."""
    return len(secret.encode()) < RECOMMENDED_SECRET_BYTES


@contextlib.contextmanager
def _quiet_key_length(secret: str) -> Iterator[None]:
    """PyJWT warns on every use of a short HMAC key; the ticket API warns once at start instead
    (``short_secret``). Long secrets, the normal case, skip the warnings machinery entirely."""
    if not short_secret(secret):
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        yield


def _time(value: Any, *, whole: bool) -> int | None:
    """Epoch seconds, or None: a JWT NumericDate may carry a fraction (dropped); the fmp1 format
    took integers only (``whole``). A bool is not a time; a huge one cannot be a date."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and not whole and math.isfinite(value):
        value = math.floor(value)
    if isinstance(value, int) and 0 <= value < 2**63:
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


def mint_player_token(
    secret: str,
    player_id: str,
    ttl: float,
    now: float,
    *,
    party: Collection[str] = (),
    audience: str = DEFAULT_AUDIENCE,
) -> str:
    """A JWT for ``player_id`` valid from ``now`` for ``ttl`` seconds (at least one), for the
    matchmaker of ``audience``. ``party``: the players it may open a ticket with (the game backend
    vouches they agreed). What a game backend does, in Python."""
    err = player_id_error(player_id)
    if err:
        raise ValidationError("player", f"{player_id!r} {err}")
    if not 1 <= ttl <= 2**40:  # finite; whether a frontend accepts this long is its own setting
        raise ValidationError("ttl", f"must be a number of seconds, at least 1, got {ttl}")
    if not audience:
        raise ValidationError("audience", "must not be empty")
    party = list(party)
    err = _party_error(player_id, party)
    if err:
        raise ValidationError("party", err)
    claims: dict[str, Any] = {"sub": player_id, "aud": audience, "iat": int(now), "exp": int(now + ttl)}
    if party:
        claims["party"] = party
    with _quiet_key_length(secret):
        return _JWT.encode(claims, secret, algorithm=ALGORITHM)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified player token says."""

    player: str
    issued_at: int
    expires_at: int
    party: frozenset[str] = frozenset()
    """Players the token may open a ticket with, besides its own."""
    legacy: bool = False
    """The token is of the deprecated fmp1 format."""


def verify_player_token(
    secret: str,
    token: str,
    now: float,
    *,
    max_ttl: float = DEFAULT_MAX_TOKEN_TTL,
    audience: str = DEFAULT_AUDIENCE,
) -> TokenClaims:
    """What a token says; ``AuthError`` saying why if it is malformed, forged, signed with another
    algorithm than HS256, meant for another audience, expired, issued in the future or
    longer-lived than ``max_ttl`` seconds. A deprecated fmp1 token (no audience) is checked the
    same way otherwise, and says so in ``legacy``.

    The signature is checked (in constant time) before the payload is interpreted: nothing of an
    unsigned token is.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise AuthError(f"malformed token: longer than {MAX_TOKEN_LENGTH} characters")
    legacy = token.startswith(f"{LEGACY_PREFIX}.")
    claims = _legacy_claims(secret, token) if legacy else _jwt_claims(secret, token, audience)
    return _checked(claims, now, max_ttl, legacy=legacy)


def _jwt_claims(secret: str, token: str, audience: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3 or not all(_B64URL.match(part) for part in parts[:2]) or not _B64URL.match(parts[2] or "-"):
        # an empty signature is left to the algorithm check: it is how an alg "none" token ends
        raise AuthError("malformed token: expected a JWT, <header>.<payload>.<signature> in base64url")
    plain = _plain_claims(secret, parts, audience)
    if plain is not None:
        return plain
    try:
        header = json.loads(_b64decode(parts[0]))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise AuthError("malformed token: the JWT header is not JSON") from None
    alg = header.get("alg") if isinstance(header, dict) else None
    if alg != ALGORITHM:
        raise AuthError(f"invalid token: algorithm {alg!r} is not accepted; player tokens are signed with {ALGORITHM}")
    try:
        with _quiet_key_length(secret):
            claims: dict[str, Any] = _JWT.decode(
                token, secret, algorithms=[ALGORITHM], audience=audience, options=_JWT_OPTIONS
            )
    except jwt.InvalidSignatureError:
        raise AuthError("invalid token: bad signature (forged, altered, or signed with another secret)") from None
    except (jwt.InvalidAudienceError, jwt.MissingRequiredClaimError):
        raise AuthError(f"invalid token: its audience (aud) must be {audience!r}") from None
    except jwt.InvalidTokenError as exc:  # payload not JSON, sub not text, a critical header we do not know
        raise AuthError(f"malformed token: {exc}") from None
    return claims


def _plain_claims(secret: str, parts: list[str], audience: str) -> dict[str, Any] | None:
    """The claims of a plain, valid JWT, verified by hand; None for anything else, which PyJWT
    then verifies and refuses with its reasons. PyJWT costs a ticket create a fifth of its CPU
    (segments checked character by character, the header parsed and options merged per token);
    this accepts only what PyJWT accepts: a known plain HS256 header (``_plain_header``), the
    right HMAC-SHA256 (compared in constant time, in canonical base64url as PyJWT requires), a
    canonical payload that is a JSON object naming our audience, ``sub`` and ``jti`` text if
    present. It decides nothing else, so every refusal keeps PyJWT's message."""
    header, payload, signature = parts
    if header not in _plain_headers and not _plain_header(header):
        return None
    try:
        key = _HS256.prepare_key(secret)
    except jwt.InvalidKeyError:
        return None
    expected = hmac.digest(key, f"{header}.{payload}".encode(), "sha256")
    if not hmac.compare_digest(_b64encode(expected), signature):
        return None
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (ValueError, RecursionError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None
    if _b64encode(raw) != payload or not isinstance(claims, dict):
        return None
    aud = claims.get("aud")
    if aud != audience and not (isinstance(aud, list) and audience in aud and all(isinstance(a, str) for a in aud)):
        return None
    if not all(isinstance(claims.get(name, ""), str) for name in ("sub", "jti")):
        return None
    return claims


def _plain_header(segment: str) -> bool:
    """Is this header segment canonical base64url of a JSON object with ``alg`` HS256 and nothing
    but ``typ`` and a text ``kid`` besides (what JWT libraries mint)? Remembered when it is."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = json.loads(raw)
    except (ValueError, RecursionError):
        return False
    plain = (
        _b64encode(raw) == segment
        and isinstance(header, dict)
        and header.get("alg") == ALGORITHM
        and header.keys() <= _PLAIN_HEADER_KEYS
        and isinstance(header.get("kid", ""), str)
    )
    if plain:
        if len(_plain_headers) >= MAX_PLAIN_HEADERS:
            _plain_headers.clear()
        _plain_headers.add(segment)
    return plain


def _legacy_claims(secret: str, token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthError(f"malformed token: expected {LEGACY_PREFIX}.<payload>.<signature>")
    payload, signature = _b64decode(parts[1]), _b64decode(parts[2])
    if not hmac.compare_digest(signature, _sign(secret, f"{LEGACY_PREFIX}.{parts[1]}")):
        raise AuthError("invalid token: bad signature (forged, altered, or signed with another secret)")
    try:
        claims = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise AuthError("malformed token: payload is not JSON") from None
    return claims if isinstance(claims, dict) else {}


def _checked(claims: Mapping[str, Any], now: float, max_ttl: float, *, legacy: bool) -> TokenClaims:
    """The claims every player token must hold, whatever its format."""
    sub, party = claims.get("sub"), claims.get("party", [])
    iat, exp = _time(claims.get("iat"), whole=legacy), _time(claims.get("exp"), whole=legacy)
    if not isinstance(sub, str) or player_id_error(sub) or iat is None or exp is None or exp <= iat:
        raise AuthError("malformed token: payload needs a valid player id in sub and times iat < exp")
    if not isinstance(party, list) or not all(isinstance(m, str) for m in party) or _party_error(sub, party):
        raise AuthError("malformed token: party must list other valid player ids, each once")
    not_before = None
    if "nbf" in claims and not legacy:
        not_before = _time(claims["nbf"], whole=False)
        if not_before is None:
            raise AuthError("malformed token: nbf must be a time")
    if now >= exp:
        raise AuthError(f"token expired at {_when(exp)}; get a new one")
    if iat > now + CLOCK_SKEW:
        raise AuthError(f"token issued in the future ({_when(iat)}): the clock of whoever minted it is wrong")
    if not_before is not None and not_before > now + CLOCK_SKEW:
        raise AuthError(f"token not valid before {_when(not_before)}")
    if exp - iat > max_ttl:
        raise AuthError(f"token lives {exp - iat} s, longer than the {max_ttl:g} s allowed here; mint shorter ones")
    return TokenClaims(sub, iat, exp, frozenset(party), legacy)


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
    """Turns an ``Authorization`` header into a ``Principal`` or an ``AuthError``.

    ``on_legacy_token`` sees every accepted token of the deprecated fmp1 format (the ticket API
    counts and logs them), so that operators know when no backend mints them any more."""

    def __init__(
        self,
        secret: str | None,
        api_keys: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.time,
        max_token_ttl: float = DEFAULT_MAX_TOKEN_TTL,
        audience: str = DEFAULT_AUDIENCE,
        on_legacy_token: Callable[[TokenClaims], None] | None = None,
    ) -> None:
        if secret is None and not api_keys:
            raise ConfigError("the ticket API needs a player token secret or at least one API key")
        for name, key in api_keys.items():
            if looks_like_token(key):
                raise ConfigError(
                    f"API key {name!r} looks like a player token (a JWT, or starts with {LEGACY_PREFIX!r}.); "
                    "choose another key"
                )
        if not audience:
            raise ConfigError("the player token audience must not be empty")
        self._secret = secret
        self._keys = [(name, key.encode()) for name, key in api_keys.items()]
        self._clock = clock
        self._max_ttl = max_token_ttl
        self._audience = audience
        self._on_legacy = on_legacy_token

    def authenticate(self, authorization: str | None) -> Principal:
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise AuthError("missing bearer token: send 'Authorization: Bearer <player token or API key>'")
        if not (credential.isascii() and credential.isprintable()):
            # aiohttp hands over undecodable header bytes as surrogates: refuse them here, before
            # anything encodes the text (tokens and keys are printable ASCII)
            raise MalformedCredentialsError("malformed bearer token: only printable ASCII characters are allowed")
        if looks_like_token(credential):
            if self._secret is None:
                raise AuthError("player tokens are not accepted here (no token secret is configured)")
            claims = verify_player_token(
                self._secret, credential, self._clock(), max_ttl=self._max_ttl, audience=self._audience
            )
            if claims.legacy and self._on_legacy is not None:
                self._on_legacy(claims)
            return Principal.player(claims.player, claims.party)
        given = credential.encode()
        found = None
        for name, key in self._keys:  # every key compared, in constant time each
            if hmac.compare_digest(given, key):
                found = name
        if found is None:
            raise AuthError("invalid bearer token: neither a player token (a JWT) nor a known API key")
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
