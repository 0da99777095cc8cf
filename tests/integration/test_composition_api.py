"""Roles, named teams and block lists at the ticket API's edge, on the real Redis ticket store:
every new field refused with 422 naming it (never a 500), stored block lists read and written by
their player (or an API key) and attached to the tickets that player opens, parties with a blocked
pair refused."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from openapi_spec_validator import validate

from matchmaker.api import app_runner, build_app
from matchmaker.models import MAX_BLOCKS
from matchmaker.push import Hub
from matchmaker.rules import parse_queues
from matchmaker.tickets import RedisTicketStore
from tests.integration.test_ticket_api import SETTINGS, Api

QUEUES = """
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: raid}
spec:
  teams: {count: 2, roles: {tank: 1, healer: 1, dps: 3}}
  allocation: {selectors: [{matchLabels: {agones.dev/fleet: arena}}]}
---
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: hunt}
spec:
  teams:
    named: [{name: hunter, size: 1}, {name: prey, size: 4}]
  allocation: {selectors: [{matchLabels: {agones.dev/fleet: arena}}]}
"""


@contextlib.asynccontextmanager
async def serving(store: RedisTicketStore) -> AsyncIterator[Api]:
    hub = Hub(store)
    runner = app_runner(build_app(store, parse_queues(QUEUES), SETTINGS, hub=hub, clock=time.time))
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as http:
            yield Api(f"http://127.0.0.1:{port}", http, store, hub, runner)
    finally:
        await runner.cleanup()
        await hub.close()


@pytest.fixture
async def api(redis_client: aioredis.Redis) -> AsyncIterator[Api]:
    async with serving(RedisTicketStore(redis_client, block_ms=1000)) as api:
        yield api


def p(pid: str, *roles: str) -> dict[str, Any]:
    return {"id": pid, "roles": list(roles)} if roles else {"id": pid}


BAD = [
    pytest.param({"queue": "raid", "players": [p("p1", "mage")]}, "players[0].roles[0]", "no role", id="unknown-role"),
    pytest.param({"queue": "hunt", "players": [p("p1", "tank")]}, "players[0].roles", "no roles", id="queue-no-roles"),
    pytest.param(
        {"queue": "raid", "players": [p("p1", "tank"), p("p2", "tank")]},
        "players",
        "distinct role slots",
        id="party-cannot-fill-slots",
    ),
    pytest.param({"queue": "raid", "players": [{"id": "p1", "roles": "tank"}]}, "players[0].roles", "", id="not-list"),
    pytest.param({"queue": "raid", "players": [{"id": "p1", "roles": [7]}]}, "players[0].roles[0]", "", id="not-word"),
    pytest.param(
        {"queue": "raid", "players": [p("p1", "tank", "tank")]}, "players[0].roles[1]", "twice", id="role-twice"
    ),
    pytest.param(
        {"queue": "raid", "players": [p("p1", "bad role")]}, "players[0].roles[0]", "role name", id="role-name"
    ),
    pytest.param(
        {"queue": "raid", "players": [p("p1")], "blockedPlayers": [f"x{i}" for i in range(MAX_BLOCKS + 1)]},
        "blockedPlayers",
        f"at most {MAX_BLOCKS}",
        id="too-many-blocks",
    ),
    pytest.param(
        {"queue": "raid", "players": [p("p1")], "blockedPlayers": ["x", "x"]}, "blockedPlayers[1]", "twice", id="twice"
    ),
    pytest.param(
        {"queue": "raid", "players": [p("p1")], "blockedPlayers": ["key:x"]}, "blockedPlayers[0]", "key:", id="key"
    ),
    pytest.param({"queue": "raid", "players": [p("p1")], "blockedPlayers": "x"}, "blockedPlayers", "", id="not-list"),
    pytest.param(
        {"queue": "raid", "players": [p("p1"), p("p2")], "blockedPlayers": ["p2"]},
        "blockedPlayers[0]",
        "in the party",
        id="party-blocks-its-own",
    ),
    pytest.param(
        {"queue": "hunt", "players": [p(f"p{i}") for i in range(1, 6)]}, "players", "at most 4", id="party-too-big"
    ),
]


@pytest.mark.parametrize(("body", "field", "message"), BAD)
async def test_bad_tickets_are_422_naming_the_field(api: Api, body: Any, field: str, message: str) -> None:
    party = tuple(sorted({pl["id"] for pl in body["players"]} - {"p1"}))
    reply = await api.call("POST", "/v1/tickets", as_="p1", body=body, party=party)
    assert reply.status == 422, reply.body
    assert reply.body["error"]["field"] == field
    assert message in reply.body["error"]["message"]


async def test_roles_are_accepted_and_shown_and_blocks_are_not(api: Api) -> None:
    body = {"queue": "raid", "players": [p("p1", "tank", "dps"), p("p2")], "blockedPlayers": ["troll"]}
    reply = await api.call("POST", "/v1/tickets", as_="p1", body=body, party=("p2",))
    assert reply.status == 201, reply.body
    assert [pl.get("roles") for pl in reply.body["players"]] == [["tank", "dps"], None]  # none offered: any
    assert "blockedPlayers" not in reply.body
    stored = await api.store.get(reply.body["id"])
    assert stored.blocked_players == ("troll",)


async def test_a_player_reads_and_replaces_their_own_block_list(api: Api) -> None:
    path = "/v1/players/p1/blocks"
    assert (await api.call("GET", path, as_="p1")).body == {"player": "p1", "players": []}
    reply = await api.call("PUT", path, as_="p1", body={"players": ["troll", "griefer"]})
    assert reply.status == 200 and reply.body == {"player": "p1", "players": ["troll", "griefer"]}
    assert (await api.call("GET", path, as_="key")).body["players"] == ["troll", "griefer"]  # an API key too
    assert (await api.call("GET", path, as_="p2")).status == 403  # nobody else
    assert (await api.call("PUT", path, as_="p2", body={"players": []})).status == 403
    assert (await api.call("PUT", path, as_="key", body={"players": []})).body["players"] == []
    assert (await api.call("GET", path, as_="p1")).body["players"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"players": ["p1"]}, "players[0]", id="self"),
        pytest.param({"players": ["a", "a"]}, "players[1]", id="twice"),
        pytest.param({"players": [f"x{i}" for i in range(MAX_BLOCKS + 1)]}, "players", id="too-many"),
        pytest.param({"players": ["bad id"]}, "players[0]", id="bad-id"),
        pytest.param({"players": [1]}, "players[0]", id="not-a-string"),
        pytest.param({"blocked": []}, "blocked", id="unknown-field"),
        pytest.param(["a"], "<document>", id="not-an-object"),
    ],
)
async def test_bad_block_lists_are_422_naming_the_field(api: Api, body: Any, field: str) -> None:
    reply = await api.call("PUT", "/v1/players/p1/blocks", as_="p1", body=body)
    assert reply.status == 422, reply.body
    assert reply.body["error"]["field"] == field


async def test_a_bad_player_id_in_the_path_is_422(api: Api) -> None:
    reply = await api.call("GET", "/v1/players/key:shop/blocks", as_="key")
    assert reply.status == 422 and reply.body["error"]["field"] == "id"


async def test_stored_blocks_go_with_new_tickets_and_refuse_a_party_with_a_blocked_pair(api: Api) -> None:
    assert (await api.call("PUT", "/v1/players/p2/blocks", as_="p2", body={"players": ["p1", "troll"]})).status == 200
    reply = await api.call(
        "POST", "/v1/tickets", as_="p1", body={"queue": "raid", "players": [p("p1"), p("p2")]}, party=("p2",)
    )
    assert reply.status == 422, reply.body
    assert reply.body["error"]["field"] == "players[0].id"  # p2 blocks p1: named, not who blocks whom
    body = {"queue": "raid", "players": [p("p2"), p("p3")], "blockedPlayers": ["villain"]}
    reply = await api.call("POST", "/v1/tickets", as_="p2", body=body, party=("p3",))
    assert reply.status == 201, reply.body
    stored = await api.store.get(reply.body["id"])
    assert stored.blocked_players == ("villain", "p1", "troll")  # the request's, then the stored lists


async def test_a_role_queue_takes_backfills_by_players_per_team(api: Api) -> None:
    """The open roles are derived from the server (by the directors), so the caller names counts."""
    body = {"queue": "raid", "matchId": "m-1", "gameServer": "arena-0", "openSlots": {"1": 1}}
    opened = await api.call("POST", "/v1/backfills", as_="key", body=body)
    assert opened.status == 201 and opened.body["openSlots"] == [0, 1], opened.body
    named = await api.call("POST", "/v1/backfills", as_="key", body={**body, "openSlots": {"1": {"tank": 1}}})
    assert named.status == 422, named.body
    error = named.body["error"]
    assert error["field"] == "openSlots.1" and "reads them off the server" in error["message"], error


async def test_the_openapi_document_states_the_new_fields(api: Api) -> None:
    doc = (await api.call("GET", "/openapi.json")).body
    validate(doc)
    schemas = doc["components"]["schemas"]
    assert "roles" in schemas["Player"]["properties"]
    assert schemas["TicketRequest"]["properties"]["blockedPlayers"]["maxItems"] == MAX_BLOCKS
    assert {"roles", "teamName"} <= set(schemas["Assignment"]["properties"])
    assert {"get", "put"} <= set(doc["paths"]["/v1/players/{id}/blocks"])
