"""The allocation API in-process on the real Redis store: claims, exhaustion, ordered selectors,
metadata in the same write, auth, bad input, TLS with client certificates, OpenAPI."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer
from openapi_spec_validator import validate
from prometheus_client import REGISTRY

from allocator.app import AllocatorService, serve_allocator
from fleetmatch.allocation import AllocationState, GameServerAllocationSpec, GameServerSelector
from fleetmatch.allocator_client import AllocatorClient, AllocatorError
from fleetmatch.backends.base import Backend
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.errors import BackendError
from fleetmatch.models import (
    FLEET_LABEL,
    LAST_ALLOCATED_ANNOTATION,
    CounterStatus,
    GameServer,
    GameServerSpec,
    GameServerState,
    ListStatus,
    ObjectMeta,
    PortStatus,
    TemplateMeta,
    initial_status,
)
from fleetmatch.settings import AllocatorSettings
from tests.waiting import eventually

S = GameServerState
TOKEN = "test-token-0123456789abcdef"


async def ready_servers(store: RedisStore[GameServer], n: int, fleet: str = "arena", **labels: str) -> list[str]:
    names = []
    for i in range(n):
        gs = GameServer(metadata=ObjectMeta(name=f"{fleet}-{i:03d}", labels={FLEET_LABEL: fleet, **labels}))
        gs = gs.with_status(
            state=S.READY, address="127.0.0.1", ports=(PortStatus("default", 7000 + i),), node_name=f"node-{i % 2}"
        )
        created = await store.create(gs)
        await store.update(replace(created, status=gs.status))
        names.append(gs.name)
    return names


@dataclass
class Api:
    service: AllocatorService
    http: aiohttp.ClientSession
    store: RedisStore[GameServer]

    async def post(self, body: Any, *, token: str | None = TOKEN, raw: bytes | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = raw if raw is not None else json.dumps(body).encode()
        async with self.http.post(f"{self.service.url}/v1/allocations", data=data, headers=headers) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def api(gs_store: RedisStore[GameServer], backend: Backend) -> AsyncIterator[Api]:
    settings = AllocatorSettings(port=0, max_body_bytes=4096)
    async with serve_allocator(backend, settings, TOKEN) as service, aiohttp.ClientSession() as http:
        yield Api(service, http, gs_store)


def fleet_request(fleet: str = "arena", **extra: Any) -> dict[str, Any]:
    return {"spec": {"selectors": [{"matchLabels": {FLEET_LABEL: fleet}}], **extra}}


async def until_indexed(api: Api, count: int) -> None:
    await eventually(lambda: len(api.service.allocator.index) >= count, within=5)


async def test_allocates_with_metadata_in_the_same_write(api: Api) -> None:
    await ready_servers(api.store, 3)
    await until_indexed(api, 3)
    request = fleet_request(metadata={"labels": {"match": "m1"}, "annotations": {"who": "p1"}})
    status, body = await api.post(request)
    assert status == 201
    result = body["status"]
    assert result["state"] == "Allocated" and result["address"] == "127.0.0.1"
    assert result["ports"][0]["name"] == "default" and result["nodeName"] in ("node-0", "node-1")
    assert result["metadata"]["labels"]["match"] == "m1"
    stored = await api.store.get(result["gameServerName"])
    assert stored.state is S.ALLOCATED
    assert stored.metadata.labels["match"] == "m1" and stored.metadata.annotations["who"] == "p1"
    assert LAST_ALLOCATED_ANNOTATION in stored.metadata.annotations
    assert body["kind"] == "GameServerAllocation" and body["spec"] == request["spec"]


async def test_concurrent_requests_never_share_a_server_and_the_rest_get_429(api: Api) -> None:
    names = await ready_servers(api.store, 20)
    await until_indexed(api, 20)
    results = await asyncio.gather(*(api.post(fleet_request()) for _ in range(50)))
    won = [body["status"]["gameServerName"] for status, body in results if status == 201]
    assert sorted(won) == sorted(names)  # every server once, none twice
    refused = [body for status, body in results if status == 429]
    assert len(refused) == 30
    assert refused[0]["status"]["state"] == "UnAllocated" and refused[0]["error"]["code"] == "UnAllocated"
    items, _ = await api.store.list()
    assert all(g.state is S.ALLOCATED for g in items)


async def test_a_body_sent_again_is_answered_as_if_decoded_again(api: Api) -> None:
    """Request bodies are kept decoded (allocator.api): a repeated body claims another server with
    its own metadata, answers its spec as sent, in the bytes JSON encoding gives, and a body that
    failed validation fails again (an error is never kept)."""
    await ready_servers(api.store, 3)
    await until_indexed(api, 3)
    raw = json.dumps(fleet_request(metadata={"labels": {"match": "m1"}})).encode()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    names = []
    for _ in range(2):
        async with api.http.post(f"{api.service.url}/v1/allocations", data=raw, headers=headers) as resp:
            assert resp.status == 201 and resp.headers["Content-Type"] == "application/json; charset=utf-8"
            text = await resp.text()
        body = json.loads(text)
        assert text == orjson.dumps(body).decode()  # compact JSON, the first answer as the second
        assert body["spec"] == json.loads(raw)["spec"] and body["status"]["metadata"]["labels"]["match"] == "m1"
        names.append(body["status"]["gameServerName"])
    assert len(set(names)) == 2
    bad = fleet_request(metadata={"labels": {"bad key!": "x"}})
    for _ in range(2):
        status, answer = await api.post(bad)
        assert status == 422 and answer["error"]["field"] == "spec.metadata.labels.bad key!"


async def test_ordered_selectors_prefer_reallocation_then_ready(api: Api) -> None:
    await ready_servers(api.store, 2)
    gs = await api.store.get("arena-000")
    room = replace(
        gs.with_status(state=S.ALLOCATED), metadata=replace(gs.metadata, labels={**gs.metadata.labels, "room": "open"})
    )
    await api.store.update(room)
    await eventually(lambda: api.service.allocator.index.count(S.ALLOCATED) == 1, within=5)

    def request(room: str) -> dict[str, Any]:
        allocated = {"matchLabels": {FLEET_LABEL: "arena", "room": room}, "gameServerState": "Allocated"}
        return {"spec": {"selectors": [allocated, {"matchLabels": {FLEET_LABEL: "arena"}}]}}

    first = await api.post(request("open"))
    assert first[0] == 201 and first[1]["status"]["gameServerName"] == "arena-000"  # high density: same server
    second = await api.post(request("closed"))
    assert second[0] == 201 and second[1]["status"]["gameServerName"] == "arena-001"


async def rooms_server(store: RedisStore[GameServer], name: str, rooms: int, node: str = "node-0") -> None:
    """A Ready server of fleet arena with a counter ``rooms`` (capacity ``rooms``) and a list ``players``."""
    spec = GameServerSpec(
        counters={"rooms": CounterStatus(count=0, capacity=rooms)}, lists={"players": ListStatus(capacity=8)}
    )
    gs = GameServer(metadata=ObjectMeta(name=name, labels={FLEET_LABEL: "arena"}), spec=spec)
    created = await store.create(gs)
    status = initial_status(spec, gs.status)
    ready = replace(status, state=S.READY, address="127.0.0.1", ports=(PortStatus("default", 7100),), node_name=node)
    await store.update(replace(created, status=ready))


def room_request(*players: str) -> dict[str, Any]:
    """High density: a server already Allocated with a free room, else a Ready one; take a room and
    add the players, in the claiming write."""
    fleet = {FLEET_LABEL: "arena"}
    with_room = {"matchLabels": fleet, "gameServerState": "Allocated", "counters": {"rooms": {"minAvailable": 1}}}
    return {
        "spec": {
            "selectors": [with_room, {"matchLabels": fleet, "counters": {"rooms": {"minAvailable": 1}}}],
            "counters": {"rooms": {"action": "Increment", "amount": 1}},
            "lists": {"players": {"addValues": list(players)}},
        }
    }


async def test_high_density_rooms_fill_one_server_before_the_next(api: Api) -> None:
    await rooms_server(api.store, "arena-a", rooms=3)
    await rooms_server(api.store, "arena-b", rooms=3, node="node-1")
    await until_indexed(api, 2)
    first = await api.post(room_request("p1", "p2"))
    assert first[0] == 201, first
    home = first[1]["status"]["gameServerName"]
    assert first[1]["status"]["counters"]["rooms"] == {"count": 1, "capacity": 3}
    assert first[1]["status"]["lists"]["players"] == {"capacity": 8, "values": ["p1", "p2"]}
    await eventually(lambda: api.service.allocator.index.count(S.ALLOCATED) == 1, within=5)
    for i in range(2):  # rooms 2 and 3 go to the same, already Allocated, server
        code, body = await api.post(room_request(f"q{i}"))
        assert code == 201 and body["status"]["gameServerName"] == home, body
    stored = await api.store.get(home)
    assert stored.status.counters["rooms"] == CounterStatus(count=3, capacity=3)
    assert stored.status.lists["players"].values == ("p1", "p2", "q0", "q1")
    code, body = await api.post(room_request("r1"))  # full: the other server, from Ready
    assert code == 201 and body["status"]["gameServerName"] != home
    await eventually(lambda: api.service.allocator.index.count(S.ALLOCATED) == 2, within=5)
    for _ in range(2):
        assert (await api.post(room_request()))[0] == 201
    code, body = await api.post(room_request())  # 6 rooms taken on 2 servers: nothing left
    assert code == 429, body


async def test_concurrent_room_claims_never_overfill_a_server(api: Api) -> None:
    await rooms_server(api.store, "arena-a", rooms=4)
    await until_indexed(api, 1)
    assert (await api.post(room_request()))[0] == 201
    await eventually(lambda: api.service.allocator.index.count(S.ALLOCATED) == 1, within=5)
    results = await asyncio.gather(*(api.post(room_request(f"c{i}")) for i in range(10)))
    won = [body for code, body in results if code == 201]
    assert len(won) == 3, results  # 4 rooms, one taken before: every other request 429 or Contention
    stored = await api.store.get("arena-a")
    assert stored.status.counters["rooms"] == CounterStatus(count=4, capacity=4)
    assert len(stored.status.lists["players"].values) == 3


BAD = [
    pytest.param(
        {"spec": {"selectors": [{"matchLabelz": {}}]}}, 422, "spec.selectors[0].matchLabelz", id="unknown-field"
    ),
    pytest.param({"spec": {"selectors": "all"}}, 422, "spec.selectors", id="wrong-type"),
    pytest.param({"spec": {"scheduling": "Tight"}}, 422, "spec.scheduling", id="bad-enum"),
    pytest.param({"spec": {"selectors": []}}, 422, "spec.selectors", id="no-selector"),
    pytest.param(
        {"spec": {"selectors": [{"gameServerState": "Shutdown"}]}}, 422, "spec.selectors[0].gameServerState", id="state"
    ),
    pytest.param(
        {"spec": {"selectors": [{"matchExpressions": [{"key": "k", "operator": "In"}]}]}},
        422,
        "spec.selectors[0].matchExpressions[0].values",
        id="in-without-values",
    ),
    pytest.param({"spec": {"metadata": {"labels": {"bad key": "v"}}}}, 422, "spec.metadata.labels.bad key", id="label"),
    pytest.param({"kind": "Fleet"}, 422, "kind", id="kind"),
    pytest.param(
        {"spec": {"selectors": [{"counters": {"rooms": {"minAvailable": -1}}}]}},
        422,
        "spec.selectors[0].counters.rooms.minAvailable",
        id="negative-counter-bound",
    ),
    pytest.param(
        {"spec": {"counters": {"rooms": {"action": "Double", "amount": 1}}}},
        422,
        "spec.counters.rooms.action",
        id="counter-action",
    ),
    pytest.param(
        {"spec": {"lists": {"players": {"capacity": 5000}}}}, 422, "spec.lists.players.capacity", id="list-capacity"
    ),
    pytest.param([1, 2], 422, "", id="not-an-object"),
    pytest.param({"apiVersion": {}, "spec": {}}, 422, "apiVersion", id="api-version-object"),
    pytest.param({"apiVersion": [], "spec": {}}, 422, "apiVersion", id="api-version-list"),
    pytest.param({"kind": ["GameServerAllocation"]}, 422, "kind", id="kind-list"),
    pytest.param({"metadata": []}, 422, "metadata", id="metadata-list"),
    pytest.param({"metadata": {"namespace": "other"}}, 422, "metadata.namespace", id="another-namespace"),
    pytest.param({"spec": None}, 422, "spec", id="null-spec"),
    pytest.param({"metadata": {"namespace": 5}}, 422, "metadata.namespace", id="namespace-number"),
    pytest.param(
        {"spec": {"counters": {"rooms": {"action": "Increment", "amount": 2**70}}}},
        422,
        "spec.counters.rooms.amount",
        id="amount-beyond-int64",
    ),
    pytest.param(
        {"spec": {"counters": {"rooms": {"capacity": 2**63}}}}, 422, "spec.counters.rooms.capacity", id="capacity-2^63"
    ),
    pytest.param(
        {"spec": {"selectors": [{"counters": {"rooms": {"maxAvailable": 2**64}}}]}},
        422,
        "spec.selectors[0].counters.rooms.maxAvailable",
        id="counter-bound-beyond-int64",
    ),
    pytest.param(
        {"spec": {"selectors": [{"players": {"minAvailable": -(2**63) - 1}}]}},
        422,
        "spec.selectors[0].players.minAvailable",
        id="players-below-int64",
    ),
    pytest.param(
        {"spec": {"lists": {"players": {"capacity": 2**70}}}},
        422,
        "spec.lists.players.capacity",
        id="list-capacity-big",
    ),
    pytest.param(
        {"spec": {"metadata": {"annotations": {"fleetmatch.dev/allocation-key": "k"}}}},
        422,
        "spec.metadata.annotations.fleetmatch.dev/allocation-key",
        id="allocator-annotation",
    ),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD)
async def test_bad_requests_name_the_field(api: Api, body: Any, status: int, field: str) -> None:
    code, doc = await api.post(body)
    assert code == status and doc["error"]["code"] == "Invalid"
    assert doc["error"].get("field", "") == field


async def test_the_allocators_own_namespace_may_be_named(api: Api) -> None:
    """A request naming a namespace was served from the allocator's own whatever it named; now only
    the allocator's own (or none) is, as over gRPC."""
    await ready_servers(api.store, 1)
    await until_indexed(api, 1)
    code, doc = await api.post({**fleet_request(), "metadata": {"namespace": "default"}})
    assert code == 201, doc
    code, doc = await api.post({**fleet_request(), "metadata": {"namespace": "prod"}})
    assert code == 422 and doc["error"]["message"] == "this allocator serves namespace 'default', not 'prod'"


