"""The allocation API fuzzed from its own ``/openapi.json``: requests generated from the documented
request schema (and the ``Idempotency-Key`` header's), then the same with any JSON value put in
any field. Every answer is documented: never a 5xx, a status the document lists, a body its
schema accepts, and a 422 names the field.

Strategies come from ``tests.fuzz.schemas``. The allocator runs on the memory backend in a thread
of its own (Hypothesis drives a plain function); its fleet is put back to Ready between examples
so that claims keep happening. A body the document's request schema refuses must be refused by
the API too (400 or 422), never served.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.app import serve_allocator
from fleetmatch.backends.base import Backend
from fleetmatch.backends.memory import memory_backend
from fleetmatch.models import (
    FLEET_LABEL,
    CounterStatus,
    GameServer,
    GameServerState,
    ListStatus,
    ObjectMeta,
    PlayerStatus,
    PortStatus,
)
from fleetmatch.settings import AllocatorSettings
from tests.fuzz.schemas import from_schema, maximal

TOKEN = "fuzz-token-0123456789abcdef"
EXAMPLES = 120
"""Per strategy: about 10 s each on a shared two-core machine."""


@dataclass
class Served:
    port: int
    loop: asyncio.AbstractEventLoop
    backend: Backend
    openapi: dict[str, Any]

    def reset(self) -> None:
        """Every server Ready again, with room, as at the start."""
        asyncio.run_coroutine_threadsafe(_ready(self.backend, 6), self.loop).result(timeout=10)

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("POST", "/v1/allocations", body=body, headers={"Authorization": f"Bearer {TOKEN}", **headers})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), json.loads(resp.read())
        finally:
            conn.close()


async def _ready(backend: Backend, n: int) -> None:
    store = backend.gameservers
    items, _ = await store.list()
    existing = {g.name: g for g in items}
    for i in range(n):
        name = f"arena-{i}"
        labels = {FLEET_LABEL: "arena", "mode": "duel" if i % 2 else "ffa"}
        gs = existing.get(name) or await store.create(GameServer(metadata=ObjectMeta(name=name, labels=labels)))
        status = replace(
            gs.status,
            state=GameServerState.READY,
            address="127.0.0.1",
            ports=(PortStatus("default", 7000 + i),),
            counters={"rooms": CounterStatus(i % 3, 4)},
            lists={"players": ListStatus(8, ("p1",) if i % 2 else ())},
            players=PlayerStatus(count=0, capacity=8),
        )
        await store.update(replace(gs, metadata=replace(gs.metadata, labels=labels), status=status))


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    started: dict[str, Any] = {}
    ready = threading.Event()
    stop: asyncio.Event | None = None

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        backend = memory_backend()
        await _ready(backend, 6)
        async with serve_allocator(backend, AllocatorSettings(port=0), TOKEN) as service:
            started.update(port=int(service.url.rsplit(":", 1)[1]), loop=asyncio.get_running_loop(), backend=backend)
            ready.set()
            await stop.wait()
        await backend.aclose()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(30), "the allocator did not start"
    conn = http.client.HTTPConnection("127.0.0.1", started["port"], timeout=10)
    conn.request("GET", "/openapi.json")
    openapi = json.loads(conn.getresponse().read())
    conn.close()
    yield Served(openapi=openapi, **started)
    assert stop is not None
    started["loop"].call_soon_threadsafe(stop.set)
    thread.join(30)


def _schema(openapi: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the document's components beside it, so its ``$ref``s resolve."""
    return {**schema, "components": openapi["components"]}


