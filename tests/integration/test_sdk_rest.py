"""The REST SDK on a real SdkHost, a real RedisStore and an informer feeding ``observe`` (as the node
agent does): exact JSON bodies and status codes, coalescing, health, reserve and the watch stream.

``running_host``, ``CountingStore`` and the polling helpers are shared with the other SDK tests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from fleetmatch.codec import format_timestamp, from_wire
from fleetmatch.models import (
    LAST_ALLOCATED_ANNOTATION,
    GameServer,
    GameServerState,
    Health,
)
from fleetmatch.settings import SdkSettings
from fleetmatch.store import modify
from sdk_sidecar import metrics
from sdk_sidecar.state import LATEST_TIMESTAMP
from tests.integration.sdkenv import Env, FakeClock, call, error, running_host
from tests.waiting import eventually

S = GameServerState


@pytest.fixture
async def env(redis_client: aioredis.Redis) -> AsyncIterator[Env]:
    async with running_host(redis_client) as e:
        yield e


# -- shapes ----------------------------------------------------------------------------------------


async def test_get_gameserver_is_the_agones_document(env: Env) -> None:
    gs, url = await env.add(health=Health(period_seconds=7, failure_threshold=4, initial_delay_seconds=9))
    status, ctype, body = await call(env, "GET", url + "/gameserver")
    assert (status, ctype) == (200, "application/json")
    meta = gs.metadata
    assert meta.creation_timestamp is not None
    assert body == {
        "object_meta": {
            "name": "gs-1",
            "namespace": "default",
            "uid": meta.uid,
            "resource_version": meta.resource_version,
            "generation": "1",
            "creation_timestamp": str(int(meta.creation_timestamp)),
            "deletion_timestamp": "0",
            "annotations": {},
            "labels": {"agones.dev/fleet": "f"},
        },
        "spec": {
            "health": {"disabled": False, "period_seconds": 7, "failure_threshold": 4, "initial_delay_seconds": 9}
        },
        "status": {
            "state": "Scheduled",
            "address": "10.0.0.5",
            "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
            "ports": [{"name": "default", "port": 7001}],
            "players": None,
            "counters": {},
            "lists": {},
        },
    }


async def test_disabled_health_reports_no_periods(env: Env) -> None:
    """Agones fills in the health defaults only when health checking is on: ``{disabled: true}`` reads 0s."""
    _, url = await env.add(health=from_wire(Health, {"disabled": True}))
    expected = {"disabled": True, "period_seconds": 0, "failure_threshold": 0, "initial_delay_seconds": 0}
    _, _, doc = await call(env, "GET", url + "/gameserver")
    assert doc["spec"]["health"] == expected
    async with env.http.get(url + "/watch/gameserver") as resp:
        assert (await next_line(resp))["spec"]["health"] == expected


@pytest.mark.parametrize("body", [None, "{}", "not json at all", '{"unknown": 1}'])
async def test_get_ignores_any_body(env: Env, body: str | None) -> None:
    _, url = await env.add()
    status, _, doc = await call(env, "GET", url + "/gameserver", body)
    assert status == 200 and doc["object_meta"]["name"] == "gs-1"


@pytest.mark.parametrize("body", [None, "", "{}", '{"unknown": {"nested": [1, 2]}}'])
async def test_ready_answers_empty_object_and_requests_ready(env: Env, body: str | None) -> None:
    _, url = await env.add()
    assert await call(env, "POST", url + "/ready", body) == (200, "application/json", {})
    gs = await env.stored("gs-1", lambda g: g.state is not S.SCHEDULED)
    assert gs.state is S.REQUEST_READY  # the node agent, not the SDK, makes it Ready


async def test_allocate_stamps_last_allocated(env: Env) -> None:
    await env.add(state=S.READY)
    url = f"http://127.0.0.1:{env.host.port_of('gs-1')}"
    before = time.time()
    assert await call(env, "POST", url + "/allocate", "{}") == (200, "application/json", {})
    gs = await env.stored("gs-1", lambda g: g.state is S.ALLOCATED)
    stamp = gs.metadata.annotations[LAST_ALLOCATED_ANNOTATION]
    assert format_timestamp(before - 0.001) <= stamp <= format_timestamp(time.time())


async def test_shutdown(env: Env) -> None:
    _, url = await env.add(state=S.ALLOCATED)
    assert await call(env, "POST", url + "/shutdown") == (200, "application/json", {})
    await env.stored("gs-1", lambda g: g.state is S.SHUTDOWN)


async def test_labels_and_annotations_land_under_the_sdk_prefix(env: Env) -> None:
    _, url = await env.add()
    label = '{"key": "mode", "value": "ctf", "ignored": true}'
    assert await call(env, "PUT", url + "/metadata/label", label) == (200, "application/json", {})
    note = '{"key": "map", "value": "Dust II, night"}'
    assert await call(env, "PUT", url + "/metadata/annotation", note) == (200, "application/json", {})
    gs = await env.stored("gs-1", lambda g: "agones.dev/sdk-map" in g.metadata.annotations)
    assert gs.metadata.labels == {"agones.dev/fleet": "f", "agones.dev/sdk-mode": "ctf"}
    assert gs.metadata.annotations == {"agones.dev/sdk-map": "Dust II, night"}

    async def visible() -> bool:
        _, _, doc = await call(env, "GET", url + "/gameserver")
        return bool(doc["object_meta"]["annotations"] == {"agones.dev/sdk-map": "Dust II, night"})

    await eventually(visible)


# -- errors ----------------------------------------------------------------------------------------


async def test_health_with_empty_body_is_400(env: Env) -> None:
    _, url = await env.add()
    for body in (None, "", "  "):
        assert await call(env, "POST", url + "/health", body) == (
            400,
            "application/json",
            error(3, "empty body: send {} with each health ping"),
        )
    assert await call(env, "POST", url + "/health", "{}") == (200, "application/json", {})
    assert await call(env, "POST", url + "/health", "{}{}") == (200, "application/json", {})


BAD_INPUT = [
    ("POST", "/ready", "{", "malformed JSON"),
    ("POST", "/ready", "[]", "expected a JSON object, got an array"),
    ("POST", "/allocate", '"x"', "expected a JSON object, got a string"),
    ("POST", "/shutdown", "null", "expected a JSON object, got null"),
    ("POST", "/health", "{}x", "malformed JSON"),
    ("POST", "/health", "[]", "expected a JSON object, got an array"),
    ("POST", "/reserve", '{"seconds": "abc"}', "seconds: expected an integer, got 'abc'"),
    ("POST", "/reserve", '{"seconds": true}', "seconds: expected an integer or a string holding one, got a boolean"),
    ("POST", "/reserve", '{"seconds": 1.5}', "seconds: expected an integer, got 1.5"),
    ("POST", "/reserve", '{"seconds": "99999999999999999999"}', "seconds: '99999999999999999999' is out of the int64"),
    ("POST", "/reserve", '{"seconds": {}}', "seconds: expected an integer or a string holding one, got an object"),
    ("PUT", "/metadata/label", '{"key": 5, "value": "v"}', "key: expected a string, got a number"),
    ("PUT", "/metadata/label", '{"key": "k", "value": ["v"]}', "value: expected a string, got an array"),
    ("PUT", "/metadata/annotation", '{"key": "k", "value": false}', "value: expected a string, got a boolean"),
    ("PUT", "/metadata/label", "{'key': 'k'}", "malformed JSON"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body", "message"), BAD_INPUT)
async def test_bad_input_is_400_with_the_error_body(env: Env, method: str, path: str, body: str, message: str) -> None:
    _, url = await env.add()
    status, ctype, doc = await call(env, method, url + path, body)
    assert (status, ctype, doc["code"], doc["details"]) == (400, "application/json", 3, [])
    assert doc["message"].startswith(message)


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/metadata/label", '{"key": "has space", "value": "v"}', "invalid label key 'agones.dev/sdk-has space'"),
        ("/metadata/label", '{"value": "v"}', "invalid label key 'agones.dev/sdk-'"),
        ("/metadata/label", '{"key": "ok", "value": "not ok"}', "invalid label value 'not ok'"),
        ("/metadata/label", '{"key": "' + "x" * 60 + '", "value": "v"}', "invalid label key"),
        ("/metadata/annotation", '{"key": "a/b", "value": "v"}', "invalid annotation key 'agones.dev/sdk-a/b'"),
    ],
)
async def test_invalid_metadata_is_400_and_nothing_is_written(env: Env, path: str, body: str, message: str) -> None:
    _, url = await env.add()
    status, _, doc = await call(env, "PUT", url + path, body)
    assert (status, doc["code"], doc["details"]) == (400, 3, [])
    assert doc["message"].startswith(message)
    session = env.host.sessions["gs-1"]
    assert session.writer.idle and env.store.updates == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/ready"), ("POST", "/gameserver"), ("PUT", "/reserve"), ("DELETE", "/metadata/label")],
)
async def test_a_wrong_method_is_unimplemented_as_the_gateway_answers(env: Env, method: str, path: str) -> None:
    """grpc-gateway turns "Method Not Allowed" into gRPC UNIMPLEMENTED, hence HTTP 501 (not 405)."""
    _, url = await env.add()
    assert await call(env, method, url + path, "{}") == (501, "application/json", error(12, "Method Not Allowed"))
    assert env.store.updates == 0


async def test_an_unknown_path_is_not_found(env: Env) -> None:
    _, url = await env.add()
    assert await call(env, "GET", url + "/nope") == (404, "application/json", error(5, "Not Found"))


async def test_garbage_never_yields_a_server_error(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    """Nothing a client sends crashes the process or produces a 500 with a traceback."""
    _, url = await env.add()
    bodies = [b"", b"{", b"\xff\xfe\x00", b"[1,2]", b'{"seconds":{"$ne":1}}', b"1e999", b"\x00" * 1000, b"{}" * 50]
    routes = [
        ("POST", "/ready"),
        ("POST", "/allocate"),
        ("POST", "/health"),
        ("POST", "/reserve"),
        ("PUT", "/metadata/label"),
        ("PUT", "/metadata/annotation"),
        ("GET", "/gameserver"),
        ("DELETE", "/ready"),
    ]
    with caplog.at_level(logging.ERROR):
        for method, path in routes:
            for body in bodies:
                async with env.http.request(method, url + path, data=body) as resp:
                    doc = await resp.json()
                    wrong_method = (resp.status, doc.get("code")) == (501, 12)  # the gateway's answer, by design
                    assert resp.status < 500 or wrong_method, (method, path, body, doc)
                    assert isinstance(doc, dict)
                    assert doc == {} or set(doc) == {"code", "message", "details"} or "object_meta" in doc
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    status, _, _ = await call(env, "GET", url + "/gameserver")
    assert status == 200


# -- reserve ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", ['"1"', "1"])
async def test_reserve_then_back_to_ready(env: Env, seconds: str) -> None:
    _, url = await env.add(state=S.READY)
    before = time.time()
    assert await call(env, "POST", url + "/reserve", f'{{"seconds": {seconds}}}') == (200, "application/json", {})
    after = time.time()
    gs = await env.stored("gs-1", lambda g: g.state is S.RESERVED)
    assert gs.status.reserved_until is not None
    assert before + 1 - 0.01 <= gs.status.reserved_until <= after + 1 + 0.01
    gs = await env.stored("gs-1", lambda g: g.state is not S.RESERVED)
    assert (gs.state, gs.status.reserved_until) == (S.REQUEST_READY, None)
    assert env.host.sessions["gs-1"].reserve_deadline is None


@pytest.mark.parametrize("body", [None, "{}", '{"seconds": "0"}', '{"seconds": 0}', '{"seconds": "-5"}'])
async def test_reserve_without_seconds_is_indefinite(env: Env, body: str | None) -> None:
    _, url = await env.add(state=S.READY)
    assert await call(env, "POST", url + "/reserve", body) == (200, "application/json", {})
    gs = await env.stored("gs-1", lambda g: g.state is S.RESERVED)
    assert gs.status.reserved_until is None
    assert env.host.sessions["gs-1"].reserve_deadline is None


@pytest.mark.parametrize("seconds", ['"9223372036854775807"', "315360001"])
async def test_reserve_has_no_upper_bound(env: Env, seconds: str) -> None:
    """Agones takes any seconds; a reservation past what a timestamp carries ends in the year 9999."""
    _, url = await env.add(state=S.READY)
    before = time.time()
    assert await call(env, "POST", url + "/reserve", f'{{"seconds": {seconds}}}') == (200, "application/json", {})
    gs = await env.stored("gs-1", lambda g: g.state is S.RESERVED)
    assert gs.status.reserved_until is not None
    # Stored timestamps carry milliseconds, so the deadline may read up to 1 ms before ``before + seconds``.
    assert gs.status.reserved_until >= min(before - 0.001 + int(json.loads(seconds)), LATEST_TIMESTAMP)
    assert env.host.sessions["gs-1"].reserve_deadline is not None


async def test_ready_or_allocate_cancel_the_reserve_timer(env: Env) -> None:
    _, url = await env.add(state=S.READY)
    session = env.host.sessions["gs-1"]

    def armed() -> bool:
        return session.reserve_deadline is not None

    await call(env, "POST", url + "/reserve", '{"seconds": "30"}')
    assert armed()
    await call(env, "POST", url + "/allocate")
    assert not armed()
    await call(env, "POST", url + "/reserve", '{"seconds": "30"}')
    assert armed()
    await call(env, "POST", url + "/ready")
    assert not armed()
    assert await session.flush(5)
    gs = await env.store.get("gs-1")
    assert (gs.state, gs.status.reserved_until) == (S.REQUEST_READY, None)


async def test_reserve_timer_does_not_undo_an_allocation(env: Env) -> None:
    """The allocator may take a Reserved server meanwhile; the timer then leaves it alone."""
    _, url = await env.add(state=S.READY)
    await call(env, "POST", url + "/reserve", '{"seconds": "1"}')
    await env.stored("gs-1", lambda g: g.state is S.RESERVED)
    await modify(env.store.inner, "gs-1", lambda g: g.with_status(state=S.ALLOCATED, reserved_until=None))
    session = env.host.sessions["gs-1"]
    await eventually(lambda: session.reserve_deadline is None)
    assert await session.flush(5)
    assert (await env.store.get("gs-1")).state is S.ALLOCATED


# -- health ----------------------------------------------------------------------------------------


async def test_missed_health_pings_make_the_server_unhealthy_for_good(env: Env) -> None:
    """End to end on the real clocks (the other health tests run in virtual time)."""
    failures = metrics.HEALTH_FAILURES._value.get()
    _, url = await env.add(state=S.READY, health=Health(period_seconds=1, failure_threshold=2, initial_delay_seconds=0))
    await env.stored("gs-1", lambda g: g.state is S.UNHEALTHY)
    assert metrics.HEALTH_FAILURES._value.get() == failures + 1
    session = env.host.sessions["gs-1"]
    assert session.health_tracker.unhealthy
    # No escaping: Ready and Allocate are accepted but change nothing.
    await env.stored("gs-1", lambda g: True)
    await eventually(lambda: session.get_gameserver().state is S.UNHEALTHY)
    assert await call(env, "POST", url + "/ready") == (200, "application/json", {})
    assert await call(env, "POST", url + "/allocate") == (200, "application/json", {})
    assert await call(env, "POST", url + "/health", "{}") == (200, "application/json", {})
    assert await session.flush(5)
    assert (await env.store.get("gs-1")).state is S.UNHEALTHY


@pytest.fixture
async def virtual(redis_client: aioredis.Redis) -> AsyncIterator[tuple[Env, FakeClock]]:
    """A host whose health deadlines run on a clock the test advances."""
    clock = FakeClock()
    async with running_host(redis_client, clock=clock) as e:
        yield e, clock


async def checked_up_to_now(env: Env, clock: FakeClock, name: str = "gs-1") -> None:
    """Until the health loop has run every check of ``name`` due by the virtual now."""
    tracker = env.host.sessions[name].health_tracker
    await eventually(lambda: tracker.unhealthy or (tracker.next_check or 0) > clock.monotonic())


async def test_pings_keep_the_server_healthy(virtual: tuple[Env, FakeClock]) -> None:
    env, clock = virtual
    health = Health(period_seconds=5, failure_threshold=2, initial_delay_seconds=0)
    _, url = await env.add(state=S.READY, health=health)
    session = env.host.sessions["gs-1"]
    for _ in range(60):  # a ping every 4.9 virtual seconds: always within the period
        assert await call(env, "POST", url + "/health", "{}") == (200, "application/json", {})
        clock.advance(4.9)
    await checked_up_to_now(env, clock)
    assert session.health_tracker.failures == 0 and not session.health_tracker.unhealthy
    assert (await env.store.get("gs-1")).state is S.READY
    clock.advance(10)  # and stopping them does the rest: two checks without a ping
    await env.stored("gs-1", lambda g: g.state is S.UNHEALTHY)
    assert session.health_tracker.failures == 2


async def test_disabled_health_never_fails(virtual: tuple[Env, FakeClock]) -> None:
    env, clock = virtual
    await env.add(state=S.READY, health=Health(disabled=True, period_seconds=1, failure_threshold=1))
    await env.add("gs-witness", state=S.READY, health=Health(period_seconds=1, failure_threshold=1))
    clock.advance(1000)
    await env.stored("gs-witness", lambda g: g.state is S.UNHEALTHY)  # the loop ran at the virtual now
    session = env.host.sessions["gs-1"]
    assert session.health_tracker.failures == 0 and not session.health_tracker.unhealthy
    assert session.check_health(clock.monotonic() + 1000) is False
    assert (await env.store.get("gs-1")).state is S.READY


# -- coalescing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrent", [True, False], ids=["gathered", "sequential"])
async def test_a_burst_of_calls_is_a_handful_of_writes(redis_client: aioredis.Redis, concurrent: bool) -> None:
    interval = 0.5
    async with running_host(redis_client, SdkSettings(write_interval=interval, health_tick=0.05)) as env:
        _, url = await env.add(state=S.READY)
        writes_before = env.store.updates
        started = time.monotonic()
        requests = [
            call(env, "PUT", url + "/metadata/label", json.dumps({"key": f"k{i}", "value": f"v{i}"}))
            for i in range(100)
        ]
        if concurrent:
            results = await asyncio.gather(*requests)
        else:
            results = [await r for r in requests]
        elapsed = time.monotonic() - started
        assert all(r == (200, "application/json", {}) for r in results)
        gs = await env.stored("gs-1", lambda g: len(g.metadata.labels) == 101)
        assert gs.metadata.labels == {"agones.dev/fleet": "f", **{f"agones.dev/sdk-k{i}": f"v{i}" for i in range(100)}}
        writes = env.store.updates - writes_before
        # At most one write per interval, the first one at once: 100 calls can only be 100 writes
        # if they took 50 s.
        assert 0 < writes <= 2 + math.ceil(elapsed / interval), (writes, elapsed)
        assert writes == env.host.sessions["gs-1"].writer.writes


# -- watch -----------------------------------------------------------------------------------------


def to_state(new: GameServerState) -> Callable[[GameServer], GameServer]:
    return lambda gs: gs.with_status(state=new)


async def next_line(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    line = await asyncio.wait_for(resp.content.readline(), 10)
    assert line.endswith(b"\n"), line
    doc = json.loads(line)
    assert set(doc) == {"result"}
    result: dict[str, Any] = doc["result"]
    return result


async def test_watch_sends_the_current_state_then_each_change(env: Env) -> None:
    _, url = await env.add()
    _, _, current = await call(env, "GET", url + "/gameserver")
    async with env.http.get(url + "/watch/gameserver", data="{}") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert await next_line(resp) == current  # at once, before any change

        await call(env, "PUT", url + "/metadata/label", '{"key": "mode", "value": "ctf"}')
        doc = await next_line(resp)
        assert doc["object_meta"]["labels"] == {"agones.dev/fleet": "f", "agones.dev/sdk-mode": "ctf"}

        # Changes made by others (the node agent, the allocator) arrive too, one line each, in order.
        versions = []
        for state in (S.REQUEST_READY, S.READY, S.ALLOCATED):
            written = await modify(env.store.inner, "gs-1", to_state(state))
            assert written is not None
            versions.append((written.metadata.resource_version, state.value))
        seen = []
        for _ in versions:
            doc = await next_line(resp)
            seen.append((doc["object_meta"]["resource_version"], doc["status"]["state"]))
        assert seen == versions


async def test_watch_client_disconnect_is_clean(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    _, url = await env.add()
    session = env.host.sessions["gs-1"]
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            async with aiohttp.ClientSession() as http, http.get(url + "/watch/gameserver") as resp:
                await next_line(resp)
                assert session.watch_count >= 1
        await eventually(lambda: session.watch_count == 0)
        await modify(env.store.inner, "gs-1", lambda g: g.with_status(state=S.READY))  # nobody left to tell
        status, _, _ = await call(env, "GET", url + "/gameserver")
    assert status == 200
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_watch_ends_cleanly_when_the_server_is_removed(env: Env) -> None:
    _, url = await env.add()
    async with env.http.get(url + "/watch/gameserver") as resp:
        await next_line(resp)
        await env.host.remove("gs-1")
        assert await asyncio.wait_for(resp.content.read(), 10) == b""
        assert resp.content.at_eof()


async def test_watch_over_websocket(env: Env) -> None:
    _, url = await env.add()
    session = env.host.sessions["gs-1"]
    async with env.http.ws_connect(url + "/watch/gameserver") as ws:
        first = await ws.receive_json(timeout=10)
        assert first["result"]["object_meta"]["name"] == "gs-1"
        await call(env, "PUT", url + "/metadata/label", '{"key": "mode", "value": "ctf"}')
        update = await ws.receive_json(timeout=10)
        assert update["result"]["object_meta"]["labels"]["agones.dev/sdk-mode"] == "ctf"
    await eventually(lambda: session.watch_count == 0)


async def test_sdk_calls_are_counted_by_method(env: Env) -> None:
    def count(method: str) -> float:
        return float(metrics.SDK_CALLS.labels(method=method)._value.get())

    _, url = await env.add()
    before = {m: count(m) for m in ("Ready", "Health", "SetLabel", "GetGameServer")}
    await call(env, "POST", url + "/ready")
    await call(env, "POST", url + "/health", "{}{}")
    await call(env, "PUT", url + "/metadata/label", '{"key": "a", "value": "b"}')
    await call(env, "GET", url + "/gameserver")
    assert {m: count(m) - before[m] for m in before} == {"Ready": 1, "Health": 2, "SetLabel": 1, "GetGameServer": 1}
