"""Which server an allocation takes (pure: an index, a selector, a strategy and an rng in; a server out).

- **Packed**: nodes with the most Allocated servers first, so busy nodes fill up and idle ones
  empty out (and can be scaled away). Re-allocating already-Allocated servers (high density) is
  what a selector with ``gameServerState: Allocated`` asks for; list it before a Ready selector.
- **Distributed**: nodes with the fewest Allocated servers first, ties in random order, so load
  spreads.

Ties are broken randomly: among up to ``best_few`` matching servers sampled at random from the
preferred node (then from nodes with the same load), one is taken at random. Several allocators
(or concurrent requests) working from the same view then rarely pick the same server, and the loser of a race retries on
another one (``exclude``). A less preferred node is never used while a preferred one has a match,
with one exception: an allocator with a ``Share`` of the servers (one of ``--workers N``) looks at
its own share of a node first, and passes over the others' share of a node where another worker is
claiming right now (``contested``) while anything else is free.

Cost: the smallest index among the selector's state and ``matchLabels`` bounds the work. When it is
small it is scanned; when it is large, nodes are visited in preference order and each is probed
with random picks before (rarely) being scanned.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Iterator
from functools import partial

from allocator.index import AllocationIndex, IndexedSet
from fleetmatch.allocation import GameServerSelector
from fleetmatch.models import GameServer, GameServerState, SchedulingStrategy

SCAN_LIMIT = 256
"""A selector's smallest index set up to this size is scanned outright; a larger one is reached
node by node, each node probed at random first."""
PROBES = 4
"""Random picks tried on a node (of more servers than this) before scanning it. Few: under load
the preferred node's Ready servers are mostly being claimed by concurrent requests (Packed sends
them all there), so probes miss; a scan from a random place stops at the first ``best_few`` fits
(on the 10,000-server benchmark, 32 probes cost 16 us per choice, 4 cost 12 us)."""


def node_order(
    index: AllocationIndex, nodes: list[str], strategy: SchedulingStrategy, rng: random.Random
) -> Iterator[str]:
    """Nodes in the order a strategy prefers them, lazily: the first one usually has a match, so
    the best node costs one pass and the full sort happens only when it is needed."""
    if not nodes:
        return
    load = index.allocated_on_node
    if strategy is SchedulingStrategy.PACKED:

        def key(node: str) -> tuple[int, str]:
            return (-load[node], node)

    else:
        nodes = list(nodes)
        rng.shuffle(nodes)  # equally loaded nodes in random order: spread, and fewer collisions

        def key(node: str) -> tuple[int, str]:
            return (load[node], "")

    best = min(nodes, key=key)
    yield best
    yield from (node for node in sorted(nodes, key=key) if node != best)


def choose_server(
    index: AllocationIndex,
    selector: GameServerSelector,
    strategy: SchedulingStrategy,
    rng: random.Random,
    *,
    exclude: Collection[str] = frozenset(),
    best_few: int = 4,
    contested: Callable[[str], bool] | None = None,
) -> GameServer | None:
    """A server matching ``selector`` per ``strategy``, or None if none is free.

    With a share (``index.share``), a node's servers of this allocator's share come first; the
    others' only where none of its own fits. ``contested(node)``: another allocator is claiming on
    that node right now, so taking the others' servers there would mostly race it: they are passed
    over for the next node in the strategy's order, and taken only when nothing else is free (a
    worker whose peers are idle still packs nodes full)."""
    state = selector.game_server_state
    sets = [index.in_state(state)]
    sets += [index.with_label(k, v, state) for k, v in selector.match_labels.items()]
    base = min(sets, key=len)
    if not base:
        return None
    fits = _matcher(index, selector, [s for s in sets if s is not base], exclude)
    nodes: Callable[[], Iterator[str]]
    matches_of: Callable[[str, Callable[[str], bool] | None], list[str]]
    if len(base) <= SCAN_LIMIT:
        by_node: dict[str, list[str]] = {}
        for name in base:
            if fits(name):
                by_node.setdefault(index.servers[name].status.node_name, []).append(name)
        nodes = partial(node_order, index, list(by_node), strategy, rng)

        def matches_of(node: str, yielding: Callable[[str], bool] | None) -> list[str]:
            found = by_node[node]
            if index.share is not None:
                mine = index.mine_on_node(node, state)
                found = [name for name in found if name in mine] or ([] if yielding and yielding(node) else found)
            return rng.sample(found, best_few) if len(found) > best_few else found

    else:
        nodes = partial(index.nodes_by_load, state, descending=strategy is SchedulingStrategy.PACKED, rng=rng)
        matches_of = partial(_matches_on, index, state, base, fits, rng, best_few)
    yielding = contested if index.share is not None else None
    picked = _pick(index, nodes(), matches_of, yielding, best_few)
    if not picked and yielding is not None:
        picked = _pick(index, nodes(), matches_of, None, best_few)
    if not picked:
        return None
    return index.servers[picked[int(rng.random() * len(picked))]]


def _pick(
    index: AllocationIndex,
    nodes: Iterator[str],
    matches_of: Callable[[str, Callable[[str], bool] | None], list[str]],
    yielding: Callable[[str], bool] | None,
    best_few: int,
) -> list[str]:
    """Candidates from the first node (in ``nodes``' order) that has any, and from the nodes
    equally loaded after it, up to ``best_few``."""
    picked: list[str] = []
    rank: int | None = None
    load = index.allocated_on_node
    for node in nodes:
        if rank is not None and load[node] != rank:
            break  # only equally loaded nodes share the tie-break
        found = matches_of(node, yielding)
        if found:
            picked += found
            rank = load[node]
            if len(picked) >= best_few:
                break
    return picked


def _matcher(
    index: AllocationIndex,
    selector: GameServerSelector,
    others: list[IndexedSet[str]],
    exclude: Collection[str],
) -> Callable[[str], bool]:
    """Does a server (already in the smallest index set) fit the rest of the selector?"""
    expressions = selector.match_expressions
    counts = selector.filters_counts
    servers = index.servers

    def fits(name: str) -> bool:
        if name in exclude:
            return False
        for members in others:
            if name not in members:
                return False
        if expressions:
            labels = servers[name].metadata.labels
            if not all(req.matches(labels) for req in expressions):
                return False
        return not counts or selector.counts_match(servers[name])

    return fits


def _matches_on(
    index: AllocationIndex,
    state: GameServerState,
    base: IndexedSet[str],
    fits: Callable[[str], bool],
    rng: random.Random,
    want: int,
    node: str,
    yielding: Callable[[str], bool] | None,
) -> list[str]:
    """Up to ``want`` (at least one if any) servers of ``node`` that fit: of this allocator's share
    if any of those fits (``allocator.index.Share``), else of the others' unless ``yielding(node)``."""
    members = index.on_node(node, state)
    mine = index.mine_on_node(node, state)
    found = _fits_among(mine, base, fits, rng, want)
    if found or mine is members or (yielding is not None and yielding(node)):
        return found
    return _fits_among(members, base, fits, rng, want)


def _fits_among(
    members: IndexedSet[str], base: IndexedSet[str], fits: Callable[[str], bool], rng: random.Random, want: int
) -> list[str]:
    if len(members) > PROBES:
        for _ in range(PROBES):
            name = members.random(rng)  # uniformly random: the first fit is already a random tie-break
            if name in base and fits(name):
                return [name]
    # Few servers (a node nearly full, often all of them being claimed by concurrent requests: the
    # probes would all miss), or unlucky: scan, from a random place so that allocators do not all
    # take the same ones.
    out = []
    for name in members.from_random_place(rng):
        if name in base and fits(name):
            out.append(name)
            if len(out) >= want:
                break
    return out
