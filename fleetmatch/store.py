"""The state-store port: one small protocol that controllers, the allocator and the SDK sidecar use.

Two engines implement it (``fleetmatch.backends``): Redis for the embedded default and plain hosts,
Kubernetes for clusters; an in-memory twin serves unit tests. All pass one contract suite
(``tests/contract``). Semantics follow the Kubernetes API so the engines are interchangeable:

- ``list()`` returns the objects and the version at which they were read; ``watch(version)``
  yields every change strictly after it, so list+watch loses nothing. A watch may be resumed
  from the version of the last event it delivered; history older than the kept window raises
  ``ExpiredError`` (re-list).
- ``update(obj)`` succeeds only if ``obj.metadata.resource_version`` is still current, else
  ``ConflictError``; an update that changes nothing writes nothing and emits no event.
- ``generation`` increases when the spec changes.
- ``delete(name, version=...)`` can be made conditional the same way, which is how a controller
  avoids deleting a server that was allocated after it looked.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from fleetmatch.errors import AlreadyExistsError, ConflictError, ValidationError
from fleetmatch.models import Fleet, FleetAutoscaler, GameServer, with_meta
from fleetmatch.names import generate_name, object_name_error

R = TypeVar("R", bound=GameServer | Fleet | FleetAutoscaler)


class EventType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class WatchEvent(Generic[R]):
    """One change. ``object.metadata.resource_version`` is the version of this event."""

    type: EventType
    object: R


class Store(Protocol[R]):
    """GameServers (or Fleets) of one namespace."""

    @property
    def kind(self) -> type[R]: ...

    @property
    def namespace(self) -> str: ...

    async def get(self, name: str) -> R:
        """The current object; ``NotFoundError`` if there is none."""

    async def list(self) -> tuple[list[R], str]:
        """All objects and the version they were read at (watch from it to miss nothing)."""

    def watch(self, since: str) -> AsyncIterator[WatchEvent[R]]:
        """Every change after version ``since``, in order, until cancelled."""

    async def create(self, obj: R) -> R:
        """Store a new object; fills uid, creationTimestamp, generation, resourceVersion, and the name
        from ``generateName`` if needed. ``AlreadyExistsError`` if the name is taken."""

    async def update(self, obj: R) -> R:
        """Replace the object if its resourceVersion still matches; ``ConflictError`` otherwise."""

    async def delete(self, name: str, *, version: str | None = None) -> None:
        """Remove the object (only at ``version`` if given); ``NotFoundError`` if absent."""


GameServerStore = Store[GameServer]
FleetStore = Store[Fleet]
AutoscalerStore = Store[FleetAutoscaler]


def prepare_create(obj: R, namespace: str, *, now: float | None = None) -> R:
    """Stamp what the server owns on create, as the Kubernetes API server does."""
    meta = obj.metadata
    if meta.resource_version:
        raise ValidationError("metadata.resourceVersion", "must not be set on objects to be created")
    name = meta.name or (generate_name(meta.generate_name) if meta.generate_name else "")
    if not name:
        raise ValidationError("metadata.name", "name or generateName is required")
    err = object_name_error(name)
    if err:
        raise ValidationError("metadata.name", f"{name!r} {err}")
    stamp = round(time.time() if now is None else now, 3)
    return with_meta(
        obj,
        name=name,
        namespace=namespace,
        uid=str(uuid.uuid4()),
        generation=1,
        creation_timestamp=stamp,
        deletion_timestamp=None,
    )


async def create_with_generated_name(store: Store[R], obj: R, *, attempts: int = 8) -> R:
    """``create`` that retries a ``generateName`` collision with a new suffix."""
    for attempt in range(attempts):
        try:
            return await store.create(obj)
        except AlreadyExistsError:
            if obj.metadata.name or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


async def modify(store: Store[R], name: str, change: Callable[[R], R | None], *, attempts: int = 20) -> R | None:
    """Read, change, write back; on conflict read again and re-apply ``change``.

    ``change`` gets the current object and returns the new one, or None to leave it as is (the
    result is then None). ``NotFoundError`` propagates: the object is gone.
    """
    for attempt in range(attempts):
        current = await store.get(name)
        updated = change(current)
        if updated is None:
            return None
        try:
            return await store.update(updated)
        except ConflictError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
