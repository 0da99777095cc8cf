"""``ScriptPipe``: the stores' write script over a connection of its own (``fleetmatch.backends.redis.pipe``),
against the test Redis and, where a fault must be timed exactly, a scripted fake server."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from fleetmatch.backends.redis.client import connect
from fleetmatch.backends.redis.embedded import EmbeddedRedis
from fleetmatch.backends.redis.pipe import ScriptPipe, pack

ECHO = "return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}"


def test_commands_are_packed_as_resp_arrays_of_bulk_strings() -> None:
    assert (
        pack([b"EVALSHA", "abc", 2, 1.5, b""])
        == b"*5\r\n$7\r\nEVALSHA\r\n$3\r\nabc\r\n$1\r\n2\r\n$3\r\n1.5\r\n$0\r\n\r\n"
    )
    assert pack(["é"]) == b"*1\r\n$2\r\n\xc3\xa9\r\n"


@pytest.fixture
async def pipe(redis_server: EmbeddedRedis, redis_client: aioredis.Redis) -> AsyncIterator[ScriptPipe]:
    client = connect(redis_server.url, name=f"pipe-{uuid.uuid4().hex[:8]}")  # its connections: this test's
    writes = ScriptPipe(client, ECHO)
    assert writes.direct
    yield writes
    await writes.aclose()
    await client.aclose()


async def writers(admin: aioredis.Redis, pipe: ScriptPipe) -> list[dict[str, str]]:
    """The pipe's connections as Redis lists them (named after its client, ``-writes`` added)."""
    name = f"{pipe._kwargs['client_name']}-writes" if pipe._kwargs else ""
    return [c for c in await admin.client_list() if c.get("name") == name]


async def test_calls_pipeline_on_one_connection_and_answer_in_order(
    pipe: ScriptPipe, redis_client: aioredis.Redis
) -> None:
    replies = await asyncio.gather(*(pipe(keys=[f"k{i}"], args=[f"a{i}", i]) for i in range(200)))
    assert replies == [[f"k{i}".encode(), f"a{i}".encode(), i + 1] for i in range(200)]
    assert len(await writers(redis_client, pipe)) == 1  # named after the client, one connection


async def test_a_flushed_script_cache_is_refilled_by_one_eval(pipe: ScriptPipe, redis_client: aioredis.Redis) -> None:
    await pipe(keys=["k"], args=["a", 1])
    await redis_client.script_flush()  # as after a Redis restart
    assert await pipe(keys=["k"], args=["b", 2]) == [b"k", b"b", 3]
    assert await redis_client.script_exists(pipe._sha.decode()) == [True]


async def test_a_script_error_is_a_response_error(redis_client: aioredis.Redis) -> None:
    failing = ScriptPipe(redis_client, "if ARGV[1] == 'fail' then return redis.error_reply('boom') end return 1")
    try:
        with pytest.raises(ResponseError, match="boom"):
            await failing(keys=[], args=["fail"])
        assert await failing(keys=[], args=["pass"]) == 1  # the connection goes on, replies in order
    finally:
        await failing.aclose()


async def test_a_killed_connection_is_opened_again(pipe: ScriptPipe, redis_client: aioredis.Redis) -> None:
    await pipe(keys=["k"], args=["a", 1])
    [conn] = await writers(redis_client, pipe)
    assert await redis_client.client_kill_filter(_id=str(conn["id"])) == 1

    async def answers() -> bool:
        with contextlib.suppress(ConnectionError):
            return bool(await pipe(keys=["k"], args=["b", 2]) == [b"k", b"b", 3])
        return False

    for _ in range(50):  # the first call may still meet the dying connection: it fails, never hangs
        if await asyncio.wait_for(answers(), 5):
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the pipe did not reconnect")
    [again] = await writers(redis_client, pipe)
    assert again["id"] != conn["id"]


async def test_a_cancelled_call_does_not_take_the_next_ones_reply(pipe: ScriptPipe) -> None:
    await pipe(keys=["k"], args=["warm", 0])  # connected: the next calls are written at once
    first = asyncio.ensure_future(pipe(keys=["k"], args=["first", 1]))
    second = asyncio.ensure_future(pipe(keys=["k"], args=["second", 2]))
    await asyncio.sleep(0)  # both written
    first.cancel()
    assert await second == [b"k", b"second", 3]
    assert await pipe(keys=["k"], args=["third", 3]) == [b"k", b"third", 4]


