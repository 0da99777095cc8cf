"""In-memory twin of the state store: same contract as Redis, for unit tests and local tools.

Versions are a counter shared by every ``MemoryStore`` built on one ``MemoryServer``, as etcd's
revision is shared by every kind. History is bounded like the real engines.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Generic

from fleetmatch.backends.base import Backend
from fleetmatch.codec import to_wire
from fleetmatch.errors import AlreadyExistsError, ConflictError, ExpiredError, NotFoundError, ValidationError
from fleetmatch.events import (
    MAX_RECORDS,
    RETENTION_SECONDS,
    EventRecord,
    Severity,
    matches,
    new_record,
)
from fleetmatch.events import now as events_now
from fleetmatch.models import Fleet, FleetAutoscaler, GameServer, with_meta
from fleetmatch.nodes import NodeRecord
from fleetmatch.store import EventType, R, WatchEvent, prepare_create


@dataclass
class MemoryServer:
    """Shared revision counter and lease holders (what a Redis server or an API server is to the other engines)."""

    revision: int = 0
    history: int = 10_000
    writes: int = field(default=0)
    leases: dict[str, tuple[str, float]] = field(default_factory=dict)
    """lease name -> (holder, expiry on ``time.monotonic``)."""

    def next(self) -> int:
        self.revision += 1
        self.writes += 1
        return self.revision


class MemoryStore(Generic[R]):
    def __init__(self, kind: type[R], namespace: str = "default", backend: MemoryServer | None = None) -> None:
        self._kind = kind
        self._namespace = namespace
        self._backend = backend or MemoryServer()
        self._objects: dict[str, R] = {}
        self._events: deque[WatchEvent[R]] = deque()
        self._floor = 0
        self._changed = asyncio.Condition()

    @property
    def kind(self) -> type[R]:
        return self._kind

    @property
    def namespace(self) -> str:
        return self._namespace

    async def get(self, name: str) -> R:
        try:
            return self._objects[name]
        except KeyError:
            raise NotFoundError(self._kind.KIND, name) from None

    async def list(self) -> tuple[list[R], str]:
        return sorted(self._objects.values(), key=lambda o: o.metadata.name), str(self._backend.revision)

    async def watch(self, since: str) -> AsyncIterator[WatchEvent[R]]:
        position = int(since)
        while True:
            if position < self._floor:
                raise ExpiredError(self._kind.KIND, since)
            pending = [e for e in self._events if int(e.object.metadata.resource_version) > position]
            if not pending:
                async with self._changed:
                    await self._changed.wait()
                continue
            for event in pending:
                position = int(event.object.metadata.resource_version)
                yield event

    async def _record(self, type_: EventType, obj: R) -> None:
        self._events.append(WatchEvent(type_, obj))
        while len(self._events) > self._backend.history:
            dropped = self._events.popleft()
            self._floor = int(dropped.object.metadata.resource_version)
        async with self._changed:
            self._changed.notify_all()

    async def create(self, obj: R) -> R:
        obj = prepare_create(obj, self._namespace)
        if obj.metadata.name in self._objects:
            raise AlreadyExistsError(self._kind.KIND, obj.metadata.name)
        obj = with_meta(obj, resource_version=str(self._backend.next()))
        self._objects[obj.metadata.name] = obj
        await self._record(EventType.ADDED, obj)
        return obj

    async def update(self, obj: R) -> R:
        name = obj.metadata.name
        current = await self.get(name)
        if obj.metadata.resource_version != current.metadata.resource_version:
            raise ConflictError(self._kind.KIND, name, obj.metadata.resource_version, current.metadata.resource_version)
        if obj.metadata.uid and obj.metadata.uid != current.metadata.uid:
            raise ValidationError("metadata.uid", f"field is immutable (is {current.metadata.uid!r})")
        obj = with_meta(
            obj,
            namespace=self._namespace,
            generation=current.metadata.generation,
            uid=current.metadata.uid,
            creation_timestamp=current.metadata.creation_timestamp,
        )
        if obj == current:
            return current
        generation = current.metadata.generation
        if to_wire(obj.spec) != to_wire(current.spec):
            generation += 1
        obj = with_meta(obj, resource_version=str(self._backend.next()), generation=generation)
        self._objects[name] = obj
        await self._record(EventType.MODIFIED, obj)
        return obj

    async def delete(self, name: str, *, version: str | None = None) -> None:
        current = await self.get(name)
        if version and version != current.metadata.resource_version:
            raise ConflictError(self._kind.KIND, name, version, current.metadata.resource_version)
        del self._objects[name]
        await self._record(EventType.DELETED, with_meta(current, resource_version=str(self._backend.next())))


class MemoryLease:
    """A leader lease among the holders of one ``MemoryServer`` (one process: tests and local tools)."""

    def __init__(self, server: MemoryServer, name: str, holder: str, *, ttl: float = 15.0) -> None:
        self.server, self.name, self.holder, self.ttl = server, name, holder, ttl

    async def acquire(self) -> bool:
        now = time.monotonic()
        current = self.server.leases.get(self.name)
        if current is not None and current[0] != self.holder and current[1] > now:
            return False
        self.server.leases[self.name] = (self.holder, now + self.ttl)
        return True

    async def release(self) -> None:
        current = self.server.leases.get(self.name)
        if current is not None and current[0] == self.holder:
            del self.server.leases[self.name]

    async def taken(self) -> bool:
        current = self.server.leases.get(self.name)
        return current is not None and current[1] > time.monotonic()


class MemoryEventLog:
    """Event records in this process (``fleetmatch.events``), aggregated and trimmed like the others."""

    def __init__(self, *, retention_seconds: float = RETENTION_SECONDS, max_records: int = MAX_RECORDS) -> None:
        self._records: dict[str, EventRecord] = {}
        self._retention = retention_seconds
        self._max = max_records

    async def record(
        self, kind: str, name: str, reason: str, message: str, *, type: Severity = Severity.NORMAL, uid: str = ""
    ) -> None:
        now = events_now()
        record = new_record(kind, name, reason, message, type=type, now=now)
        old = self._records.pop(record.key, None)
        self._records[record.key] = old.again(now) if old is not None else record
        for key in [k for k, r in self._records.items() if r.last < now - self._retention]:
            del self._records[key]
        while len(self._records) > self._max:
            del self._records[next(iter(self._records))]

    async def list(self, kind: str | None = None, name: str | None = None) -> list[EventRecord]:
        return [r for r in self._records.values() if matches(r, kind, name)]


class MemoryNodeRegistry:
    """Node heartbeats in this process (``fleetmatch.nodes``), on this host's clock."""

    def __init__(self) -> None:
        self._records: dict[str, NodeRecord] = {}

    async def heartbeat(self, name: str, *, boot: str, address: str, capacity: int) -> None:
        now = time.time()
        old = self._records.get(name)
        started = old.started if old is not None and old.boot == boot else now
        self._records[name] = NodeRecord(name, boot, address, capacity, now, started)

    async def list(self) -> tuple[list[NodeRecord], float]:
        return sorted(self._records.values(), key=lambda r: r.name), time.time()

    async def remove(self, name: str) -> None:
        self._records.pop(name, None)


def memory_backend(
    namespace: str = "default", *, server: MemoryServer | None = None, lease_seconds: float = 15.0
) -> Backend:
    """A ``Backend`` whose stores live in this process (``FLEETMATCH_BACKEND=memory``: nothing persists)."""
    server = server or MemoryServer()
    return Backend(
        "memory",
        gameservers=MemoryStore(GameServer, namespace, server),
        fleets=MemoryStore(Fleet, namespace, server),
        autoscalers=MemoryStore(FleetAutoscaler, namespace, server),
        leases=lambda name, holder, ttl: MemoryLease(server, name, holder, ttl=ttl),
        lease_seconds=lease_seconds,
        events=MemoryEventLog(),
        nodes=MemoryNodeRegistry(),
    )
