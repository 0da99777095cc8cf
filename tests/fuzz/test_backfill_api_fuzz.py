"""``/v1/backfills`` fuzzed against its own ``/openapi.json``: every answer is one the document lists
for the operation, with a body of the documented schema, and never a 5xx (the store is up)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from matchmaker.tickets import RedisTicketStore
from tests.fuzz.test_ticket_api_fuzz import CREDENTIALS, FUZZ, JSON, RAW, Document, headers_for, send
from tests.integration.test_ticket_api import Api, serving

pytestmark = pytest.mark.timeout(120)
TEAMS = st.sampled_from(["0", "1", "2", "red", "-1", "01", ""])
COUNTS = st.one_of(st.integers(-2, 4), st.floats(allow_nan=False), st.booleans(), st.none(), st.text(max_size=3))
REQUESTS = st.fixed_dictionaries(
    {
        "queue": st.sampled_from(["duel", "squad", "ranked"]) | st.text(max_size=8),
        "matchId": st.sampled_from(["m-1", "m-2"]) | st.text(max_size=140),
        "gameServer": st.sampled_from(["arena-0", "arena-1"]) | st.text(max_size=20),
        "openSlots": st.dictionaries(TEAMS, COUNTS, max_size=3) | JSON,
    }
)


@pytest.fixture
async def api(redis_client: Any) -> AsyncIterator[tuple[Api, Document]]:
    async with serving(RedisTicketStore(redis_client, block_ms=1000)) as api:
        reply = await api.call("GET", "/openapi.json")
        yield api, Document(reply.body)


@FUZZ
@given(data=st.data())
async def test_opening_reading_cancelling_backfills(api: tuple[Api, Document], data: st.DataObject) -> None:
    server, doc = api
    body = data.draw(st.one_of(REQUESTS, REQUESTS, JSON), "body")
    raw = data.draw(RAW, "raw") if data.draw(st.integers(0, 9), "raw bytes?") >= 8 else None
    kind = data.draw(CREDENTIALS, "credentials")
    payload = raw if raw is not None else json.dumps(body).encode()
    status, content_type, text = await send(server, "POST", "/v1/backfills", headers_for(kind, body), payload)
    doc.check("/v1/backfills", "post", status, content_type, text)
    if status in (200, 201):
        schema = doc.inline(doc.schemas["BackfillRequest"])
        assert not list(Draft202012Validator(schema).iter_errors(body)), "accepted a body its schema refuses"
        backfill_id: str = json.loads(text)["id"]
    else:
        backfill_id = data.draw(st.text(max_size=40) | st.just("duel.0123456789abcdefghjkmnpqrs"), "id")
    method = data.draw(st.sampled_from(["get", "delete"]), "method")
    url = "/v1/backfills/" + quote(backfill_id, safe="")
    status, content_type, text = await send(server, method.upper(), url, headers_for(kind, body))
    doc.check("/v1/backfills/{id}", method, status, content_type, text)


async def test_the_request_schema_describes_a_valid_body(api: tuple[Api, Document]) -> None:
    _, doc = api
    schema: Any = doc.inline(doc.schemas["BackfillRequest"])
    good = {"queue": "duel", "matchId": "m-1", "gameServer": "arena-0", "openSlots": {"1": 1}}
    assert not list(Draft202012Validator(schema).iter_errors(good))
