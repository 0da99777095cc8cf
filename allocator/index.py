"""The allocator's view of allocatable servers, indexed so that choosing one does not scan the fleet.

Pure data structure (no I/O): an informer feeds it with ``upsert``/``remove``. It keeps only Ready
and Allocated servers that are not being deleted, and indexes them by state, by (label, value,
state) and by (node, state), plus the number of Allocated servers per node (what Packed and
Distributed rank nodes by). Every index is an ``IndexedSet``: O(1) add, remove, membership and
random pick, so a selector over 10,000 servers costs about as much as one over ten.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from typing import Generic, TypeVar

from fleetmatch.allocation import ALLOCATABLE_STATES
from fleetmatch.models import GameServer, GameServerState

T = TypeVar("T")


class IndexedSet(Generic[T]):
    """A set that can also hand out a random member in O(1) (a list plus positions)."""

    __slots__ = ("_items", "_pos")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._pos: dict[T, int] = {}

    def add(self, item: T) -> None:
        if item not in self._pos:
            self._pos[item] = len(self._items)
            self._items.append(item)

    def discard(self, item: T) -> None:
        pos = self._pos.pop(item, None)
        if pos is None:
            return
        last = self._items.pop()
        if pos < len(self._items):
            self._items[pos] = last
            self._pos[last] = pos

    def random(self, rng: random.Random) -> T:
        return self._items[rng.randrange(len(self._items))]

    def __contains__(self, item: object) -> bool:
        return item in self._pos

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items)


_EMPTY: IndexedSet[str] = IndexedSet()


class AllocationIndex:
    def __init__(self) -> None:
        self.servers: dict[str, GameServer] = {}
        self._by_state: dict[GameServerState, IndexedSet[str]] = {s: IndexedSet() for s in ALLOCATABLE_STATES}
        self._by_label: dict[tuple[str, str, GameServerState], IndexedSet[str]] = {}
        self._by_node: dict[tuple[str, GameServerState], IndexedSet[str]] = {}
        self._nodes: dict[GameServerState, dict[str, None]] = {s: {} for s in ALLOCATABLE_STATES}
        self.allocated_on_node: Counter[str] = Counter()
        self._servers_on_node: Counter[str] = Counter()
        self._nodes_at_load: dict[int, dict[str, None]] = {}
        """Known nodes bucketed by their Allocated count: the most (Packed) or least (Distributed)
        loaded node is found without sorting every node on every allocation."""

    def __len__(self) -> int:
        return len(self.servers)

    def count(self, state: GameServerState) -> int:
        return len(self._by_state.get(state, _EMPTY))

    def in_state(self, state: GameServerState) -> IndexedSet[str]:
        return self._by_state.get(state, _EMPTY)

    def with_label(self, key: str, value: str, state: GameServerState) -> IndexedSet[str]:
        return self._by_label.get((key, value, state), _EMPTY)

    def on_node(self, node: str, state: GameServerState) -> IndexedSet[str]:
        return self._by_node.get((node, state), _EMPTY)

    def nodes(self, state: GameServerState) -> list[str]:
        """Nodes holding at least one server in ``state``."""
        return list(self._nodes[state])

    def nodes_by_load(self, state: GameServerState, *, descending: bool, rng: random.Random) -> Iterator[str]:
        """Nodes with servers in ``state``, most (or least) Allocated first; equal ones in random order."""
        having = self._nodes[state]
        for load in sorted(self._nodes_at_load, reverse=descending):
            bucket = [node for node in self._nodes_at_load[load] if node in having]
            if len(bucket) > 1:
                rng.shuffle(bucket)
            yield from bucket

    def _move(self, node: str, old: int | None, new: int | None) -> None:
        """Re-bucket ``node`` from load ``old`` to ``new`` (None: absent)."""
        if old is not None:
            bucket = self._nodes_at_load[old]
            del bucket[node]
            if not bucket:
                del self._nodes_at_load[old]
        if new is not None:
            self._nodes_at_load.setdefault(new, {})[node] = None

    def upsert(self, gs: GameServer) -> None:
        """Record the latest version of ``gs`` (dropping it if it is no longer allocatable)."""
        self.remove(gs.name)
        if gs.state not in ALLOCATABLE_STATES or gs.metadata.deletion_timestamp is not None:
            return
        name, state, node = gs.name, gs.state, gs.status.node_name
        self.servers[name] = gs
        self._by_state[state].add(name)
        for key, value in gs.metadata.labels.items():
            self._by_label.setdefault((key, value, state), IndexedSet()).add(name)
        self._by_node.setdefault((node, state), IndexedSet()).add(name)
        self._nodes[state][node] = None
        load = self.allocated_on_node[node]
        self._servers_on_node[node] += 1
        if state is GameServerState.ALLOCATED:
            self.allocated_on_node[node] += 1
            self._move(node, load if self._servers_on_node[node] > 1 else None, load + 1)
        elif self._servers_on_node[node] == 1:
            self._move(node, None, load)

    def remove(self, name: str) -> None:
        gs = self.servers.pop(name, None)
        if gs is None:
            return
        state, node = gs.state, gs.status.node_name
        self._by_state[state].discard(name)
        for key, value in gs.metadata.labels.items():
            members = self._by_label.get((key, value, state))
            if members is not None:
                members.discard(name)
                if not members:
                    del self._by_label[(key, value, state)]
        members = self._by_node.get((node, state))
        if members is not None:
            members.discard(name)
            if not members:
                del self._by_node[(node, state)]
                self._nodes[state].pop(node, None)
        load = self.allocated_on_node[node]
        self._servers_on_node[node] -= 1
        remaining = self._servers_on_node[node]
        if remaining <= 0:
            del self._servers_on_node[node]
        if state is GameServerState.ALLOCATED:
            self.allocated_on_node[node] -= 1
            if self.allocated_on_node[node] <= 0:
                del self.allocated_on_node[node]
            self._move(node, load, load - 1 if remaining > 0 else None)
        elif remaining <= 0:
            self._move(node, load, None)
