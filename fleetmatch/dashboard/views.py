"""The dashboard's view-model: GameServers, Fleets, autoscalers, nodes, event records, queue
statistics and metric samples turned into the JSON documents the page renders.

Pure (no asyncio, aiohttp, redis, prometheus_client): every function takes snapshots plus ``now``
and returns plain dicts, so what the page shows is tested by tables (tests/unit/test_dashboard_views.py)
and the I/O side (``fleetmatch.dashboard.hub``) only gathers inputs. Field names are camelCase, as
on every fleetmatch API; the page (static/app.js) reads exactly these.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetmatch.events import EventRecord
from fleetmatch.models import ERROR_ANNOTATION, Fleet, FleetAutoscaler, GameServer, GameServerState
from fleetmatch.nodes import NodeRecord

STATE_ORDER = tuple(s.value for s in GameServerState)
"""States in lifecycle order: the page's stacked bars and filters use it."""
ALLOCATION_RESULTS = "fleetmatch_allocations_total"
"""The allocator's counter the allocation rate and failures come from (label ``result``)."""
ALLOCATED = "Allocated"
MAX_EVENTS = 200
"""Event records sent to the page at most (the newest)."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One metric sample, as scraped (a counter's name with its ``_total``)."""

    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class AllocationCounts:
    """Allocation requests counted since the allocator started: successes, and failures by reason."""

    allocated: float = 0.0
    failures: Mapping[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> float:
        return sum(self.failures.values())


def allocation_counts(samples: Iterable[Sample]) -> AllocationCounts:
    """Successes and failures (by the allocator's ``result``: UnAllocated, Contention, error) from
    ``fleetmatch_allocations_total`` samples; other samples are ignored. Several processes' samples
    of the same result add up."""
    allocated = 0.0
    failures: dict[str, float] = {}
    for s in samples:
        if s.name != ALLOCATION_RESULTS:
            continue
        result = s.labels.get("result", "")
        if result == ALLOCATED:
            allocated += s.value
        else:
            failures[result] = failures.get(result, 0.0) + s.value
    return AllocationCounts(allocated, failures)


def gameserver_view(gs: GameServer, now: float) -> dict[str, Any]:
    """One row of the game-servers table."""
    created = gs.metadata.creation_timestamp
    port = gs.status.ports[0].port if gs.status.ports else None
    players = gs.status.players
    return {
        "name": gs.name,
        "fleet": gs.fleet or "",
        "state": gs.state.value,
        "address": gs.status.address,
        "port": port,
        "node": gs.status.node_name,
        "ageSeconds": round(max(0.0, now - created), 1) if created is not None else None,
        "players": None if players is None else {"count": players.count, "capacity": players.capacity},
        "error": gs.metadata.annotations.get(ERROR_ANNOTATION, ""),
    }


def _autoscaler_view(fas: FleetAutoscaler) -> dict[str, Any]:
    buffer = fas.spec.policy.buffer
    return {
        "name": fas.name,
        "policy": fas.spec.policy.type.value,
        "bufferSize": None if buffer is None else str(buffer.buffer_size),
        "minReplicas": None if buffer is None else buffer.min_replicas,
        "maxReplicas": None if buffer is None else buffer.max_replicas,
        "desiredReplicas": fas.status.desired_replicas,
        "currentReplicas": fas.status.current_replicas,
        "scalingLimited": fas.status.scaling_limited,
    }


def fleet_view(fleet: Fleet, autoscalers: Sequence[FleetAutoscaler], servers: Sequence[GameServer]) -> dict[str, Any]:
    """One fleet card: replicas (desired and by state, counted from its live servers, so the page
    never lags the fleet controller's status write), its rollout and its autoscaler."""
    states = Counter(g.state.value for g in servers if g.fleet == fleet.name)
    status = fleet.status
    desired = fleet.spec.replicas
    rolling = status.updated_replicas < max(desired, status.replicas) and status.replicas > 0
    scaler = next((a for a in autoscalers if a.spec.fleet_name == fleet.name), None)
    return {
        "name": fleet.name,
        "desired": desired,
        "current": sum(states.values()),
        "ready": states.get(GameServerState.READY.value, 0),
        "allocated": states.get(GameServerState.ALLOCATED.value, 0),
        "reserved": states.get(GameServerState.RESERVED.value, 0),
        "states": {s: states[s] for s in STATE_ORDER if states.get(s)},
        "scheduling": fleet.spec.scheduling.value,
        "strategy": fleet.spec.strategy.type.value,
        "rollout": {
            "updated": status.updated_replicas,
            "replicas": status.replicas,
            "inProgress": rolling,
        },
        "conditions": [
            {"type": c.type, "status": c.status, "reason": c.reason, "message": c.message} for c in status.conditions
        ],
        "autoscaler": None if scaler is None else _autoscaler_view(scaler),
    }


def node_view(record: NodeRecord, now: float, lease: float, servers: Sequence[GameServer]) -> dict[str, Any]:
    """One row of the nodes table: Ready while its agent heartbeats within ``lease`` seconds."""
    here = Counter(g.state.value for g in servers if g.status.node_name == record.name)
    age = max(0.0, now - record.renewed)
    return {
        "name": record.name,
        "ready": age <= lease,
        "address": record.address,
        "heartbeatAgeSeconds": round(age, 1),
        "capacity": record.capacity,
        "servers": sum(here.values()),
        "states": {s: here[s] for s in STATE_ORDER if here.get(s)},
    }


def event_view(record: EventRecord, now: float) -> dict[str, Any]:
    return {
        "kind": record.kind,
        "name": record.name,
        "reason": record.reason,
        "message": record.message,
        "type": record.type.value,
        "count": record.count,
        "ageSeconds": round(max(0.0, now - record.last), 1),
    }


def events_view(records: Iterable[EventRecord], now: float, limit: int = MAX_EVENTS) -> list[dict[str, Any]]:
    """The newest ``limit`` records, newest first."""
    newest = sorted(records, key=lambda r: r.last, reverse=True)[:limit]
    return [event_view(r, now) for r in newest]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def queue_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """One row of the queues table from the ticket API's ``GET /v1/queues`` item (matchmaker.stats;
    read defensively: another version's matchmaker may lack a field)."""
    ttm = doc.get("timeToMatchSeconds")
    tick = doc.get("lastTick")
    by_region = doc.get("byRegion")
    return {
        "name": str(doc.get("name", "")),
        "waitingPlayers": int(_number(doc.get("waitingPlayers")) or 0),
        "waitingTickets": int(_number(doc.get("waitingTickets")) or 0),
        "oldestWaitSeconds": _number(doc.get("oldestWaitSeconds")) or 0.0,
        "p50": _number(ttm.get("p50")) if isinstance(ttm, Mapping) else None,
        "p95": _number(ttm.get("p95")) if isinstance(ttm, Mapping) else None,
        "lastTickMatches": int(_number(tick.get("matches")) or 0) if isinstance(tick, Mapping) else None,
        "byRegion": {str(k): int(_number(v) or 0) for k, v in by_region.items()}
        if isinstance(by_region, Mapping)
        else {},
    }


def summary_view(
    fleets: Sequence[Mapping[str, Any]],
    servers: Sequence[GameServer],
    nodes: Sequence[Mapping[str, Any]],
    queues: Sequence[Mapping[str, Any]] | None,
    allocations_per_second: float,
    failures_last_minute: float,
) -> dict[str, Any]:
    """The tiles at the top: what an operator reads first."""
    states = Counter(g.state.value for g in servers)
    p95s = [q["p95"] for q in queues or () if q.get("p95") is not None]
    return {
        "fleets": len(fleets),
        "gameServers": len(servers),
        "ready": states.get(GameServerState.READY.value, 0),
        "allocated": states.get(GameServerState.ALLOCATED.value, 0),
        "unhealthy": states.get(GameServerState.UNHEALTHY.value, 0) + states.get(GameServerState.ERROR.value, 0),
        "nodes": len(nodes),
        "nodesReady": sum(1 for n in nodes if n.get("ready")),
        "waitingPlayers": None if queues is None else sum(int(q.get("waitingPlayers", 0)) for q in queues),
        "timeToMatchP95": max(p95s) if p95s else None,
        "allocationsPerSecond": round(allocations_per_second, 2),
        "failuresLastMinute": round(failures_last_minute),
    }
