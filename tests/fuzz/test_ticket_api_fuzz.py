"""The ticket API fuzzed from its own ``/openapi.json``, on the real Redis ticket store.

Requests are drawn from the served document (``from_schema`` turns its schemas into Hypothesis
strategies; it knows the keywords the document uses and refuses any other, so a schema the fuzzer
would misread fails here rather than being fuzzed wrongly): bodies that match its ``TicketRequest`` schema (aimed
at the served queues, so they reach the rules and the store), bodies that do not (any JSON, the
schema's bodies with one member broken, bytes that are not JSON), every credential a client may
send (an API key, player tokens with or without a party claim, garbage), ticket ids that exist and
ids that do not, ``wait`` values in and out of range. Every answer must be one the document lists
for that operation (never a 5xx: the store is up), and its body must match the schema it documents
for that status. The example count is bounded: the whole module takes seconds, in ``make test``.
"""

from __future__ import annotations

import json
import re
import string
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from matchmaker.auth import mint_player_token
from matchmaker.tickets import RedisTicketStore
from tests.integration.test_ticket_api import KEY, SECRET, Api, serving

pytestmark = pytest.mark.timeout(120)
FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
QUEUES = ("duel", "squad")
"""What the app under test serves (``tests.integration.test_ticket_api.queues``)."""
LONGEST_WAIT = 0.2
"""``wait`` values a draw may send a queued ticket (a long-poll of 60 s would stall the run)."""


# -- the document ---------------------------------------------------------------------------------


class Document:
    """The served OpenAPI document, its schemas with every ``$ref`` inlined (generation and
    validation then need no resolver)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        validate(doc)
        self.doc = doc
        self.schemas: dict[str, Any] = doc["components"]["schemas"]

    def inline(self, schema: Any) -> Any:
        if isinstance(schema, dict):
            ref = schema.get("$ref")
            if isinstance(ref, str):
                return self.inline(self.schemas[ref.rsplit("/", 1)[1]])
            return {k: self.inline(v) for k, v in schema.items()}
        if isinstance(schema, list):
            return [self.inline(v) for v in schema]
        return schema

    def operation(self, path: str, method: str) -> dict[str, Any]:
        op: dict[str, Any] = self.doc["paths"][path][method]
        return op

    def check(self, path: str, method: str, status: int, content_type: str, body: str) -> None:
        """The answer is one the document lists for the operation, with a body of its schema."""
        responses = self.operation(path, method)["responses"]
        assert str(status) in responses, f"{method.upper()} {path}: {status} is not documented: {body[:300]}"
        assert status < 500, f"{method.upper()} {path}: {status} with the store up: {body[:300]}"
        content = responses[str(status)].get("content", {})
        if not content:
            return
        assert content_type in content, f"{method.upper()} {path} {status}: {content_type} is not documented"
        schema = content[content_type].get("schema")
        if content_type == "application/json" and schema is not None:
            errors = list(Draft202012Validator(self.inline(schema)).iter_errors(json.loads(body)))
            assert not errors, f"{method.upper()} {path} {status}: {errors[0].message} in {body[:300]}"


@pytest.fixture
async def api(redis_client: Any) -> AsyncIterator[tuple[Api, Document]]:
    async with serving(RedisTicketStore(redis_client, block_ms=1000), keepalive=0.5) as api:
        reply = await api.call("GET", "/openapi.json")
        assert reply.status == 200
        yield api, Document(reply.body)


# -- what a client may send -----------------------------------------------------------------------

_KEYWORDS = {
    "type", "properties", "required", "additionalProperties", "propertyNames", "items", "minItems", "maxItems",
    "pattern", "not", "minimum", "maximum", "oneOf", "description", "uniqueItems",
}  # fmt: skip


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of a JSON Schema, for the keywords the ticket API's document uses."""
    unknown = set(schema) - _KEYWORDS
    assert not unknown, f"the fuzzer does not know {sorted(unknown)}: teach it before documenting them"
    if "oneOf" in schema:
        return st.one_of(*(from_schema(option) for option in schema["oneOf"]))
    kind = schema.get("type")
    if kind == "object":
        properties: dict[str, Any] = schema.get("properties", {})
        values = schema.get("additionalProperties", True)
        if isinstance(values, dict):  # a map: names of a pattern to values of a schema
            return st.dictionaries(
                from_schema({"type": "string", **schema.get("propertyNames", {})}), from_schema(values), max_size=4
            )
        required = schema.get("required", [])
        return st.fixed_dictionaries(
            {name: from_schema(properties[name]) for name in required},
            optional={name: from_schema(sub) for name, sub in properties.items() if name not in required},
        )
    if kind == "array":
        return st.lists(
            from_schema(schema["items"]),
            min_size=schema.get("minItems", 0),
            max_size=schema.get("maxItems", 8),
            unique_by=(lambda v: json.dumps(v, sort_keys=True)) if schema.get("uniqueItems") else None,
        )
    if kind == "number":
        low, high = schema.get("minimum"), schema.get("maximum")
        return st.floats(low, high, allow_nan=False, allow_infinity=False) | st.integers(
            None if low is None else int(low), None if high is None else int(high)
        )
    if kind == "string":
        text: st.SearchStrategy[str] = st.text(max_size=20)
        if "pattern" in schema:
            text = st.from_regex(schema["pattern"].removeprefix("^").removesuffix("$"), fullmatch=True)
        if "not" in schema:
            refused = re.compile(schema["not"]["pattern"])
            text = text.filter(lambda t: not refused.search(t))
        return text
    raise AssertionError(f"the fuzzer does not know type {kind!r}")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
