"""The ticket API in-process on the real Redis ticket store: create, read, cancel; who sees what;
401/404/413/422/429; long-poll, Server-Sent Events and WebSocket woken by an assignment made the
way a director makes it (claim, then assign); one update subscription per queue per process."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from openapi_spec_validator import validate
from prometheus_client import REGISTRY

from fleetmatch.codec import parse_timestamp
from fleetmatch.errors import BackendError, ValidationError
from fleetmatch.models import PortStatus
from fleetmatch.settings import MatchmakerSettings
from matchmaker.api import QueueLike, app_runner, build_app
from matchmaker.auth import mint_player_token
from matchmaker.models import Assignment, Ticket, TicketRequest, TicketState, player_id_error
from matchmaker.push import Hub
from matchmaker.rules import parse_queues
from matchmaker.tickets import RedisTicketStore
from tests.waiting import eventually

SECRET = "player-token-secret-0123456789"
KEY = "shop-backend-key-0123456789"
DUEL_YAML = """
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: duel}
spec:
  teams: {count: 2, maxSize: 2}
  ticketTTLSeconds: 600
  rules:
    - {name: skill, type: distance, attribute: skill, maxDistance: 100}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
"""


@dataclass(frozen=True)
class Squad:
    """A tiny queue of our own beside ``matchmaker.rules``: parties up to 4, no rules."""

    ticket_ttl_seconds: float = 300.0

    def check_ticket(self, request: TicketRequest) -> None:
        if len(request.players) > 4:
            raise ValidationError("players", f"a party of {len(request.players)} does not fit a team of 4")


def queues() -> dict[str, QueueLike]:
    return {**parse_queues(DUEL_YAML), "squad": Squad()}


SETTINGS = MatchmakerSettings(
    token_secret=SECRET,
    api_keys={"shop": KEY},
    rate_per_second=1000.0,
    rate_burst=1000,
    max_body_bytes=4096,
)


def player(pid: str, skill: float = 1500, **latencies: float) -> dict[str, Any]:
    return {"id": pid, "attributes": {"skill": skill}, "latencies": latencies or {"eu": 23, "us": 95}}


def token(pid: str, *, ttl: float = 3600, now: float | None = None, party: tuple[str, ...] = ()) -> str:
    return mint_player_token(SECRET, pid, ttl, time.time() if now is None else now, party=party)


@dataclass
class Reply:
    status: int
    body: Any
    headers: Mapping[str, str]


@dataclass
class Api:
    url: str
    http: aiohttp.ClientSession
    store: RedisTicketStore
    hub: Hub
    runner: web.AppRunner

    async def call(
        self,
        method: str,
        path: str,
        *,
        as_: str | None = None,
        auth: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
        party: tuple[str, ...] = (),
    ) -> Reply:
        """``as_``: a player id (a fresh token, with ``party`` as its party claim) or ``"key"`` (the
        backend's API key)."""
        headers = {}
        if as_ is not None:
            auth = f"Bearer {KEY if as_ == 'key' else token(as_, party=party)}"
        if auth is not None:
            headers["Authorization"] = auth
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        async with self.http.request(method, f"{self.url}{path}", data=data, headers=headers) as resp:
            text = await resp.text()
            parsed = json.loads(text) if resp.content_type == "application/json" else text
            return Reply(resp.status, parsed, resp.headers)

    async def open(self, as_: str, *players: dict[str, Any], queue: str = "duel") -> dict[str, Any]:
        """Open a ticket as ``as_``; a player's token vouches for the other players (a party claim)."""
        party = tuple(p["id"] for p in players if p["id"] != as_)
        request = {"queue": queue, "players": list(players)}
        reply = await self.call("POST", "/v1/tickets", as_=as_, body=request, party=party)
        assert reply.status == 201, reply.body
        body: dict[str, Any] = reply.body
        return body


@contextlib.asynccontextmanager
async def serving(
    store: RedisTicketStore,
    settings: MatchmakerSettings = SETTINGS,
    *,
    clock: Any = time.time,
    keepalive: float = 30.0,
) -> AsyncIterator[Api]:
    hub = Hub(store)
    app = build_app(store, queues(), settings, hub=hub, clock=clock, keepalive_seconds=keepalive)
    runner = app_runner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as http:
            yield Api(f"http://127.0.0.1:{port}", http, store, hub, runner)
    finally:
        if runner.server is not None:
            await runner.cleanup()
        await hub.close()


@pytest.fixture
def store(redis_client: aioredis.Redis) -> RedisTicketStore:
    return RedisTicketStore(redis_client, block_ms=1000)


@pytest.fixture
async def api(store: RedisTicketStore) -> AsyncIterator[Api]:
    async with serving(store) as api:
        yield api


async def assign(store: RedisTicketStore, ticket: dict[str, Any], tokens: dict[str, str]) -> str:
    """What a director does once a server is allocated: claim the ticket, then assign it."""
    match_id = f"m-{secrets.token_hex(4)}"
    assert await store.claim(ticket["queue"], match_id, [ticket["id"]], lease_seconds=30)
    assignment = Assignment(
        match_id=match_id,
        game_server="arena-007",
        address="10.0.0.7",
        port=7777,
        ports=(PortStatus("default", 7777),),
        team=1,
        region="eu",
        tokens=tokens,
    )
    assert await store.assign(ticket["queue"], match_id, {ticket["id"]: assignment})
    return match_id


async def warm(api: Api, queue: str = "duel") -> None:
    """Start the queue's subscription and let it settle. A new subscription wakes its waiters
    once to re-read (see ``matchmaker.push``); after that only a push wakes a waiter, so the
    tests that follow prove the push path, not the settle."""
    t = await api.open("key", player("warm"), queue=queue)
    with api.hub.watch(t["id"]) as watch:
        async with asyncio.timeout(10):
            assert await watch.wait(30)  # nothing changed: this is the settle
            await api.call("DELETE", f"/v1/tickets/{t['id']}", as_="key")
            assert await watch.wait(30)  # this is the push


async def metric(api: Api, line_start: str) -> float:
    reply = await api.call("GET", "/metrics")
    for line in reply.body.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# -- create, read, cancel -------------------------------------------------------------------------


async def test_create_get_cancel(api: Api) -> None:
    created_before = await metric(api, 'fleetmatch_tickets_total{event="created",queue="duel"}')
    reply = await api.call("POST", "/v1/tickets", as_="p1", body={"queue": "duel", "players": [player("p1", 1510)]})
    assert reply.status == 201
    t = reply.body
    assert reply.headers["Location"] == f"/v1/tickets/{t['id']}"
    assert t["id"].startswith("duel.") and t["queue"] == "duel" and t["state"] == "queued"
    assert t["players"] == [{"id": "p1", "attributes": {"skill": 1510}, "latencies": {"eu": 23, "us": 95}}]
    assert parse_timestamp(t["expiresAt"]) - parse_timestamp(t["createdAt"]) == pytest.approx(600, abs=0.01)
    assert t["assignment"] is None and t["reason"] == ""
    assert "owner" not in t and "enqueuedAt" not in t  # a player is not told internals

    got = await api.call("GET", f"/v1/tickets/{t['id']}", as_="p1")
    assert got.status == 200 and got.body == t

    cancelled = await api.call("DELETE", f"/v1/tickets/{t['id']}", as_="p1")
    assert cancelled.status == 200
    assert cancelled.body["state"] == "cancelled" and cancelled.body["reason"] == "cancelled by p1"
    assert (await api.store.get(t["id"])).state is TicketState.CANCELLED
    again = await api.call("DELETE", f"/v1/tickets/{t['id']}", as_="p1")
    assert again.status == 200 and again.body["state"] == "cancelled"

    assert await metric(api, 'fleetmatch_tickets_total{event="created",queue="duel"}') == created_before + 1
    assert await metric(api, 'fleetmatch_ticket_api_requests_total{route="POST /v1/tickets",status="201"}') >= 1


async def test_a_leased_ticket_shows_as_queued(api: Api) -> None:
    t = await api.open("p1", player("p1"))
    assert await api.store.claim("duel", "m-1", [t["id"]], lease_seconds=30)
    assert (await api.store.get(t["id"])).state is TicketState.LEASED
    assert (await api.call("GET", f"/v1/tickets/{t['id']}", as_="p1")).body["state"] == "queued"


async def test_a_party_member_sees_and_cancels_the_ticket_and_strangers_get_404(api: Api) -> None:
    t = await api.open("p1", player("p1"), player("p2"))
    assert (await api.call("GET", f"/v1/tickets/{t['id']}", as_="p2")).status == 200
    stranger = await api.call("GET", f"/v1/tickets/{t['id']}", as_="p3")
    missing_id = t["id"][:-4] + ("aaaa" if not t["id"].endswith("aaaa") else "bbbb")
    missing = await api.call("GET", f"/v1/tickets/{missing_id}", as_="p3")
    assert stranger.status == missing.status == 404
    assert stranger.body["error"]["code"] == missing.body["error"]["code"] == "NotFound"
    assert stranger.body["error"]["message"].replace(t["id"], "X") == missing.body["error"]["message"].replace(
        missing_id, "X"
    )
    for path in (f"/v1/tickets/{t['id']}?wait=5", f"/v1/tickets/{t['id']}/events"):
        assert (await api.call("GET", path, as_="p3")).status == 404
    assert (await api.call("DELETE", f"/v1/tickets/{t['id']}", as_="p3")).status == 404
    assert (await api.store.get(t["id"])).state is TicketState.QUEUED  # the stranger changed nothing
    cancelled = await api.call("DELETE", f"/v1/tickets/{t['id']}", as_="p2")
    assert cancelled.status == 200 and cancelled.body["state"] == "cancelled"


async def test_a_player_token_opens_a_party_ticket_only_with_a_party_claim(api: Api) -> None:
    body = {"queue": "duel", "players": [player("p1"), player("p2")]}
    for party in ((), ("p3",)):
        refused = await api.call("POST", "/v1/tickets", as_="p1", body=body, party=party)
        assert refused.status == 403, refused.body
        error = refused.body["error"]
        assert (error["code"], error["field"]) == ("NotInParty", "players[1].id") and "'p2'" in error["message"]
    await api.open("p2", player("p2"))  # nothing was opened for p2: they are free
    accepted = await api.call("POST", "/v1/tickets", as_="p1", body={**body, "queue": "squad"}, party=("p2", "p3"))
    assert accepted.status == 201
    assert (await api.call("GET", f"/v1/tickets/{accepted.body['id']}", as_="p2")).status == 200


async def test_a_party_leader_is_not_told_the_id_of_a_members_other_ticket(api: Api) -> None:
    theirs = await api.open("p2", player("p2"))
    reply = await api.call(
        "POST", "/v1/tickets", as_="p1", body={"queue": "duel", "players": [player("p1"), player("p2")]}, party=("p2",)
    )
    assert reply.status == 409 and reply.body["error"]["field"] == "players[1].id"
    assert theirs["id"] not in reply.body["error"]["message"]
    assert "'p2' is already in an open ticket of queue 'duel'" in reply.body["error"]["message"]


async def test_player_ids_of_the_reserved_key_prefix_are_refused_even_from_a_key(api: Api) -> None:
    reply = await api.call("POST", "/v1/tickets", as_="key", body={"queue": "duel", "players": [player("key:shop")]})
    assert reply.status == 422 and reply.body["error"]["field"] == "players[0].id"
    assert "reserved" in reply.body["error"]["message"]


@pytest.mark.parametrize(
    "ticket_id",
    [
        pytest.param("nonsense", id="malformed"),
        pytest.param("duel.0123456789abcdefghjkmnpqrs", id="no-such-ticket"),
        pytest.param("ranked.0123456789abcdefghjkmnpqrs", id="queue-not-served"),
    ],
)
async def test_unknown_ids_are_404(api: Api, ticket_id: str) -> None:
    for method, suffix in (("GET", ""), ("DELETE", ""), ("GET", "/events"), ("GET", "?wait=1")):
        reply = await api.call(method, f"/v1/tickets/{ticket_id}{suffix}", as_="key")
        assert reply.status == 404 and reply.body["error"]["code"] == "NotFound", (method, suffix)
    assert api.hub.subscriptions <= {"duel"}  # nothing subscribed for a queue not served


async def test_an_api_key_acts_for_any_player_and_sees_every_ticket(api: Api) -> None:
    by_key = await api.open("key", player("p7"), player("p8"))
    assert by_key["owner"] == "key:shop"
    by_player = await api.open("p9", player("p9"))
    seen = await api.call("GET", f"/v1/tickets/{by_player['id']}", as_="key")
    assert seen.status == 200 and seen.body["owner"] == "p9"
    assert (await api.call("GET", f"/v1/tickets/{by_key['id']}", as_="p8")).status == 200
    assert (await api.call("GET", f"/v1/tickets/{by_key['id']}", as_="p9")).status == 404
    cancelled = await api.call("DELETE", f"/v1/tickets/{by_player['id']}", as_="key")
    assert cancelled.body["state"] == "cancelled" and cancelled.body["reason"] == "cancelled by key:shop"
    # A backend opens tickets for many players: the per-owner limit (2 here) is not its limit.
    for i in range(5):
        await api.open("key", player(f"bulk{i}"))


async def test_each_player_sees_only_their_own_connection_token(api: Api) -> None:
    t = await api.open("p1", player("p1"), player("p2"))
    await assign(api.store, t, {"p1": "tok-1", "p2": "tok-2"})
    views = {who: (await api.call("GET", f"/v1/tickets/{t['id']}", as_=who)).body for who in ("p1", "p2", "key")}
    assert views["p1"]["state"] == "matched"
    assert views["p1"]["assignment"]["tokens"] == {"p1": "tok-1"}
    assert views["p2"]["assignment"]["tokens"] == {"p2": "tok-2"}
    assert views["key"]["assignment"]["tokens"] == {"p1": "tok-1", "p2": "tok-2"}
    a = views["p1"]["assignment"]
    assert (a["address"], a["port"], a["team"], a["gameServer"]) == ("10.0.0.7", 7777, 1, "arena-007")
    assert a["ports"] == [{"name": "default", "port": 7777}] and a["matchId"].startswith("m-")
    cancel = await api.call("DELETE", f"/v1/tickets/{t['id']}", as_="p1")
    assert cancel.status == 200 and cancel.body["state"] == "matched"  # too late: unchanged


# -- authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "reason"),
    [
        pytest.param(None, "missing bearer token", id="missing"),
        pytest.param("Basic cDE6cHc=", "missing bearer token", id="basic"),
        pytest.param(f"Bearer {token('p1', ttl=60, now=time.time() - 3600)}", "expired", id="expired"),
        pytest.param(
            f"Bearer {mint_player_token('another-secret-0123456789', 'p1', 60, time.time())}", "signature", id="forged"
        ),
        pytest.param("Bearer fmp1.garbage", "malformed", id="malformed"),
        pytest.param("Bearer not-a-known-api-key-0000", "neither a player token", id="unknown-key"),
    ],
)
async def test_unauthenticated_requests_get_401(api: Api, auth: str | None, reason: str) -> None:
    t = await api.open("p1", player("p1"))
    for method, path, body in (
        ("POST", "/v1/tickets", {"queue": "duel", "players": [player("p1")]}),
        ("GET", f"/v1/tickets/{t['id']}", None),
        ("GET", f"/v1/tickets/{t['id']}/events", None),
        ("DELETE", f"/v1/tickets/{t['id']}", None),
    ):
        reply = await api.call(method, path, auth=auth, body=body)
        assert reply.status == 401, (method, path)
        assert reply.body["error"]["code"] == "Unauthorized" and reason in reply.body["error"]["message"]
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await api.store.get(t["id"])).state is TicketState.QUEUED


