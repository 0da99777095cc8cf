"""Shared fixtures: a real embedded Redis for the session, flushed before each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from fleetmatch.backends.base import Backend
from fleetmatch.backends.redis.backend import redis_backend_on
from fleetmatch.backends.redis.client import connect
from fleetmatch.backends.redis.embedded import EmbeddedRedis
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.models import Fleet, GameServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One private valkey-server (or redis-server) for the whole run (FLEETMATCH_REDIS_SERVER overrides)."""
    import os

    server = EmbeddedRedis(
        Path(tmp_path_factory.mktemp("redis")), binary=os.environ.get("FLEETMATCH_REDIS_SERVER"), persist=False
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis_client(redis_server: EmbeddedRedis) -> AsyncIterator[aioredis.Redis]:
    client = connect(redis_server.url, name="tests")
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
async def backend(redis_client: aioredis.Redis) -> AsyncIterator[Backend]:
    """A ``Backend`` on the test Redis (its informers stop at the end of the test)."""
    backend = redis_backend_on(redis_client)
    yield backend
    await backend.aclose()


@pytest.fixture
def gs_store(redis_client: aioredis.Redis) -> RedisStore[GameServer]:
    return RedisStore(redis_client, GameServer)


@pytest.fixture
def fleet_store(redis_client: aioredis.Redis) -> RedisStore[Fleet]:
    return RedisStore(redis_client, Fleet)
