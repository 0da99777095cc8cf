"""Player tokens minted by another JWT implementation open tickets on a real matchmaker.

A game backend in Node, Go or C# mints player tokens with its own JWT library. Here Node's
built-in ``crypto`` (HMAC-SHA256 and base64url, no JWT library, nothing of PyJWT) mints them the
way jsonwebtoken does, and ``serve_matchmaker`` (what ``fleetmatch matchmaker`` runs) on the real
Redis ticket store takes them end to end. The deprecated fmp1 format still opens tickets and is
counted in ``fleetmatch_legacy_player_tokens_total``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import shutil
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from fleetmatch.settings import MatchmakerSettings
from matchmaker.app import MatchmakerService, serve_matchmaker
from matchmaker.rules import parse_queues
from matchmaker.tickets import RedisTicketStore

SECRET = "game-backend-signing-secret-0123456789"
QUEUES = """
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: duel}
spec:
  teams: {count: 2, maxSize: 2}
  ticketTTLSeconds: 600
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
"""

# What a Node backend does: jsonwebtoken's sign(payload, secret, {algorithm: "HS256"}) produces
# exactly this (header {"alg":"HS256","typ":"JWT"}, base64url without padding, HMAC over the first two
# parts), written out with node:crypto so that the test needs no npm package.
NODE_MINT = """
const crypto = require("node:crypto");
const [secret, claimsJson, headerJson] = process.argv.slice(1);
const b64url = (text) => Buffer.from(text).toString("base64url");
const input = b64url(headerJson) + "." + b64url(claimsJson);
const signature = crypto.createHmac("sha256", secret).update(input).digest("base64url");
process.stdout.write(input + "." + signature);
"""


async def node_jwt(claims: dict[str, Any], *, secret: str = SECRET, header: dict[str, Any] | None = None) -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH")
    header = header or {"alg": "HS256", "typ": "JWT"}
    proc = await asyncio.create_subprocess_exec(
        node,
        "-e",
        NODE_MINT,
        secret,
        json.dumps(claims),
        json.dumps(header),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


def player_claims(sub: str, **more: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "aud": "fleetmatch", "iat": now, "exp": now + 600, **more}


def legacy_token(sub: str) -> str:
    """The deprecated format, made by hand as an old backend makes it."""
    now = int(time.time())
    payload = base64.urlsafe_b64encode(json.dumps({"sub": sub, "iat": now, "exp": now + 600}).encode())
    signed = f"fmp1.{payload.rstrip(b'=').decode()}"
    signature = hmac.new(SECRET.encode(), signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


@contextlib.asynccontextmanager
async def matchmaker(redis_client: aioredis.Redis, **settings: Any) -> AsyncIterator[MatchmakerService]:
    config = MatchmakerSettings(port=0, token_secret=SECRET, **settings)
    async with serve_matchmaker(
        RedisTicketStore(redis_client, block_ms=1000),
        parse_queues(QUEUES),
        config,
        allocator_url="",
        allocator_token="",
        directors=False,
        metrics=False,
    ) as service:
        yield service


async def call(service: MatchmakerService, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, service.url + path, json=body, headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        return resp.status, await resp.json()


def duel(*players: str) -> dict[str, Any]:
    return {"queue": "duel", "players": [{"id": p} for p in players]}


async def test_a_node_minted_jwt_opens_a_party_ticket_and_each_member_reads_it(redis_client: aioredis.Redis) -> None:
    lead = await node_jwt(player_claims("lead", party=["mate"]))
    mate = await node_jwt(player_claims("mate"))
    assert lead.startswith("eyJ") and lead.count(".") == 2
    async with matchmaker(redis_client) as service:
        status, ticket = await call(service, "POST", "/v1/tickets", lead, duel("lead", "mate"))
        assert status == 201, ticket
        assert ticket["state"] == "queued" and [p["id"] for p in ticket["players"]] == ["lead", "mate"]
        status, seen = await call(service, "GET", f"/v1/tickets/{ticket['id']}", mate)
        assert status == 200 and seen["id"] == ticket["id"]


async def test_a_configured_audience_is_what_tokens_must_carry(redis_client: aioredis.Redis) -> None:
    ours = await node_jwt(player_claims("p1", aud="https://mm.example.test"))
    default = await node_jwt(player_claims("p2"))
    async with matchmaker(redis_client, player_token_audience="https://mm.example.test") as service:
        assert (await call(service, "POST", "/v1/tickets", ours, duel("p1")))[0] == 201
        status, body = await call(service, "POST", "/v1/tickets", default, duel("p2"))
        assert status == 401 and "audience" in body["error"]["message"]


@pytest.mark.parametrize(
    ("claims", "header", "secret", "reason"),
    [
        pytest.param(player_claims("p1", aud="chat"), None, SECRET, "audience", id="wrong-audience"),
        pytest.param(player_claims("p1"), None, "another-secret-0123456789abcdef", "bad signature", id="forged"),
        pytest.param(player_claims("p1"), {"alg": "none", "typ": "JWT"}, SECRET, "algorithm", id="alg-none"),
        pytest.param(player_claims("p1"), {"alg": "HS512"}, SECRET, "algorithm", id="other-alg"),
        pytest.param(
            player_claims("p1", iat=int(time.time()) - 700, exp=int(time.time()) - 5),
            None,
            SECRET,
            "expired",
            id="expired",
        ),
        pytest.param(player_claims("p1") | {"sub": None}, None, SECRET, "malformed", id="no-sub"),
        pytest.param(player_claims("key:shop"), None, SECRET, "malformed", id="key-prefix"),
        pytest.param(
            player_claims("p1", exp=int(time.time()) + 86400 * 30), None, SECRET, "longer than", id="too-long"
        ),
    ],
)
async def test_bad_jwts_are_401_never_500(
    redis_client: aioredis.Redis, claims: dict[str, Any], header: dict[str, Any] | None, secret: str, reason: str
) -> None:
    token = await node_jwt({k: v for k, v in claims.items() if v is not None}, secret=secret, header=header)
    async with matchmaker(redis_client) as service:
        status, body = await call(service, "POST", "/v1/tickets", token, duel("p1"))
    assert status == 401, body
    assert body["error"]["code"] == "Unauthorized" and reason in body["error"]["message"]


async def test_a_legacy_token_still_opens_a_ticket_counted_and_logged(
    redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="matchmaker.api")
    before = REGISTRY.get_sample_value("fleetmatch_legacy_player_tokens_total") or 0.0
    async with matchmaker(redis_client) as service:
        status, ticket = await call(service, "POST", "/v1/tickets", legacy_token("old1"), duel("old1"))
        assert status == 201, ticket
        status, _ = await call(service, "GET", f"/v1/tickets/{ticket['id']}", legacy_token("old1"))
        assert status == 200
        status, _ = await call(service, "POST", "/v1/tickets", await node_jwt(player_claims("new1")), duel("new1"))
        assert status == 201
    assert REGISTRY.get_sample_value("fleetmatch_legacy_player_tokens_total") == before + 2  # not the JWT
    deprecations = [r for r in caplog.records if "deprecated fmp1" in r.getMessage()]
    assert len(deprecations) == 1  # rate-limited: one line for both
