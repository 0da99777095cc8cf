"""The store contract run against ``RedisStore`` on the real embedded Redis, plus Redis-only checks.

Each store the harness hands out has its own client, and reaches Redis through its own small TCP
proxy: an outage kills the store's server-side connections with ``CLIENT KILL ID`` and makes the
proxy refuse reconnects until the outage ends, so the writes made meanwhile really happen while
the watch is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from fleetmatch.backends.redis.client import connect
from fleetmatch.backends.redis.embedded import EmbeddedRedis, _answers_ping
from fleetmatch.backends.redis.pipe import ScriptPipe
from fleetmatch.backends.redis.store import RedisStore, write_pipe
from fleetmatch.models import Fleet, GameServer
from fleetmatch.store import Store
from tests.contract.store_contract import (
    StoreContract,
    StoreHarness,
    fleet,
    gameserver,
    relabel,
    watching,
)


class TcpProxy:
    """Forwards loopback TCP connections to Redis; can refuse new ones to hold an outage open."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.refusing = False
        self.silenced: set[int] = set()
        """Upstream ports (as Redis's CLIENT LIST shows them) of connections that forward nothing more."""
        self.upstream_ports: set[int] = set()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self.refusing:
            await self._close(writer)
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers.add(up_writer)
        local_port = up_writer.get_extra_info("sockname")[1]
        self.upstream_ports.add(local_port)
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer, lambda: local_port in self.silenced)),
            asyncio.create_task(self._pipe(up_reader, writer, lambda: local_port in self.silenced)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            self._pipes.difference_update(pipes)
            self.upstream_ports.discard(local_port)
            await self._close(writer)
            await self._close(up_writer)

    def silence(self, upstream_port: int) -> None:
        """That connection stays open but carries nothing more either way (as one a NAT dropped
        without a word, or a server stalled for it); the others, and new ones, work."""
        self.silenced.add(upstream_port)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, silent: Callable[[], bool]) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if silent():
                    continue
                writer.write(data)
                await writer.drain()

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        self._writers.discard(writer)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        for writer in list(self._writers):
            await self._close(writer)


class RedisHarness(StoreHarness):
    """Stores on their own clients, through a proxy that can hold an outage open. ``pipe``: writes
    over a connection of their own (``write_pipe``, as a backend's stores), else through redis-py."""

    def __init__(self, server: EmbeddedRedis, admin: aioredis.Redis, *, pipe: bool) -> None:
        self.server = server
        self.admin = admin
        self.pipe = pipe
        self._clients: list[aioredis.Redis] = []
        self._pipes: list[ScriptPipe] = []
        self._proxies: dict[int, TcpProxy] = {}  # id(store) -> its proxy

    async def _client(self) -> tuple[aioredis.Redis, TcpProxy, ScriptPipe | None]:
        proxy = TcpProxy(self.server.port)
        await proxy.start()
        client = connect(f"redis://127.0.0.1:{proxy.port}/0", name="contract")
        self._clients.append(client)
        writes = write_pipe(client) if self.pipe else None
        if writes is not None:
            assert writes.direct
            self._pipes.append(writes)
        return client, proxy, writes

    async def gameservers(self, namespace: str = "default", *, history: int | None = None) -> Store[GameServer]:
        client, proxy, writes = await self._client()
        extra = {} if history is None else {"history": history}
        store = RedisStore(client, GameServer, namespace, writes=writes, **extra)
        self._proxies[id(store)] = proxy
        return store

    async def fleets(self, namespace: str = "default") -> Store[Fleet]:
        client, proxy, writes = await self._client()
        store = RedisStore(client, Fleet, namespace, writes=writes)
        self._proxies[id(store)] = proxy
        return store

    @contextlib.asynccontextmanager
    async def outage(self, store: Store[Any]) -> AsyncIterator[None]:
        proxy = self._proxies[id(store)]
        # Wait until the watch sits in its blocking XREAD, so the kill cuts a live watch.
        await wait_for_blocked_xread(self.admin, proxy.upstream_ports)
        proxy.refusing = True
        killed = 0
        for conn in await connections(self.admin, proxy.upstream_ports):
            killed += await self.admin.client_kill_filter(_id=str(conn["id"]))
        assert killed >= 1, "the outage dropped no connection"
        try:
            yield
        finally:
            proxy.refusing = False

    async def close(self) -> None:
        for writes in self._pipes:
            await writes.aclose()
        for client in self._clients:
            await client.aclose()
        for proxy in self._proxies.values():
            await proxy.close()