async def test_tokens_living_longer_than_the_maximum_are_401(api: Api) -> None:
    century = mint_player_token(SECRET, "p1", 100 * 365 * 86400, time.time())
    reply = await api.call("POST", "/v1/tickets", auth=f"Bearer {century}", body={"queue": "duel", "players": []})
    assert reply.status == 401 and "longer than the 86400 s allowed" in reply.body["error"]["message"]
    ahead = mint_player_token(SECRET, "p1", 600, time.time() + 3600)
    reply = await api.call("GET", "/v1/tickets/duel.0123456789abcdefghjkmnpqrs", auth=f"Bearer {ahead}")
    assert reply.status == 401 and "issued in the future" in reply.body["error"]["message"]


async def raw_request(api: Api, head: bytes) -> tuple[int, bytes, bytes]:
    """Send one request as bytes (an HTTP client would not send what this does): status, headers, body."""
    host, port = api.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head + b"Host: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    top, _, body = answer.partition(b"\r\n\r\n")
    return int(top.split(b" ", 2)[1]), top, body


async def test_an_authorization_header_of_bad_bytes_is_401_with_one_short_log_line(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    for i in range(20):
        path = b"/v1/tickets/duel.0123456789abcdefghjkmnpqrs" if i % 2 else b"/v1/tickets"
        method = b"GET" if i % 2 else b"POST"
        status, head, body = await raw_request(
            api, method + b" " + path + b" HTTP/1.1\r\nAuthorization: Bearer x\xe9\r\n"
        )
        assert status == 401, body
        assert b"WWW-Authenticate: Bearer" in head
        assert json.loads(body)["error"]["code"] == "Unauthorized"
    assert [r.levelname for r in caplog.records if r.levelno >= logging.ERROR] == []
    lines = [r for r in caplog.records if r.name == "matchmaker.api"]
    assert len(lines) == 1 and lines[0].exc_info is None and "not printable ASCII" in lines[0].getMessage()
    await api.open("p1", player("p1"))  # and it goes on serving


async def test_public_routes_and_a_valid_openapi_document(api: Api) -> None:
    doc = await api.call("GET", "/openapi.json")
    assert doc.status == 200
    validate(doc.body)
    assert {"/v1/tickets", "/v1/tickets/{id}", "/v1/tickets/{id}/events"} <= set(doc.body["paths"])
    assert (await api.call("GET", "/healthz")).body == {"status": "ok", "checks": {}}
    assert (await api.call("GET", "/livez")).body == {"status": "alive"}
    assert "fleetmatch_ticket_waiters" in (await api.call("GET", "/metrics")).body


# -- bad input ------------------------------------------------------------------------------------


BAD = [
    pytest.param({"queue": "ranked", "players": [player("p1")]}, "queue", "duel, squad", id="unknown-queue"),
    pytest.param({"queue": "Duel!", "players": [player("p1")]}, "queue", "", id="invalid-queue-name"),
    pytest.param(
        {"queue": "duel", "players": [{**player("p1"), "attributes": {"skill": True}}]},
        "players[0].attributes.skill",
        "a number or a string",
        id="attribute-type",
    ),
    pytest.param(
        {"queue": "duel", "players": [{**player("p1"), "attributes": {"skill": "high"}}]},
        "players[0].attributes.skill",
        "must be a number",
        id="rule-needs-a-number",
    ),
    pytest.param(
        {"queue": "duel", "players": [{"id": "p1"}]}, "players[0].attributes.skill", "required", id="rule-attribute"
    ),
    pytest.param(
        {"queue": "duel", "players": [player("p1"), player("p2"), player("p3")]},
        "players",
        "team of at most 2",
        id="party-bigger-than-a-team",
    ),
    pytest.param(
        {"queue": "squad", "players": [player(f"p{i}") for i in range(1, 6)]}, "players", "team of 4", id="own-queue"
    ),
    pytest.param({"queue": "duel", "players": []}, "players", "1..16", id="no-players"),
    pytest.param({"queue": "duel", "players": [player("p1"), player("p1")]}, "players[1].id", "twice", id="twice"),
    pytest.param({"queue": "duel", "players": [player("p 1")]}, "players[0].id", "", id="player-id"),
    pytest.param(
        {"queue": "duel", "players": [player("p1", eu=90_000)]}, "players[0].latencies.eu", "60000", id="latency"
    ),
    pytest.param({"queue": "duel", "players": [player("p1")], "mode": "x"}, "mode", "unknown field", id="unknown"),
    pytest.param({"players": [player("p1")]}, "queue", "required", id="missing-queue"),
    pytest.param([1, 2], "<document>", "mapping", id="not-an-object"),
    pytest.param({"queue": "duel", "players": [player("p2")]}, "players", "its own player", id="not-the-caller"),
    pytest.param({"queue": "", "players": [player("p1")]}, "queue", "DNS-1123", id="empty-queue"),
    pytest.param({"queue": "duel", "players": [player("p1")], "status": "matched"}, "status", "unknown", id="status"),
    pytest.param(
        {"queue": "duel", "players": [player("p1", 10**400)]}, "players[0].attributes.skill", "64 bits", id="huge-int"
    ),
    pytest.param(
        {"queue": "duel", "players": [player("p1", 1e308), player("p2", 1e308)]},
        "players[0].attributes.skill",
        "within +-1e+15",
        id="party-average-overflows",
    ),
    pytest.param(
        {"queue": "duel", "players": [player("p1", eu=2**64)]}, "players[0].latencies.eu", "64 bits", id="huge-latency"
    ),
    pytest.param(
        {"queue": "duel", "players": [{**player("p1"), "latencies": {"eu": 2**62}}]},
        "players[0].latencies.eu",
        "60000",
        id="big-latency",
    ),
    pytest.param({"queue": "duel", "players": [player("p1\n")]}, "players[0].id", "", id="newline-in-id"),
]


@pytest.mark.parametrize(("body", "field", "message"), BAD)
async def test_bad_tickets_are_422_naming_the_field(api: Api, body: Any, field: str, message: str) -> None:
    players = body.get("players", []) if isinstance(body, dict) else []
    party = sorted({p["id"] for p in players if player_id_error(p["id"]) is None} - {"p1"})  # vouched for
    reply = await api.call("POST", "/v1/tickets", as_="p1", body=body, party=tuple(party))
    assert reply.status == 422, reply.body
    assert reply.body["error"]["code"] == "Invalid" and reply.body["error"]["field"] == field
    assert message in reply.body["error"]["message"]


@pytest.mark.parametrize(
    ("number", "status"),
    [
        pytest.param(b"NaN", 400, id="NaN"),  # not JSON at all (fleetmatch.http.read_json)
        pytest.param(b"-Infinity", 400, id="Infinity"),
        pytest.param(b"1e400", 422, id="1e400"),  # JSON, but no float holds it
        pytest.param(b"-1e400", 422, id="-1e400"),
        pytest.param(b"1" + b"0" * 400, 422, id="400-digit-integer"),
    ],
)
async def test_numbers_no_float_holds_are_refused(api: Api, number: bytes, status: int) -> None:
    raw = b'{"queue": "duel", "players": [{"id": "p1", "attributes": {"skill": %s}}]}' % number
    reply = await api.call("POST", "/v1/tickets", as_="p1", raw=raw)
    assert reply.status == status, reply.body
    if status == 422:
        assert reply.body["error"]["field"] == "players[0].attributes.skill"


async def test_deeply_nested_json_is_not_a_500(api: Api) -> None:
    for depth in (100, 900, 5000):
        raw = b'{"queue": "duel", "players": ' + b"[" * depth + b"]" * depth + b"}"
        reply = await api.call("POST", "/v1/tickets", as_="p1", raw=raw)
        assert reply.status in (400, 413, 422), (depth, reply.status)


async def test_bad_wait_is_422(api: Api) -> None:
    t = await api.open("p1", player("p1"))
    for wait in ("61", "-1", "soon", "nan", "inf"):
        reply = await api.call("GET", f"/v1/tickets/{t['id']}?wait={wait}", as_="p1")
        assert reply.status == 422 and reply.body["error"]["field"] == "wait", wait


async def test_malformed_and_oversized_bodies(api: Api) -> None:
    for raw in (b"{not json", b"", b'{"queue": "duel", "players": [}'):
        reply = await api.call("POST", "/v1/tickets", as_="p1", raw=raw)
        assert reply.status == 400 and reply.body["error"]["code"] == "BadRequest", raw
    huge = {"queue": "duel", "players": [{**player("p1"), "attributes": {"skill": 1, "bio": "x" * 5000}}]}
    reply = await api.call("POST", "/v1/tickets", as_="p1", body=huge)
    assert reply.status == 413 and reply.body["error"]["code"] == "TooLarge"
    assert "4096" in reply.body["error"]["message"]


async def test_one_open_ticket_per_player_and_queue_is_409_naming_it(api: Api) -> None:
    first = await api.open("p1", player("p1"))
    for as_, players, field in (
        ("p1", [player("p1")], "players[0].id"),
        ("key", [player("p9"), player("p1")], "players[1].id"),  # across owners and API keys
    ):
        reply = await api.call("POST", "/v1/tickets", as_=as_, body={"queue": "duel", "players": players})
        assert reply.status == 409, reply.body
        error = reply.body["error"]
        assert (error["code"], error["field"]) == ("AlreadyQueued", field)
        assert f"player 'p1' is already in open ticket {first['id']}" in error["message"]
    await api.open("p2", player("p2"))  # another player is not affected
    await api.open("p9", player("p9"))  # nor one whose ticket was refused with p1's
    await api.open("p1", player("p1"), queue="squad")  # nor another queue
    await api.call("DELETE", f"/v1/tickets/{first['id']}", as_="p1")
    await api.open("p1", player("p1"))


async def test_the_open_ticket_limit_is_a_setting(store: RedisTicketStore) -> None:
    async with serving(store, dataclasses.replace(SETTINGS, max_open_tickets=2)) as api:
        first = await api.open("p1", player("p1"))
        await api.open("p1", player("p1"))
        reply = await api.call("POST", "/v1/tickets", as_="p1", body={"queue": "duel", "players": [player("p1")]})
        assert reply.status == 409 and reply.body["error"]["code"] == "AlreadyQueued"
        assert (
            f"2 open tickets of queue 'duel' (the most allowed), the oldest {first['id']}"
            in (reply.body["error"]["message"])
        )


async def test_rate_limit_is_429_with_retry_after(store: RedisTicketStore) -> None:
    clock = [time.time()]
    settings = MatchmakerSettings(token_secret=SECRET, api_keys={"shop": KEY}, rate_per_second=0.5, rate_burst=3)
    async with serving(store, settings, clock=lambda: clock[0]) as api:
        t = await api.open("p1", player("p1"))
        for _ in range(2):
            assert (await api.call("GET", f"/v1/tickets/{t['id']}", as_="p1")).status == 200
        limited = await api.call("GET", f"/v1/tickets/{t['id']}", as_="p1")
        assert limited.status == 429 and limited.body["error"]["code"] == "RateLimited"
        assert limited.headers["Retry-After"] == "2"
        assert (await api.call("GET", f"/v1/tickets/{t['id']}", as_="key")).status == 200  # its own bucket
        clock[0] += 2
        assert (await api.call("GET", f"/v1/tickets/{t['id']}", as_="p1")).status == 200


async def test_an_unreachable_store_is_503_without_its_details_and_counted(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = await api.open("p1", player("p1"))

    async def down(ticket_id: str) -> Ticket:
        raise BackendError("redis at 10.1.2.3:6379: connection refused")

    monkeypatch.setattr(api.store, "get", down)
    labels = {"route": "GET /v1/tickets/{id}", "status": "503"}
    before = REGISTRY.get_sample_value("fleetmatch_ticket_api_requests_total", labels) or 0.0
    reply = await api.call("GET", f"/v1/tickets/{t['id']}", as_="p1")
    assert reply.status == 503
    assert reply.body["error"] == {"code": "Unavailable", "message": "the store is unavailable; retry shortly"}
    assert REGISTRY.get_sample_value("fleetmatch_ticket_api_requests_total", labels) == before + 1


async def test_the_service_keeps_serving_after_bad_requests(api: Api) -> None:
    bad = [
        api.call("POST", "/v1/tickets", as_="p1", raw=b"{oops"),
        api.call("POST", "/v1/tickets", as_="p1", raw=b"[" * 3000),
        api.call("POST", "/v1/tickets", as_="p1", raw=b"x" * 100_000),
        api.call("POST", "/v1/tickets", auth="Bearer fmp1.x.y", body={}),
        api.call("PUT", "/v1/tickets", as_="p1", body={}),
        api.call("GET", "/v1/nothing", as_="p1"),
        api.call("GET", "/v1/tickets/duel.%00", as_="p1"),
    ]
    statuses = sorted(r.status for r in await asyncio.gather(*bad))
    assert statuses == [400, 400, 401, 404, 404, 405, 413]
    await api.open("p1", player("p1"))
    assert await metric(api, 'fleetmatch_ticket_api_requests_total{route="PUT /v1/tickets",status="405"}') == 0
    assert await metric(api, 'fleetmatch_ticket_api_requests_total{route="other",status="404"}') >= 1


# -- waiting for the match ------------------------------------------------------------------------


async def test_long_poll_wakes_on_assignment(api: Api) -> None:
    await warm(api)
    t = await api.open("p1", player("p1"))
    poll = asyncio.create_task(api.call("GET", f"/v1/tickets/{t['id']}?wait=50", as_="p1"))
    await eventually(lambda: api.hub.waiting == 1, within=10)
    assert await metric(api, "fleetmatch_ticket_waiters ") == 1
    match_id = await assign(api.store, t, {"p1": "tok-1"})
    async with asyncio.timeout(10):  # woken by the push, not by the 50 s deadline
        reply = await poll
    assert reply.status == 200 and reply.body["state"] == "matched"
    assert reply.body["assignment"]["matchId"] == match_id and reply.body["assignment"]["tokens"] == {"p1": "tok-1"}
    assert api.hub.waiting == 0 and await metric(api, "fleetmatch_ticket_waiters ") == 0


async def test_long_poll_answers_at_once_unless_queued_and_at_the_deadline_otherwise(api: Api) -> None:
    t = await api.open("p1", player("p1"))
    reply = await api.call("GET", f"/v1/tickets/{t['id']}?wait=0.3", as_="p1")
    assert reply.status == 200 and reply.body["state"] == "queued"
    await api.call("DELETE", f"/v1/tickets/{t['id']}", as_="p1")
    async with asyncio.timeout(10):
        reply = await api.call("GET", f"/v1/tickets/{t['id']}?wait=60", as_="p1")
    assert reply.body["state"] == "cancelled"


async def test_long_poll_wakes_on_cancel_by_another_request(api: Api) -> None:
    await warm(api)
    t = await api.open("p1", player("p1"), player("p2"))
    poll = asyncio.create_task(api.call("GET", f"/v1/tickets/{t['id']}?wait=50", as_="p2"))
    await eventually(lambda: api.hub.waiting == 1, within=10)
    await api.call("DELETE", f"/v1/tickets/{t['id']}", as_="p1")
    async with asyncio.timeout(10):
        assert (await poll).body["state"] == "cancelled"


async def read_events(resp: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
    """(kind, data) per SSE block: ("ticket", dict) or ("comment", text)."""
    block: list[str] = []
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line:
            block.append(line)
            continue
        if block and block[0].startswith(":"):
            yield "comment", block[0][1:].strip()
        elif block:
            fields = dict(item.split(": ", 1) for item in block)
            yield fields["event"], json.loads(fields["data"])
        block = []


async def test_sse_delivers_the_assignment_and_ends(api: Api) -> None:
    await warm(api)
    t = await api.open("p1", player("p1"), player("p2"))
    headers = {"Authorization": f"Bearer {token('p2')}"}
    async with api.http.get(f"{api.url}/v1/tickets/{t['id']}/events", headers=headers) as resp:
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        events = read_events(resp)
        async with asyncio.timeout(10):  # keep-alive (and its re-read) is 30 s: only the push is this fast
            kind, first = await anext(events)
            assert kind == "ticket" and first["state"] == "queued" and first["id"] == t["id"]
            await assign(api.store, t, {"p1": "tok-1", "p2": "tok-2"})
            kind, matched = await anext(events)
            assert kind == "ticket" and matched["state"] == "matched"
            assert matched["assignment"]["tokens"] == {"p2": "tok-2"}
            assert [e async for e in events] == []  # the stream ends after a final state
    await eventually(lambda: api.hub.waiting == 0, within=5)


async def test_sse_keep_alive_comments(store: RedisTicketStore) -> None:
    async with serving(store, keepalive=0.1) as api:
        t = await api.open("p1", player("p1"))
        headers = {"Authorization": f"Bearer {token('p1')}"}
        async with api.http.get(f"{api.url}/v1/tickets/{t['id']}/events", headers=headers) as resp:
            events = read_events(resp)
            assert (await anext(events))[0] == "ticket"
            assert await anext(events) == ("comment", "keep-alive")
            assert await anext(events) == ("comment", "keep-alive")
            await api.call("DELETE", f"/v1/tickets/{t['id']}", as_="p1")
            kinds = [kind async for kind, data in events if kind == "ticket" or data != "keep-alive"]
            assert kinds == ["ticket"]


async def test_websocket_delivers_the_assignment_and_closes(api: Api) -> None:
    await warm(api)
    t = await api.open("p1", player("p1"))
    headers = {"Authorization": f"Bearer {token('p1')}"}
    async with api.http.ws_connect(f"{api.url}/v1/tickets/{t['id']}/events", headers=headers) as ws:
        async with asyncio.timeout(10):
            first = json.loads(await ws.receive_str())
            assert first["state"] == "queued"
            await assign(api.store, t, {"p1": "tok-1"})
            matched = json.loads(await ws.receive_str())
            assert matched["state"] == "matched" and matched["assignment"]["tokens"] == {"p1": "tok-1"}
            closing = await ws.receive()
            assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == aiohttp.WSCloseCode.OK
    await eventually(lambda: api.hub.waiting == 0, within=5)


async def test_a_websocket_client_that_leaves_stops_waiting(api: Api) -> None:
    t = await api.open("p1", player("p1"))
    headers = {"Authorization": f"Bearer {token('p1')}"}
    async with api.http.ws_connect(f"{api.url}/v1/tickets/{t['id']}/events", headers=headers) as ws:
        assert json.loads(await ws.receive_str())["state"] == "queued"
        assert api.hub.waiting == 1
    await eventually(lambda: api.hub.waiting == 0, within=5)
    assert (await api.call("GET", "/healthz")).status == 200


async def test_a_websocket_for_another_players_ticket_is_refused_before_the_upgrade(api: Api) -> None:
    t = await api.open("p1", player("p1"))
    headers = {"Authorization": f"Bearer {token('p2')}"}
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        async with api.http.ws_connect(f"{api.url}/v1/tickets/{t['id']}/events", headers=headers):
            pass
    assert info.value.status == 404


async def test_streams_per_player_are_capped_with_429(store: RedisTicketStore) -> None:
    settings = dataclasses.replace(SETTINGS, max_streams_per_player=2, max_streams_per_key=3)
    async with serving(store, settings) as api:
        t = await api.open("p1", player("p1"), player("p2"))
        url = f"{api.url}/v1/tickets/{t['id']}/events"
        p1 = {"Authorization": f"Bearer {token('p1')}"}
        async with api.http.get(url, headers=p1) as sse, api.http.ws_connect(url, headers=p1) as ws:
            assert sse.status == 200 and json.loads(await ws.receive_str())["state"] == "queued"
            for path in ("/events", "?wait=5"):
                refused = await api.call("GET", f"/v1/tickets/{t['id']}{path}", as_="p1")
                assert refused.status == 429 and refused.body["error"]["code"] == "TooManyStreams", path
                assert refused.headers["Retry-After"] == "1"
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await api.http.ws_connect(url, headers=p1)
            assert info.value.status == 429
            assert (await api.call("GET", f"/v1/tickets/{t['id']}", as_="p1")).status == 200  # a plain read is fine
            theirs = await api.call("GET", f"/v1/tickets/{t['id']}?wait=0.1", as_="p2")  # another player's own
            assert theirs.status == 200
        await eventually(lambda: api.hub.waiting == 0, within=5)  # closed: the places are free again
        assert (await api.call("GET", f"/v1/tickets/{t['id']}?wait=0.1", as_="p1")).status == 200
        keys = [asyncio.create_task(api.call("GET", f"/v1/tickets/{t['id']}?wait=30", as_="key")) for _ in range(3)]
        await eventually(lambda: api.hub.waiting == 3, within=10)
        assert (await api.call("GET", f"/v1/tickets/{t['id']}/events", as_="key")).status == 429
        await api.call("DELETE", f"/v1/tickets/{t['id']}", as_="p1")
        assert {(await k).status for k in keys} == {200}


async def test_a_websocket_message_beyond_the_small_limit_closes_the_socket(api: Api) -> None:
    t = await api.open("p1", player("p1"))
    headers = {"Authorization": f"Bearer {token('p1')}"}
    async with api.http.ws_connect(f"{api.url}/v1/tickets/{t['id']}/events", headers=headers) as ws:
        assert json.loads(await ws.receive_str())["state"] == "queued"
        await ws.send_str("hello")  # read and ignored
        await ws.send_bytes(b"x" * 100_000)
        async with asyncio.timeout(10):
            closing = await ws.receive()
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    await eventually(lambda: api.hub.waiting == 0, within=5)


async def xread_clients_are(redis_client: aioredis.Redis, n: int) -> bool:
    """Whether ``n`` connections are in (or last ran) XREAD: one per subscribed queue."""
    clients: list[dict[str, Any]] = await redis_client.client_list()
    return sum(1 for c in clients if c.get("cmd") in ("xread", b"xread")) == n


async def test_one_subscription_per_queue_however_many_wait(api: Api, redis_client: aioredis.Redis) -> None:
    a = await api.open("p1", player("p1"))
    b = await api.open("p2", player("p2"))
    s = await api.open("p3", player("p3"), queue="squad")
    polls = [
        asyncio.create_task(api.call("GET", f"/v1/tickets/{a['id']}?wait=50", as_="p1")),
        asyncio.create_task(api.call("GET", f"/v1/tickets/{a['id']}?wait=50", as_="key")),
        asyncio.create_task(api.call("GET", f"/v1/tickets/{b['id']}?wait=50", as_="p2")),
    ]
    await eventually(lambda: api.hub.waiting == 3, within=10)
    assert api.hub.subscriptions == {"duel"}
    await eventually(lambda: xread_clients_are(redis_client, 1), within=10)
    # A second queue does take a second subscription: the count above can tell.
    squad_poll = asyncio.create_task(api.call("GET", f"/v1/tickets/{s['id']}?wait=50", as_="p3"))
    await eventually(lambda: xread_clients_are(redis_client, 2), within=10)
    assert api.hub.subscriptions == {"duel", "squad"}
    assert len([t for t in asyncio.all_tasks() if t.get_name().startswith("matchmaker.push.")]) == 2
    await assign(api.store, a, {"p1": "tok-1"})
    await api.call("DELETE", f"/v1/tickets/{b['id']}", as_="p2")
    await api.call("DELETE", f"/v1/tickets/{s['id']}", as_="p3")
    async with asyncio.timeout(10):
        results = await asyncio.gather(*polls, squad_poll)
    assert [r.body["state"] for r in results] == ["matched", "matched", "cancelled", "cancelled"]
    assert results[1].body["assignment"]["tokens"] == {"p1": "tok-1"}


# -- the hub on its own ---------------------------------------------------------------------------


async def test_no_lost_wake_up_between_reading_and_waiting(api: Api) -> None:
    await warm(api)
    t = await api.open("p2", player("p2"))
    with api.hub.watch(t["id"]) as watch:
        assert (await api.store.get(t["id"])).state is TicketState.QUEUED  # the read ...
        await assign(api.store, t, {"p2": "tok"})  # ... the change, published before we wait ...
        async with asyncio.timeout(10):
            assert await watch.wait(30)  # ... still wakes us
    assert (await api.store.get(t["id"])).state is TicketState.MATCHED


async def test_a_new_subscription_wakes_its_waiters_once_it_has_settled(store: RedisTicketStore) -> None:
    """A change made while the subscription was starting may precede its read position: every
    waiter re-reads once the subscription has settled."""
    async with Hub(store) as hub:
        with hub.watch("duel.0123456789abcdefghjkmnpqrs") as watch:
            async with asyncio.timeout(10):
                assert await watch.wait(30)
            assert not await watch.wait(0.3)  # once, not forever


async def test_closing_the_hub_ends_streams_and_long_polls(store: RedisTicketStore) -> None:
    async with serving(store) as api:
        t = await api.open("p1", player("p1"))
        headers = {"Authorization": f"Bearer {token('p1')}"}
        poll = asyncio.create_task(api.call("GET", f"/v1/tickets/{t['id']}?wait=50", as_="p1"))
        async with (
            api.http.get(f"{api.url}/v1/tickets/{t['id']}/events", headers=headers) as sse,
            api.http.ws_connect(f"{api.url}/v1/tickets/{t['id']}/events", headers=headers) as ws,
        ):
            events = read_events(sse)
            assert (await anext(events))[0] == "ticket"
            assert json.loads(await ws.receive_str())["state"] == "queued"
            await eventually(lambda: api.hub.waiting == 3, within=10)
            async with asyncio.timeout(10):
                await api.runner.cleanup()
                assert [e async for e in events] == []
                assert (await ws.receive()).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                assert (await poll).body["state"] == "queued"
        assert api.hub.closed and api.hub.waiting == 0
