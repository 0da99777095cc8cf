"""SdkHost: many game servers' SDKs in one process, each on its own loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import urllib.request
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis

from fleetmatch.backends.redis.embedded import free_port
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.models import GameServer, GameServerState, Health, ObjectMeta
from fleetmatch.settings import SdkSettings
from fleetmatch.store import modify
from sdk_sidecar import SdkHost, metrics
from tests.integration.sdkenv import Env, FakeClock, call, running_host
from tests.waiting import eventually

S = GameServerState


@pytest.fixture
async def env(redis_client: aioredis.Redis) -> AsyncIterator[Env]:
    async with running_host(redis_client) as e:
        yield e


async def test_many_servers_one_process_one_port_each(env: Env) -> None:
    sessions = metrics.SESSIONS._value.get()
    urls = {}
    for i in range(20):
        _, url = await env.add(f"gs-{i}")
        urls[f"gs-{i}"] = url
    assert len(set(urls.values())) == 20
    assert metrics.SESSIONS._value.get() == sessions + 20
    assert set(env.host.sessions) == set(urls)
    for name, url in urls.items():
        status, _, doc = await call(env, "GET", url + "/gameserver")
        assert (status, doc["object_meta"]["name"]) == (200, name)
        assert url.endswith(f":{env.host.port_of(name)}")
    await call(env, "PUT", urls["gs-7"] + "/metadata/label", '{"key": "only", "value": "seven"}')
    gs = await env.stored("gs-7", lambda g: "agones.dev/sdk-only" in g.metadata.labels)
    assert gs.metadata.labels["agones.dev/sdk-only"] == "seven"
    others = [await env.store.get(f"gs-{i}") for i in range(20) if i != 7]
    assert all("agones.dev/sdk-only" not in g.metadata.labels for g in others)


async def test_add_is_idempotent_and_takes_an_explicit_port(env: Env) -> None:
    gs, _ = await env.add()
    assert await env.host.add(gs) == env.host.port_of("gs-1")
    port = free_port()
    other = await env.store.create(GameServer(metadata=ObjectMeta(name="gs-2")))
    assert await env.host.add(other, port=port) == port
    status, _, doc = await call(env, "GET", f"http://127.0.0.1:{port}/gameserver")
    assert (status, doc["object_meta"]["name"]) == (200, "gs-2")


async def test_add_before_start_is_refused(redis_client: aioredis.Redis) -> None:
    host = SdkHost(RedisStore(redis_client, GameServer), SdkSettings())
    with pytest.raises(RuntimeError, match="start"):
        await host.add(GameServer(metadata=ObjectMeta(name="gs-1")))
    await host.close()


async def test_remove_closes_the_port_and_is_idempotent(env: Env) -> None:
    _, url = await env.add()
    port = env.host.port_of("gs-1")
    assert port is not None
    await env.host.remove("gs-1")
    await env.host.remove("gs-1")
    await env.host.remove("never-added")
    assert env.host.port_of("gs-1") is None and "gs-1" not in env.host.sessions
    with pytest.raises(aiohttp.ClientConnectorError):
        async with aiohttp.ClientSession() as http, http.get(url + "/gameserver"):
            pass
    # The port can be served again, by another server, without a stale connection reaching it.
    gs2 = await env.store.create(GameServer(metadata=ObjectMeta(name="gs-2")))
    assert await env.host.add(gs2, port=port) == port
    status, _, doc = await call(env, "GET", url + "/gameserver")
    assert (status, doc["object_meta"]["name"]) == (200, "gs-2")


async def test_remove_closes_kept_alive_connections(env: Env) -> None:
    """A kept-alive connection from the old game must not reach a later server on the same port."""
    await env.add()
    port = env.host.port_of("gs-1")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /gameserver HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1])
        await reader.readexactly(length)
        await env.host.remove("gs-1")
        assert await asyncio.wait_for(reader.read(), 10) == b""
    finally:
        writer.close()
        await writer.wait_closed()


async def test_observe_ignores_unknown_names(env: Env) -> None:
    _, url = await env.add()
    env.host.observe(GameServer(metadata=ObjectMeta(name="stranger", resource_version="9-9")))
    gs = await modify(env.store.inner, "gs-1", lambda g: g.with_status(state=S.READY))
    assert gs is not None
    env.host.observe(gs)  # the informer delivers it too; a duplicate is ignored
    status, _, doc = await call(env, "GET", url + "/gameserver")
    assert (status, doc["status"]["state"], doc["object_meta"]["resource_version"]) == (
        200,
        "Ready",
        gs.metadata.resource_version,
    )


async def test_writes_are_rate_limited_and_flush_forces_them(redis_client: aioredis.Redis) -> None:
    async with running_host(redis_client, SdkSettings(write_interval=60, health_tick=0.05)) as env:
        _, url = await env.add()
        await call(env, "PUT", url + "/metadata/label", '{"key": "a", "value": "1"}')
        await env.stored("gs-1", lambda g: "agones.dev/sdk-a" in g.metadata.labels)  # the first write is at once
        await call(env, "PUT", url + "/metadata/label", '{"key": "b", "value": "2"}')
        await call(env, "POST", url + "/allocate")
        await asyncio.sleep(0.3)
        assert "agones.dev/sdk-b" not in (await env.store.get("gs-1")).metadata.labels  # waits for the interval
        assert await env.host.flush("gs-1")
        gs = await env.store.get("gs-1")
        assert (gs.state, gs.metadata.labels["agones.dev/sdk-b"]) == (S.ALLOCATED, "2")
        assert env.store.updates == 2
        assert await env.host.flush("gs-1") and await env.host.flush("not-hosted")


async def test_remove_writes_what_is_pending(redis_client: aioredis.Redis) -> None:
    async with running_host(redis_client, SdkSettings(write_interval=60, health_tick=0.05)) as env:
        _, url = await env.add()
        await call(env, "POST", url + "/ready")
        await env.stored("gs-1", lambda g: g.state is S.REQUEST_READY)
        await call(env, "POST", url + "/shutdown")  # a game that shuts down and exits at once
        await env.host.remove("gs-1")
        assert (await env.store.get("gs-1")).state is S.SHUTDOWN


async def test_a_deleted_server_drops_its_changes(env: Env) -> None:
    _, url = await env.add()
    await env.store.delete("gs-1")
    gone = metrics.STORE_WRITES.labels(result="gone")._value.get()
    assert await call(env, "POST", url + "/ready") == (200, "application/json", {})
    assert await env.host.flush("gs-1", within=5)
    assert metrics.STORE_WRITES.labels(result="gone")._value.get() == gone + 1
    status, _, _ = await call(env, "GET", url + "/gameserver")
    assert status == 200  # still served until the node agent removes it


async def test_one_health_loop_judges_each_server_alone(redis_client: aioredis.Redis) -> None:
    """In virtual time: a minute of health checks passes in a few real ticks of the loop."""
    clock = FakeClock()
    async with running_host(redis_client, clock=clock) as env:
        health = Health(period_seconds=5, failure_threshold=3, initial_delay_seconds=5)
        _, pinged = await env.add("gs-pinged", state=S.READY, health=health)
        await env.add("gs-silent", state=S.READY, health=health)
        await env.add("gs-disabled", state=S.READY, health=Health(disabled=True))
        for _ in range(30):  # a ping every 2 virtual seconds, for a minute
            assert await call(env, "POST", pinged + "/health", "{}") == (200, "application/json", {})
            clock.advance(2)
        await env.stored("gs-silent", lambda g: g.state is S.UNHEALTHY)
        assert env.host.sessions["gs-silent"].health_tracker.failures == 3
        tracker = env.host.sessions["gs-pinged"].health_tracker
        await eventually(lambda: (tracker.next_check or 0) > clock.monotonic())  # checked up to now
        assert tracker.failures == 0 and not tracker.unhealthy
        assert (await env.store.get("gs-pinged")).state is S.READY
        assert (await env.store.get("gs-disabled")).state is S.READY


async def test_a_reservation_survives_an_agent_restart(env: Env) -> None:
    """A server stored as Reserved until t gets its timer back when a new host adds it."""
    gs = await env.store.create(
        GameServer(metadata=ObjectMeta(name="gs-1")).with_status(
            state=S.RESERVED, reserved_until=round(time.time() + 1, 3)
        )
    )
    await env.host.add(gs)
    assert env.host.sessions["gs-1"].reserve_deadline is not None
    gs = await env.stored("gs-1", lambda g: g.state is not S.RESERVED)
    assert (gs.state, gs.status.reserved_until) == (S.REQUEST_READY, None)


async def test_close_ends_open_watch_streams(redis_client: aioredis.Redis) -> None:
    async with running_host(redis_client) as env:
        _, url = await env.add()
        async with aiohttp.ClientSession() as http, http.get(url + "/watch/gameserver") as resp:
            first = json.loads(await resp.content.readline())
            assert first["result"]["object_meta"]["name"] == "gs-1"
            await env.host.close()
            assert await asyncio.wait_for(resp.content.read(), 10) == b""
        assert env.host.sessions == {}


async def test_a_stalled_host_does_not_blame_games_that_kept_pinging(redis_client: aioredis.Redis) -> None:
    """The host's event loop blocks for longer than the health deadline while the game keeps pinging
    (its pings wait in the socket's queue): no server turns Unhealthy for the host's stall."""
    health = Health(period_seconds=1, failure_threshold=2, initial_delay_seconds=0)
    async with running_host(redis_client) as env:
        _, url = await env.add("gs-1", state=S.READY, health=health)
        stop = threading.Event()

        def game() -> None:  # a real game: its own thread, pinging whatever the host does
            while not stop.is_set():
                request = urllib.request.Request(url + "/health", data=b"{}", method="POST")
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(request, timeout=10).read()
                stop.wait(0.3)

        pinger = threading.Thread(target=game, daemon=True)
        pinger.start()
        try:
            await asyncio.sleep(1.0)
            time.sleep(4.0)  # noqa: ASYNC251  (the host stalls: its loop is blocked, pings queue up meanwhile)
            await asyncio.sleep(2.0)  # running again: the queued pings are read
            assert not env.host.sessions["gs-1"].health_tracker.unhealthy
            assert (await env.store.get("gs-1")).state is S.READY
        finally:
            stop.set()
            await asyncio.to_thread(pinger.join, 15)


async def test_many_servers_failing_at_once_get_one_more_period(redis_client: aioredis.Redis) -> None:
    """Three silent servers miss their checks at the same tick: suspected host trouble, one more
    period each; still silent after it, they are Unhealthy."""
    clock = FakeClock()
    health = Health(period_seconds=5, failure_threshold=2, initial_delay_seconds=0)
    async with running_host(redis_client, clock=clock) as env:
        for i in range(3):
            await env.add(f"gs-{i}", state=S.READY, health=health)
        mass = metrics.MASS_HEALTH_FAILURES._value.get()
        clock.advance(10.5)  # two periods without a ping: each would fail now
        await eventually(lambda: metrics.MASS_HEALTH_FAILURES._value.get() == mass + 1)
        trackers = [env.host.sessions[f"gs-{i}"].health_tracker for i in range(3)]
        assert not any(t.unhealthy for t in trackers)
        clock.advance(10.5)  # and after the extra period, still nothing
        for i in range(3):
            await env.stored(f"gs-{i}", lambda g: g.state is S.UNHEALTHY)
        assert metrics.MASS_HEALTH_FAILURES._value.get() == mass + 1
