"""Node heartbeats, pure: who is live or lapsed (a store outage is no node's fault), which servers a
live agent run confirms, and the allocation index fencing off the others."""

from __future__ import annotations

import random

from allocator.choose import choose_server
from allocator.index import AllocationIndex
from fleetmatch.allocation import GameServerSelector
from fleetmatch.models import FLEET_LABEL, GameServer, GameServerState, ObjectMeta, SchedulingStrategy
from fleetmatch.nodes import NODE_BOOT_ANNOTATION, NodeRecord, OutageGrace, confirmed, lapsed_nodes, live_nodes

LEASE = 10.0


def record(name: str, renewed: float, boot: str = "b1") -> NodeRecord:
    return NodeRecord(name, boot, "10.0.0.1", 100, renewed, 0.0)


def server(name: str, node: str, boot: str | None, state: GameServerState = GameServerState.READY) -> GameServer:
    annotations = {NODE_BOOT_ANNOTATION: boot} if boot is not None else {}
    gs = GameServer(metadata=ObjectMeta(name=name, labels={FLEET_LABEL: "arena"}, annotations=annotations))
    return gs.with_status(state=state, node_name=node, address="10.0.0.1")


def test_live_and_lapsed_by_the_lease() -> None:
    records = [record("a", 95.0), record("b", 89.0), record("c", 90.0)]
    assert live_nodes(records, 100.0, LEASE) == {"a": "b1", "c": "b1"}
    assert set(lapsed_nodes(records, 100.0, LEASE)) == {"b"}


def test_after_a_store_outage_every_node_gets_a_fresh_lease() -> None:
    """Nobody could heartbeat while the store was down: silence counts from when it came back."""
    records = [record("a", 50.0), record("b", 55.0)]
    assert lapsed_nodes(records, 100.0, LEASE, healthy_since=95.0) == {}
    assert set(lapsed_nodes(records, 106.0, LEASE, healthy_since=95.0)) == {"a", "b"}


def test_an_outage_is_a_failed_read_or_a_read_that_came_too_late() -> None:
    """The store time of the first read after an outage; a read that spanned one (no failure, just
    late: a client retrying with backoff, a paused store) counts as one too."""
    grace = OutageGrace(gap=3.5)
    assert grace.read(now=100.0, at=10.0) == 100.0  # the first read: every node gets a fresh lease
    assert grace.read(now=101.0, at=11.0) == 100.0
    assert grace.read(now=104.0, at=14.0) == 100.0  # 3 s since the last read: within the gap
    assert grace.read(now=115.0, at=25.0) == 115.0  # 11 s late: nobody could renew meanwhile
    grace.failed()
    assert grace.read(now=116.0, at=26.0) == 116.0
    assert grace.read(now=117.0, at=27.0) == 116.0
    grace.reset()
    assert grace.read(now=118.0, at=28.0) == 118.0


def test_only_the_live_run_of_a_node_confirms_its_servers() -> None:
    live = {"a": "b2"}
    assert confirmed({NODE_BOOT_ANNOTATION: "b2"}, "a", live)
    assert not confirmed({NODE_BOOT_ANNOTATION: "b1"}, "a", live)  # left by a run that restarted
    assert not confirmed({NODE_BOOT_ANNOTATION: "b2"}, "z", live)  # its node is silent
    assert confirmed({}, "k8s-node", live)  # not placed by a node agent: not gated


def test_the_index_fences_servers_of_silent_or_restarted_nodes_and_lets_them_back() -> None:
    index = AllocationIndex()
    for gs in (server("a1", "a", "b1"), server("a2", "a", "b1"), server("k1", "k", None)):
        index.upsert(gs)
    assert len(index) == 3  # no heartbeats known yet: nothing gated
    index.set_live_nodes({})
    assert set(index.servers) == {"k1"} and set(index.fenced) == {"a1", "a2"}
    index.set_live_nodes({"a": "b2"})  # node a is back, but it is another run
    assert set(index.fenced) == {"a1", "a2"}
    index.upsert(server("a1", "a", "b2"))  # the new run confirmed a1
    assert set(index.servers) == {"k1", "a1"}
    index.set_live_nodes({"a": "b1"})
    assert set(index.servers) == {"k1", "a2"} and set(index.fenced) == {"a1"}
    index.remove("a1")
    index.upsert(server("a2", "a", "b1", GameServerState.UNHEALTHY))
    assert set(index.servers) == {"k1"} and not index.fenced
    selector = GameServerSelector.for_fleet("arena")
    chosen = choose_server(index, selector, SchedulingStrategy.PACKED, random.Random(1))
    assert chosen is not None and chosen.name == "k1"
