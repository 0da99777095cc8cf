"""Helpers shared by the SDK integration tests: an SdkHost on the real Redis store, fed by an
informer, and an HTTP session to call it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.informer import Informer
from fleetmatch.models import (
    GameServer,
    GameServerPort,
    GameServerSpec,
    GameServerState,
    GameServerStatus,
    Health,
    ObjectMeta,
    PortStatus,
)
from fleetmatch.settings import SdkSettings
from fleetmatch.store import EventType, WatchEvent
from fleetmatch.tasks import cancel_and_wait
from sdk_sidecar import SdkHost
from sdk_sidecar.clock import SYSTEM_CLOCK, Clock
from tests.waiting import eventually

S = GameServerState


class CountingStore:
    """The real store, counting the writes that reach it (no I/O is faked)."""

    def __init__(self, inner: RedisStore[GameServer]) -> None:
        self.inner = inner
        self.updates = 0

    @property
    def kind(self) -> type[GameServer]:
        return self.inner.kind

    @property
    def namespace(self) -> str:
        return self.inner.namespace

    async def get(self, name: str) -> GameServer:
        return await self.inner.get(name)

    async def list(self) -> tuple[list[GameServer], str]:
        return await self.inner.list()

    def watch(self, since: str) -> AsyncIterator[WatchEvent[GameServer]]:
        return self.inner.watch(since)

    async def create(self, obj: GameServer) -> GameServer:
        return await self.inner.create(obj)

    async def update(self, obj: GameServer) -> GameServer:
        written = await self.inner.update(obj)
        self.updates += 1
        return written

    async def delete(self, name: str, *, version: str | None = None) -> None:
        await self.inner.delete(name, version=version)


@dataclass
class Env:
    store: CountingStore
    host: SdkHost
    http: aiohttp.ClientSession

    async def add(self, name: str = "gs-1", *, health: Health | None = None, **status: Any) -> tuple[GameServer, str]:
        """Create a GameServer, host its SDK; return it and its SDK base URL."""
        gs = await self.store.create(
            GameServer(
                metadata=ObjectMeta(name=name, labels={"agones.dev/fleet": "f"}),
                spec=GameServerSpec(
                    ports=(GameServerPort(name="default", host_port=7001),),
                    health=health or Health(disabled=True),
                ),
                status=GameServerStatus(
                    **{
                        "state": S.SCHEDULED,
                        "address": "10.0.0.5",
                        "ports": (PortStatus("default", 7001),),
                        "node_name": "local",
                        **status,
                    }
                ),
            )
        )
        port = await self.host.add(gs)
        return gs, f"http://127.0.0.1:{port}"

    async def stored(self, name: str, predicate: Callable[[GameServer], bool], within: float = 10.0) -> GameServer:
        """The stored GameServer once ``predicate`` holds (fails after ``within`` seconds)."""
        last: GameServer | None = None

        async def check() -> bool:
            nonlocal last
            last = await self.store.get(name)
            return predicate(last)

        await eventually(check, within, what=lambda: f"stored {name}: {last}")
        assert last is not None
        return last


class FakeClock:
    """Virtual time: it stands still until the test calls ``advance`` (both readings move together)."""

    EPOCH = 700_000_000.0

    def __init__(self) -> None:
        self.now = 1e9  # far past any real monotonic reading: code that reads the real clock sees no time pass

    def time(self) -> float:
        return self.EPOCH + self.now

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextlib.asynccontextmanager
async def running_host(
    client: aioredis.Redis, settings: SdkSettings | None = None, *, clock: Clock = SYSTEM_CLOCK
) -> AsyncIterator[Env]:
    """An SdkHost on a RedisStore whose sessions observe the store through an informer."""
    counting = CountingStore(RedisStore(client, GameServer))
    host = SdkHost(counting, settings or SdkSettings(write_interval=0.05, health_tick=0.05), clock=clock)
    await host.start()
    informer: Informer[GameServer] = Informer(RedisStore(client, GameServer))

    def on_event(event: WatchEvent[GameServer]) -> None:
        if event.type is not EventType.DELETED:
            host.observe(event.object)

    informer.add_handler(on_event)
    task = asyncio.create_task(informer.run())
    await informer.synced.wait()
    try:
        async with aiohttp.ClientSession() as http:
            yield Env(counting, host, http)
    finally:
        await host.close()
        await cancel_and_wait(task)


async def call(env: Env, method: str, url: str, body: bytes | str | None = None, **kwargs: Any) -> tuple[int, str, Any]:
    """(status, content type, parsed JSON body) of one request."""
    async with env.http.request(method, url, data=body, **kwargs) as resp:
        text = await resp.text()
        return resp.status, resp.headers.get("Content-Type", ""), json.loads(text)


def error(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "details": []}
