"""The allocator's view of allocatable servers, indexed so that choosing one does not scan the fleet.

Pure data structure (no I/O): an informer feeds it with ``upsert``/``remove``. It keeps only Ready
and Allocated servers that are not being deleted, and indexes them by state, by (label, value,
state) and by (node, state), plus the number of Allocated servers per node (what Packed and
Distributed rank nodes by). With node heartbeats (``set_live_nodes``), servers a node agent placed
count only while that agent run is alive (``fleetmatch.nodes.confirmed``); the others are kept
aside ("fenced") and come back when their node does. With a ``Share`` (one of several allocators
splitting the work), each node's servers in this allocator's share are indexed apart too. Every
index is an ``IndexedSet``: O(1) add, remove, membership and random pick, so a selector over 10,000
servers costs about as much as one over ten.
"""

from __future__ import annotations

import itertools
import random
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from fleetmatch.allocation import ALLOCATABLE_STATES
from fleetmatch.models import GameServer, GameServerState
from fleetmatch.nodes import confirmed

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

    def from_random_place(self, rng: random.Random) -> Iterator[T]:
        """Every member once, starting at a random one (no copy: do not change the set meanwhile)."""
        items = self._items
        offset = int(rng.random() * len(items))
        return itertools.chain(itertools.islice(items, offset, None), itertools.islice(items, offset))

    def random(self, rng: random.Random) -> T:
        # rng.random() scaled, not rng.randrange(): a C call instead of ~1.5 us of Python per pick,
        # and choosing a server probes many (uniform enough: len is far below 2**53).
        return self._items[int(rng.random() * len(self._items))]

    def __contains__(self, item: object) -> bool:
        return item in self._pos

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items)


_EMPTY: IndexedSet[str] = IndexedSet()


@dataclass(frozen=True, slots=True)
class Share:
    """This allocator is ``slot`` of ``of`` splitting one fleet (``fleetmatch allocator --workers``).

    Each tries the servers of its share first on the node it prefers, so claims of different
    workers rarely race for one server: under Packed every worker goes to the same node, and with
    random picks about one claim in two lost such a race on the 10,000-server benchmark (a lost
    claim is a wasted write and another choice). Shares are by a stable digest of the name (not
    ``hash()``, which differs per process); a worker whose share is used up takes the others'."""

    slot: int
    of: int

    def __post_init__(self) -> None:
        if not 0 <= self.slot < self.of:
            raise ValueError(f"share slot {self.slot} is not in 0..{self.of - 1}")

    def holds(self, name: str) -> bool:
        return zlib.crc32(name.encode()) % self.of == self.slot


