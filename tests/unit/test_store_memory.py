"""The store contract run against the in-memory twin (``fleetmatch.backends.memory``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fleetmatch.backends.memory import MemoryServer, MemoryStore
from fleetmatch.models import Fleet, GameServer
from fleetmatch.store import Store
from tests.contract.store_contract import StoreContract, StoreHarness


class MemoryHarness(StoreHarness):
    """One ``MemoryServer``; one ``MemoryStore`` per kind and namespace, shared by every caller
    (a MemoryStore holds its own objects, so handing out a second instance would split the data)."""

    def __init__(self) -> None:
        self.backend = MemoryServer()
        self._stores: dict[tuple[str, str], Any] = {}

    async def gameservers(self, namespace: str = "default", *, history: int | None = None) -> Store[GameServer]:
        if history is not None:
            self.backend.history = history
        key = (GameServer.KIND, namespace)
        if key not in self._stores:
            self._stores[key] = MemoryStore(GameServer, namespace, self.backend)
        store: MemoryStore[GameServer] = self._stores[key]
        return store

    async def fleets(self, namespace: str = "default") -> Store[Fleet]:
        key = (Fleet.KIND, namespace)
        if key not in self._stores:
            self._stores[key] = MemoryStore(Fleet, namespace, self.backend)
        store: MemoryStore[Fleet] = self._stores[key]
        return store

    @contextlib.asynccontextmanager
    async def outage(self, store: Store[Any]) -> AsyncIterator[None]:
        """No connections to drop: the writes inside still must reach the watch exactly once."""
        yield


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def harness(self) -> StoreHarness:
        return MemoryHarness()