async def test_malformed_unauthorized_and_oversized_requests(api: Api) -> None:
    assert (await api.post(None, raw=b"{not json"))[0] == 400
    assert (await api.post(None, raw=b""))[0] == 400
    status, doc = await api.post(fleet_request(), token=None)
    assert status == 401 and doc["error"]["code"] == "Unauthorized"
    assert (await api.post(fleet_request(), token="wrong-token-0123456789"))[0] == 401
    status, doc = await api.post(None, raw=b'{"spec": {"metadata": {"labels": {"x": "' + b"y" * 8000 + b'"}}}}')
    assert status == 413 and doc["error"]["code"] == "TooLarge"
    async with api.http.get(f"{api.service.url}/v1/nothing-here", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status == 404 and (await r.json())["error"]["code"] == "NotFound"
    async with api.http.get(f"{api.service.url}/v1/allocations", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status == 405 and r.headers["Allow"] == "POST"
        assert (await r.json())["error"]["code"] == "MethodNotAllowed"
    assert (await api.post(None, raw=b'{"spec": {"selectors": [{"counters": {"r": {"minCount": NaN}}}]}}'))[0] == 400
    await ready_servers(api.store, 1)
    await until_indexed(api, 1)
    assert (await api.post(fleet_request()))[0] == 201  # still serving after all that


SAME_EITHER_WAY = [
    b"{not json",
    b'{"spec": {"selectors": "arena"}}',
    b'{"metadata": {"namespace": "prod"}, "spec": {}}',
    json.dumps(fleet_request("nope")).encode(),
    json.dumps(fleet_request("arena", metadata={"labels": {"bad label!": "x"}})).encode(),
    json.dumps(fleet_request("arena")).encode(),
    json.dumps(fleet_request("arena")).encode(),  # the fleet's one server is taken: 429
]


async def test_the_fast_path_answers_as_aiohttp_does(gs_store: RedisStore[GameServer], backend: Backend) -> None:
    """The same requests to an allocator with the fast path and one without (every request on
    aiohttp): the same statuses, headers and bodies; only the fast one counts them as its own."""
    answers: dict[bool, list[tuple[int, str, Any]]] = {}
    served: dict[bool, float] = {}
    for fast in (True, False):
        (name,) = await ready_servers(gs_store, 1)
        settings = AllocatorSettings(port=0, fast_path=fast)
        before = REGISTRY.get_sample_value("fleetmatch_http_fast_path_requests_total") or 0.0
        async with serve_allocator(backend, settings, TOKEN) as service, aiohttp.ClientSession() as http:
            await eventually(lambda service=service: len(service.allocator.index) >= 1, within=5)
            answers[fast] = []
            for raw in SAME_EITHER_WAY:
                headers = {"Authorization": f"Bearer {TOKEN}"}
                async with http.post(f"{service.url}/v1/allocations", data=raw, headers=headers) as resp:
                    doc = await resp.json()
                    if resp.status == 201:  # when it was allocated: the one field that differs
                        doc["status"]["metadata"]["annotations"].pop(LAST_ALLOCATED_ANNOTATION)
                    answers[fast].append((resp.status, resp.headers["Content-Type"], doc))
        served[fast] = (REGISTRY.get_sample_value("fleetmatch_http_fast_path_requests_total") or 0.0) - before
        await gs_store.delete(name)
    assert [status for status, _, _ in answers[True]] == [400, 422, 422, 404, 422, 201, 429]
    assert answers[True] == answers[False]
    assert served == {True: len(SAME_EITHER_WAY), False: 0.0}


async def test_an_unreachable_store_is_503_as_in_every_api(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    async def down(spec: GameServerAllocationSpec, **_: Any) -> None:
        raise BackendError("redis at 10.1.2.3:6379: connection refused")

    monkeypatch.setattr(api.service.allocator, "allocate", down)
    status, body = await api.post({"spec": {"selectors": [{"matchLabels": {FLEET_LABEL: "arena"}}]}})
    assert status == 503
    assert body["error"] == {"code": "Unavailable", "message": "the store is unavailable; retry shortly"}


async def test_openapi_document_is_valid_and_public(api: Api) -> None:
    async with api.http.get(f"{api.service.url}/openapi.json") as resp:
        assert resp.status == 200
        doc = await resp.json()
    validate(doc)
    assert "/v1/allocations" in doc["paths"]
    async with api.http.get(f"{api.service.url}/healthz") as resp:
        assert resp.status == 200
    async with api.http.get(f"{api.service.url}/metrics") as resp:
        assert "fleetmatch_allocations_total" in await resp.text()
    assert "/metrics" in doc["paths"]


async def test_an_allocator_without_metrics_does_not_list_them(
    gs_store: RedisStore[GameServer], backend: Backend
) -> None:
    """Under `fleetmatch up` the allocator's port serves no /metrics (the stack's metrics port does):
    its OpenAPI document listed the path anyway, and a newcomer following it got a 404."""
    settings = AllocatorSettings(port=0)
    async with serve_allocator(backend, settings, TOKEN, metrics=False) as service, aiohttp.ClientSession() as http:
        async with http.get(f"{service.url}/openapi.json") as resp:
            doc = await resp.json()
        validate(doc)
        assert "/metrics" not in doc["paths"] and "/v1/allocations" in doc["paths"]
        async with http.get(f"{service.url}/metrics") as resp:
            assert resp.status == 404


async def test_python_client_allocates_and_reports_no_capacity(api: Api) -> None:
    await ready_servers(api.store, 1)
    await until_indexed(api, 1)
    async with AllocatorClient(api.service.url, TOKEN) as client:
        spec = GameServerAllocationSpec(
            selectors=(GameServerSelector.for_fleet("arena"),), metadata=TemplateMeta(labels={"m": "1"})
        )
        first = await client.allocate(spec)
        assert first.state is AllocationState.ALLOCATED and first.game_server_name == "arena-000"
        second = await client.allocate(spec)
        assert second.state is AllocationState.UNALLOCATED
    async with AllocatorClient(api.service.url, "not-the-token-at-all") as client:
        with pytest.raises(AllocatorError) as info:
            await client.allocate(spec)
        assert info.value.status == 401


async def test_mutual_tls(gs_store: RedisStore[GameServer], backend: Backend, tmp_path: Path) -> None:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    client_cert = ca.issue_cert("matchmaker.internal")
    paths = {name: tmp_path / f"{name}.pem" for name in ("cert", "ca")}
    server_cert.private_key_and_cert_chain_pem.write_to_path(str(paths["cert"]))
    ca.cert_pem.write_to_path(str(paths["ca"]))
    settings = AllocatorSettings(port=0, tls_cert=paths["cert"], tls_key=paths["cert"], tls_client_ca=paths["ca"])
    await ready_servers(gs_store, 1)
    async with serve_allocator(backend, settings, TOKEN) as service:
        assert service.url.startswith("https://")
        trusted = ssl.create_default_context()
        ca.configure_trust(trusted)
        spec = GameServerAllocationSpec(selectors=(GameServerSelector.for_fleet("arena"),))
        async with AllocatorClient(service.url, TOKEN, ssl_context=trusted) as anonymous:
            with pytest.raises(AllocatorError):  # no client certificate: the handshake is refused
                await anonymous.allocate(spec)
        with_cert = ssl.create_default_context()
        ca.configure_trust(with_cert)
        client_cert.configure_cert(with_cert)
        async with AllocatorClient(service.url, TOKEN, ssl_context=with_cert) as client:
            await eventually(lambda: len(service.allocator.index) >= 1, within=5)
            assert (await client.allocate(spec)).state is AllocationState.ALLOCATED


async def post_keyed(api: Api, body: Any, key: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": key}
    async with api.http.post(f"{api.service.url}/v1/allocations", json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_a_retry_with_the_same_key_gets_the_same_server(api: Api) -> None:
    await ready_servers(api.store, 3)
    await until_indexed(api, 3)
    request = fleet_request(metadata={"labels": {"match": "m1"}})
    first = await post_keyed(api, request, "match-m1")
    again = await asyncio.gather(*(post_keyed(api, request, "match-m1") for _ in range(5)))
    assert first[0] == 201 and {status for status, _ in again} == {201}
    name = first[1]["status"]["gameServerName"]
    assert {body["status"]["gameServerName"] for _, body in again} == {name}
    items, _ = await api.store.list()
    assert [g.name for g in items if g.state is S.ALLOCATED] == [name]
    assert (await post_keyed(api, request, "match-m2"))[1]["status"]["gameServerName"] != name  # a new key: a new one


@pytest.mark.parametrize(
    ("key", "body"),
    [
        pytest.param("match-m1", fleet_request(metadata={"labels": {"match": "other"}}), id="other-body"),
        pytest.param("has space", fleet_request(), id="space"),
        pytest.param("k" * 129, fleet_request(), id="too-long"),
        pytest.param("", fleet_request(), id="empty"),
    ],
)
async def test_bad_idempotency_keys_name_the_header(api: Api, key: str, body: Any) -> None:
    await ready_servers(api.store, 2)
    await until_indexed(api, 2)
    assert (await post_keyed(api, fleet_request(metadata={"labels": {"match": "m1"}}), "match-m1"))[0] == 201
    status, doc = await post_keyed(api, body, key)
    assert status == 422 and doc["error"]["field"] == "Idempotency-Key", doc


async def test_the_client_sends_a_key_per_request_and_the_same_on_its_retries() -> None:
    seen: list[str] = []

    async def flaky(request: web.Request) -> web.Response:
        seen.append(request.headers["Idempotency-Key"])
        if len(seen) in (1, 3):  # the first attempt of each request fails as a stalled allocator would
            return web.json_response({"error": {"code": "Unavailable", "message": "later"}}, status=503)
        status = {"state": "Allocated", "gameServerName": f"gs-{seen[-1]}"}
        return web.json_response({"spec": {}, "status": status}, status=201)

    app = web.Application()
    app.router.add_post("/v1/allocations", flaky)
    async with TestServer(app) as server, AllocatorClient(str(server.make_url("")), TOKEN) as client:
        spec = GameServerAllocationSpec(selectors=(GameServerSelector.for_fleet("arena"),))
        first = await client.allocate(spec)
        assert first.state is AllocationState.ALLOCATED
        assert len(seen) == 2 and seen[0] == seen[1] and len(seen[0]) >= 16  # retried with the same key
        second = await client.allocate(spec, idempotency_key="match-42")
        assert second.game_server_name == "gs-match-42"
    assert seen[2:] == ["match-42"] * 2 and seen[2] != seen[0]


async def test_the_allocator_closes_half_sent_requests(gs_store: RedisStore[GameServer], backend: Backend) -> None:
    settings = AllocatorSettings(port=0, header_timeout=0.3, body_timeout=0.3)
    async with serve_allocator(backend, settings, TOKEN) as service:
        host, port = service.url.removeprefix("http://").split(":")
        half_headers = b"POST /v1/allocations HTTP/1.1\r\nHost: x\r\n"
        half_body = half_headers + f"Authorization: Bearer {TOKEN}\r\nContent-Length: 50\r\n\r\n".encode() + b'{"sp'
        answers = []
        for request in (half_headers, half_body):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(request)
            async with asyncio.timeout(10):  # a hang here is the failure
                answers.append(await reader.read())
            writer.close()
    assert answers[0] == b""  # closed without an answer
    assert answers[1].startswith(b"HTTP/1.1 408 ")