class AllocationIndex:
    def __init__(self, share: Share | None = None) -> None:
        self.share = share
        self.servers: dict[str, GameServer] = {}
        self._by_state: dict[GameServerState, IndexedSet[str]] = {s: IndexedSet() for s in ALLOCATABLE_STATES}
        self._by_label: dict[tuple[str, str, GameServerState], IndexedSet[str]] = {}
        self._by_node: dict[tuple[str, GameServerState], IndexedSet[str]] = {}
        self._mine_on_node: dict[tuple[str, GameServerState], IndexedSet[str]] = {}
        """Without a share: ``_by_node`` itself. With one: the members of ``_by_node`` in the share."""
        if share is None:
            self._mine_on_node = self._by_node
        self.allocated_on_node: Counter[str] = Counter()
        self._buckets: dict[GameServerState, dict[int, IndexedSet[str]]] = {s: {} for s in ALLOCATABLE_STATES}
        """Per state, the nodes holding servers in that state, bucketed by their Allocated count:
        the most (Packed) or least (Distributed) loaded node is found without looking at the others."""
        self._live: dict[str, str] | None = None
        """node -> boot id of its live agent run; None: no heartbeats known, nothing fenced."""
        self.fenced: dict[str, GameServer] = {}
        """Allocatable servers whose node agent run is not confirmed alive."""
        self._fenced_on: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self.servers)

    def set_share(self, share: Share | None) -> None:
        """Change this allocator's share (``allocator.roster``: allocators joined or left), re-sorting
        every indexed server into it; O(servers), done only when the share changes."""
        if share == self.share:
            return
        self.share = share
        if share is None:
            self._mine_on_node = self._by_node
            return
        mine: dict[tuple[str, GameServerState], IndexedSet[str]] = {}
        for key, members in self._by_node.items():
            for name in members:
                if share.holds(name):
                    mine.setdefault(key, IndexedSet()).add(name)
        self._mine_on_node = mine

    def count(self, state: GameServerState) -> int:
        return len(self._by_state.get(state, _EMPTY))

    def in_state(self, state: GameServerState) -> IndexedSet[str]:
        return self._by_state.get(state, _EMPTY)

    def with_label(self, key: str, value: str, state: GameServerState) -> IndexedSet[str]:
        return self._by_label.get((key, value, state), _EMPTY)

    def on_node(self, node: str, state: GameServerState) -> IndexedSet[str]:
        return self._by_node.get((node, state), _EMPTY)

    def mine_on_node(self, node: str, state: GameServerState) -> IndexedSet[str]:
        """``on_node``'s servers in this allocator's share: all of them (the same set) without a share."""
        return self._mine_on_node.get((node, state), _EMPTY)

    def nodes(self, state: GameServerState) -> list[str]:
        """Nodes holding at least one server in ``state``."""
        return [node for bucket in self._buckets[state].values() for node in bucket]

    def nodes_by_load(self, state: GameServerState, *, descending: bool, rng: random.Random) -> Iterator[str]:
        """Nodes with servers in ``state``, most (or least) Allocated first. Among equally loaded
        nodes the first is picked at random (concurrent allocators then start on different ones);
        the rest follow, lazily: the caller usually stops at the first."""
        buckets = self._buckets[state]
        for load in sorted(buckets, reverse=descending):
            bucket = buckets[load]
            first = bucket.random(rng)
            yield first
            yield from (node for node in bucket if node != first)

    def _bucket_add(self, state: GameServerState, load: int, node: str) -> None:
        self._buckets[state].setdefault(load, IndexedSet()).add(node)

    def _bucket_discard(self, state: GameServerState, load: int, node: str) -> None:
        bucket = self._buckets[state].get(load)
        if bucket is not None:
            bucket.discard(node)
            if not bucket:
                del self._buckets[state][load]

    def _relocate(self, node: str, old: int, new: int) -> None:
        """``node``'s Allocated count went from ``old`` to ``new``: move it in every state's buckets."""
        for state in ALLOCATABLE_STATES:
            if (node, state) in self._by_node:
                self._bucket_discard(state, old, node)
                self._bucket_add(state, new, node)

    def set_live_nodes(self, live: Mapping[str, str]) -> None:
        """Which node agent runs are alive (node -> boot id): servers on nodes whose run changed are
        fenced off or let back in."""
        first = self._live is None
        old = self._live or {}
        self._live = dict(live)
        if first:  # nothing was gated so far: judge every server
            for server in list(self.servers.values()):
                self.upsert(server)
            return
        for node in {n for n in old.keys() | live.keys() if old.get(n) != live.get(n)}:
            names = set(self._fenced_on.get(node, ()))
            for state in ALLOCATABLE_STATES:
                names.update(self.on_node(node, state))
            for name in names:
                known = self.fenced.get(name) or self.servers.get(name)
                if known is not None:
                    self.upsert(known)

    def upsert(self, gs: GameServer) -> None:
        """Record the latest version of ``gs`` (dropping it if it is no longer allocatable)."""
        self.remove(gs.name)
        if gs.state not in ALLOCATABLE_STATES or gs.metadata.deletion_timestamp is not None:
            return
        name, state, node = gs.name, gs.state, gs.status.node_name
        if self._live is not None and not confirmed(gs.metadata.annotations, node, self._live):
            self.fenced[name] = gs
            self._fenced_on.setdefault(node, set()).add(name)
            return
        self.servers[name] = gs
        self._by_state[state].add(name)
        for key, value in gs.metadata.labels.items():
            self._by_label.setdefault((key, value, state), IndexedSet()).add(name)
        load = self.allocated_on_node[node]
        if state is GameServerState.ALLOCATED:
            self._relocate(node, load, load + 1)
            load += 1
            self.allocated_on_node[node] = load
        members = self._by_node.get((node, state))
        if members is None:
            members = self._by_node[(node, state)] = IndexedSet()
            self._bucket_add(state, load, node)
        members.add(name)
        if self.share is not None and self.share.holds(name):
            self._mine_on_node.setdefault((node, state), IndexedSet()).add(name)

    def remove(self, name: str) -> None:
        fenced = self.fenced.pop(name, None)
        if fenced is not None:
            on_node = self._fenced_on[fenced.status.node_name]
            on_node.discard(name)
            if not on_node:
                del self._fenced_on[fenced.status.node_name]
            return
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
        load = self.allocated_on_node[node]
        members = self._by_node[(node, state)]
        members.discard(name)
        if not members:
            del self._by_node[(node, state)]
            self._bucket_discard(state, load, node)
        if self.share is not None:
            mine = self._mine_on_node.get((node, state))
            if mine is not None:
                mine.discard(name)
                if not mine:
                    del self._mine_on_node[(node, state)]
        if state is GameServerState.ALLOCATED:
            self._relocate(node, load, load - 1)
            if load > 1:
                self.allocated_on_node[node] = load - 1
            else:
                del self.allocated_on_node[node]
