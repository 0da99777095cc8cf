"""A list+watch cache of one kind, like a Kubernetes shared informer.

``run()`` lists, then watches from the list's version; on ``ExpiredError`` it lists again and turns
the difference into synthetic events, so handlers see every object's latest state exactly as if
nothing had been missed. One informer per kind serves a whole process (``fleetmatch.backends.Backend``
owns them): every component adds its handler, and a handler added late is first called with every
cached object as ADDED, as client-go does, so it sees what an early one saw. Handlers are plain
callables run in the informer's task; they must not block (update a dict, set an event, poke a
``fleetmatch.reconcile.ReconcileLoop``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Generic

from fleetmatch.errors import BackendError, ExpiredError
from fleetmatch.store import EventType, R, Store, WatchEvent
from fleetmatch.tasks import raise_if_cancelling

log = logging.getLogger(__name__)

Handler = Callable[[WatchEvent[R]], None]


class Informer(Generic[R]):
    def __init__(self, store: Store[R], *, retry_seconds: float = 0.5) -> None:
        self.store = store
        self.cache: dict[str, R] = {}
        self.version = ""
        self.synced = asyncio.Event()
        self._handlers: list[Handler[R]] = []
        self._retry = retry_seconds

    def add_handler(self, handler: Handler[R], *, replay: bool = True) -> Callable[[], None]:
        """Call ``handler`` on every change from now on; with ``replay`` (the default) first on every
        object already cached, as ADDED. Returns the function that removes the handler again."""
        self._handlers.append(handler)
        if replay:
            for obj in list(self.cache.values()):
                self._call(handler, WatchEvent(EventType.ADDED, obj))

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._handlers.remove(handler)

        return remove

    @staticmethod
    def _call(handler: Handler[R], event: WatchEvent[R]) -> None:
        try:
            handler(event)
        except Exception:
            log.exception("informer handler %r failed on %s %s", handler, event.type, event.object.metadata.name)

    def _dispatch(self, event: WatchEvent[R]) -> None:
        name = event.object.metadata.name
        if event.type is EventType.DELETED:
            self.cache.pop(name, None)
        else:
            self.cache[name] = event.object
        self.version = event.object.metadata.resource_version
        for handler in list(self._handlers):
            self._call(handler, event)

    def _relist(self, items: list[R], version: str) -> None:
        fresh = {o.metadata.name: o for o in items}
        for name, old in list(self.cache.items()):
            if name not in fresh:
                self._dispatch(WatchEvent(EventType.DELETED, old))
        for name, obj in fresh.items():
            known = self.cache.get(name)
            if known is None:
                self._dispatch(WatchEvent(EventType.ADDED, obj))
            elif known.metadata.resource_version != obj.metadata.resource_version:
                self._dispatch(WatchEvent(EventType.MODIFIED, obj))
        self.version = version

    async def run(self) -> None:
        """List and watch until cancelled."""
        while True:
            try:
                items, version = await self.store.list()
                self._relist(items, version)
                self.synced.set()
                async for event in self.store.watch(version):
                    self._dispatch(event)
            except ExpiredError:
                log.info("%s watch expired; re-listing", self.store.kind.KIND)
            except BackendError as exc:
                raise_if_cancelling()
                log.warning("%s informer: %s; retrying in %.1fs", self.store.kind.KIND, exc, self._retry)
                await asyncio.sleep(self._retry)
