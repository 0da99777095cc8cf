"""Node heartbeats on Redis (``fleetmatch.nodes``): a hash of what each agent run is and a hash of
when it last renewed, stamped with the Redis server's clock."""

from __future__ import annotations

from importlib import resources

import msgpack  # type: ignore[import-untyped]
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from fleetmatch.backends.redis.keys import namespace_prefix
from fleetmatch.errors import BackendError
from fleetmatch.nodes import NodeRecord

_LUA = resources.files("fleetmatch.backends.redis").joinpath("lua")
_HEARTBEAT = _LUA.joinpath("heartbeat.lua").read_text()
_LIST = _LUA.joinpath("nodes.lua").read_text()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisNodeRegistry:
    def __init__(self, client: aioredis.Redis, namespace: str = "default") -> None:
        base = f"{namespace_prefix(namespace)}:nodes"
        self._keys = [f"{base}:info", f"{base}:renew"]
        self._client = client
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._list = client.register_script(_LIST)

    async def heartbeat(self, name: str, *, boot: str, address: str, capacity: int) -> None:
        try:
            await self._heartbeat(keys=self._keys, args=[name, boot, address, capacity])
        except RedisError as exc:
            raise BackendError(f"redis: {exc}") from exc

    async def list(self) -> tuple[list[NodeRecord], float]:
        try:
            now, info, renew = await self._list(keys=self._keys)
        except RedisError as exc:
            raise BackendError(f"redis: {exc}") from exc
        renewed = {_text(renew[i]): int(renew[i + 1]) for i in range(0, len(renew), 2)}
        records = []
        for i in range(0, len(info), 2):
            name = _text(info[i])
            boot, address, capacity, started = msgpack.unpackb(info[i + 1], raw=False)
            ms = renewed.get(name, started)
            records.append(NodeRecord(name, boot, address, int(capacity), ms / 1000, started / 1000))
        records.sort(key=lambda r: r.name)
        return records, int(now) / 1000

    async def remove(self, name: str) -> None:
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hdel(self._keys[0], name)
                pipe.hdel(self._keys[1], name)
                await pipe.execute()
        except RedisError as exc:
            raise BackendError(f"redis: {exc}") from exc
