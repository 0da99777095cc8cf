"""Player tokens (JWTs, and the deprecated fmp1 format), API keys, who sees which ticket, and the
per-client rate limiter (a fake clock).

Tokens are built here by hand (``hmac`` + base64url, no PyJWT) wherever a test needs one the
minting function would not make: that is also what another JWT implementation sends."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from fleetmatch.errors import ConfigError, ValidationError
from matchmaker import auth
from matchmaker.auth import (
    Authenticator,
    Principal,
    RateLimiter,
    TokenClaims,
    looks_like_token,
    mint_player_token,
    verify_player_token,
)
from matchmaker.errors import AuthError, PartyConsentError, RateLimitedError
from matchmaker.models import Player, Ticket

SECRET = "s3cret-0123456789abcdef-0123456789"
NOW = 1_800_000_000.0
HS256 = {"alg": "HS256", "typ": "JWT"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def jws(payload: bytes | dict[str, Any], header: dict[str, Any] = HS256, secret: str = SECRET) -> str:
    """A JWT made by hand, HMAC-SHA256 over ``header.payload`` whatever the header's ``alg`` says."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(body)}"
    return f"{signing_input}.{b64(hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest())}"


def claims(**changes: object) -> dict[str, Any]:
    """JWT claims of p1 for a minute from NOW; ``name=None`` leaves a claim out."""
    base: dict[str, Any] = {"sub": "p1", "aud": "fleetmatch", "iat": int(NOW), "exp": int(NOW + 60)}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def legacy(payload: bytes | dict[str, Any], secret: str = SECRET) -> str:
    """A token of the deprecated fmp1 format, correctly signed."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signed = f"fmp1.{b64(body)}"
    return f"{signed}.{b64(hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest())}"


def legacy_claims(**changes: object) -> bytes:
    return json.dumps({"sub": "p1", "iat": int(NOW), "exp": int(NOW + 60), **changes}).encode()


# -- JWT player tokens ------------------------------------------------------------------------------


@pytest.mark.parametrize("player", ["p1", "Alice@eu", "a" * 64, "team.7:x-y_z"])
def test_a_minted_token_is_a_jwt_verifying_to_its_player(player: str) -> None:
    token = mint_player_token(SECRET, player, 3600, NOW)
    header, payload, _ = token.split(".")
    assert unb64(header) == {"alg": "HS256", "typ": "JWT"} and "=" not in token
    assert unb64(payload) == {"sub": player, "aud": "fleetmatch", "iat": int(NOW), "exp": int(NOW) + 3600}
    assert verify_player_token(SECRET, token, NOW) == TokenClaims(player, int(NOW), int(NOW) + 3600)
    assert verify_player_token(SECRET, token, NOW + 3599).player == player


def test_times_are_whole_seconds_and_the_party_a_private_claim() -> None:
    token = mint_player_token(SECRET, "p1", 60.7, NOW + 0.4, party=["p2"], audience="mm.example.com")
    assert unb64(token.split(".")[1]) == {
        "sub": "p1",
        "aud": "mm.example.com",
        "iat": int(NOW),
        "exp": int(NOW + 61.1),
        "party": ["p2"],
    }


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(jws(claims()), id="plain"),
        pytest.param(jws(claims(), header={"typ": "JWT", "alg": "HS256", "kid": "2026-01"}), id="kid-and-order"),
        pytest.param(jws(claims(), header={"alg": "HS256"}), id="no-typ"),
        pytest.param(jws(claims(iat=NOW + 0.9, exp=NOW + 60.5)), id="fractional-times"),
        pytest.param(jws(claims(aud=["other-service", "fleetmatch"])), id="audience-list"),
        pytest.param(jws(claims(nbf=int(NOW), iss="backend", jti="abc")), id="more-registered-claims"),
    ],
)
def test_a_jwt_of_another_implementation_verifies(token: str) -> None:
    """What Go's golang-jwt, Node's jsonwebtoken or .NET mint: other header orders, extra claims."""
    assert verify_player_token(SECRET, token, NOW).player == "p1"


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


def _swap_payload(**changes: object) -> Callable[[str], str]:
    def change(token: str) -> str:
        header, _, sig = token.split(".")
        return f"{header}.{b64(json.dumps(claims(**changes)).encode())}.{sig}"

    return change


def _flip_signature(token: str) -> str:
    head, _, sig = token.rpartition(".")
    return f"{head}.{('B' if sig[0] == 'A' else 'A')}{sig[1:]}"


TAMPERED = [
    pytest.param(_swap_payload(sub="p2"), "bad signature", id="other-player"),
    pytest.param(_swap_payload(exp=int(NOW + 10**6)), "bad signature", id="longer-expiry"),
    pytest.param(_swap_payload(party=["p2"]), "bad signature", id="party-added"),
    pytest.param(_flip_signature, "bad signature", id="signature-byte"),
    pytest.param(lambda t: t[:-3], "bad signature", id="truncated-signature"),
    pytest.param(lambda t: t[:-4], "malformed token", id="cut-mid-character"),
    pytest.param(lambda t: t.rpartition(".")[0] + ".", "bad signature", id="no-signature"),
    pytest.param(lambda t: t + ".x", "neither a player token", id="extra-part"),
    pytest.param(lambda t: t[:10] + "=" + t[10:], "malformed token", id="padding-inside"),
    pytest.param(lambda t: t + "==", "malformed token", id="padding"),
]


@pytest.mark.parametrize(("change", "reason"), TAMPERED)
def test_tampered_tokens_are_refused(change: Callable[[str], str], reason: str) -> None:
    token = change(mint_player_token(SECRET, "p1", 60, NOW))
    with pytest.raises(AuthError, match=reason):
        authenticator(max_ttl=86400).authenticate(f"Bearer {token}")


def test_another_secret_does_not_verify() -> None:
    token = mint_player_token("another-secret-0123456789-abcdefgh", "p1", 60, NOW)
    with pytest.raises(AuthError, match="bad signature"):
        verify_player_token(SECRET, token, NOW)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(mint_player_token(SECRET, "p1", 60, NOW, audience="chat-service"), id="another-service"),
        pytest.param(jws(claims(aud=None)), id="no-audience"),
        pytest.param(jws(claims(aud="")), id="empty"),
        pytest.param(jws(claims(aud=["chat", "store"])), id="list-without-ours"),
        pytest.param(jws(claims(aud="Fleetmatch")), id="case-differs"),
    ],
)
def test_a_token_for_another_audience_is_refused(token: str) -> None:
    with pytest.raises(AuthError, match="audience"):
        verify_player_token(SECRET, token, NOW)


def test_the_audience_is_configurable() -> None:
    token = mint_player_token(SECRET, "p1", 60, NOW, audience="https://mm.example.com")
    assert verify_player_token(SECRET, token, NOW, audience="https://mm.example.com").player == "p1"
    with pytest.raises(AuthError, match="audience"):
        verify_player_token(SECRET, mint_player_token(SECRET, "p1", 60, NOW), NOW, audience="https://mm.example.com")


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(jws(claims(), header={"alg": "none", "typ": "JWT"}).rpartition(".")[0] + ".", id="none-unsigned"),
        pytest.param(jws(claims(), header={"alg": "none"}), id="none-with-a-signature"),
        pytest.param(jws(claims(), header={"alg": "None"}), id="None"),
        pytest.param(jws(claims(), header={"alg": "NONE"}), id="NONE"),
        pytest.param(jws(claims(), header={"typ": "JWT"}), id="no-alg"),
        pytest.param(jws(claims(), header={"alg": None}), id="alg-null"),
    ],
)
def test_unsigned_tokens_are_refused(token: str) -> None:
    """``alg: none`` (RFC 7519's unsecured JWT) would let anyone be anyone."""
    with pytest.raises(AuthError, match=r"algorithm .* is not accepted"):
        authenticator(max_ttl=86400).authenticate(f"Bearer {token}")


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256", "EdDSA", "HS384", "HS512", "hs256", "HS256 "])
def test_other_algorithms_are_refused_even_when_signed_with_the_secret(alg: str) -> None:
    """Algorithm confusion: whatever the header claims, only HS256 is accepted. The signature here
    is the right HMAC of the secret, so a verifier trusting the header's alg would be fooled."""
    with pytest.raises(AuthError, match=r"algorithm .* is not accepted"):
        verify_player_token(SECRET, jws(claims(), header={"alg": alg, "typ": "JWT"}), NOW)


MALFORMED = [
    pytest.param("eyJ.eyJ", id="two-parts"),
    pytest.param("ey." + "a" * 2100 + ".b", id="too-long"),
    pytest.param("eyJhbGciOiJIUzI1NiJ9.a b.c", id="space"),
    pytest.param(jws(claims()).replace("eyJ", "ey!", 1), id="junk-in-header"),
    pytest.param(f"{b64(b'not json')}.{b64(b'{}')}.abc", id="header-not-json"),
    pytest.param(jws(b"not json"), id="payload-not-json"),
    pytest.param(jws(b"[1, 2]"), id="payload-a-list"),
    pytest.param(jws(b"\xff\xfe"), id="payload-not-utf8"),
    pytest.param(jws(claims(sub=None)), id="no-sub"),
    pytest.param(jws(claims(sub=7)), id="sub-a-number"),
    pytest.param(jws(claims(sub="")), id="sub-empty"),
    pytest.param(jws(claims(sub="bad id!")), id="bad-sub"),
    pytest.param(jws(claims(sub="key:shop")), id="key-sub"),
    pytest.param(jws(claims(exp=None)), id="no-exp"),
    pytest.param(jws(claims(iat=None)), id="no-iat"),
    pytest.param(jws(claims(exp="tomorrow")), id="exp-text"),
    pytest.param(jws(claims(exp=True)), id="exp-bool"),
    pytest.param(jws(claims(exp=2**63)), id="exp-huge"),
    pytest.param(jws(claims(exp=int(NOW))), id="exp-at-iat"),
    pytest.param(jws(claims(iat=-5)), id="iat-negative"),
    pytest.param(jws(claims(nbf="soon")), id="nbf-text"),
]


@pytest.mark.parametrize("token", MALFORMED)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(AuthError, match="malformed token"):
        verify_player_token(SECRET, token, NOW)


def _canonical_twin(token: str) -> str:
    """The token with its signature's last character changed in the bits base64url leaves unused:
    the same bytes decoded, but not the canonical text (PyJWT refuses it)."""
    head, _, sig = token.rpartition(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return f"{head}.{sig[:-1]}{alphabet[alphabet.index(sig[-1]) ^ 1]}"


def _not_canonical(part: int) -> str:
    """A token signed over a header (``part`` 0) or payload (1) segment whose last character has
    unused bits set: the same bytes decoded, another text."""
    segments = [json.dumps({"alg": "HS256"}).encode(), json.dumps(claims(jti="ab")).encode()]
    assert all(len(s) % 3 for s in segments), "unused bits need a partial last group"
    texts = [b64(s) for s in segments]
    texts[part] = _canonical_twin(f"x.{texts[part]}").partition(".")[2]
    signing_input = ".".join(texts)
    return f"{signing_input}.{b64(hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest())}"


PLAIN = [
    pytest.param(mint_player_token(SECRET, "p1", 60, NOW), id="minted"),
    pytest.param(mint_player_token(SECRET, "lead", 60, NOW, party=["p2", "p3"]), id="minted-party"),
    pytest.param(jws(claims()), id="plain"),
    pytest.param(jws(claims(), header={"typ": "JWT", "alg": "HS256", "kid": "2026-01"}), id="kid-and-order"),
    pytest.param(jws(claims(), header={"alg": "HS256"}), id="no-typ"),
    pytest.param(jws(claims(aud=["other-service", "fleetmatch"])), id="audience-list"),
    pytest.param(jws(claims(nbf=int(NOW), iss="backend", jti="abc")), id="more-registered-claims"),
]
"""Valid tokens of the shapes JWT libraries mint: verified by hand, without PyJWT."""
UNUSUAL = {
    "crit-unknown": jws(claims(), header={"alg": "HS256", "crit": ["exp"]}),
    "crit-empty": jws(claims(), header={"alg": "HS256", "crit": []}),
    "b64-false": jws(claims(), header={"alg": "HS256", "b64": False, "crit": ["b64"]}),
    "kid-a-number": jws(claims(), header={"alg": "HS256", "kid": 7}),
    "jku": jws(claims(), header={"alg": "HS256", "jku": "https://evil.example"}),
    "signature-not-canonical": _canonical_twin(mint_player_token(SECRET, "p1", 60, NOW)),
    "header-not-canonical": _not_canonical(0),
    "payload-not-canonical": _not_canonical(1),
    "jti-a-number": jws(claims(jti=7)),
    "sub-a-number": jws(claims(sub=7)),
    "aud-empty-list": jws(claims(aud=[])),
    "aud-list-with-a-number": jws(claims(aud=["fleetmatch", 7])),
    "aud-an-object": jws(claims(aud={"fleetmatch": 1})),
    "aud-twice": jws(b'{"sub": "p1", "aud": "fleetmatch", "aud": "other"}'),
}
"""Tokens PyJWT refuses or treats specially: the hand verifier must leave every one to PyJWT."""


def _pyjwt(token: str) -> dict[str, Any] | str:
    """What PyJWT alone makes of the token: its claims, or the name of its error."""
    try:
        claims: dict[str, Any] = auth._JWT.decode(
            token, SECRET, algorithms=["HS256"], audience="fleetmatch", options=auth._JWT_OPTIONS
        )
    except jwt.PyJWTError as exc:
        return type(exc).__name__
    return claims


@pytest.mark.parametrize("token", PLAIN)
def test_plain_tokens_are_verified_by_hand_to_what_pyjwt_says(token: str) -> None:
    assert auth._plain_claims(SECRET, token.split("."), "fleetmatch") == _pyjwt(token)


@pytest.mark.parametrize(
    "token",
    [
        *(pytest.param(token, id=name) for name, token in UNUSUAL.items()),
        *MALFORMED[3:],  # three parts each
        *(
            pytest.param(p.values[0](mint_player_token(SECRET, "p1", 60, NOW)), id=p.id)  # type: ignore[operator]
            for p in TAMPERED
        ),
        pytest.param(mint_player_token("another-secret-0123456789-abcdefgh", "p1", 60, NOW), id="another-secret"),
        pytest.param(mint_player_token(SECRET, "p1", 60, NOW, audience="chat-service"), id="another-audience"),
        pytest.param(jws(claims(aud=None)), id="no-audience"),
        pytest.param(jws(claims(), header={"alg": "HS512"}), id="hs512"),
        pytest.param(jws(claims(), header={"alg": "none"}), id="alg-none"),
    ],
)
def test_the_hand_verifier_leaves_what_it_does_not_accept_to_pyjwt(token: str) -> None:
    """Whatever PyJWT refuses, or reads differently, is left to it (None), so every refusal keeps
    PyJWT's reason; what the hand verifier does accept, PyJWT accepts with the same claims."""
    parts = token.split(".")
    hand = auth._plain_claims(SECRET, parts, "fleetmatch") if len(parts) == 3 else None
    pyjwt = _pyjwt(token)
    assert hand is None or hand == pyjwt
    if isinstance(pyjwt, str):
        assert hand is None, pyjwt


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param(UNUSUAL["crit-unknown"], "malformed token: Unsupported critical extension", id="crit-unknown"),
        pytest.param(UNUSUAL["kid-a-number"], "malformed token: Key ID", id="kid-a-number"),
        pytest.param(
            UNUSUAL["signature-not-canonical"], "malformed token: Invalid crypto padding", id="signature-not-canonical"
        ),
        pytest.param(
            UNUSUAL["payload-not-canonical"], "malformed token: Invalid payload padding", id="payload-not-canonical"
        ),
        pytest.param(UNUSUAL["jti-a-number"], "malformed token: JWT ID", id="jti-a-number"),
        pytest.param(UNUSUAL["aud-list-with-a-number"], "audience", id="aud-list-with-a-number"),
    ],
)
def test_unusual_tokens_are_refused_with_pyjwts_reason(token: str, reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
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


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param(
            mint_player_token(SECRET, "p1", 100 * 365 * 86400, NOW), "longer than the 86400 s", id="100-years"
        ),
        pytest.param(mint_player_token(SECRET, "p1", 86401, NOW), "lives 86401 s", id="a-second-too-long"),
        pytest.param(mint_player_token(SECRET, "p1", 60, NOW + 61), "issued in the future", id="beyond-the-skew"),
        pytest.param(jws(claims(iat=int(NOW + 3600), exp=int(NOW + 7200))), "issued in the future", id="iat-ahead"),
        pytest.param(jws(claims(nbf=int(NOW + 61))), "not valid before", id="nbf-ahead"),
        pytest.param(legacy(legacy_claims(exp=int(NOW + 86401))), "lives 86401 s", id="legacy-too-long"),
        pytest.param(legacy(legacy_claims(iat=int(NOW + 61), exp=int(NOW + 120))), "future", id="legacy-ahead"),
    ],
)
def test_lifetime_and_issue_time_are_checked(token: str, reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
        verify_player_token(SECRET, token, NOW)


def test_a_token_of_the_longest_lifetime_and_one_within_the_skew_verify() -> None:
    assert verify_player_token(SECRET, mint_player_token(SECRET, "p1", 86400, NOW), NOW).player == "p1"
    assert verify_player_token(SECRET, mint_player_token(SECRET, "p1", 60, NOW + 59), NOW).player == "p1"
    assert verify_player_token(SECRET, jws(claims(nbf=int(NOW + 59))), NOW).player == "p1"
    week = mint_player_token(SECRET, "p1", 7 * 86400, NOW)
    assert verify_player_token(SECRET, week, NOW, max_ttl=7 * 86400).player == "p1"


def test_a_short_secret_still_works_without_warnings() -> None:
    """Secrets of 16 characters were allowed before JWTs: PyJWT warns about them on every call
    (pytest turns warnings into errors here); the ticket API warns once at start instead."""
    short = "sixteen-chars-ok"
    assert verify_player_token(short, mint_player_token(short, "p1", 60, NOW), NOW).player == "p1"


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
    for token in (jws(claims(party=party)), legacy(legacy_claims(party=party))):
        with pytest.raises(AuthError, match="malformed token: party"):
            verify_player_token(SECRET, token, NOW)
    if isinstance(party, list) and all(isinstance(m, str) for m in party):
        with pytest.raises(ValidationError, match="party"):
            mint_player_token(SECRET, "p1", 60, NOW, party=party)


# -- the deprecated fmp1 format -----------------------------------------------------------------------


def test_a_legacy_token_is_still_accepted_and_says_so() -> None:
    token = legacy(legacy_claims(party=["p2"]))
    assert verify_player_token(SECRET, token, NOW) == TokenClaims(
        "p1", int(NOW), int(NOW + 60), frozenset({"p2"}), legacy=True
    )


LEGACY_REFUSED = [
    pytest.param(legacy(legacy_claims(), secret="another-secret-0123456789"), "bad signature", id="other-secret"),
    pytest.param(legacy(legacy_claims())[:-3], "bad signature", id="truncated-signature"),
    pytest.param(legacy(legacy_claims())[:-2] + "==", "not base64url", id="padding"),
    pytest.param("fmp1." + "a" * 2100 + ".b", "malformed token", id="too-long"),
    pytest.param("fmp1.a.b.c", "malformed token", id="extra-part"),
    pytest.param("fmp1.abc", "malformed token", id="two-parts"),
    pytest.param(legacy(b"not json"), "malformed token", id="not-json"),
    pytest.param(legacy(b"[1, 2]"), "malformed token", id="a-list"),
    pytest.param(legacy(legacy_claims(iat=1.5)), "malformed token", id="iat-float"),
    pytest.param(legacy(legacy_claims(sub="key:shop")), "malformed token", id="key-sub"),
    pytest.param(legacy(legacy_claims(iat=int(NOW - 120), exp=int(NOW - 60))), "expired", id="expired"),
]


@pytest.mark.parametrize(("token", "reason"), LEGACY_REFUSED)
def test_legacy_tokens_keep_their_checks(token: str, reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
        verify_player_token(SECRET, token, NOW)


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


def authenticator(
    secret: str | None = SECRET,
    now: float = NOW,
    *,
    max_ttl: float = 3600,
    audience: str = "fleetmatch",
    on_legacy: Callable[[TokenClaims], None] | None = None,
) -> Authenticator:
    return Authenticator(
        secret,
        {"shop": "shop-key-0123456789abcdef", "web": "web-key-0123456789abcdef"},
        clock=lambda: now,
        max_token_ttl=max_ttl,
        audience=audience,
        on_legacy_token=on_legacy,
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
        pytest.param(f"Bearer {jws(claims())}", Principal("p1"), id="hand-made-jwt"),
        pytest.param(f"Bearer {legacy(legacy_claims())}", Principal("p1"), id="legacy"),
        pytest.param("Bearer shop-key-0123456789abcdef", Principal("key:shop", trusted=True), id="api-key"),
        pytest.param("Bearer web-key-0123456789abcdef", Principal("key:web", trusted=True), id="other-key"),
    ],
)
def test_authenticate(header: str, expected: Principal) -> None:
    assert authenticator().authenticate(header) == expected


def test_each_accepted_legacy_token_is_reported_and_no_jwt_is() -> None:
    seen: list[TokenClaims] = []
    auth = authenticator(on_legacy=seen.append)
    auth.authenticate(f"Bearer {mint_player_token(SECRET, 'p1', 60, NOW)}")
    auth.authenticate(f"Bearer {legacy(legacy_claims(sub='p2'))}")
    with pytest.raises(AuthError):
        auth.authenticate(f"Bearer {legacy(legacy_claims(sub='p3'), secret='another-secret-0123456789')}")
    assert [c.player for c in seen] == ["p2"] and seen[0].legacy


def test_the_authenticator_checks_its_audience() -> None:
    token = mint_player_token(SECRET, "p1", 60, NOW, audience="eu.mm")
    assert authenticator(audience="eu.mm").authenticate(f"Bearer {token}") == Principal("p1")
    with pytest.raises(AuthError, match="audience"):
        authenticator().authenticate(f"Bearer {token}")


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
        pytest.param(
            f"Bearer {mint_player_token('other-secret-0123456789abcdefgh', 'p1', 60, NOW)}", "signature", id="forged"
        ),
        pytest.param(f"Bearer {mint_player_token(SECRET, 'p1', 3601, NOW)}", "longer than the 3600 s", id="too-long"),
        pytest.param("Bearer x\udce9", "malformed bearer token", id="not-ascii"),
        pytest.param("Bearer eyJ.\udce9.x", "malformed bearer token", id="token-not-ascii"),
        pytest.param("Bearer a\x00b", "malformed bearer token", id="control-character"),
    ],
)
def test_authenticate_refuses(header: str | None, reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
        authenticator().authenticate(header)


def test_without_a_secret_player_tokens_are_refused_but_keys_work() -> None:
    auth = authenticator(secret=None)
    for token in (mint_player_token(SECRET, "p1", 60, NOW), legacy(legacy_claims())):
        with pytest.raises(AuthError, match="no token secret"):
            auth.authenticate(f"Bearer {token}")
    assert auth.authenticate("Bearer shop-key-0123456789abcdef").trusted


@pytest.mark.parametrize(
    ("text", "token"),
    [
        pytest.param(mint_player_token(SECRET, "p1", 60, NOW), True, id="jwt"),
        pytest.param(legacy(legacy_claims()), True, id="legacy"),
        pytest.param("eyJ.x.y", True, id="jwt-shaped"),
        pytest.param("shop-key-0123456789abcdef", False, id="key"),
        pytest.param("v1.shop.key-0123456789", False, id="dotted-key"),
        pytest.param("eyJ-but-no-dots", False, id="ey-key"),
    ],
)
def test_tokens_are_told_from_api_keys(text: str, token: bool) -> None:
    assert looks_like_token(text) is token


@pytest.mark.parametrize(
    ("secret", "keys", "message"),
    [
        pytest.param(None, {}, "needs a player token secret or at least one API key", id="nobody"),
        pytest.param(SECRET, {"x": "fmp1.0123456789abcdef"}, "looks like a player token", id="key-like-legacy"),
        pytest.param(SECRET, {"x": "eyJhbGciOi.eyJzdWIi.0123456789"}, "looks like a player token", id="key-like-jwt"),
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