def _operation(openapi: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = openapi["paths"]["/v1/allocations"]["post"]
    return operation


def check_answer(served: Served, status: int, headers: dict[str, str], body: Any) -> None:
    """The answer is one the document promises."""
    assert status < 500, (status, body)
    responses = _operation(served.openapi)["responses"]
    assert str(status) in responses, (status, body)
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    jsonschema.validate(body, _schema(served.openapi, schema))
    if status == 422:
        assert "field" in body["error"], body
    if status == 201:
        assert body["status"]["state"] == "Allocated" and body["status"]["gameServerName"]


def request_strategy(openapi: dict[str, Any]) -> st.SearchStrategy[Any]:
    return from_schema(_operation(openapi)["requestBody"]["content"]["application/json"]["schema"], openapi)


def key_strategy(openapi: dict[str, Any]) -> st.SearchStrategy[dict[str, str]]:
    (param,) = _operation(openapi)["parameters"]
    return st.one_of(st.just({}), from_schema(param["schema"], openapi).map(lambda key: {param["name"]: key}))


EDGES = st.sampled_from([-1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 2**70, 1e300, "", "Ready", "Allocated"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20) | EDGES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place a value sits in ``doc`` (dict keys and list indexes)."""
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += _paths(value, (*prefix, i))
    return out


def _put(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, *rest = path
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    copy[head] = _put(copy[head], tuple(rest), value)
    return copy


@st.composite
def mutated(draw: st.DrawFn, openapi: dict[str, Any]) -> dict[str, Any] | Any:
    """A valid request with one value (or a new field) replaced by any JSON value."""
    doc = draw(request_strategy(openapi))
    paths = _paths(doc)
    leaves = [p for p in paths if not isinstance(_get(doc, p), dict | list)]
    prefer_leaf: bool = draw(st.booleans())
    path = draw(st.sampled_from(leaves if leaves and prefer_leaf else paths))
    value = draw(EDGES if draw(st.booleans()) else JSON)
    target = _get(doc, path)
    if isinstance(target, dict) and draw(st.booleans()):  # a new field rather than a new value
        name = draw(st.sampled_from(["spec", "selectors", "metadata", "counters", "amount", "x"]))
        return _put(doc, path, {**target, name: value})
    return _put(doc, path, value)


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@FUZZ
@given(data=st.data())
def test_documented_requests_get_documented_answers(served: Served, data: st.DataObject) -> None:
    doc = data.draw(request_strategy(served.openapi))
    headers = data.draw(key_strategy(served.openapi))
    status, answer_headers, body = served.post(json.dumps(doc).encode(), headers)
    check_answer(served, status, answer_headers, body)
    if status == 201 and headers:  # a retry with the key gets the same server
        again = served.post(json.dumps(doc).encode(), headers)
        assert again[0] == 201 and again[2]["status"]["gameServerName"] == body["status"]["gameServerName"]
    served.reset()


@FUZZ
@given(data=st.data())
def test_any_json_in_any_field_is_a_documented_answer(served: Served, data: st.DataObject) -> None:
    doc = data.draw(mutated(served.openapi))
    status, headers, body = served.post(json.dumps(doc).encode(), {})
    check_answer(served, status, headers, body)
    request = _operation(served.openapi)["requestBody"]["content"]["application/json"]["schema"]
    if not jsonschema.Draft202012Validator(_schema(served.openapi, request)).is_valid(doc):
        assert status in (400, 422), (status, doc, body)
    served.reset()


def test_every_field_of_a_full_request_spoiled_in_turn(served: Served) -> None:
    """Deterministic companion of the fuzzer: each value of a request that has every field, in turn
    replaced by each awkward JSON value, and a new field in each object."""
    request = _operation(served.openapi)["requestBody"]["content"]["application/json"]["schema"]
    validator = jsonschema.Draft202012Validator(_schema(served.openapi, request))
    full = maximal(request, served.openapi)
    full["spec"]["selectors"][0]["gameServerState"] = "Ready"
    assert validator.is_valid(full)
    status, headers, body = served.post(json.dumps(full).encode(), {})
    check_answer(served, status, headers, body)
    spoilers: list[Any] = [None, True, -1, 2**63, -(2**63) - 1, 1e300, 0.5, "", "x y", [], [1], {}, {"a": 1}]
    tried = 0
    for path in _paths(full):
        target = _get(full, path)
        candidates = [_put(full, path, value) for value in spoilers]
        if isinstance(target, dict):
            candidates.append(_put(full, path, {**target, "unknownField": 1}))
        for doc in candidates:
            if validator.is_valid(doc):
                continue
            tried += 1
            status, headers, body = served.post(json.dumps(doc).encode(), {})
            check_answer(served, status, headers, body)
            assert status in (400, 422), (path, doc, status, body)
    served.reset()
    assert tried > 300


def test_the_fuzzer_reaches_every_kind_of_answer(served: Served) -> None:
    """A guard on the strategies themselves: they produce allocations as well as refusals."""
    seen = set()
    for doc in (
        {"spec": {"selectors": [{"matchLabels": {FLEET_LABEL: "arena"}}]}},
        {"spec": {"selectors": [{"matchLabels": {FLEET_LABEL: "arena", "mode": "none"}}]}},
        {"spec": {"selectors": [{"matchLabels": {FLEET_LABEL: "none"}}]}},  # no such fleet
        {"spec": {"selectors": [{"counters": {"rooms": {"minCount": 2**63}}}]}},
    ):
        with contextlib.suppress(AssertionError):
            status, headers, body = served.post(json.dumps(doc).encode(), {})
            check_answer(served, status, headers, body)
            seen.add(status)
    assert seen == {201, 429, 404, 422}
