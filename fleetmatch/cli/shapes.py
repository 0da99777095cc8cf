"""How each kind prints in lists (``fleetmatch.cli.output.Shape``): the table columns, those only
``-o wide`` adds (labels, every port, uid), the document of ``-o json|yaml`` and the ``-o name``."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetmatch.cli.output import Column, Shape, age
from fleetmatch.models import Fleet, FleetAutoscaler, GameServer, encode
from fleetmatch.nodes import NodeRecord


def labels(values: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(values.items())) or "-"


def address(g: GameServer) -> str:
    if g.status.address and g.status.ports:
        return f"{g.status.address}:{g.status.ports[0].port}"
    return "-"


def ports(g: GameServer) -> str:
    return ",".join(f"{p.name}:{p.port}" for p in g.status.ports) or "-"


def _age(created: float | None) -> str:
    return age(created, time.time())


GAMESERVER: Shape[GameServer] = Shape(
    kind="gameserver",
    columns=(
        Column("NAME", lambda g: g.name),
        Column("STATE", lambda g: g.state.value),
        Column("ADDRESS", address),
        Column("NODE", lambda g: g.status.node_name or "-"),
        Column("FLEET", lambda g: g.fleet or "-"),
        Column("AGE", lambda g: _age(g.metadata.creation_timestamp)),
        Column("PORTS", ports, wide=True),
        Column("LABELS", lambda g: labels(g.metadata.labels), wide=True),
        Column("UID", lambda g: g.metadata.uid or "-", wide=True),
    ),
    document=encode,
    name=lambda g: g.name,
)


def conditions(f: Fleet) -> str:
    return ",".join(c.reason or c.type for c in f.status.conditions if c.status == "True") or "-"


FLEET: Shape[Fleet] = Shape(
    kind="fleet",
    columns=(
        Column("NAME", lambda f: f.name),
        Column("SCHEDULING", lambda f: f.spec.scheduling.value),
        Column("DESIRED", lambda f: str(f.spec.replicas)),
        Column("CURRENT", lambda f: str(f.status.replicas)),
        Column("READY", lambda f: str(f.status.ready_replicas)),
        Column("ALLOCATED", lambda f: str(f.status.allocated_replicas)),
        Column("RESERVED", lambda f: str(f.status.reserved_replicas)),
        Column("UPDATED", lambda f: str(f.status.updated_replicas)),
        Column("CONDITIONS", conditions),
        Column("AGE", lambda f: _age(f.metadata.creation_timestamp)),
        Column("STRATEGY", lambda f: f.spec.strategy.type.value, wide=True),
        Column("LABELS", lambda f: labels(f.metadata.labels), wide=True),
        Column("UID", lambda f: f.metadata.uid or "-", wide=True),
    ),
    document=encode,
    name=lambda f: f.name,
)


def _buffer(a: FleetAutoscaler, what: str) -> str:
    buffer = a.spec.policy.buffer
    return str(getattr(buffer, what)) if buffer else "-"


AUTOSCALER: Shape[FleetAutoscaler] = Shape(
    kind="fleetautoscaler",
    columns=(
        Column("NAME", lambda a: a.name),
        Column("FLEET", lambda a: a.spec.fleet_name),
        Column("BUFFER", lambda a: _buffer(a, "buffer_size")),
        Column("MIN", lambda a: _buffer(a, "min_replicas")),
        Column("MAX", lambda a: _buffer(a, "max_replicas")),
        Column("CURRENT", lambda a: str(a.status.current_replicas)),
        Column("DESIRED", lambda a: str(a.status.desired_replicas)),
        Column("ABLE", lambda a: str(a.status.able_to_scale).lower()),
        Column("LIMITED", lambda a: str(a.status.scaling_limited).lower()),
        Column("LAST SCALE", lambda a: _age(a.status.last_scale_time) if a.status.last_scale_time else "-"),
        Column("SYNC", lambda a: f"{a.spec.sync.fixed_interval.seconds:g}s", wide=True),
        Column("LABELS", lambda a: labels(a.metadata.labels), wide=True),
        Column("UID", lambda a: a.metadata.uid or "-", wide=True),
    ),
    document=encode,
    name=lambda a: a.name,
)


@dataclass(frozen=True)
class NodeView:
    """A node's heartbeat record as the CLI shows it: judged against the lease at the store's time."""

    record: NodeRecord
    now: float
    lease_seconds: float
    servers: Counter[str] = field(default_factory=Counter)
    """Game servers on the node, by state."""

    @property
    def ready(self) -> bool:
        return self.now - self.record.renewed <= self.lease_seconds

    @property
    def status(self) -> str:
        return "Ready" if self.ready else "NotReady"

    @property
    def heartbeat(self) -> str:
        """Age of the latest heartbeat (``1.5s``)."""
        return f"{max(0.0, self.now - self.record.renewed):.1f}s"


def node_views(records: list[NodeRecord], now: float, lease: float, servers: list[GameServer]) -> list[NodeView]:
    by_node: dict[str, Counter[str]] = {}
    for g in servers:
        if g.status.node_name:
            by_node.setdefault(g.status.node_name, Counter())[g.state.value] += 1
    return [NodeView(r, now, lease, by_node.get(r.name, Counter())) for r in records]


def _node_document(n: NodeView) -> dict[str, Any]:
    r = n.record
    return {
        "name": r.name,
        "ready": n.ready,
        "heartbeatAgeSeconds": round(n.now - r.renewed, 3),
        "address": r.address,
        "capacity": r.capacity,
        "boot": r.boot,
        "startedAt": r.started,
        "gameServers": dict(n.servers),
    }


NODE: Shape[NodeView] = Shape(
    kind="node",
    columns=(
        Column("NAME", lambda n: n.record.name),
        Column("STATUS", lambda n: n.status),
        Column("HEARTBEAT", lambda n: n.heartbeat),
        Column("ADDRESS", lambda n: n.record.address),
        Column("SERVERS", lambda n: f"{sum(n.servers.values())}/{n.record.capacity}"),
        Column("STATES", lambda n: ", ".join(f"{c} {s}" for s, c in sorted(n.servers.items())) or "-"),
        Column("AGE", lambda n: age(n.record.started, n.now)),
        Column("BOOT", lambda n: n.record.boot, wide=True),
    ),
    document=_node_document,
    name=lambda n: n.record.name,
)
