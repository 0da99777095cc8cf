"""The store's script path on its own connection (``ScriptPipe``), on a real Redis: pipelined calls
each get their own reply, NOSCRIPT loads the script, a connection closed while idle is replaced,
a call cancelled mid-flight never hands its reply to another call, and losing Redis is an error (never a
hang), after which calls work again once it is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from fleetmatch.backends.redis.client import connect
from fleetmatch.backends.redis.embedded import EmbeddedRedis
from fleetmatch.backends.redis.scriptpipe import ScriptPipe, pack
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.errors import BackendError
from fleetmatch.models import GameServer, ObjectMeta

ECHO = "return {KEYS[1], ARGV[1]}"


def test_pack_is_resp() -> None:
    assert pack("EVALSHA", b"\x00b", 7) == b"*3\r\n$7\r\nEVALSHA\r\n$2\r\n\x00b\r\n$1\r\n7\r\n"


async def test_concurrent_calls_each_get_their_own_reply(redis_client: aioredis.Redis) -> None:
    pipe = ScriptPipe(redis_client, ECHO)
    replies = await asyncio.gather(*(pipe([f"k{i}"], [f"v{i}"]) for i in range(300)))
    assert replies == [[f"k{i}".encode(), f"v{i}".encode()] for i in range(300)]


async def test_noscript_loads_the_script_and_later_calls_use_it(redis_client: aioredis.Redis) -> None:
    pipe = ScriptPipe(redis_client, ECHO)
    assert await pipe(["a"], [1]) == [b"a", b"1"]
    await redis_client.script_flush()
    replies = await asyncio.gather(*(pipe(["b"], [i]) for i in range(20)))
    assert replies == [[b"b", str(i).encode()] for i in range(20)]
    store = RedisStore(redis_client, GameServer)
    await redis_client.script_flush()
    created = await store.create(GameServer(metadata=ObjectMeta(name="gs-1")))
    assert (await store.get("gs-1")).metadata.resource_version == created.metadata.resource_version


async def test_a_connection_closed_while_idle_is_replaced_before_the_next_call(redis_client: aioredis.Redis) -> None:
    pipe = ScriptPipe(redis_client, ECHO)
    await pipe(["a"], [1])
    killed = await redis_client.client_kill_filter(_type="normal", skipme=True)  # the pipe's connection
    assert killed >= 1
    assert await pipe(["a"], [2]) == [b"a", b"2"]


async def test_a_call_cancelled_in_flight_never_hands_its_reply_to_another(redis_client: aioredis.Redis) -> None:
    pipe = ScriptPipe(redis_client, ECHO)
    for attempt in range(20):
        calls = [asyncio.create_task(pipe(["k"], [f"{attempt}-{i}"])) for i in range(10)]
        for _ in range(attempt % 4):
            await asyncio.sleep(0)
        calls[5].cancel()
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        for i, outcome in enumerate(outcomes):
            if i != 5 and not isinstance(outcome, RedisConnectionError):
                assert outcome == [b"k", f"{attempt}-{i}".encode()]  # its own reply, or a failure
        # Whatever happened, the next calls read their own replies.
        assert await pipe(["k"], ["next"]) == [b"k", b"next"]


async def test_redis_lost_is_an_error_and_calls_work_again_when_it_is_back(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, persist=False)
    server.start()
    client = connect(server.url, name="pipe-test")
    try:
        store = RedisStore(client, GameServer)
        await store.create(GameServer(metadata=ObjectMeta(name="gs-1")))
        port = server.port
        server.stop()
        with pytest.raises(BackendError):
            await store.create(GameServer(metadata=ObjectMeta(name="gs-2")))
        server = EmbeddedRedis(tmp_path, persist=False, port=port)
        server.start()
        created = await store.create(GameServer(metadata=ObjectMeta(name="gs-3")))  # a fresh Redis: NOSCRIPT too
        assert (await store.get("gs-3")).metadata.resource_version == created.metadata.resource_version
    finally:
        await client.aclose()
        server.stop()
