"""``/v1/backfills`` on the real ticket API and Redis: an API key opens, reads and cancels a
backfill; a player token is refused; bad input is a 422 naming the field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from matchmaker.tickets import RedisTicketStore
from tests.integration.test_ticket_api import Api, serving

pytestmark = pytest.mark.timeout(30)
BODY = {"queue": "duel", "matchId": "m-1", "gameServer": "arena-0", "openSlots": {"1": 1}}
ARABIC_ONE = "\u0661"
"""A digit to ``str.isdigit`` that is no team index."""


@pytest.fixture
async def api(redis_client: Any) -> AsyncIterator[Api]:
    async with serving(RedisTicketStore(redis_client, block_ms=1000)) as api:
        yield api


async def test_open_read_cancel(api: Api) -> None:
    opened = await api.call("POST", "/v1/backfills", as_="key", body=BODY)
    assert opened.status == 201, opened.body
    b = opened.body
    got = (b["queue"], b["matchId"], b["gameServer"], b["openSlots"], b["state"])
    assert got == ("duel", "m-1", "arena-0", [0, 1], "open")
    again = await api.call("POST", "/v1/backfills", as_="key", body={**BODY, "openSlots": {"0": 1, "1": 2}})
    assert again.status == 200 and again.body["id"] == b["id"] and again.body["openSlots"] == [1, 2]
    read = await api.call("GET", f"/v1/backfills/{b['id']}", as_="key")
    assert read.status == 200 and read.body["openSlots"] == [1, 2]
    cancelled = await api.call("DELETE", f"/v1/backfills/{b['id']}", as_="key")
    assert cancelled.status == 200 and cancelled.body["state"] == "cancelled"
    fresh = await api.call("POST", "/v1/backfills", as_="key", body=BODY)  # the server may ask again
    assert fresh.status == 201 and fresh.body["id"] != b["id"]


async def test_players_may_not(api: Api) -> None:
    reply = await api.call("POST", "/v1/backfills", as_="p1", body=BODY)
    assert reply.status == 403 and reply.body["error"]["code"] == "Forbidden"


async def test_unknown_backfill(api: Api) -> None:
    for path in ("/v1/backfills/duel.0123456789abcdefghjkmnpqrs", "/v1/backfills/nonsense"):
        assert (await api.call("GET", path, as_="key")).status == 404


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        pytest.param({**BODY, "queue": "ranked"}, "queue", "duel", id="unknown-queue"),
        pytest.param({**BODY, "queue": "squad"}, "queue", "no rules", id="not-a-rules-queue"),
        pytest.param({**BODY, "openSlots": {"2": 1}}, "openSlots.2", "no such team", id="no-such-team"),
        pytest.param({**BODY, "openSlots": {"red": 1}}, "openSlots.red", "no such team", id="team-name"),
        pytest.param({**BODY, "openSlots": {"1": 3}}, "openSlots.1", "1..2", id="more-than-the-team"),
        pytest.param({**BODY, "openSlots": {"1": 0}}, "openSlots.1", "1..2", id="zero"),
        pytest.param({**BODY, "openSlots": {"1": True}}, "openSlots.1", "whole number", id="bool"),
        pytest.param({**BODY, "openSlots": {"1": 1.5}}, "openSlots.1", "whole number", id="fraction"),
        pytest.param({**BODY, "openSlots": {ARABIC_ONE: 1}}, f"openSlots.{ARABIC_ONE}", "no such team", id="digit"),
        pytest.param({**BODY, "openSlots": {}}, "openSlots", "at least one team", id="no-slots"),
        pytest.param({**BODY, "openSlots": [1]}, "openSlots", "required", id="slots-list"),
        pytest.param({**BODY, "matchId": ""}, "matchId", "required", id="empty-match"),
        pytest.param({**BODY, "gameServer": "Not A Name"}, "gameServer", "", id="server-name"),
        pytest.param({k: v for k, v in BODY.items() if k != "gameServer"}, "gameServer", "required", id="no-server"),
        pytest.param({**BODY, "players": []}, "players", "unknown field", id="unknown-field"),
        pytest.param([BODY], "", "JSON object", id="not-an-object"),
    ],
)
async def test_bad_input_names_the_field(api: Api, body: Any, field: str, says: str) -> None:
    reply = await api.call("POST", "/v1/backfills", as_="key", body=body)
    assert reply.status == 422, reply.body
    error = reply.body["error"]
    assert error["field"] == field and says in error["message"], error
