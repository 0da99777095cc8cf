"""The fleet controller's pure plan: replace, scale up, scale down in strategy order, never
touch Allocated or Reserved servers."""

from __future__ import annotations

import pytest

from allocator.fleetplan import new_gameserver, plan_fleet, plan_orphans
from fleetmatch.models import (
    FLEET_LABEL,
    Fleet,
    FleetSpec,
    GameServer,
    GameServerSpec,
    GameServerState,
    GameServerTemplate,
    ObjectMeta,
    ProcessTemplate,
    SchedulingStrategy,
    TemplateMeta,
)

S = GameServerState
NOW = 1_000_000.0


def fleet(replicas: int, scheduling: SchedulingStrategy = SchedulingStrategy.PACKED) -> Fleet:
    template = GameServerTemplate(
        metadata=TemplateMeta(labels={"game": "demo"}),
        spec=GameServerSpec(process=ProcessTemplate(("python", "-m", "game"))),
    )
    return Fleet(
        metadata=ObjectMeta(name="arena", generation=3),
        spec=FleetSpec(replicas=replicas, scheduling=scheduling, template=template),
    )


def server(name: str, state: GameServerState, node: str = "n1", created: float = 0.0) -> GameServer:
    gs = GameServer(metadata=ObjectMeta(name=name, labels={FLEET_LABEL: "arena"}, creation_timestamp=created))
    return gs.with_status(state=state, node_name=node)


def names(plan_delete: tuple[GameServer, ...]) -> list[str]:
    return [g.name for g in plan_delete]


def test_creates_missing_servers() -> None:
    plan = plan_fleet(fleet(4), [server("a", S.READY)], now=NOW)
    assert plan.create == 3 and plan.delete == ()


def test_in_flight_creations_are_not_repeated() -> None:
    plan = plan_fleet(fleet(4), [server("a", S.READY)], now=NOW, in_flight=3)
    assert plan.create == 0


def test_creations_are_capped_per_pass() -> None:
    assert plan_fleet(fleet(500), [], now=NOW, max_creations=64).create == 64


@pytest.mark.parametrize(("state", "reason"), [(S.UNHEALTHY, "unhealthy"), (S.SHUTDOWN, "shutdown")])
def test_terminal_servers_are_replaced(state: GameServerState, reason: str) -> None:
    plan = plan_fleet(fleet(2), [server("a", S.READY), server("b", state)], now=NOW)
    assert names(plan.delete) == ["b"] and plan.reasons == (reason,)
    assert plan.create == 1


def test_error_servers_wait_before_replacement() -> None:
    young = plan_fleet(fleet(1), [server("a", S.ERROR, created=NOW - 5)], now=NOW)
    assert young.delete == () and young.create == 0
    old = plan_fleet(fleet(1), [server("a", S.ERROR, created=NOW - 31)], now=NOW)
    assert names(old.delete) == ["a"] and old.create == 1


def test_scale_down_never_deletes_allocated_or_reserved() -> None:
    members = [server("a", S.ALLOCATED), server("b", S.RESERVED), server("c", S.READY)]
    plan = plan_fleet(fleet(0), members, now=NOW)
    assert names(plan.delete) == ["c"]


def test_packed_scale_down_order() -> None:
    members = [
        server("ready-busy-node-1", S.READY, node="busy"),
        server("ready-busy-node-2", S.READY, node="busy"),
        server("allocated-busy", S.ALLOCATED, node="busy"),
        server("ready-quiet-node", S.READY, node="quiet"),
        server("starting", S.SCHEDULED, node="busy"),
        server("unscheduled", S.CREATING, node=""),
    ]
    plan = plan_fleet(fleet(2), members, now=NOW)
    # Not on a node first, then not yet Ready, then the node with fewest servers (Allocated
    # ones count), so whole nodes drain.
    assert names(plan.delete) == ["unscheduled", "starting", "ready-quiet-node", "ready-busy-node-1"]


def test_distributed_scale_down_removes_pending_then_newest() -> None:
    members = [
        server("old", S.READY, created=1),
        server("new", S.READY, created=3),
        server("mid", S.READY, created=2),
        server("pending", S.SCHEDULED, created=0),
    ]
    plan = plan_fleet(fleet(1, SchedulingStrategy.DISTRIBUTED), members, now=NOW)
    assert names(plan.delete) == ["pending", "new", "mid"]


def test_status_counts() -> None:
    members = [
        server("a", S.READY),
        server("b", S.READY),
        server("c", S.ALLOCATED),
        server("d", S.RESERVED),
        server("e", S.SHUTDOWN),
    ]
    status = plan_fleet(fleet(4), members, now=NOW).status
    assert (status.replicas, status.ready_replicas, status.allocated_replicas, status.reserved_replicas) == (4, 2, 1, 1)
    assert status.observed_generation == 3


def test_orphans_keep_what_a_match_uses() -> None:
    members = [server("a", S.READY), server("b", S.ALLOCATED), server("c", S.UNHEALTHY), server("d", S.RESERVED)]
    assert names(plan_orphans(members)) == ["a", "c"]


def test_new_gameserver_carries_template_and_fleet_label() -> None:
    gs = new_gameserver(fleet(1, SchedulingStrategy.DISTRIBUTED))
    assert gs.metadata.generate_name == "arena-" and not gs.metadata.name
    assert gs.metadata.labels == {"game": "demo", FLEET_LABEL: "arena"}
    assert gs.spec.scheduling is SchedulingStrategy.DISTRIBUTED
    assert gs.state is GameServerState.CREATING
