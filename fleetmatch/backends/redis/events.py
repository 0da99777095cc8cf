"""Event records on Redis: one hash of records and one sorted set ordering them by last occurrence,
both under the namespace's hash tag. Times come from the Redis server's clock (``TIME``), so records
written by processes on different hosts order correctly."""

from __future__ import annotations

from importlib import resources

import msgpack  # type: ignore[import-untyped]
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from fleetmatch.backends.redis.keys import namespace_prefix
from fleetmatch.errors import BackendError
from fleetmatch.events import MAX_RECORDS, MESSAGE_LIMIT, RETENTION_SECONDS, EventRecord, Severity, matches

_RECORD = resources.files("fleetmatch.backends.redis").joinpath("lua/event.lua").read_text()


class RedisEventLog:
    def __init__(
        self,
        client: aioredis.Redis,
        namespace: str = "default",
        *,
        retention_seconds: float = RETENTION_SECONDS,
        max_records: int = MAX_RECORDS,
    ) -> None:
        base = f"{namespace_prefix(namespace)}:events"
        self._records, self._order = f"{base}:records", f"{base}:order"
        self._client = client
        self._retention_ms = int(retention_seconds * 1000)
        self._max = max_records
        self._script = client.register_script(_RECORD)

    async def record(
        self, kind: str, name: str, reason: str, message: str, *, type: Severity = Severity.NORMAL, uid: str = ""
    ) -> None:
        message = message[:MESSAGE_LIMIT]
        key = f"{kind}/{name}/{reason}/{message}"
        args = [key, kind, name, reason, message, type.value, self._retention_ms, self._max]
        try:
            await self._script(keys=[self._records, self._order], args=args)
        except RedisError as exc:
            raise BackendError(f"redis: {exc}") from exc

    async def list(self, kind: str | None = None, name: str | None = None) -> list[EventRecord]:
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.zrange(self._order, 0, -1)
                pipe.hgetall(self._records)
                order, raw = await pipe.execute()
        except RedisError as exc:
            raise BackendError(f"redis: {exc}") from exc
        out = []
        for key in order:
            body = raw.get(key)
            if body is None:
                continue
            k, n, reason, message, type_, count, first, last = msgpack.unpackb(body, raw=False)
            record = EventRecord(k, n, reason, message, Severity(type_), int(count), first / 1000, last / 1000)
            if matches(record, kind, name):
                out.append(record)
        return out