class TestRedisStore(StoreContract):
    @pytest.fixture(params=[True, False], ids=["write-pipe", "redis-py-writes"])
    async def harness(
        self, request: pytest.FixtureRequest, redis_server: EmbeddedRedis, redis_client: aioredis.Redis
    ) -> AsyncIterator[StoreHarness]:
        harness = RedisHarness(redis_server, redis_client, pipe=request.param)
        try:
            yield harness
        finally:
            await harness.close()


# -- Redis-only behaviour ------------------------------------------------------------------------

_TAG = re.compile(r"\{([^}]*)\}")


async def test_every_key_of_a_namespace_shares_one_hash_tag(redis_client: aioredis.Redis) -> None:
    """One Lua script touches one namespace's keys; on Redis Cluster they must share a slot."""
    for namespace in ("default", "team-a"):
        servers = RedisStore(redis_client, GameServer, namespace, history=2)
        fleets = RedisStore(redis_client, Fleet, namespace)
        gs = await servers.create(gameserver("gs-1"))
        for n in range(3):  # past the history, so the trim floor key exists too
            gs = await servers.update(relabel(gs, n=str(n)))
        await servers.create(gameserver("gs-2"))
        await servers.delete("gs-2")
        await fleets.create(fleet("f-1"))

    keys = sorted(k.decode() if isinstance(k, bytes) else k for k in await redis_client.keys("*"))
    by_namespace: dict[str, set[str]] = {}
    for key in keys:
        tags = _TAG.findall(key)
        assert len(tags) == 1, f"{key} should carry exactly one hash tag"
        by_namespace.setdefault(tags[0], set()).add(key)
    assert set(by_namespace) == {"ns:default", "ns:team-a"}
    for tag, members in by_namespace.items():
        assert len({key_slot(k.encode()) for k in members}) == 1, members
        # objects, versions, generations, event stream and trim floor of GameServers, and Fleets' too
        assert len([k for k in members if ":gameservers:" in k]) == 5, members
        assert any(":fleets:" in k for k in members), members
        assert all(f"{{{tag}}}" in k for k in members)


@pytest.mark.parametrize("pipe", [True, False], ids=["own-connection", "redis-py"])
async def test_watch_survives_killing_every_normal_connection(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis, pipe: bool
) -> None:
    """The blunt outage: ``CLIENT KILL TYPE normal SKIPME yes`` from the writer's own connection.
    ``pipe``: the watched store has a write pipe, so its watch reads over a connection of its own."""
    watch_client = connect(redis_server.url, name="watch")
    writes = write_pipe(watch_client) if pipe else None
    try:
        watched = RedisStore(watch_client, GameServer, writes=writes)
        writer = RedisStore(redis_client, GameServer)  # its single connection issues the kill: spared
        _, version = await watched.list()
        async with watching(watched, version) as watcher:
            current = await writer.create(gameserver("gs-1"))
            expected = [current]
            assert (await watcher.next()).object == current
            await wait_for_blocked_xread(redis_client)
            killed = await redis_client.client_kill_filter(_type="normal", skipme=True)
            assert killed >= 1
            for n in range(5):
                current = await writer.update(relabel(current, n=str(n)))
                expected.append(current)
            await watcher.until(current.metadata.resource_version)
        assert [e.object for e in watcher.delivered] == expected
    finally:
        if writes is not None:
            await writes.aclose()
        await watch_client.aclose()


@pytest.mark.parametrize("pipe", [True, False], ids=["own-connection", "redis-py"])
async def test_an_idle_watch_keeps_its_connection(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis, pipe: bool
) -> None:
    """A watch with nothing to read re-issues its blocking XREAD on the same connection; it must not
    time out, reconnect and back off (which would delay the next event) every ``block_ms``."""
    watch_client = connect(redis_server.url, name="watch")
    writes = write_pipe(watch_client) if pipe else None
    try:
        store = RedisStore(watch_client, GameServer, writes=writes)  # default block_ms
        _, version = await store.list()
        async with watching(store, version) as watcher:
            await wait_for_blocked_xread(redis_client)
            before = await redis_client.info("stats")
            await asyncio.sleep(6.5)  # longer than one 5 s XREAD BLOCK and redis-py's default 5 s socket timeout
            after = await redis_client.info("stats")
            created = await RedisStore(redis_client, GameServer).create(gameserver("gs-1"))
            assert (await watcher.next()).object == created
        assert after["total_connections_received"] == before["total_connections_received"]
    finally:
        if writes is not None:
            await writes.aclose()
        await watch_client.aclose()


