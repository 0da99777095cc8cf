"""State backends: where GameServers, Fleets and FleetAutoscalers live, behind one seam.

``async with open_backend(settings) as backend`` is how every process gets its state: the three
stores of its namespace (``fleetmatch.store.Store``), leader leases and one shared informer per kind
(``fleetmatch.backends.base.Backend``). Engines:

- ``redis`` (the embedded default, and fleets on plain hosts): Lua writes, streams as the watch;
- ``kubernetes``: custom resources through the API server (``fleetmatch.backends.kube``);
- ``memory``: everything in this process, nothing persisted (tests, trying things out).

Engines are imported only when used: the in-pod SDK sidecar must not pay for redis-py or
kubernetes-asyncio.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fleetmatch.backends.base import Backend
from fleetmatch.errors import ConfigError
from fleetmatch.models import GameServer
from fleetmatch.settings import Settings
from fleetmatch.store import GameServerStore

ENGINES = ("redis", "kubernetes", "memory")


async def connect_backend(settings: Settings, *, client_name: str = "fleetmatch") -> Backend:
    """The ``Backend`` ``settings.backend`` names (close it with ``aclose``; ``open_backend`` does)."""
    engine = settings.backend
    if engine == "redis":
        from fleetmatch.backends.redis.backend import redis_backend

        return redis_backend(settings, client_name=client_name)
    if engine == "kubernetes":
        from fleetmatch.backends.kube.client import kube_backend

        return await kube_backend(settings)
    if engine == "memory":
        from fleetmatch.backends.memory import memory_backend

        return memory_backend(settings.namespace, lease_seconds=settings.lease_seconds)
    raise ConfigError(f"FLEETMATCH_BACKEND={engine!r}: expected one of {', '.join(ENGINES)}")


@contextlib.asynccontextmanager
async def open_backend(settings: Settings, *, client_name: str = "fleetmatch") -> AsyncIterator[Backend]:
    """The backend for the block: informers stopped and clients closed on exit."""
    backend = await connect_backend(settings, client_name=client_name)
    try:
        yield backend
    finally:
        await backend.aclose()


@contextlib.asynccontextmanager
async def open_gameserver_store(
    settings: Settings, name: str, *, namespace: str | None = None, write_spacing: float = 0.5
) -> AsyncIterator[GameServerStore]:
    """A store for ONE GameServer (the SDK sidecar's), as light as the engine allows: on Kubernetes
    the thin aiohttp store (no kubernetes-asyncio), its writes spaced by ``write_spacing`` seconds."""
    ns = namespace or settings.namespace
    if settings.backend == "kubernetes":
        from fleetmatch.backends.kube.config import thin_config
        from fleetmatch.backends.kube.podstore import KubeGameServerStore, KubeStoreSettings

        async with KubeGameServerStore(
            thin_config(settings.kube), ns, name, settings=KubeStoreSettings(write_spacing=write_spacing)
        ) as store:
            yield store
        return
    if settings.backend == "redis":
        from fleetmatch.backends.redis.client import connect
        from fleetmatch.backends.redis.store import RedisStore

        if not settings.redis.url:
            raise ConfigError("REDIS_URL is required: the Redis that holds the GameServer")
        client = connect(settings.redis.url, name=f"sdk-sidecar-{name}")
        try:
            # Writes through redis-py, not a write pipe: a sidecar's writes are coalesced (a few a
            # second at most), and a second connection per game server would only load Redis.
            yield RedisStore(client, GameServer, ns)
        finally:
            await client.aclose()
        return
    raise ConfigError(f"FLEETMATCH_BACKEND={settings.backend!r}: a sidecar process needs redis or kubernetes")


__all__ = ["ENGINES", "Backend", "connect_backend", "open_backend", "open_gameserver_store"]
