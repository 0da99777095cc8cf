"""The Redis engine as a ``Backend``: one client shared by the three stores and the leases."""

from __future__ import annotations

import redis.asyncio as aioredis

from fleetmatch.backends.base import Backend
from fleetmatch.backends.redis.client import connect
from fleetmatch.backends.redis.events import RedisEventLog
from fleetmatch.backends.redis.lease import RedisLease
from fleetmatch.backends.redis.nodes import RedisNodeRegistry
from fleetmatch.backends.redis.store import RedisStore, write_pipe
from fleetmatch.errors import ConfigError
from fleetmatch.models import Fleet, FleetAutoscaler, GameServer
from fleetmatch.settings import Settings


def redis_backend(settings: Settings, *, client_name: str = "fleetmatch") -> Backend:
    """A ``Backend`` on the Redis at ``settings.redis.url`` (the CLI fills it from a running stack)."""
    url = settings.redis.url
    if not url:
        raise ConfigError("no Redis to use: set REDIS_URL (or start `fleetmatch up`, whose Redis the CLI finds)")
    client = connect(url, name=client_name)
    return redis_backend_on(client, settings.namespace, lease_seconds=settings.lease_seconds, owns_client=True)


def redis_backend_on(
    client: aioredis.Redis, namespace: str = "default", *, lease_seconds: float = 15.0, owns_client: bool = False
) -> Backend:
    """A ``Backend`` on an existing client (closed with the backend only if ``owns_client``). The
    stores' writes share one connection of their own (``write_pipe``), closed with the backend."""
    writes = write_pipe(client)

    async def close() -> None:
        await writes.aclose()
        if owns_client:
            await client.aclose()

    return Backend(
        "redis",
        gameservers=RedisStore(client, GameServer, namespace, writes=writes),
        fleets=RedisStore(client, Fleet, namespace, writes=writes),
        autoscalers=RedisStore(client, FleetAutoscaler, namespace, writes=writes),
        leases=lambda name, holder, ttl: RedisLease(client, name, holder, namespace=namespace, ttl=ttl),
        lease_seconds=lease_seconds,
        events=RedisEventLog(client, namespace),
        nodes=RedisNodeRegistry(client, namespace),
        ping=client.ping,
        on_close=close,
    )
