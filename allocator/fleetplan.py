"""What the fleet controller should do for one Fleet (pure: a snapshot in, a plan out).

Rules, as in Agones' GameServerSet reconcile:

- terminal members (Shutdown, Unhealthy) are deleted; Error ones after ``error_grace`` seconds
  (counting as pending meanwhile, so a template that cannot start does not spin);
- Allocated and Reserved members are never deleted and count toward ``replicas`` first;
- missing members are created (``in_flight`` creations not yet seen count as present);
- surplus members are deleted in the strategy's order: Packed removes servers not yet on a node,
  then not-yet-Ready ones, then those on the emptiest nodes, so whole nodes drain; Distributed
  removes pending ones, then the newest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from fleetmatch.models import (
    FLEET_LABEL,
    PENDING_STATES,
    PROTECTED_STATES,
    Fleet,
    FleetStatus,
    GameServer,
    GameServerState,
    ObjectMeta,
    SchedulingStrategy,
)

ERROR_GRACE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class FleetPlan:
    create: int
    delete: tuple[GameServer, ...]
    """Servers to delete, each at the version seen (delete conditionally on it)."""
    reasons: tuple[str, ...]
    """Why each server in ``delete`` goes: 'unhealthy', 'shutdown', 'error' or 'scale-down'."""
    status: FleetStatus


def fleet_status(fleet: Fleet, members: Sequence[GameServer]) -> FleetStatus:
    live = [g for g in members if g.state not in (GameServerState.SHUTDOWN,) and g.metadata.deletion_timestamp is None]
    counts = Counter(g.state for g in live)
    return FleetStatus(
        replicas=len(live),
        ready_replicas=counts[GameServerState.READY],
        reserved_replicas=counts[GameServerState.RESERVED],
        allocated_replicas=counts[GameServerState.ALLOCATED],
        observed_generation=fleet.metadata.generation,
    )


def _scale_down_order(
    scheduling: SchedulingStrategy, candidates: list[GameServer], active: list[GameServer]
) -> list[GameServer]:
    if scheduling is SchedulingStrategy.DISTRIBUTED:
        return sorted(
            candidates,
            key=lambda g: (g.state not in PENDING_STATES, -(g.metadata.creation_timestamp or 0.0), g.name),
        )
    per_node = Counter(g.status.node_name for g in active if g.status.node_name)
    return sorted(
        candidates,
        key=lambda g: (
            bool(g.status.node_name),
            g.state not in PENDING_STATES,
            per_node[g.status.node_name],
            g.status.node_name,
            g.name,
        ),
    )


def plan_fleet(
    fleet: Fleet,
    members: Sequence[GameServer],
    *,
    now: float,
    in_flight: int = 0,
    max_creations: int = 64,
    max_deletions: int = 64,
    error_grace: float = ERROR_GRACE_SECONDS,
) -> FleetPlan:
    """The actions that move ``members`` (this fleet's GameServers) toward ``fleet.spec.replicas``."""
    doomed: list[tuple[GameServer, str]] = []
    active: list[GameServer] = []
    for gs in members:
        if gs.metadata.deletion_timestamp is not None:
            continue
        if gs.state is GameServerState.UNHEALTHY:
            doomed.append((gs, "unhealthy"))
        elif gs.state is GameServerState.SHUTDOWN:
            doomed.append((gs, "shutdown"))
        elif gs.state is GameServerState.ERROR and now - (gs.metadata.creation_timestamp or now) >= error_grace:
            doomed.append((gs, "error"))
        else:
            active.append(gs)

    want = fleet.spec.replicas
    have = len(active) + in_flight
    create = max(0, min(want - have, max_creations))
    if have > want:
        removable = [g for g in active if g.state not in PROTECTED_STATES]
        surplus = min(have - want, len(removable), max(0, max_deletions - len(doomed)))
        doomed += [(g, "scale-down") for g in _scale_down_order(fleet.spec.scheduling, removable, active)[:surplus]]
    doomed = doomed[:max_deletions]
    return FleetPlan(
        create=create,
        delete=tuple(g for g, _ in doomed),
        reasons=tuple(r for _, r in doomed),
        status=fleet_status(fleet, members),
    )


def plan_orphans(members: Sequence[GameServer]) -> tuple[GameServer, ...]:
    """Members of a fleet that no longer exists: everything goes except what a match is using
    (Allocated and Reserved servers end on their own, then the node agent removes them)."""
    return tuple(g for g in members if g.state not in PROTECTED_STATES and g.metadata.deletion_timestamp is None)


def new_gameserver(fleet: Fleet) -> GameServer:
    """A GameServer from the fleet's template (named ``<fleet>-xxxxx`` by the store)."""
    template = fleet.spec.template
    return GameServer(
        metadata=ObjectMeta(
            generate_name=f"{fleet.name}-",
            namespace=fleet.metadata.namespace,
            labels={**template.metadata.labels, FLEET_LABEL: fleet.name},
            annotations=dict(template.metadata.annotations),
        ),
        spec=replace(template.spec, scheduling=fleet.spec.scheduling),
    )
