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
    TokenClaims,
    mint_player_token,
    verify_player_token,
)
from matchmaker.errors import AuthError, PartyConsentError, RateLimitedError
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
    assert verify_player_token(SECRET, token, NOW) == TokenClaims(player, int(NOW), int(NOW) + 3600)
    assert verify_player_token(SECRET, token, NOW + 3599).player == player


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
        assert verify_player_token(SECRET, token, now).player == "p1"
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
    pytest.param(signed(json.dumps({"iat": int(NOW), "exp": NOW + 60}).encode()), id="signed-no-sub"),
    pytest.param(signed(json.dumps({"sub": "p1", "iat": int(NOW)}).encode()), id="signed-no-exp"),
    pytest.param(signed(json.dumps({"sub": "p1", "exp": int(NOW + 60)}).encode()), id="signed-no-iat"),
    pytest.param(signed(json.dumps({"sub": "p1", "iat": int(NOW), "exp": "tomorrow"}).encode()), id="signed-exp-text"),
    pytest.param(signed(json.dumps({"sub": "p1", "iat": int(NOW), "exp": True}).encode()), id="signed-exp-bool"),
    pytest.param(signed(json.dumps({"sub": "p1", "iat": 1.5, "exp": int(NOW + 60)}).encode()), id="signed-iat-float"),
    pytest.param(signed(json.dumps({"sub": "p1", "iat": int(NOW), "exp": 2**63}).encode()), id="signed-exp-huge"),
    pytest.param(signed(json.dumps({"sub": "p1", "iat": int(NOW), "exp": int(NOW)}).encode()), id="signed-exp-at-iat"),
    pytest.param(signed(json.dumps({"sub": "bad id!", "iat": int(NOW), "exp": int(NOW + 60)}).encode()), id="bad-sub"),
    pytest.param(signed(json.dumps({"sub": "key:shop", "iat": int(NOW), "exp": int(NOW + 60)}).encode()), id="key-sub"),
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
        pytest.param("p1", float("inf"), "ttl", id="ttl-forever"),
    ],
)
def test_minting_refuses_what_would_not_verify(player: str, ttl: float, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        mint_player_token(SECRET, player, ttl, NOW)
    assert info.value.field == field


def claims(**changes: object) -> bytes:
    return json.dumps({"sub": "p1", "iat": int(NOW), "exp": int(NOW + 60), **changes}).encode()


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param(
            mint_player_token(SECRET, "p1", 100 * 365 * 86400, NOW), "longer than the 86400 s", id="100-years"
        ),
        pytest.param(mint_player_token(SECRET, "p1", 86401, NOW), "lives 86401 s", id="a-second-too-long"),
        pytest.param(mint_player_token(SECRET, "p1", 60, NOW + 61), "issued in the future", id="beyond-the-skew"),
        pytest.param(signed(claims(iat=int(NOW + 3600), exp=int(NOW + 7200))), "issued in the future", id="iat-ahead"),
    ],
)
def test_lifetime_and_issue_time_are_checked(token: str, reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
        verify_player_token(SECRET, token, NOW)


def test_a_token_of_the_longest_lifetime_and_one_within_the_skew_verify() -> None:
    assert verify_player_token(SECRET, mint_player_token(SECRET, "p1", 86400, NOW), NOW).player == "p1"
    assert verify_player_token(SECRET, mint_player_token(SECRET, "p1", 60, NOW + 59), NOW).player == "p1"
    week = mint_player_token(SECRET, "p1", 7 * 86400, NOW)
    assert verify_player_token(SECRET, week, NOW, max_ttl=7 * 86400).player == "p1"


def test_a_party_claim_lists_the_players_a_token_may_queue_with() -> None:
    token = mint_player_token(SECRET, "lead", 60, NOW, party=["p2", "p3"])
    assert verify_player_token(SECRET, token, NOW) == TokenClaims(
        "lead", int(NOW), int(NOW + 60), frozenset({"p2", "p3"})
    )


@pytest.mark.parametrize(
    "party",
    [
        pytest.param("p2", id="not-a-list"),
        pytest.param([2], id="not-ids"),
        pytest.param(["p1"], id="its-own-player"),
        pytest.param(["p2", "p2"], id="twice"),
        pytest.param(["key:shop"], id="reserved"),
        pytest.param(["bad id"], id="invalid"),
        pytest.param([f"m{i}" for i in range(16)], id="bigger-than-a-party"),
    ],
)
def test_malformed_party_claims_are_refused(party: object) -> None:
    with pytest.raises(AuthError, match="malformed token: party"):
        verify_player_token(SECRET, signed(claims(party=party)), NOW)
    if isinstance(party, list) and all(isinstance(m, str) for m in party):
        with pytest.raises(ValidationError, match="party"):
            mint_player_token(SECRET, "p1", 60, NOW, party=party)


@pytest.mark.parametrize(
    ("principal", "players", "error", "field"),
    [
        pytest.param(Principal("p1"), ["p1"], None, None, id="alone"),
        pytest.param(Principal("p1", party=frozenset({"p2", "p3"})), ["p2", "p1"], None, None, id="listed-party"),
        pytest.param(Principal("p1", party=frozenset({"p2"})), ["p1"], None, None, id="alone-with-a-claim"),
        pytest.param(Principal("key:shop", trusted=True), ["p7", "p8"], None, None, id="api-key"),
        pytest.param(Principal("p1"), ["p1", "p2"], PartyConsentError, "players[1].id", id="stranger"),
        pytest.param(
            Principal("p1", party=frozenset({"p2"})),
            ["p1", "p2", "p3"],
            PartyConsentError,
            "players[2].id",
            id="unlisted",
        ),
        pytest.param(Principal("p1", party=frozenset({"p2"})), ["p2"], ValidationError, "players", id="without-self"),
    ],
)
def test_who_may_open_a_ticket_for_whom(
    principal: Principal, players: list[str], error: type[Exception] | None, field: str | None
) -> None:
    party = [Player(p) for p in players]
    if error is None:
        principal.check_may_open(party)
        return
    with pytest.raises(error) as info:
        principal.check_may_open(party)
    assert isinstance(info.value, ValidationError) and info.value.field == field


# -- authenticator ---------------------------------------------------------------------------------


def authenticator(secret: str | None = SECRET, now: float = NOW) -> Authenticator:
    return Authenticator(
        secret,
        {"shop": "shop-key-0123456789abcdef", "web": "web-key-0123456789abcdef"},
        clock=lambda: now,
        max_token_ttl=3600,
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(f"Bearer {mint_player_token(SECRET, 'p1', 60, NOW)}", Principal("p1"), id="player"),
        pytest.param(
            f"Bearer {mint_player_token(SECRET, 'p1', 60, NOW, party=['p2'])}",
            Principal("p1", party=frozenset({"p2"})),
            id="player-with-a-party",
        ),
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
        pytest.param(f"Bearer {mint_player_token(SECRET, 'p1', 3601, NOW)}", "longer than the 3600 s", id="too-long"),
        pytest.param("Bearer x\udce9", "malformed bearer token", id="not-ascii"),
        pytest.param("Bearer fmp1.\udce9.x", "malformed bearer token", id="token-not-ascii"),
        pytest.param("Bearer a\x00b", "malformed bearer token", id="control-character"),
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