async def test_auth_and_database_come_from_the_url(redis_server: EmbeddedRedis, redis_client: aioredis.Redis) -> None:
    await redis_client.acl_setuser("writer", enabled=True, passwords=["+s3cret"], keys=["*"], commands=["+@all"])
    client = connect(f"redis://writer:s3cret@127.0.0.1:{redis_server.port}/3", name="acl")
    writes = ScriptPipe(client, "redis.call('SET', KEYS[1], ARGV[1]); return 1")
    try:
        assert await writes(keys=["pipe-db"], args=["in-3"]) == 1
        assert await client.get("pipe-db") == b"in-3"  # database 3, as the client's
        assert await redis_client.get("pipe-db") is None  # not database 0
        wrong = connect(f"redis://writer:wrong@127.0.0.1:{redis_server.port}/3", name="acl")
        refused = ScriptPipe(wrong, "return 1")
        with pytest.raises(ResponseError, match=r"WRONGPASS|invalid"):
            await refused(keys=[], args=[])
        await wrong.aclose()
    finally:
        await writes.aclose()
        await client.aclose()
        await redis_client.acl_deluser("writer")


@pytest.mark.parametrize("url", ["rediss://127.0.0.1:1/0", "unix:///tmp/no-such.sock"])
def test_tls_and_unix_sockets_go_through_redis_py(url: str) -> None:
    client = connect(url)
    assert not ScriptPipe(client, "return 1").direct


Server = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def fake_redis(serve: Server) -> AsyncIterator[int]:
    """A server answering as ``serve`` scripts it; every connection closed when the block ends."""
    handlers: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await serve(reader, writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        for writer in writers:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await server.wait_closed()


async def test_a_call_in_flight_fails_when_its_connection_drops_and_the_next_reconnects() -> None:
    """A Redis that dies holding a write: the caller gets ``ConnectionError`` (the store's
    BackendError), not a hang; the next call opens a new connection."""
    accepted = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        await reader.readuntil(b"SETNAME\r\n")
        writer.write(b"+OK\r\n")  # CLIENT SETNAME
        await reader.readuntil(b"EVALSHA\r\n")
        if accepted == 1:
            writer.close()  # dies with the write in flight
            return
        await asyncio.sleep(0.01)
        writer.write(b":7\r\n")
        await writer.drain()
        await reader.read()

    async with fake_redis(serve) as port:
        client = connect(f"redis://127.0.0.1:{port}/0", name="fake")
        writes = ScriptPipe(client, "return 7")
        try:
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(writes(keys=[], args=[]), 5)
            assert await asyncio.wait_for(writes(keys=[], args=[]), 5) == 7
            assert accepted == 2
        finally:
            await writes.aclose()
            await client.aclose()


async def test_a_connection_idle_past_the_health_interval_is_pinged_and_replaced_if_silent() -> None:
    """As redis-py's ``health_check_interval``: a NAT that dropped an idle connection silently would
    leave a write waiting for TCP to give up. The pipe PINGs a connection idle that long first; one
    that does not answer in time is replaced, and the write goes on the new one."""
    accepted = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        mine = accepted
        await reader.readuntil(b"SETNAME\r\n")
        writer.write(b"+OK\r\n")
        await reader.readuntil(b"EVALSHA\r\n")
        writer.write(b":%d\r\n" % mine)
        await reader.read()  # then silent, as a peer a NAT forgot: the PING gets no answer

    async with fake_redis(serve) as port:
        client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0", client_name="fake")
        writes = ScriptPipe(client, "return 1")
        writes.health_interval, writes.ping_timeout = 0.1, 0.2
        try:
            assert await asyncio.wait_for(writes(keys=[], args=[]), 3) == 1
            await asyncio.sleep(0.15)
            assert await asyncio.wait_for(writes(keys=[], args=[]), 3) == 2  # on a new connection
            assert accepted == 2
        finally:
            await writes.aclose()
            await client.aclose()
