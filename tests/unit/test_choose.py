"""Server choice (pure): selectors, strategies, exclusion and the random tie-break, as tables."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from allocator.choose import SCAN_LIMIT, choose_server
from allocator.index import AllocationIndex, IndexedSet
from fleetmatch.allocation import GameServerSelector, LabelRequirement, SelectorOperator
from fleetmatch.models import FLEET_LABEL, GameServer, GameServerState, ObjectMeta, SchedulingStrategy

S = GameServerState
PACKED, DISTRIBUTED = SchedulingStrategy.PACKED, SchedulingStrategy.DISTRIBUTED


def gs(name: str, node: str, state: GameServerState = S.READY, **labels: str) -> GameServer:
    meta = ObjectMeta(name=name, labels={FLEET_LABEL: "arena", **labels})
    return GameServer(metadata=meta).with_status(state=state, node_name=node)


def index_of(*servers: GameServer) -> AllocationIndex:
    index = AllocationIndex()
    for server in servers:
        index.upsert(server)
    return index


def pick(index: AllocationIndex, selector: GameServerSelector, strategy=PACKED, seed=1, **kw) -> str | None:
    chosen = choose_server(index, selector, strategy, random.Random(seed), **kw)
    return chosen.name if chosen else None


ARENA = GameServerSelector.for_fleet("arena")


@pytest.mark.parametrize(
    ("servers", "selector", "expected"),
    [
        pytest.param([], ARENA, None, id="empty"),
        pytest.param([gs("a", "n1", S.ALLOCATED)], ARENA, None, id="only-allocated-for-ready-selector"),
        pytest.param(
            [gs("a", "n1", S.ALLOCATED)], GameServerSelector(game_server_state=S.ALLOCATED), "a", id="re-alloc"
        ),
        pytest.param(
            [gs("a", "n1"), gs("b", "n1", mode="duel")],
            GameServerSelector.for_fleet("arena", mode="duel"),
            "b",
            id="match-labels",
        ),
        pytest.param([gs("a", "n1")], GameServerSelector.for_fleet("other"), None, id="other-fleet"),
        pytest.param(
            [gs("a", "n1", mode="duel"), gs("b", "n1", mode="ffa")],
            GameServerSelector(match_expressions=(LabelRequirement("mode", SelectorOperator.NOT_IN, ("duel",)),)),
            "b",
            id="not-in",
        ),
        pytest.param(
            [gs("a", "n1", mode="duel"), gs("b", "n1")],
            GameServerSelector(match_expressions=(LabelRequirement("mode", SelectorOperator.DOES_NOT_EXIST),)),
            "b",
            id="does-not-exist",
        ),
        pytest.param(
            [gs("a", "n1", region="eu"), gs("b", "n1", region="us")],
            GameServerSelector(match_expressions=(LabelRequirement("region", SelectorOperator.IN, ("us", "ap")),)),
            "b",
            id="in",
        ),
    ],
)
def test_selector_table(servers: list[GameServer], selector: GameServerSelector, expected: str | None) -> None:
    assert pick(index_of(*servers), selector) == expected


def test_packed_fills_the_busiest_node() -> None:
    servers = [
        gs("busy-ready", "busy"),
        gs("busy-alloc-1", "busy", S.ALLOCATED),
        gs("busy-alloc-2", "busy", S.ALLOCATED),
    ]
    servers += [gs(f"idle-{i}", "idle") for i in range(6)]
    index = index_of(*servers)
    assert {pick(index, ARENA, seed=s) for s in range(30)} == {"busy-ready"}


def test_distributed_spreads_to_the_least_loaded_node() -> None:
    servers = [gs("busy-ready", "busy"), gs("busy-alloc", "busy", S.ALLOCATED), gs("idle-1", "idle")]
    index = index_of(*servers)
    assert {pick(index, ARENA, DISTRIBUTED, seed=s) for s in range(30)} == {"idle-1"}


def test_distributed_breaks_node_ties_randomly() -> None:
    index = index_of(*(gs(f"s{n}", f"node-{n}") for n in range(4)))
    picks = Counter(pick(index, ARENA, DISTRIBUTED, seed=s, best_few=1) for s in range(200))
    assert set(picks) == {"s0", "s1", "s2", "s3"}


@pytest.mark.parametrize("size", [10, SCAN_LIMIT * 2])
def test_ties_are_broken_at_random_across_the_node(size: int) -> None:
    index = index_of(*(gs(f"s{i}", "n1") for i in range(size)))
    picks = Counter(pick(index, ARENA, seed=s) for s in range(400))
    # Two allocators reading the same index rarely pick the same server: every equal candidate
    # gets chosen, none dominates.
    assert len(picks) >= min(size, 150)
    assert max(picks.values()) <= 400 // min(size, 100) * 3


def test_excluded_servers_are_skipped() -> None:
    index = index_of(gs("a", "n1"), gs("b", "n1"))
    assert pick(index, ARENA, exclude={"a"}) == "b"
    assert pick(index, ARENA, exclude={"a", "b"}) is None


@pytest.mark.parametrize("strategy", [PACKED, DISTRIBUTED])
def test_large_pools_are_probed_not_scanned_and_still_correct(strategy: SchedulingStrategy) -> None:
    many = [gs(f"s{i:05d}", f"node-{i % 3}") for i in range(SCAN_LIMIT * 12)]
    rare = gs("the-one", "node-1", mode="rare")
    index = index_of(*many, rare, gs("x", "node-2", S.ALLOCATED))
    assert pick(index, GameServerSelector.for_fleet("arena", mode="rare"), strategy) == "the-one"
    chosen = choose_server(index, ARENA, strategy, random.Random(3))
    assert chosen is not None
    # Packed prefers node-2 (it has an Allocated server); Distributed avoids it.
    assert (chosen.status.node_name == "node-2") is (strategy is PACKED)
    exprs = (LabelRequirement("mode", SelectorOperator.EXISTS),)
    assert pick(index, GameServerSelector(match_expressions=exprs), strategy) == "the-one"


def test_index_follows_updates_and_removals() -> None:
    index = index_of(gs("a", "n1"), gs("b", "n1"))
    index.upsert(gs("a", "n1", S.ALLOCATED))
    assert index.count(S.READY) == 1 and index.count(S.ALLOCATED) == 1 and index.allocated_on_node["n1"] == 1
    index.upsert(gs("b", "n1", S.SHUTDOWN))  # no longer allocatable: dropped
    assert index.count(S.READY) == 0 and "b" not in index.servers
    index.remove("a")
    assert len(index) == 0 and index.allocated_on_node == Counter()
    assert index.nodes(S.READY) == [] and len(index.with_label(FLEET_LABEL, "arena", S.READY)) == 0


def test_indexed_set() -> None:
    items: IndexedSet[int] = IndexedSet()
    for i in range(5):
        items.add(i)
    items.add(3)
    items.discard(1)
    items.discard(42)
    assert sorted(items) == [0, 2, 3, 4] and len(items) == 4 and 1 not in items
    rng = random.Random(0)
    assert {items.random(rng) for _ in range(100)} == {0, 2, 3, 4}


def test_node_load_buckets_match_a_brute_force_count() -> None:
    """Random upserts and removals: the bucketed node order equals sorting every node by load."""
    rng = random.Random(7)
    index = AllocationIndex()
    live: dict[str, GameServer] = {}
    for step in range(3000):
        name = f"s{rng.randrange(60)}"
        if rng.random() < 0.2:
            index.remove(name)
            live.pop(name, None)
        else:
            state = rng.choice([S.READY, S.ALLOCATED, S.ALLOCATED, S.SHUTDOWN])
            server = gs(name, f"n{rng.randrange(7)}", state)
            index.upsert(server)
            if state is S.SHUTDOWN:
                live.pop(name, None)
            else:
                live[name] = server
        if step % 100:
            continue
        load = Counter(g.status.node_name for g in live.values() if g.state is S.ALLOCATED)
        for state in (S.READY, S.ALLOCATED):
            having = {g.status.node_name for g in live.values() if g.state is state}
            order = list(index.nodes_by_load(state, descending=True, rng=rng))
            assert sorted(order) == sorted(having)
            assert [load[n] for n in order] == sorted((load[n] for n in having), reverse=True)
        assert index.allocated_on_node == +load