"""Any JSON document (``NaN`` and infinities are sent as raw bytes below)."""
RAW = st.sampled_from(
    [
        b"",
        b"{",
        b"[" * 50,
        b'{"queue": NaN}',
        b'{"queue": "duel", "players": [{"id": "p", "attributes": {"skill": 1e400}}]}',
        b'{"queue": "duel", "players": [{"id": "p", "attributes": {"skill": 1' + b"0" * 400 + b"}}]}",
        b'{"queue": "duel", "players": [{"id": "p", "latencies": {"eu": -Infinity}}]}',
        b"\xff\xfe",
    ]
)
"""Bytes no JSON encoder writes: empty, cut, deep, numbers JSON has no room for, not UTF-8."""
CREDENTIALS = st.sampled_from(["key", "player", "player-with-party", "stranger", "none", "garbage", "bad-bytes"])


def ticket_requests(doc: Document) -> st.SearchStrategy[Any]:
    """Bodies of the ``TicketRequest`` schema, most aimed at a served queue (parties of a size its
    teams take, the skill its rules need, players seen before: they reach the store); some with one
    member replaced by any JSON; any JSON at all."""
    valid = from_schema(doc.inline(doc.schemas["TicketRequest"]))

    def aim(body: dict[str, Any], queue: str, size: int, skill: float | None, familiar: str | None) -> Any:
        players = [dict(p) for p in body["players"][:size]]
        if skill is not None:
            for p in players:
                p["attributes"] = {**p.get("attributes", {}), "skill": skill}
        if familiar is not None and all(p["id"] != familiar for p in players):
            players[0]["id"] = familiar
        return {**body, "queue": queue, "players": players}

    aimed = st.builds(
        aim,
        valid,
        st.sampled_from(QUEUES),
        st.integers(1, 4),
        st.none() | st.floats(-1e15, 1e15) | st.integers(-(10**15), 10**15),
        st.none() | st.sampled_from(["p1", "p2", "p3"]),
    )
    broken = st.tuples(aimed, st.sampled_from(["queue", "players", "status"]), JSON).map(lambda t: {**t[0], t[1]: t[2]})
    return st.one_of(aimed, aimed, aimed, valid, broken, JSON)


def authorization(kind: str, body: Any) -> dict[str, str]:
    """The header a client of ``kind`` sends; a player is the body's first one when there is one."""
    players = body.get("players") if isinstance(body, dict) else None
    ids = (
        [p["id"] for p in players if isinstance(p, dict) and isinstance(p.get("id"), str)]
        if isinstance(players, list)
        else []
    )
    ids = [i for i in ids if _mintable(i)]
    me = ids[0] if ids else "p1"
    if kind == "key":
        return {"Authorization": f"Bearer {KEY}"}
    if kind == "player":
        return {"Authorization": f"Bearer {mint_player_token(SECRET, me, 600, time.time())}"}
    if kind == "player-with-party":
        party = sorted(set(ids[1:16]) - {me})
        return {"Authorization": f"Bearer {mint_player_token(SECRET, me, 600, time.time(), party=party)}"}
    if kind == "stranger":
        return {"Authorization": f"Bearer {mint_player_token(SECRET, 'nobody-in-it', 600, time.time())}"}
    if kind == "garbage":
        return {"Authorization": "Bearer fmp1.garbage.garbage"}
    return {}


def _mintable(player: str) -> bool:
    try:
        mint_player_token(SECRET, player, 600, 0)
    except ValueError:
        return False
    return True


