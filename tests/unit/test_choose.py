"""Server choice (pure): selectors, strategies, exclusion and the random tie-break, as tables."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from allocator.choose import SCAN_LIMIT, choose_server
from allocator.index import AllocationIndex, IndexedSet, Share
from fleetmatch.allocation import GameServerSelector, LabelRequirement, SelectorOperator
from fleetmatch.models import FLEET_LABEL, GameServer, GameServerState, ObjectMeta, SchedulingStrategy

S = GameServerState
PACKED, DISTRIBUTED = SchedulingStrategy.PACKED, SchedulingStrategy.DISTRIBUTED


def gs(name: str, node: str, state: GameServerState = S.READY, **labels: str) -> GameServer:
    meta = ObjectMeta(name=name, labels={FLEET_LABEL: "arena", **labels})
    return GameServer(metadata=meta).with_status(state=state, node_name=node)


def index_of(*servers: GameServer, share: Share | None = None) -> AllocationIndex:
    index = AllocationIndex(share)
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


# -- shares: `fleetmatch allocator --workers N`, each worker its own servers first -------------------

HALF = Share(0, 2)


def test_a_share_is_a_stable_split_of_names() -> None:
    names = [f"arena-{i:05d}" for i in range(2000)]
    shares = [Share(slot, 3) for slot in range(3)]
    held = [[n for n in names if share.holds(n)] for share in shares]
    assert sorted(n for h in held for n in h) == names  # each name in exactly one share
    assert all(600 <= len(h) <= 730 for h in held)  # and about a third each
    # The same in every process (a CRC-32, not the salted hash()): crc32("gs-1") is even.
    assert [Share(s, 2).holds("gs-1") for s in (0, 1)] == [True, False]
    for slot, of in [(2, 2), (-1, 2), (0, 0)]:
        with pytest.raises(ValueError, match="share slot"):
            Share(slot, of)


@pytest.mark.parametrize("size", [8, SCAN_LIMIT * 2])
def test_a_share_takes_its_own_servers_first_then_the_others(size: int) -> None:
    servers = [gs(f"s{i:04d}", "n1") for i in range(size)]
    mine = {g.name for g in servers if HALF.holds(g.name)}
    index = index_of(*servers, share=HALF)
    assert {pick(index, ARENA, seed=s) for s in range(200)} <= mine
    # Its own all taken (being claimed here): the others' servers, rather than nothing.
    assert pick(index, ARENA, exclude=mine) in {g.name for g in servers} - mine
    # Without a share nothing is preferred.
    assert {pick(index_of(*servers), ARENA, seed=s) for s in range(200)} - mine


@pytest.mark.parametrize("size", [8, SCAN_LIMIT * 2])
def test_a_contested_node_is_left_to_the_others_while_the_share_has_servers_elsewhere(size: int) -> None:
    busy = [gs(f"b{i:04d}", "busy") for i in range(size)] + [gs("b-alloc", "busy", S.ALLOCATED)]
    idle = [gs(f"i{i:04d}", "idle") for i in range(size)]
    index = index_of(*busy, *idle, share=HALF)
    mine_on_busy = {g.name for g in busy if HALF.holds(g.name) and g.state is S.READY}
    contested = {"busy"}.__contains__

    def node(**kw: object) -> str | None:
        name = pick(index, ARENA, **kw)
        return None if name is None else index.servers[name].status.node_name

    # Packed: the busy node, own share first, whether or not another allocator works there.
    assert node(contested=contested) == "busy"
    assert node(exclude=mine_on_busy) == "busy"  # uncontested: the others' share on the busy node
    # Contested and its own share there used up: its own share on the next node, not a race.
    chosen = pick(index, ARENA, exclude=mine_on_busy, contested=contested)
    assert chosen is not None and chosen.startswith("i") and HALF.holds(chosen)
    # Its own share used up everywhere: the others' servers on an uncontested node...
    everything_mine = {g.name for g in busy + idle if HALF.holds(g.name)}
    chosen = pick(index, ARENA, exclude=everything_mine, contested=contested)
    assert chosen is not None and chosen.startswith("i") and not HALF.holds(chosen)
    # ...and with nothing else free, the others' on the contested node after all (never "none").
    chosen = pick(index, ARENA, exclude=everything_mine | {g.name for g in idle}, contested=contested)
    assert chosen is not None and chosen.startswith("b") and not HALF.holds(chosen)


def test_the_share_index_follows_updates_and_removals() -> None:
    servers = [gs(f"s{i}", f"n{i % 2}") for i in range(40)]
    index = index_of(*servers, share=HALF)

    def mine(node: str, state: GameServerState) -> set[str]:
        return set(index.mine_on_node(node, state))

    assert mine("n0", S.READY) == {g.name for g in servers if g.status.node_name == "n0" and HALF.holds(g.name)}
    moved = next(g for g in servers if g.status.node_name == "n0" and HALF.holds(g.name))
    index.upsert(gs(moved.name, "n0", S.ALLOCATED))
    assert moved.name not in mine("n0", S.READY) and mine("n0", S.ALLOCATED) == {moved.name}
    for g in servers:
        index.remove(g.name)
    assert not any(mine(n, st) for n in ("n0", "n1") for st in (S.READY, S.ALLOCATED))
    plain = index_of(*servers)  # without a share, a node's own servers are all of them
    assert plain.mine_on_node("n0", S.READY) is plain.on_node("n0", S.READY)


def test_a_changed_share_resorts_the_servers_already_indexed() -> None:
    """``allocator.roster`` changes an allocator's share when allocators join or leave: the servers
    indexed before are sorted into the new share, and later updates follow it."""
    servers = [gs(f"s{i}", f"n{i % 2}", S.READY if i % 3 else S.ALLOCATED) for i in range(60)]
    index = index_of(*servers)

    def mine(share: Share | None, node: str, state: GameServerState) -> set[str]:
        return {
            g.name
            for g in servers
            if g.status.node_name == node and g.state is state and (share is None or share.holds(g.name))
        }

    for share in (Share(1, 2), Share(0, 3), Share(2, 3), None, Share(0, 2)):
        index.set_share(share)
        assert index.share == share
        for node in ("n0", "n1"):
            for state in (S.READY, S.ALLOCATED):
                assert set(index.mine_on_node(node, state)) == mine(share, node, state), (share, node, state)
    claimed = next(
        g for g in servers if g.status.node_name == "n1" and g.state is S.READY and Share(0, 2).holds(g.name)
    )
    index.upsert(gs(claimed.name, "n1", S.ALLOCATED))
    assert claimed.name in index.mine_on_node("n1", S.ALLOCATED)
    assert claimed.name not in index.mine_on_node("n1", S.READY)
    index.set_share(None)
    assert index.mine_on_node("n0", S.READY) is index.on_node("n0", S.READY)