async def test_a_watch_gives_up_a_connection_that_stops_answering(
    redis_server: EmbeddedRedis, redis_client: aioredis.Redis
) -> None:
    """A watch reading over its own connection gives it up when a blocking read goes unanswered
    ``read_grace`` past its block time (a stalled Redis, a NAT that dropped the connection without
    a word), and goes on from where it was over a new one: nothing lost, nothing twice."""
    proxy = TcpProxy(redis_server.port)
    await proxy.start()
    watch_client = connect(f"redis://127.0.0.1:{proxy.port}/0", name="watch")
    writes = write_pipe(watch_client)
    try:
        watched = RedisStore(watch_client, GameServer, "stall", writes=writes, block_ms=200, read_grace=0.3)
        writer = RedisStore(redis_client, GameServer, "stall")
        _, version = await watched.list()
        async with watching(watched, version) as watcher:
            first = await writer.create(gameserver("gs-1"))
            assert (await watcher.next()).object == first
            await wait_for_blocked_xread(redis_client, proxy.upstream_ports)
            blocked = [c for c in await connections(redis_client, proxy.upstream_ports) if c["cmd"] == "xread"]
            proxy.silence(int(blocked[0]["addr"].rpartition(":")[2]))
            later = [await writer.create(gameserver(f"gs-{n}")) for n in range(2, 5)]
            async with asyncio.timeout(10):  # 0.5 s to give up, then a new connection
                await watcher.until(later[-1].metadata.resource_version)
        assert [e.object for e in watcher.delivered] == [first, *later]
    finally:
        await writes.aclose()
        await watch_client.aclose()
        await proxy.close()


async def connections(admin: aioredis.Redis, local_ports: set[int] | None = None) -> list[dict[str, Any]]:
    """CLIENT LIST, optionally only the connections coming from ``local_ports``."""
    clients: list[dict[str, Any]] = await admin.client_list()
    if local_ports is None:
        return clients
    return [c for c in clients if int(c["addr"].rpartition(":")[2]) in local_ports]


async def wait_for_blocked_xread(admin: aioredis.Redis, local_ports: set[int] | None = None) -> None:
    """Until some (matching) connection is blocked in XREAD: a watch is live, not merely started."""
    async with asyncio.timeout(10):
        for _ in itertools.count():
            if any(c["cmd"] == "xread" for c in await connections(admin, local_ports)):
                return
            await asyncio.sleep(0.01)


@pytest.mark.parametrize(("reply", "ready"), [(b"-LOADING Valkey is loading the dataset in memory\r\n", False),
                                              (b"+PONG\r\n", True)])  # fmt: skip
async def test_a_redis_still_loading_its_data_is_not_started(reply: bytes, ready: bool) -> None:
    """INFO answers during loading; only PONG means data commands will work."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        assert await asyncio.to_thread(_answers_ping, port, 2.0) is ready


@pytest.mark.parametrize("pipe", [True, False], ids=["own-connection", "redis-py"])
async def test_a_watch_hands_back_the_objects_its_own_store_wrote(redis_server: EmbeddedRedis, pipe: bool) -> None:
    """An allocator sees each of its claims come back through its watch: the store hands out the
    very object ``update`` returned instead of decoding the change again, also when the change comes
    back in the same loop iteration as the write's reply, before the writer has resumed (a blocked
    XREAD, no gathering pause)."""
    client = connect(redis_server.url, name="own-writes")  # a pool: the watch blocks one connection
    writes = write_pipe(client) if pipe else None
    try:
        store = RedisStore(client, GameServer, f"own-writes-{int(pipe)}", watch_gather=0.0, writes=writes)
        created = [await store.create(gameserver(f"gs-{i}")) for i in range(20)]
        _, version = await store.list()
        async with watching(store, version) as watcher:
            for n in range(3):
                updated = await asyncio.gather(*(store.update(relabel(gs, round=str(n))) for gs in created))
                await watcher.until(max((gs.metadata.resource_version for gs in updated), key=_stream_order))
                by_version = {e.object.metadata.resource_version: e.object for e in watcher.delivered}
                assert all(by_version[gs.metadata.resource_version] is gs for gs in updated)
                created = list(updated)
    finally:
        if writes is not None:
            await writes.aclose()
        await client.aclose()


def _stream_order(version: str) -> tuple[int, int]:
    ms, _, seq = version.partition("-")
    return int(ms), int(seq)
