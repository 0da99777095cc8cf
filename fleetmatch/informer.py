"""A list+watch cache of one kind, like a Kubernetes informer.

``run()`` lists, then watches from the list's version; on ``ExpiredError`` it lists again and turns
the difference into synthetic events, so handlers see every object's latest state exactly as if
nothing had been missed. Handlers are plain callables run in the informer's task; they must not
block (put work on a queue or set an event). ``changed`` lets level-triggered loops sleep until
something moves.
"""

from __future__ import annotations

import asyncio
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
        self._changed = asyncio.Event()

    def add_handler(self, handler: Handler[R]) -> None:
        self._handlers.append(handler)

    def _dispatch(self, event: WatchEvent[R]) -> None:
        name = event.object.metadata.name
        if event.type is EventType.DELETED:
            self.cache.pop(name, None)
        else:
            self.cache[name] = event.object
        self.version = event.object.metadata.resource_version
        self._changed.set()
        for handler in self._handlers:
            try:
                handler(event)
            except Exception:
                log.exception("informer handler %r failed on %s %s", handler, event.type, name)

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
        self._changed.set()

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

    def poke(self) -> None:
        """Wake ``wait_changed`` without a change (someone else's work finished: look again)."""
        self._changed.set()

    async def wait_changed(self, within: float | None = None) -> bool:
        """Sleep until the cache changes (True) or ``within`` seconds pass (False); then re-arm."""
        try:
            async with asyncio.timeout(within):
                await self._changed.wait()
        except TimeoutError:
            return False
        self._changed.clear()
        return True