def wait_values() -> st.SearchStrategy[str]:
    """``wait`` query values: short valid ones, and anything else that does not ask for a long wait."""

    def short(text: str) -> bool:
        try:
            return not 0 < float(text) <= 60 or float(text) <= LONGEST_WAIT
        except ValueError:
            return True

    numbers = st.floats(min_value=0, max_value=LONGEST_WAIT).map(repr)
    other = st.sampled_from(["-1", "61", "nan", "inf", "1e400", "", "soon", "0x10"])
    return st.one_of(numbers, other, st.text(string.printable, max_size=8).filter(short))


# -- sending ----------------------------------------------------------------------------------------


async def send(
    api: Api, method: str, url: str, headers: dict[str, str], data: bytes | None = None
) -> tuple[int, str, str]:
    """(status, content type, body) of one request; an event stream is closed after its head."""
    if headers.pop("bad-bytes", None) is not None:
        return await send_raw(api, method, url, data)
    async with api.http.request(method, f"{api.url}{url}", headers=headers, data=data) as resp:
        if resp.content_type == "text/event-stream":
            return resp.status, resp.content_type, ""
        return resp.status, resp.content_type, await resp.text()


async def send_raw(api: Api, method: str, url: str, data: bytes | None) -> tuple[int, str, str]:
    """The request with ``Authorization: Bearer x\\xe9`` (an HTTP client would not send that)."""
    import asyncio

    host, port = api.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = data or b""
    head = f"{method} {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"Authorization: Bearer x\xe9\r\n\r\n" + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    top, _, text = answer.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split(" ")[1]), fields.get("Content-Type", "").split(";")[0], text.decode()


def headers_for(kind: str, body: Any) -> dict[str, str]:
    headers = authorization(kind, body)
    if kind == "bad-bytes":
        headers["bad-bytes"] = "1"
    return headers


# -- the properties ---------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
async def test_creating_tickets(api: tuple[Api, Document], data: st.DataObject) -> None:
    server, doc = api
    body = data.draw(ticket_requests(doc), "body")
    raw = data.draw(RAW, "raw") if data.draw(st.integers(0, 9), "raw bytes?") >= 8 else None
    kind = data.draw(CREDENTIALS, "credentials")
    payload = raw if raw is not None else json.dumps(body).encode()
    status, content_type, text = await send(server, "POST", "/v1/tickets", headers_for(kind, body), payload)
    doc.check("/v1/tickets", "post", status, content_type, text)
    if status == 201:
        assert json.loads(text)["queue"] in QUEUES


OPERATIONS = [("/v1/tickets/{id}", "get"), ("/v1/tickets/{id}", "delete"), ("/v1/tickets/{id}/events", "get")]


@pytest.fixture
async def made(api: tuple[Api, Document]) -> list[str]:
    """Two queued tickets (the first is player f0's) and a cancelled one (its stream ends at once)."""
    server, _ = api
    made = []
    for i, queue in enumerate(("duel", "squad", "duel")):
        body = {"queue": queue, "players": [{"id": f"f{i}", "attributes": {"skill": 1}}]}
        reply = await server.call("POST", "/v1/tickets", as_="key", body=body)
        assert reply.status == 201, reply.body
        made.append(reply.body["id"])
    await server.call("DELETE", f"/v1/tickets/{made[2]}", as_="key")
    return made


@FUZZ
@given(data=st.data())
async def test_reading_following_and_cancelling_tickets(
    api: tuple[Api, Document], made: list[str], data: st.DataObject
) -> None:
    server, doc = api
    ids = st.one_of(st.sampled_from(made), st.text(max_size=40), st.sampled_from(["duel." + "0" * 26, "x" * 300]))
    ticket_id = data.draw(ids, "ticket id")
    template, method = data.draw(st.sampled_from(OPERATIONS), "operation")
    if method == "delete" and ticket_id in made[:2]:
        method = "get"  # the queued tickets stay queued: their streams are what is fuzzed
    url = template.replace("{id}", quote(ticket_id, safe=""))
    wait = data.draw(st.none() | wait_values(), "wait")
    if wait is not None and (template, method) == ("/v1/tickets/{id}", "get"):
        url += f"?wait={quote(wait, safe='')}"
    kind = data.draw(CREDENTIALS, "credentials")
    body = {"players": [{"id": "f0"}]}  # a player's token is f0's: it sees f0's ticket only
    status, content_type, text = await send(server, method.upper(), url, headers_for(kind, body))
    doc.check(template, method, status, content_type, text)


async def test_public_routes(api: tuple[Api, Document]) -> None:
    server, doc = api
    for path in ("/openapi.json", "/healthz", "/readyz", "/livez"):
        status, content_type, text = await send(server, "GET", path, {})
        doc.check(path, "get", status, content_type, text)
