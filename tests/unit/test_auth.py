"""Player tokens, API keys, who sees which ticket, and the per-client rate limiter (a fake clock)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from fleetmatch.errors import ConfigError, ValidationError
from matchmaker.auth import (
    Authenticator,
    Principal,
    RateLimiter,
    mint_player_token,
    verify_player_token,
)
from matchmaker.errors import AuthError, RateLimitedError
from matchmaker.models import Player, Ticket

SECRET = "s3cret-0123456789abcdef"
NOW = 1_800_000_000.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(payload: bytes, secret: str = SECRET) -> str:
    """A token with any payload, correctly signed: to reach the checks after the signature."""
    body = f"fmp1.{b64(payload)}"
    return f"{body}.{b64(hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest())}"


# -- tokens --------------------------------------------------------------------------------------


@pytest.mark.parametrize("player", ["p1", "Alice@eu", "a" * 64, "team.7:x-y_z"])
def test_a_minted_token_verifies_to_its_player(player: str) -> None:
    token = mint_player_token(SECRET, player, 3600, NOW)
    assert token.startswith("fmp1.") and token.count(".") == 2 and "=" not in token
    assert verify_player_token(SECRET, token, NOW) == player
    assert verify_player_token(SECRET, token, NOW + 3599) == player


def test_the_payload_carries_subject_and_integer_times() -> None:
    token = mint_player_token(SECRET, "p1", 60.7, NOW + 0.4)
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims == {"sub": "p1", "iat": int(NOW), "exp": int(NOW + 61.1)}


@pytest.mark.parametrize(
    ("now", "ok"),
    [
        pytest.param(NOW - 10, True, id="issued-in-the-future-is-fine"),
        pytest.param(NOW + 59, True, id="last-second"),
        pytest.param(NOW + 60, False, id="at-expiry"),
        pytest.param(NOW + 10_000, False, id="long-after"),
    ],
)
def test_expiry(now: float, ok: bool) -> None:
    token = mint_player_token(SECRET, "p1", 60, NOW)
    if ok:
        assert verify_player_token(SECRET, token, now) == "p1"
    else:
        with pytest.raises(AuthError, match="expired at 2027-01-15T08:01:00Z"):
            verify_player_token(SECRET, token, now)


def _tamper_payload(token: str) -> str:
    prefix, _, sig = token.split(".")
    other = b64(json.dumps({"sub": "p2", "iat": int(NOW), "exp": int(NOW + 60)}).encode())
    return f"{prefix}.{other}.{sig}"


def _flip_signature(token: str) -> str:
    head, _, sig = token.rpartition(".")
    return f"{head}.{('B' if sig[0] == 'A' else 'A')}{sig[1:]}"


def _extend_expiry(token: str) -> str:
    prefix, _, sig = token.split(".")
    other = b64(json.dumps({"sub": "p1", "iat": int(NOW), "exp": int(NOW + 10**6)}).encode())
    return f"{prefix}.{other}.{sig}"


TAMPERED = [
    pytest.param(_tamper_payload, "bad signature", id="other-player"),
    pytest.param(_extend_expiry, "bad signature", id="longer-expiry"),
    pytest.param(_flip_signature, "bad signature", id="signature-byte"),
    pytest.param(lambda t: t[:-4], "bad signature", id="truncated-signature"),
    pytest.param(lambda t: t[:-2], "not base64url", id="cut-mid-character"),
    pytest.param(lambda t: "fmp2" + t[4:], "malformed token", id="other-version"),
    pytest.param(lambda t: t + ".x", "malformed token", id="extra-part"),
    pytest.param(lambda t: t.replace(".", "!.", 1), "malformed token", id="junk-before-dot"),
    pytest.param(lambda t: t[:10] + "=" + t[10:], "not base64url", id="padding-inside"),
    pytest.param(lambda t: t + "==", "not base64url", id="padding"),
]


@pytest.mark.parametrize(("change", "reason"), TAMPERED)
def test_tampered_tokens_are_refused(change: object, reason: str) -> None:
    token = mint_player_token(SECRET, "p1", 60, NOW)
    assert callable(change)
    with pytest.raises(AuthError, match=reason):
        verify_player_token(SECRET, change(token), NOW)


def test_another_secret_does_not_verify() -> None:
    token = mint_player_token("another-secret-0123456789", "p1", 60, NOW)
    with pytest.raises(AuthError, match="bad signature"):
        verify_player_token(SECRET, token, NOW)


MALFORMED = [
    pytest.param("", id="empty"),
    pytest.param("fmp1", id="prefix-only"),
    pytest.param("fmp1..", id="empty-parts"),
    pytest.param("fmp1.abc", id="two-parts"),
    pytest.param("Bearer fmp1.a.b", id="scheme-inside"),
    pytest.param("fmp1." + "a" * 2000 + ".b", id="too-long"),
    pytest.param("fmp1.a b.c", id="space"),
    pytest.param(signed(b"not json"), id="signed-not-json"),
    pytest.param(signed(b"[1, 2]"), id="signed-list"),
    pytest.param(signed(json.dumps({"exp": NOW + 60}).encode()), id="signed-no-sub"),
    pytest.param(signed(json.dumps({"sub": "p1"}).encode()), id="signed-no-exp"),
    pytest.param(signed(json.dumps({"sub": "p1", "exp": "tomorrow"}).encode()), id="signed-exp-text"),
    pytest.param(signed(json.dumps({"sub": "p1", "exp": True}).encode()), id="signed-exp-bool"),
    pytest.param(signed(json.dumps({"sub": "bad id!", "exp": int(NOW + 60)}).encode()), id="signed-bad-sub"),
    pytest.param(signed(json.dumps({"sub": "key:shop", "exp": int(NOW + 60)}).encode()), id="signed-key-sub"),
    pytest.param(signed(b"\xff\xfe"), id="signed-not-utf8"),
]


@pytest.mark.parametrize("token", MALFORMED)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(AuthError, match="malformed token"):
        verify_player_token(SECRET, token, NOW)


@pytest.mark.parametrize(
    ("player", "ttl", "field"),
    [
        pytest.param("", 60, "player", id="empty"),
        pytest.param("no spaces", 60, "player", id="space"),
        pytest.param("key:shop", 60, "player", id="reserved-prefix"),
        pytest.param("p1", 0.5, "ttl", id="ttl-under-a-second"),
    ],
)
def test_minting_refuses_what_would_not_verify(player: str, ttl: float, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        mint_player_token(SECRET, player, ttl, NOW)
    assert info.value.field == field


# -- authenticator ---------------------------------------------------------------------------------


def authenticator(secret: str | None = SECRET, now: float = NOW) -> Authenticator:
    return Authenticator(
        secret, {"shop": "shop-key-0123456789abcdef", "web": "web-key-0123456789abcdef"}, clock=lambda: now
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(f"Bearer {mint_player_token(SECRET, 'p1', 60, NOW)}", Principal("p1"), id="player"),
        pytest.param(f"bearer  {mint_player_token(SECRET, 'p1', 60, NOW)} ", Principal("p1"), id="spacing-and-case"),
        pytest.param("Bearer shop-key-0123456789abcdef", Principal("key:shop", trusted=True), id="api-key"),
        pytest.param("Bearer web-key-0123456789abcdef", Principal("key:web", trusted=True), id="other-key"),
    ],
)
def test_authenticate(header: str, expected: Principal) -> None:
    assert authenticator().authenticate(header) == expected


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        pytest.param(None, "missing bearer token", id="none"),
        pytest.param("", "missing bearer token", id="empty"),
        pytest.param("Bearer", "missing bearer token", id="scheme-only"),
        pytest.param("Basic dXNlcjpwYXNz", "missing bearer token", id="basic"),
        pytest.param("Bearer shop-key-0123456789abcdeX", "neither a player token", id="wrong-key"),
        pytest.param("Bearer shop-key-0123456789abcdef0", "neither a player token", id="key-prefix-only"),
        pytest.param(f"Bearer {mint_player_token(SECRET, 'p1', 60, NOW - 120)}", "expired", id="expired"),
        pytest.param(f"Bearer {mint_player_token('other-secret-0123456', 'p1', 60, NOW)}", "signature", id="forged"),
    ],
)
def test_authenticate_refuses(header: str | None, reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
        authenticator().authenticate(header)


def test_without_a_secret_player_tokens_are_refused_but_keys_work() -> None:
    auth = authenticator(secret=None)
    with pytest.raises(AuthError, match="no token secret"):
        auth.authenticate(f"Bearer {mint_player_token(SECRET, 'p1', 60, NOW)}")
    assert auth.authenticate("Bearer shop-key-0123456789abcdef").trusted


@pytest.mark.parametrize(
    ("secret", "keys", "message"),
    [
        pytest.param(None, {}, "needs a player token secret or at least one API key", id="nobody"),
        pytest.param(SECRET, {"x": "fmp1.0123456789abcdef"}, "must not start with", id="key-like-token"),
    ],
)
def test_configurations_that_cannot_work(secret: str | None, keys: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Authenticator(secret, keys)


# -- visibility ---------------------------------------------------------------------------------


TICKET = Ticket(id="duel.x", queue="duel", owner="p1", players=(Player("p1"), Player("p2")))
BY_KEY = Ticket(id="duel.y", queue="duel", owner="key:shop", players=(Player("p3"),))


@pytest.mark.parametrize(
    ("principal", "ticket", "sees"),
    [
        pytest.param(Principal("p1"), TICKET, True, id="owner"),
        pytest.param(Principal("p2"), TICKET, True, id="party-member"),
        pytest.param(Principal("p3"), TICKET, False, id="stranger"),
        pytest.param(Principal("p3"), BY_KEY, True, id="player-of-a-backend-ticket"),
        pytest.param(Principal("p1"), BY_KEY, False, id="stranger-to-a-backend-ticket"),
        pytest.param(Principal("key:web", trusted=True), TICKET, True, id="any-key"),
        pytest.param(Principal("key:shop"), BY_KEY, True, id="untrusted-owner-by-id"),
    ],
)
def test_who_sees_a_ticket(principal: Principal, ticket: Ticket, sees: bool) -> None:
    assert principal.can_see(ticket) is sees


# -- rate limiter -------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_burst_then_limited_with_the_time_until_the_next_token() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 3, clock=clock)
    for _ in range(3):
        limiter.check("p1")
    with pytest.raises(RateLimitedError) as info:
        limiter.check("p1")
    assert info.value.retry_after == pytest.approx(0.5)
    clock.now += 0.25
    with pytest.raises(RateLimitedError) as info:
        limiter.check("p1")  # a refused request costs nothing, the wait shrinks
    assert info.value.retry_after == pytest.approx(0.25)
    clock.now += 0.25
    limiter.check("p1")
    with pytest.raises(RateLimitedError):
        limiter.check("p1")


def test_refill_is_capped_at_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(10.0, 2, clock=clock)
    limiter.check("p1")
    clock.now += 3600
    limiter.check("p1")
    limiter.check("p1")
    with pytest.raises(RateLimitedError):
        limiter.check("p1")


def test_clients_have_their_own_buckets() -> None:
    limiter = RateLimiter(1.0, 1, clock=Clock())
    limiter.check("p1")
    limiter.check("p2")
    limiter.check("key:shop")
    with pytest.raises(RateLimitedError):
        limiter.check("p1")


def test_a_clock_going_back_adds_no_tokens() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 1, clock=clock)
    limiter.check("p1")
    clock.now -= 50
    with pytest.raises(RateLimitedError):
        limiter.check("p1")


def test_memory_is_bounded_and_the_least_recently_seen_go_first() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 1, clock=clock, max_clients=3)
    for client in ("a", "b", "c"):
        limiter.check(client)
    with pytest.raises(RateLimitedError):
        limiter.check("a")  # a is now the most recently seen
    limiter.check("d")  # evicts b, the least recently seen
    assert len(limiter) == 3
    with pytest.raises(RateLimitedError):
        limiter.check("a")  # still remembered
    limiter.check("b")  # forgotten: a fresh bucket
    for i in range(1000):
        limiter.check(f"flood-{i}")
    assert len(limiter) == 3


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 5), (1.0, 0)])
def test_a_limiter_that_would_refuse_everything_is_a_config_error(rate: float, burst: int) -> None:
    with pytest.raises(ConfigError):
        RateLimiter(rate, burst)
