"""``Backend``: what ``open_backend`` gives every process, whatever the engine.

The three stores of one namespace, leases for leadership, and ONE shared informer per kind: the
allocator, node agent, fleet controller, autoscaler and Pod controller of one process all add their
handlers to the same GameServer informer instead of each running its own watch. An informer is
started (as a supervised task) the first time it is asked for and stopped when the backend closes.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from fleetmatch.errors import BackendError, StoreError
from fleetmatch.events import EventLog
from fleetmatch.informer import Informer
from fleetmatch.lease import Lease
from fleetmatch.models import Fleet, FleetAutoscaler, GameServer
from fleetmatch.nodes import NodeRegistry
from fleetmatch.store import AutoscalerStore, FleetStore, GameServerStore, Store
from fleetmatch.tasks import cancel_and_wait, supervised

R = TypeVar("R", GameServer, Fleet, FleetAutoscaler)

LeaseFactory = Callable[[str, str, float], Lease]
"""(lease name, holder identity, ttl seconds) -> a lease of the engine."""


def default_holder() -> str:
    """Who holds a lease: ``host/pid`` (unique per process, readable in logs and ``kubectl get lease``)."""
    return f"{socket.gethostname()}/{os.getpid()}"


class Backend:
    """Stores, leases and shared informers of one namespace on one engine (``redis``, ``kubernetes``, ``memory``)."""

    def __init__(
        self,
        engine: str,
        *,
        gameservers: GameServerStore,
        fleets: FleetStore,
        autoscalers: AutoscalerStore,
        leases: LeaseFactory,
        lease_seconds: float = 15.0,
        holder: str | None = None,
        events: EventLog | None = None,
        nodes: NodeRegistry | None = None,
        ping: Callable[[], Awaitable[object]] | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.engine = engine
        self.gameservers = gameservers
        self.fleets = fleets
        self.autoscalers = autoscalers
        self.namespace = gameservers.namespace
        self.holder = holder or default_holder()
        self.lease_seconds = lease_seconds
        self.events = events
        """Event records of the namespace (``fleetmatch.events``); None where the engine keeps none."""
        self.nodes = nodes
        """Node agents' heartbeats (``fleetmatch.nodes``); None on Kubernetes, where kubelets do that."""
        self._leases = leases
        self._ping = ping
        self._on_close = on_close
        self._informers: dict[type[Any], Informer[Any]] = {}
        self._tasks: list[Any] = []
        self._closed = False

    def store(self, kind: type[R]) -> Store[R]:
        """The store of ``kind`` (GameServer, Fleet or FleetAutoscaler)."""
        stores: dict[type[Any], Store[Any]] = {
            GameServer: self.gameservers,
            Fleet: self.fleets,
            FleetAutoscaler: self.autoscalers,
        }
        return cast(Store[R], stores[kind])

    def informer(self, kind: type[R]) -> Informer[R]:
        """The process's one informer of ``kind``, started on first use (await ``.synced`` before
        trusting its cache)."""
        if self._closed:
            raise RuntimeError("the backend is closed")
        informer = self._informers.get(kind)
        if informer is None:
            informer = Informer(self.store(kind))
            self._informers[kind] = informer
            self._tasks.append(supervised(f"informer[{kind.KIND}]", informer.run))
        return cast(Informer[R], informer)

    async def ping(self) -> None:
        """Reach the engine once (a probe): ``BackendError`` if it does not answer."""
        if self._ping is not None:
            try:
                await self._ping()
            except StoreError:
                raise
            except Exception as exc:  # a client library's own error: ours from here on
                raise BackendError(f"{self.engine}: {exc}") from exc

    def lease(self, name: str, *, ttl: float | None = None) -> Lease:
        """Leader lease ``name`` held as this process (``holder``), lost if not renewed within ``ttl``."""
        return self._leases(name, self.holder, ttl if ttl is not None else self.lease_seconds)

    async def aclose(self) -> None:
        """Stop the informers, then close the engine's clients."""
        if self._closed:
            return
        self._closed = True
        await cancel_and_wait(*self._tasks)
        if self._on_close is not None:
            await self._on_close()
