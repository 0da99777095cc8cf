"""What the fleet controller should do for one Fleet (pure: a snapshot in, a plan out).

There is no GameServerSet: every GameServer made from a fleet carries ``TEMPLATE_HASH_LABEL``, a
hash of the template it was made from. Members with the fleet's current hash are *current*; the
others (and servers without the label) are *old*. Rules, as in Agones' Fleet and GameServerSet
controllers:

- terminal members (Shutdown, Unhealthy) are deleted; Error ones after ``error_grace`` seconds
  (counting as pending meanwhile, so a template that cannot start does not spin);
- Allocated and Reserved members are never deleted, and old ones count toward ``replicas`` first:
  the fleet wants ``replicas - old protected`` current servers, so an old match drains naturally
  and its server is replaced on the current template once it ends;
- missing current servers are created (``in_flight`` creations not yet seen count as present);
  surplus current servers are deleted in the strategy's order (see ``scale_down_order``);
- old servers go per ``spec.strategy``: Recreate deletes them all and creates current ones once
  none is left; RollingUpdate creates current ones while all members stay within
  ``replicas + maxSurge``, deletes old not-yet-Ready ones at once, and old Ready ones only while the
  fleet keeps ``ready_floor`` Ready servers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from fleetmatch.codec import camel
from fleetmatch.models import (
    API_VERSION,
    FLEET_LABEL,
    PROTECTED_STATES,
    Fleet,
    FleetStatus,
    FleetStrategyType,
    GameServer,
    GameServerState,
    GameServerTemplate,
    ObjectMeta,
    OwnerReference,
    RollingUpdate,
    SchedulingStrategy,
    initial_status,
    resolve_int_or_percent,
)

ERROR_GRACE_SECONDS = 30.0
TEMPLATE_HASH_LABEL = "fleetmatch.dev/template-hash"
"""Hash of the fleet template a GameServer was made from (``template_hash``)."""

READY = GameServerState.READY


@dataclass(frozen=True, slots=True)
class FleetPlan:
    create: int
    delete: tuple[GameServer, ...]
    """Servers to delete, each at the version seen (delete conditionally on it)."""
    reasons: tuple[str, ...]
    """Why each server in ``delete`` goes: 'unhealthy', 'shutdown', 'error', 'scale-down',
    'rolling-update' or 'recreate'."""
    status: FleetStatus
    create_reason: str = "scale-up"
    """Why servers are created: 'scale-up', or 'rolling-update'/'recreate' while old servers remain."""


# -- template identity ------------------------------------------------------------------------


def _canonical(value: Any) -> Any:
    """The wire form (camelCase keys) without fields left at their default.

    Dropping defaults keeps the hash of an existing fleet stable when a later version of fleetmatch
    adds a template field: an upgrade alone must not roll every fleet.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.default is not dataclasses.MISSING and item == f.default:
                continue
            if f.default_factory is not dataclasses.MISSING and item == f.default_factory():
                continue
            out[f.metadata.get("wire", camel(f.name))] = _canonical(item)
        return out
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_canonical(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    return value


def template_hash(template: GameServerTemplate) -> str:
    """A short, stable digest of a fleet template (10 hex digits: a valid label value)."""
    text = json.dumps(_canonical(template), sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=5).hexdigest()


def is_current(gs: GameServer, digest: str) -> bool:
    """Was ``gs`` made from the template with this digest? (Unlabelled servers are old.)"""
    return gs.metadata.labels.get(TEMPLATE_HASH_LABEL) == digest


# -- status -----------------------------------------------------------------------------------


def fleet_status(fleet: Fleet, members: Sequence[GameServer]) -> FleetStatus:
    live = [g for g in members if g.state is not GameServerState.SHUTDOWN and g.metadata.deletion_timestamp is None]
    counts = Counter(g.state for g in live)
    digest = template_hash(fleet.spec.template)
    every = Counter(g.state for g in members)
    return FleetStatus(
        replicas=len(live),
        ready_replicas=counts[READY],
        reserved_replicas=counts[GameServerState.RESERVED],
        allocated_replicas=counts[GameServerState.ALLOCATED],
        updated_replicas=sum(is_current(g, digest) for g in live),
        states={s.value: every[s] for s in GameServerState if every[s]},
        observed_generation=fleet.metadata.generation,
    )


# -- ordering and arithmetic ------------------------------------------------------------------


def scale_down_order(
    scheduling: SchedulingStrategy, candidates: Sequence[GameServer], active: Sequence[GameServer]
) -> list[GameServer]:
    """``candidates`` in the order they should go.

    Packed: servers not on a node yet, then those on the least-loaded node (every active member on
    it counts; ties by node name, so one node empties first), within a node not-yet-Ready ones
    first. Distributed: the newest first.
    """
    if scheduling is SchedulingStrategy.DISTRIBUTED:
        return sorted(candidates, key=lambda g: (-(g.metadata.creation_timestamp or 0.0), g.name))
    per_node = Counter(g.status.node_name for g in active if g.status.node_name)
    return sorted(
        candidates,
        key=lambda g: (
            bool(g.status.node_name),
            per_node[g.status.node_name],
            g.status.node_name,
            g.state is READY,
            g.name,
        ),
    )


def fenceposts(rolling: RollingUpdate, replicas: int) -> tuple[int, int]:
    """``(max_surge, max_unavailable)`` as numbers of servers: surge rounds up, unavailable down
    (Kubernetes' rule); if both come to 0, one server may surge so the update can move at all."""
    surge = resolve_int_or_percent(rolling.max_surge, replicas, round_up=True)
    unavailable = resolve_int_or_percent(rolling.max_unavailable, replicas, round_up=False)
    return (1 if surge == unavailable == 0 else surge), unavailable


def ready_floor(replicas: int, surge: int, unavailable: int, protected: int) -> int:
    """The fewest Ready servers a rolling update may leave while deleting old Ready ones.

    ``replicas - max_unavailable``, unless Allocated/Reserved servers (``protected``, old and
    current) make that unreachable: then what the fleet will have Ready once updated,
    ``replicas - protected`` (one less without surge, as an old server must then go before its
    replacement can come). Without that cap a fleet whose servers are mostly in matches would
    stall half-updated until the matches end (Agones #3970, #1156).
    """
    settled = replicas - protected - (0 if surge else 1)
    return max(0, min(replicas - unavailable, settled))


# -- the plan ---------------------------------------------------------------------------------


def _triage(
    members: Sequence[GameServer], now: float, error_grace: float
) -> tuple[list[tuple[GameServer, str]], list[GameServer]]:
    """Split members into (terminal ones to delete, with why) and active ones."""
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
    return doomed, active


def _rolling_update(
    fleet: Fleet,
    active: Sequence[GameServer],
    old_removable: Sequence[GameServer],
    order: Callable[[Sequence[GameServer]], list[GameServer]],
    *,
    ready: int,
    total: int,
    missing: int,
) -> tuple[list[GameServer], int]:
    """Old servers to delete now and current ones to create, within maxSurge / maxUnavailable."""
    want = fleet.spec.replicas
    surge, unavailable = fenceposts(fleet.spec.strategy.rolling_update, want)
    protected = sum(g.state in PROTECTED_STATES for g in active)
    floor = ready_floor(want, surge, unavailable, protected)
    not_ready = [g for g in old_removable if g.state is not READY]  # going costs no Ready server
    old_ready = [g for g in old_removable if g.state is READY]
    going = order(not_ready) + order(old_ready)[: max(0, ready - floor)]
    # Room counts servers as they are now, not after this plan's deletions land (one may fail).
    return going, max(0, min(missing, want + surge - total))


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
    """The actions that move ``members`` (this fleet's GameServers) toward ``fleet.spec.replicas``
    servers on the current template."""
    doomed, active = _triage(members, now, error_grace)
    digest = template_hash(fleet.spec.template)
    current = [g for g in active if is_current(g, digest)]
    old = [g for g in active if not is_current(g, digest)]
    old_removable = [g for g in old if g.state not in PROTECTED_STATES]
    target = max(0, fleet.spec.replicas - (len(old) - len(old_removable)))
    have = len(current) + in_flight

    def order(candidates: Sequence[GameServer]) -> list[GameServer]:
        return scale_down_order(fleet.spec.scheduling, candidates, active)

    budget = max(0, max_deletions - len(doomed))
    surplus = order([g for g in current if g.state not in PROTECTED_STATES])[: max(0, min(have - target, budget))]
    doomed += [(g, "scale-down") for g in surplus]
    budget -= len(surplus)

    missing = max(0, target - have)
    create = missing
    update_reason = "recreate" if fleet.spec.strategy.type is FleetStrategyType.RECREATE else "rolling-update"
    if old_removable and update_reason == "recreate":
        going, create = order(old_removable), 0
    elif old_removable:
        ready = sum(g.state is READY for g in active) - sum(g.state is READY for g in surplus)
        going, create = _rolling_update(
            fleet, active, old_removable, order, ready=ready, total=have + len(old), missing=missing
        )
    else:
        going = []
    doomed += [(g, update_reason) for g in going[:budget]]
    return FleetPlan(
        create=min(create, max_creations),
        delete=tuple(g for g, _ in doomed[:max_deletions]),
        reasons=tuple(r for _, r in doomed[:max_deletions]),
        status=fleet_status(fleet, members),
        create_reason=update_reason if old else "scale-up",
    )


def plan_orphans(members: Sequence[GameServer]) -> tuple[GameServer, ...]:
    """Members of a fleet that no longer exists: everything goes except what a match is using
    (Allocated and Reserved servers end on their own, then the node agent removes them)."""
    return tuple(g for g in members if g.state not in PROTECTED_STATES and g.metadata.deletion_timestamp is None)


def owned_by(fleet: Fleet) -> tuple[OwnerReference, ...]:
    """The owner reference a fleet's GameServer carries, as Agones' do (none before the fleet has a
    uid). On Kubernetes the garbage collector then deletes a deleted fleet's servers, unless the
    deletion orphans them (``fleetmatch fleet delete`` does, so that Allocated ones finish)."""
    if not fleet.metadata.uid:
        return ()
    return (
        OwnerReference(API_VERSION, Fleet.KIND, fleet.name, fleet.metadata.uid, controller=True,
                       block_owner_deletion=True),
    )  # fmt: skip


def new_gameserver(fleet: Fleet) -> GameServer:
    """A GameServer from the fleet's current template (named ``<fleet>-xxxxx`` by the store), owned
    by the fleet."""
    template = fleet.spec.template
    return GameServer(
        metadata=ObjectMeta(
            generate_name=f"{fleet.name}-",
            namespace=fleet.metadata.namespace,
            owner_references=owned_by(fleet),
            labels={
                **template.metadata.labels,
                FLEET_LABEL: fleet.name,
                TEMPLATE_HASH_LABEL: template_hash(template),
            },
            annotations=dict(template.metadata.annotations),
        ),
        spec=replace(template.spec, scheduling=fleet.spec.scheduling),
        status=initial_status(template.spec),  # counters, lists and players start at the template's values
    )
