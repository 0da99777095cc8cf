"""The dashboard's view-model and history ring: what the page shows, from snapshots, by tables."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fleetmatch.dashboard.history import FleetPoint, History, increase
from fleetmatch.dashboard.views import (
    AllocationCounts,
    Sample,
    allocation_counts,
    events_view,
    fleet_view,
    gameserver_view,
    node_view,
    queue_view,
    summary_view,
)
from fleetmatch.demo import DEMO_FILES
from fleetmatch.events import EventRecord, Severity
from fleetmatch.manifests import load_resources
from fleetmatch.models import (
    ERROR_ANNOTATION,
    FLEET_LABEL,
    Fleet,
    FleetAutoscaler,
    FleetStatus,
    GameServer,
    GameServerState,
    ObjectMeta,
    PortStatus,
)
from fleetmatch.nodes import NodeRecord

NOW = 1_800_000_000.0


def demo() -> tuple[Fleet, FleetAutoscaler]:
    resources = [r for path in DEMO_FILES for r in load_resources(path)]
    fleet = next(r for r in resources if isinstance(r, Fleet))
    scaler = next(r for r in resources if isinstance(r, FleetAutoscaler))
    return fleet, scaler


def server(
    name: str, state: GameServerState, *, fleet: str = "demo", node: str = "local", age: float = 30.0
) -> GameServer:
    gs = GameServer(ObjectMeta(name=name, labels={FLEET_LABEL: fleet}, creation_timestamp=NOW - age))
    return gs.with_status(state=state, address="10.0.0.5", ports=(PortStatus("default", 7001),), node_name=node)


def test_a_server_row_says_where_to_reach_it_and_why_it_failed() -> None:
    gs = server("demo-a", GameServerState.UNHEALTHY, age=125.04)
    gs = replace(gs, metadata=replace(gs.metadata, annotations={ERROR_ANNOTATION: "no health ping for 15s"}))
    assert gameserver_view(gs, NOW) == {
        "name": "demo-a",
        "fleet": "demo",
        "state": "Unhealthy",
        "address": "10.0.0.5",
        "port": 7001,
        "node": "local",
        "ageSeconds": 125.0,
        "players": None,
        "error": "no health ping for 15s",
    }


def test_a_server_not_yet_placed_has_no_port_and_no_age() -> None:
    gs = GameServer(ObjectMeta(name="demo-b"))
    row = gameserver_view(gs, NOW)
    assert (row["port"], row["ageSeconds"], row["fleet"], row["state"]) == (None, None, "", "Creating")


def test_fleet_counts_come_from_its_live_servers_and_carry_its_autoscaler() -> None:
    fleet, scaler = demo()
    servers = [
        server("demo-1", GameServerState.READY),
        server("demo-2", GameServerState.ALLOCATED),
        server("demo-3", GameServerState.ALLOCATED),
        server("demo-4", GameServerState.CREATING),
        server("other-1", GameServerState.READY, fleet="other"),
    ]
    view = fleet_view(fleet, [scaler], servers)
    assert (view["desired"], view["current"], view["ready"], view["allocated"]) == (4, 4, 1, 2)
    assert view["states"] == {"Creating": 1, "Ready": 1, "Allocated": 2}  # lifecycle order, zeros left out
    assert list(view["states"]) == ["Creating", "Ready", "Allocated"]
    assert view["autoscaler"]["name"] == scaler.name
    assert view["autoscaler"]["bufferSize"] == str(scaler.spec.policy.buffer.buffer_size)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("updated", "replicas", "rolling"),
    [(4, 4, False), (1, 4, True), (0, 0, False), (4, 5, True)],
    ids=["done", "halfway", "empty-fleet", "surging"],
)
def test_rollout_in_progress_while_servers_run_an_old_template(updated: int, replicas: int, rolling: bool) -> None:
    fleet, _ = demo()
    fleet = replace(fleet, status=FleetStatus(replicas=replicas, updated_replicas=updated))
    assert fleet_view(fleet, [], [])["rollout"] == {"updated": updated, "replicas": replicas, "inProgress": rolling}
    assert fleet_view(fleet, [], [])["autoscaler"] is None


@pytest.mark.parametrize(("renewed_ago", "ready"), [(2.0, True), (10.0, True), (10.5, False)])
def test_node_is_ready_while_it_heartbeats_within_the_lease(renewed_ago: float, ready: bool) -> None:
    record = NodeRecord("local", "boot1", "127.0.0.1", 200, NOW - renewed_ago, NOW - 600)
    servers = [server("a", GameServerState.READY), server("b", GameServerState.READY, node="elsewhere")]
    view = node_view(record, NOW, 10.0, servers)
    assert (view["ready"], view["servers"], view["states"], view["capacity"]) == (ready, 1, {"Ready": 1}, 200)


def test_events_newest_first_and_bounded() -> None:
    records = [
        EventRecord("GameServer", f"gs-{i}", "Unhealthy", "crashed", Severity.WARNING, 1, NOW - 100, NOW - i)
        for i in range(5)
    ]
    view = events_view(records, NOW, limit=3)
    assert [e["name"] for e in view] == ["gs-0", "gs-1", "gs-2"]
    assert view[1] == {
        "kind": "GameServer",
        "name": "gs-1",
        "reason": "Unhealthy",
        "message": "crashed",
        "type": "Warning",
        "count": 1,
        "ageSeconds": 1.0,
    }


def test_allocation_counts_split_successes_from_failures_by_reason() -> None:
    samples = [
        Sample("fleetmatch_allocations_total", {"result": "Allocated"}, 7),
        Sample("fleetmatch_allocations_total", {"result": "UnAllocated"}, 2),
        Sample("fleetmatch_allocations_total", {"result": "Allocated"}, 3),  # another process
        Sample("fleetmatch_allocations_total", {"result": "Contention"}, 1),
        Sample("fleetmatch_allocation_seconds_count", {"result": "Allocated"}, 99),
    ]
    counts = allocation_counts(samples)
    assert (counts.allocated, dict(counts.failures), counts.failed) == (10, {"UnAllocated": 2, "Contention": 1}, 3)


def test_queue_row_from_the_ticket_api_document_and_from_a_partial_one() -> None:
    doc = {
        "name": "duel",
        "waitingTickets": 3,
        "waitingPlayers": 4,
        "byRegion": {"eu": 3, "-": 1},
        "oldestWaitSeconds": 12.5,
        "lastTick": {"at": "2026-01-01T00:00:00Z", "seconds": 0.001, "matches": 2},
        "timeToMatchSeconds": {"p50": 1.5, "p95": 7.25},
    }
    assert queue_view(doc) == {
        "name": "duel",
        "waitingPlayers": 4,
        "waitingTickets": 3,
        "oldestWaitSeconds": 12.5,
        "p50": 1.5,
        "p95": 7.25,
        "lastTickMatches": 2,
        "byRegion": {"eu": 3, "-": 1},
    }
    partial = queue_view({"name": "4v4", "waitingPlayers": "many", "timeToMatchSeconds": None, "lastTick": None})
    assert (partial["waitingPlayers"], partial["p95"], partial["lastTickMatches"], partial["byRegion"]) == (
        0,
        None,
        None,
        {},
    )


def test_summary_tiles() -> None:
    servers = [server("a", GameServerState.READY), server("b", GameServerState.ERROR)]
    queues = [queue_view({"name": "q", "waitingPlayers": 3, "timeToMatchSeconds": {"p50": 1, "p95": 4}})]
    nodes = [{"ready": True}, {"ready": False}]
    tiles = summary_view([{}], servers, nodes, queues, 1.234, 2.0)
    assert tiles == {
        "fleets": 1,
        "gameServers": 2,
        "ready": 1,
        "allocated": 0,
        "unhealthy": 1,
        "nodes": 2,
        "nodesReady": 1,
        "waitingPlayers": 3,
        "timeToMatchP95": 4.0,
        "allocationsPerSecond": 1.23,
        "failuresLastMinute": 2,
    }
    assert summary_view([], [], [], None, 0, 0)["waitingPlayers"] is None  # unknown, not zero


@pytest.mark.parametrize(("before", "after", "grown"), [(5, 9, 4), (9, 9, 0), (9, 2, 2)], ids=["up", "flat", "reset"])
def test_counter_increase_survives_a_reset(before: float, after: float, grown: float) -> None:
    assert increase(before, after) == grown


def test_history_rates_and_failures_of_the_last_minute() -> None:
    history = History(capacity=100)
    fleet = {"demo": FleetPoint(4, 4, 0)}
    history.add(NOW, fleet, AllocationCounts(10, {"UnAllocated": 5}))
    point = history.add(NOW + 2, {"demo": FleetPoint(6, 4, 2)}, AllocationCounts(14, {"UnAllocated": 6, "error": 1}))
    assert (point.allocations_per_second, point.failures_per_second) == (2.0, 1.0)
    assert point.document() == {
        "t": int((NOW + 2) * 1000),
        "fleets": {"demo": [6, 4, 2]},
        "allocationsPerSecond": 2.0,
        "failuresPerSecond": 1.0,
    }
    assert history.failures_since(60) == {"UnAllocated": 1, "error": 1}
    history.add(NOW + 100, fleet, AllocationCounts(14, {"UnAllocated": 6, "error": 1}))
    assert history.failures_since(60) == {}  # nothing new within the minute


def test_history_is_bounded() -> None:
    history = History(capacity=3)
    for i in range(10):
        history.add(NOW + i, {}, AllocationCounts())
    assert [p["t"] for p in history.documents()] == [int((NOW + i) * 1000) for i in (7, 8, 9)]
