"""The fleet controller's pure plan: replace, scale up, scale down in strategy order, roll or
recreate on a template change, and never touch Allocated or Reserved servers."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from allocator.fleetplan import (
    TEMPLATE_HASH_LABEL,
    FleetPlan,
    fenceposts,
    is_current,
    new_gameserver,
    plan_fleet,
    plan_orphans,
    ready_floor,
    template_hash,
)
from fleetmatch.models import (
    FLEET_LABEL,
    PENDING_STATES,
    Fleet,
    FleetSpec,
    FleetStrategy,
    FleetStrategyType,
    GameServer,
    GameServerSpec,
    GameServerState,
    GameServerTemplate,
    Health,
    ObjectMeta,
    ProcessTemplate,
    RollingUpdate,
    SchedulingStrategy,
    TemplateMeta,
)
from fleetmatch.names import label_value_error

S = GameServerState
NOW = 1_000_000.0
PACKED, DISTRIBUTED = SchedulingStrategy.PACKED, SchedulingStrategy.DISTRIBUTED
RECREATE = FleetStrategy(type=FleetStrategyType.RECREATE)


def template(**env: str) -> GameServerTemplate:
    return GameServerTemplate(
        metadata=TemplateMeta(labels={"game": "demo"}),
        spec=GameServerSpec(process=ProcessTemplate(("python", "-m", "game"), env=env)),
    )


def rolling(surge: int | str, unavailable: int | str) -> FleetStrategy:
    return FleetStrategy(rolling_update=RollingUpdate(max_surge=surge, max_unavailable=unavailable))


def fleet(
    replicas: int,
    scheduling: SchedulingStrategy = PACKED,
    strategy: FleetStrategy | None = None,
    version: str = "1",
) -> Fleet:
    return Fleet(
        metadata=ObjectMeta(name="arena", generation=3),
        spec=FleetSpec(
            replicas=replicas,
            scheduling=scheduling,
            strategy=strategy or FleetStrategy(),
            template=template(VERSION=version),
        ),
    )


CURRENT = template_hash(fleet(1).spec.template)
OLD = template_hash(fleet(1, version="0").spec.template)


def server(
    name: str, state: GameServerState, node: str = "n1", created: float = 0.0, digest: str | None = CURRENT
) -> GameServer:
    labels = {FLEET_LABEL: "arena"} | ({TEMPLATE_HASH_LABEL: digest} if digest else {})
    gs = GameServer(metadata=ObjectMeta(name=name, labels=labels, creation_timestamp=created))
    return gs.with_status(state=state, node_name=node)


def old(name: str, state: GameServerState, node: str = "n1", created: float = 0.0) -> GameServer:
    return server(name, state, node, created, digest=OLD)


def names(plan_delete: tuple[GameServer, ...]) -> list[str]:
    return [g.name for g in plan_delete]


# -- scaling and replacement --------------------------------------------------------------------


def test_creates_missing_servers() -> None:
    plan = plan_fleet(fleet(4), [server("a", S.READY)], now=NOW)
    assert plan.create == 3 and plan.delete == () and plan.create_reason == "scale-up"


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
    old_error = plan_fleet(fleet(1), [server("a", S.ERROR, created=NOW - 31)], now=NOW)
    assert names(old_error.delete) == ["a"] and old_error.create == 1


def test_scale_down_never_deletes_allocated_or_reserved() -> None:
    members = [server("a", S.ALLOCATED), server("b", S.RESERVED), server("c", S.READY)]
    plan = plan_fleet(fleet(0), members, now=NOW)
    assert names(plan.delete) == ["c"] and plan.reasons == ("scale-down",)


def test_scale_down_below_the_allocated_count_keeps_them_all() -> None:
    members = [server("a", S.ALLOCATED), server("b", S.ALLOCATED), server("c", S.READY), server("d", S.SCHEDULED)]
    plan = plan_fleet(fleet(1), members, now=NOW)
    assert sorted(names(plan.delete)) == ["c", "d"] and plan.create == 0


def test_packed_scale_down_order() -> None:
    members = [
        server("ready-busy-node-1", S.READY, node="busy"),
        server("ready-busy-node-2", S.READY, node="busy"),
        server("allocated-busy", S.ALLOCATED, node="busy"),
        server("starting-busy", S.SCHEDULED, node="busy"),
        server("ready-quiet-node", S.READY, node="quiet"),
        server("ready-other-quiet-node", S.READY, node="quiet2"),
        server("unscheduled", S.CREATING, node=""),
    ]
    plan = plan_fleet(fleet(2), members, now=NOW)
    # Not on a node first, then the least-loaded node (Allocated servers count; equal nodes by
    # name, so one empties first), not-yet-Ready before Ready within a node.
    assert names(plan.delete) == [
        "unscheduled",
        "ready-quiet-node",
        "ready-other-quiet-node",
        "starting-busy",
        "ready-busy-node-1",
    ]


def test_distributed_scale_down_removes_newest_first() -> None:
    members = [
        server("old", S.READY, created=1),
        server("new", S.READY, created=3),
        server("mid", S.READY, created=2),
        server("pending-but-oldest", S.SCHEDULED, created=0),
    ]
    plan = plan_fleet(fleet(1, DISTRIBUTED), members, now=NOW)
    assert names(plan.delete) == ["new", "mid", "old"]


def test_deletions_are_capped_per_pass_terminal_ones_first() -> None:
    members = [server(f"u{i}", S.UNHEALTHY) for i in range(3)] + [server(f"r{i}", S.READY) for i in range(5)]
    plan = plan_fleet(fleet(1), members, now=NOW, max_deletions=4)
    assert plan.reasons == ("unhealthy",) * 3 + ("scale-down",)


def test_fleet_of_zero_with_nothing_does_nothing() -> None:
    plan = plan_fleet(fleet(0), [], now=NOW)
    assert (plan.create, plan.delete) == (0, ())


# -- status -------------------------------------------------------------------------------------


def test_status_counts() -> None:
    members = [
        server("a", S.READY),
        server("b", S.READY),
        server("c", S.ALLOCATED),
        old("d", S.RESERVED),
        old("e", S.SHUTDOWN),
        server("f", S.UNHEALTHY),
    ]
    status = plan_fleet(fleet(4), members, now=NOW).status
    assert (status.replicas, status.ready_replicas, status.allocated_replicas, status.reserved_replicas) == (5, 2, 1, 1)
    assert status.updated_replicas == 4  # a, b, c, f: made from the current template and not Shutdown
    assert status.states == {"Ready": 2, "Allocated": 1, "Reserved": 1, "Shutdown": 1, "Unhealthy": 1}
    assert status.observed_generation == 3


# -- template identity --------------------------------------------------------------------------


def test_template_hash_is_a_stable_label_value() -> None:
    digest = template_hash(template(VERSION="1"))
    assert digest == CURRENT and label_value_error(digest) is None and len(digest) == 10
    assert template_hash(template(VERSION="2")) != digest
    reordered = GameServerTemplate(
        metadata=TemplateMeta(labels={"game": "demo"}),
        spec=GameServerSpec(process=ProcessTemplate(("python", "-m", "game"), env={"VERSION": "1"})),
    )
    assert template_hash(reordered) == digest


def test_template_hash_ignores_defaults_spelled_out() -> None:
    """A field at its default does not count, so adding a field to the model does not roll fleets."""
    explicit = replace(template(VERSION="1"), spec=replace(template(VERSION="1").spec, health=Health()))
    assert template_hash(explicit) == CURRENT
    changed = replace(explicit, spec=replace(explicit.spec, health=Health(period_seconds=7)))
    assert template_hash(changed) != CURRENT


def test_servers_without_the_label_are_old() -> None:
    assert is_current(server("a", S.READY), CURRENT)
    assert not is_current(server("b", S.READY, digest=None), CURRENT)
    assert not is_current(old("c", S.READY), CURRENT)


def test_new_gameserver_carries_template_fleet_and_hash_labels() -> None:
    gs = new_gameserver(fleet(1, DISTRIBUTED))
    assert gs.metadata.generate_name == "arena-" and not gs.metadata.name
    assert gs.metadata.labels == {"game": "demo", FLEET_LABEL: "arena", TEMPLATE_HASH_LABEL: CURRENT}
    assert gs.spec.scheduling is DISTRIBUTED
    assert gs.state is GameServerState.CREATING


def test_orphans_keep_what_a_match_uses() -> None:
    members = [server("a", S.READY), server("b", S.ALLOCATED), server("c", S.UNHEALTHY), server("d", S.RESERVED)]
    assert names(plan_orphans(members)) == ["a", "c"]


# -- rolling-update arithmetic ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("surge", "unavailable", "replicas", "expected"),
    [
        pytest.param("25%", "25%", 4, (1, 1), id="defaults-of-4"),
        pytest.param("25%", "25%", 10, (3, 2), id="surge-rounds-up-unavailable-down"),
        pytest.param("25%", "25%", 1, (1, 0), id="defaults-of-1"),
        pytest.param(0, 0, 4, (1, 0), id="both-zero-surges-one"),
        pytest.param("0%", "0%", 0, (1, 0), id="zero-replicas"),
        pytest.param(2, "50%", 5, (2, 2), id="absolute-and-percent"),
        pytest.param(0, 1, 4, (0, 1), id="no-surge"),
    ],
)
def test_fenceposts(surge: int | str, unavailable: int | str, replicas: int, expected: tuple[int, int]) -> None:
    assert fenceposts(RollingUpdate(max_surge=surge, max_unavailable=unavailable), replicas) == expected


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "protected", "expected"),
    [
        pytest.param(4, 1, 1, 0, 3, id="replicas-minus-unavailable"),
        pytest.param(4, 1, 1, 1, 3, id="one-in-a-match-still-reachable"),
        pytest.param(10, 3, 2, 8, 2, id="mostly-in-matches-keeps-what-it-will-have"),
        pytest.param(4, 0, 1, 1, 2, id="no-surge-one-must-go-first"),
        pytest.param(4, 1, 9, 0, 0, id="never-negative"),
        pytest.param(0, 1, 0, 2, 0, id="zero-replicas"),
    ],
)
def test_ready_floor(replicas: int, surge: int, unavailable: int, protected: int, expected: int) -> None:
    assert ready_floor(replicas, surge, unavailable, protected) == expected


# -- rolling update and recreate: one pass ------------------------------------------------------


SURGE_1_UNAVAILABLE_1 = rolling(1, 1)


@dataclass(frozen=True)
class Case:
    members: list[GameServer]
    replicas: int = 4
    strategy: FleetStrategy = SURGE_1_UNAVAILABLE_1
    create: int = 0
    delete: tuple[str, ...] = ()
    reasons: tuple[str, ...] | None = None


def ready_old(n: int, start: int = 0) -> list[GameServer]:
    return [old(f"old-{i}", S.READY, created=float(i)) for i in range(start, start + n)]


PASSES = {
    "starts-by-surging-and-taking-one-unavailable": Case(ready_old(4), create=1, delete=("old-0",)),
    "waits-for-the-new-one-at-the-floor": Case([*ready_old(3), server("new-0", S.SCHEDULED)], create=1),
    "at-surge-limit-deletes-once-a-new-one-is-ready": Case(
        [*ready_old(3), server("new-0", S.READY), server("new-1", S.SCHEDULED)], delete=("old-0",)
    ),
    "old-not-ready-ones-go-first-and-freely": Case(
        [*ready_old(2), old("old-starting", S.SCHEDULED), old("old-unplaced", S.CREATING, node="")],
        create=1,
        delete=("old-unplaced", "old-starting"),
    ),
    "old-allocated-counts-toward-replicas-and-stays": Case([old("old-match", S.ALLOCATED), *ready_old(3)], create=1),
    "old-reserved-stays-too": Case([old("old-held", S.RESERVED), *[server(f"new-{i}", S.READY) for i in range(3)]]),
    "an-ended-old-match-is-replaced-on-the-new-template": Case(
        [old("old-match", S.SHUTDOWN), *[server(f"new-{i}", S.READY) for i in range(3)]],
        create=1,
        delete=("old-match",),
        reasons=("shutdown",),
    ),
    "mostly-in-matches-does-not-stall": Case(
        [
            *[old(f"match-{i}", S.ALLOCATED) for i in range(8)],
            *ready_old(2),
            server("new-0", S.READY),
            server("new-1", S.READY),
        ],
        replicas=10,
        strategy=FleetStrategy(),
        delete=("old-0", "old-1"),
    ),
    "no-surge-deletes-first": Case(ready_old(4), strategy=rolling(0, 1), delete=("old-0",)),
    "no-surge-then-creates": Case(ready_old(3), strategy=rolling(0, 1), create=1),
    "zero-and-zero-surges-one": Case(ready_old(4), strategy=rolling(0, 0), create=1),
    "percentages": Case(ready_old(8), replicas=8, strategy=rolling("25%", "25%"), create=2, delete=("old-0", "old-1")),
    "zero-replicas-deletes-all-old-but-matches": Case(
        [*ready_old(2), old("old-match", S.ALLOCATED)], replicas=0, delete=("old-0", "old-1")
    ),
    "scale-down-during-update-removes-old-ones-first": Case(
        [*ready_old(2), server("new-0", S.READY), server("new-1", S.READY)],
        replicas=1,
        delete=("new-0", "old-0", "old-1"),
        reasons=("scale-down", "rolling-update", "rolling-update"),
    ),
    "recreate-deletes-every-old-one-first": Case(
        [*ready_old(2), old("old-starting", S.SCHEDULED), old("old-match", S.ALLOCATED)],
        strategy=RECREATE,
        delete=("old-starting", "old-0", "old-1"),
        reasons=("recreate",) * 3,
    ),
    "recreate-creates-once-only-matches-are-old": Case([old("old-match", S.ALLOCATED)], strategy=RECREATE, create=3),
}


@pytest.mark.parametrize("case", PASSES.values(), ids=PASSES.keys())
def test_one_pass(case: Case) -> None:
    plan = plan_fleet(fleet(case.replicas, strategy=case.strategy), case.members, now=NOW)
    assert (plan.create, tuple(names(plan.delete))) == (case.create, case.delete)
    if case.reasons is not None:
        assert plan.reasons == case.reasons
    elif case.delete:
        kind = "recreate" if case.strategy.type is FleetStrategyType.RECREATE else "rolling-update"
        assert set(plan.reasons) == {kind}


def test_create_reason_names_the_update_while_old_servers_remain() -> None:
    assert plan_fleet(fleet(4), ready_old(4), now=NOW).create_reason == "rolling-update"
    assert plan_fleet(fleet(4, strategy=RECREATE), [old("m", S.ALLOCATED)], now=NOW).create_reason == "recreate"
    assert plan_fleet(fleet(4), [server("a", S.READY)], now=NOW).create_reason == "scale-up"


def test_in_flight_creations_count_against_surge() -> None:
    plan = plan_fleet(fleet(4), ready_old(4), now=NOW, in_flight=1)
    assert plan.create == 0 and names(plan.delete) == ["old-0"]


def test_update_deletions_respect_the_per_pass_cap() -> None:
    plan = plan_fleet(fleet(0, strategy=RECREATE), [server("u", S.UNHEALTHY), *ready_old(5)], now=NOW, max_deletions=3)
    assert plan.reasons == ("unhealthy", "recreate", "recreate")


# -- rolling update and recreate: until done ----------------------------------------------------


@dataclass
class World:
    """A fleet whose created servers become Ready one pass after they appear."""

    fleet: Fleet
    members: list[GameServer]
    clock: float = 100.0
    made: int = 0

    def step(self) -> FleetPlan:
        plan = plan_fleet(self.fleet, self.members, now=NOW)
        gone = {g.name for g in plan.delete}
        self.members = [g for g in self.members if g.name not in gone]
        for _ in range(plan.create):
            self.clock += 1
            self.made += 1
            gs = new_gameserver(self.fleet)
            gs = replace(gs, metadata=replace(gs.metadata, name=f"made-{self.made}", creation_timestamp=self.clock))
            self.members.append(gs.with_status(state=S.SCHEDULED, node_name=f"n{self.made % 3}"))
        return plan

    def settle(self) -> None:
        self.members = [g.with_status(state=S.READY) if g.state in PENDING_STATES else g for g in self.members]

    def count(self, state: GameServerState) -> int:
        return sum(g.state is state for g in self.members)


UPDATES = {
    "default-strategy": (4, FleetStrategy(), 0, PACKED),
    "one-in-a-match": (4, rolling(1, 1), 1, PACKED),
    "distributed": (6, rolling(2, 1), 2, DISTRIBUTED),
    "no-surge": (5, rolling(0, 2), 1, PACKED),
    "no-unavailable": (5, rolling(1, 0), 1, PACKED),
    "mostly-in-matches": (10, FleetStrategy(), 7, PACKED),
    "more-matches-than-replicas": (2, rolling(1, 1), 3, PACKED),
    "zero-replicas": (0, FleetStrategy(), 1, PACKED),
    "recreate": (4, RECREATE, 1, PACKED),
}


@pytest.mark.parametrize(("replicas", "strategy", "matches", "scheduling"), UPDATES.values(), ids=UPDATES.keys())
def test_template_change_rolls_through(
    replicas: int, strategy: FleetStrategy, matches: int, scheduling: SchedulingStrategy
) -> None:
    """Invariants at every pass; at the end every server is current except the old matches."""
    previous = fleet(replicas, scheduling, strategy, version="0")
    start = [old(f"match-{i}", S.ALLOCATED, created=float(i)) for i in range(matches)]
    start += [old(f"old-{i}", S.READY, created=float(10 + i)) for i in range(max(0, replicas - matches))]
    world = World(replace(previous, spec=replace(previous.spec, template=template(VERSION="1"))), start)
    surge, unavailable = fenceposts(strategy.rolling_update, replicas)
    # Never below replicas - maxUnavailable, nor below what the fleet had (less one without surge).
    floor = max(0, min(replicas - unavailable, world.count(S.READY) - (0 if surge else 1)))
    recreate = strategy.type is FleetStrategyType.RECREATE
    for _ in range(50):
        plan = world.step()
        if not recreate:
            assert world.count(S.READY) >= floor
            assert len(world.members) <= max(replicas + surge, len(start))
        if not plan.create and not plan.delete:
            if not any(g.state in PENDING_STATES for g in world.members):
                break
        world.settle()
    else:
        raise AssertionError(f"no convergence: {[(g.name, g.state) for g in world.members]}")
    kept = sorted(g.name for g in world.members if not is_current(g, CURRENT))
    assert kept == [f"match-{i}" for i in range(matches)]
    assert world.count(S.ALLOCATED) == matches
    assert world.count(S.READY) == max(0, replicas - matches)


def test_recreate_creates_nothing_while_an_old_server_can_still_go() -> None:
    previous = fleet(3, strategy=RECREATE, version="0")
    world = World(replace(previous, spec=replace(previous.spec, template=template(VERSION="1"))), ready_old(3))
    first = world.step()
    assert first.create == 0 and len(first.delete) == 3
    second = world.step()
    assert second.create == 3 and second.delete == ()
