"""``describe``: one object as a person reads it, kubectl-describe style, ending with its event records.

Pure text from snapshots: the command reads the object, what relates to it (the autoscaler of a
fleet, the servers of a node) and ``backend.events.list(kind, name)``; these functions only format,
so they are tested without a store. The Events table is why a server went Unhealthy or a fleet backs
off, kept after the server itself is gone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from fleetmatch.cli.output import age, table
from fleetmatch.cli.shapes import NodeView, labels
from fleetmatch.events import EventRecord
from fleetmatch.models import Fleet, FleetAutoscaler, GameServer, ObjectMeta

Field = tuple[str, str | Sequence["Field"]]
"""A label and its value, or a label and nested fields (a section)."""


def fields(items: Sequence[Field], indent: int = 0) -> list[str]:
    """Aligned ``Label:  value`` lines; a nested sequence becomes an indented section."""
    width = max((len(k) for k, v in items if isinstance(v, str)), default=0) + 2
    lines = []
    for key, value in items:
        if isinstance(value, str):
            lines.append((" " * indent + f"{key}:".ljust(width + 1) + value).rstrip())
        else:
            lines.append(" " * indent + f"{key}:")
            lines += fields(value, indent + 2)
    return lines


def timestamp(when: float | None, now: float) -> str:
    if when is None:
        return "-"
    text = dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{text} ({age(when, now)} ago)"


def meta(m: ObjectMeta, now: float) -> list[Field]:
    return [
        ("Name", m.name),
        ("Namespace", m.namespace),
        ("Labels", labels(m.labels)),
        ("Annotations", labels(m.annotations)),
        ("UID", m.uid or "-"),
        ("Created", timestamp(m.creation_timestamp, now)),
    ]


def events(records: Sequence[EventRecord], now: float) -> list[str]:
    """The Events section: newest last, ``AGE`` as kubectl prints it (``2m (x3 over 10m)``)."""
    if not records:
        return ["Events:  <none>"]
    rows = []
    for r in sorted(records, key=lambda r: r.last):
        when = age(r.last, now)
        if r.count > 1:
            when += f" (x{r.count} over {age(r.first, now)})"
        rows.append([r.type.value, r.reason, when, r.message.replace("\n", " ")])
    body = table(["TYPE", "REASON", "AGE", "MESSAGE"], rows)
    return ["Events:", *("  " + line for line in body.splitlines())]


def gameserver(g: GameServer, records: Sequence[EventRecord], now: float) -> str:
    spec, status = g.spec, g.counts
    spec_fields: list[Field] = [
        ("Scheduling", spec.scheduling.value),
        ("Ports", ", ".join(f"{p.name} {p.container_port}/{p.protocol.value} ({p.port_policy.value})"
                            for p in spec.ports) or "-"),
        ("Health", "disabled" if spec.health.disabled else
            f"every {spec.health.period_seconds}s, {spec.health.failure_threshold} failures, "
            f"after {spec.health.initial_delay_seconds}s"),
    ]  # fmt: skip
    if spec.process is not None:
        spec_fields.append(("Command", " ".join([*spec.process.command, *spec.process.args])))
    status_fields: list[Field] = [
        ("State", status.state.value),
        ("Address", status.address or "-"),
        ("Ports", ", ".join(f"{p.name} {p.port}" for p in status.ports) or "-"),
        ("Node", status.node_name or "-"),
    ]
    if status.reserved_until is not None:
        status_fields.append(("Reserved Until", timestamp(status.reserved_until, now)))
    if status.counters:
        status_fields.append(("Counters", [(k, f"{c.count}/{c.capacity}") for k, c in sorted(status.counters.items())]))
    if status.lists:
        status_fields.append(
            ("Lists", [(k, f"{len(v.values)}/{v.capacity} [{', '.join(v.values)}]")
                       for k, v in sorted(status.lists.items())])
        )  # fmt: skip
    if status.players is not None:
        status_fields.append(("Players", f"{status.players.count}/{status.players.capacity}"))
    lines = fields(
        [*meta(g.metadata, now), ("Fleet", g.fleet or "-"), ("Spec", spec_fields), ("Status", status_fields)]
    )
    return "\n".join([*lines, *events(records, now)])


def autoscaler_fields(a: FleetAutoscaler, now: float) -> list[Field]:
    buffer = a.spec.policy.buffer
    policy = f"{a.spec.policy.type.value}"
    if buffer is not None:
        policy += f" (buffer {buffer.buffer_size}, min {buffer.min_replicas}, max {buffer.max_replicas})"
    s = a.status
    if not s.able_to_scale:
        why = "cannot scale: its fleet is missing or the autoscaler has not run yet"
    elif s.scaling_limited:
        why = "limited: the buffer asks for more or fewer than min/max replicas"
    else:
        why = "scaling as the buffer asks"
    return [
        ("Name", a.name),
        ("Policy", policy),
        ("Current Replicas", str(s.current_replicas)),
        ("Desired Replicas", str(s.desired_replicas)),
        ("Able To Scale", str(s.able_to_scale).lower()),
        ("Scaling Limited", str(s.scaling_limited).lower()),
        ("Last Scale", timestamp(s.last_scale_time, now)),
        ("Reason", why),
    ]


def autoscaler(a: FleetAutoscaler, records: Sequence[EventRecord], now: float) -> str:
    items: list[Field] = [*meta(a.metadata, now), ("Fleet", a.spec.fleet_name), *autoscaler_fields(a, now)[1:]]
    return "\n".join([*fields(items), *events(records, now)])


def fleet(f: Fleet, autoscalers: Sequence[FleetAutoscaler], records: Sequence[EventRecord], now: float) -> str:
    spec, status = f.spec, f.status
    rolling = spec.strategy.rolling_update
    strategy = spec.strategy.type.value
    if strategy == "RollingUpdate":
        strategy += f" (max surge {rolling.max_surge}, max unavailable {rolling.max_unavailable})"
    rollout = "complete" if status.updated_replicas >= spec.replicas else "in progress"
    items: list[Field] = [
        *meta(f.metadata, now),
        ("Spec", [("Replicas", str(spec.replicas)), ("Scheduling", spec.scheduling.value), ("Strategy", strategy)]),
        ("Status", [
            ("Replicas", str(status.replicas)),
            ("Ready", str(status.ready_replicas)),
            ("Allocated", str(status.allocated_replicas)),
            ("Reserved", str(status.reserved_replicas)),
            ("States", labels({k: str(v) for k, v in status.states.items()})),
        ]),
        ("Rollout", f"{status.updated_replicas} updated, {status.ready_replicas} ready "
                    f"of {spec.replicas} desired ({rollout})"),
    ]  # fmt: skip
    if status.conditions:
        items.append(("Conditions", [
            (c.type, f"{c.status}  {c.reason or '-'}  {c.message}".rstrip()) for c in status.conditions
        ]))  # fmt: skip
    else:
        items.append(("Conditions", "<none>"))
    if autoscalers:
        for a in autoscalers:
            items.append(("Autoscaler", autoscaler_fields(a, now)))
    else:
        items.append(("Autoscaler", "<none> (replicas are set by hand: fleetmatch fleet scale)"))
    return "\n".join([*fields(items), *events(records, now)])


def node(n: NodeView, servers: Sequence[GameServer], records: Sequence[EventRecord]) -> str:
    r, now = n.record, n.now
    items: list[Field] = [
        ("Name", r.name),
        ("Status", n.status if n.ready else f"NotReady (no heartbeat for more than {n.lease_seconds:g}s)"),
        ("Address", r.address),
        ("Heartbeat", f"{n.heartbeat} ago"),
        ("Started", timestamp(r.started, now)),
        ("Boot", r.boot),
        ("Capacity", f"{len(servers)}/{r.capacity} game servers"),
    ]
    lines = fields(items)
    if servers:
        body = table(
            ["NAME", "STATE", "FLEET", "AGE"],
            [[g.name, g.state.value, g.fleet or "-", age(g.metadata.creation_timestamp, now)] for g in servers],
        )
        lines += ["Game Servers:", *("  " + line for line in body.splitlines())]
    else:
        lines.append("Game Servers:  <none>")
    return "\n".join([*lines, *events(records, now)])
