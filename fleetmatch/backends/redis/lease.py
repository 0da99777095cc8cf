"""A leader lease on Redis: one key holding the holder's id, renewed before it expires."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from fleetmatch.backends.redis.keys import lease_key
from fleetmatch.errors import BackendError

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLease:
    """A leader lease on Redis: at most one holder at a time, lost if not renewed within ``ttl``.

    Controllers that must not run twice (two fleet controllers would both create the missing
    servers) take it before each pass; a standby takes over within ``ttl`` of the leader dying.
    """

    def __init__(
        self, client: aioredis.Redis, name: str, holder: str, *, namespace: str = "default", ttl: float = 15.0
    ):
        self.key = lease_key(namespace, name)
        self.holder = holder
        self.ttl = ttl
        self._client = client
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    async def acquire(self) -> bool:
        """Take or renew the lease; True while we hold it."""
        try:
            return bool(await self._renew(keys=[self.key], args=[self.holder, int(self.ttl * 1000)]))
        except RedisError as exc:
            raise BackendError(f"redis: {exc}") from exc

    async def release(self) -> None:
        try:
            await self._release(keys=[self.key], args=[self.holder])
        except RedisError as exc:
            raise BackendError(f"redis: {exc}") from exc

    async def taken(self) -> bool:
        """The key exists: its TTL is the lease's, so an unrenewed lease is gone."""
        try:
            return bool(await self._client.exists(self.key))
        except RedisError as exc:
            raise BackendError(f"redis: {exc}") from exc
