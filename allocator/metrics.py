"""Every Prometheus metric of the allocator package (node agent, fleet controller)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

GAMESERVERS = Gauge(
    "fleetmatch_gameservers",
    "GameServers by fleet and state, as seen by the fleet controller.",
    ["fleet", "state"],
)
FLEET_DESIRED_REPLICAS = Gauge("fleetmatch_fleet_desired_replicas", "Fleet spec.replicas.", ["fleet"])
CONTROLLER_ACTIONS = Counter(
    "fleetmatch_controller_actions_total",
    "GameServers the fleet controller created or deleted, and why.",
    ["fleet", "action", "reason"],
)
NODE_PROCESS_STARTS = Counter(
    "fleetmatch_nodeagent_process_starts_total", "Game-server processes started by the node agent.", ["node"]
)
NODE_PROCESS_EXITS = Counter(
    "fleetmatch_nodeagent_process_exits_total",
    "Game-server processes that ended: 'shutdown' after SDK Shutdown, 'stopped' by the agent, "
    "'crashed' (non-zero exit or signal) or 'exited' (zero exit without Shutdown).",
    ["node", "reason"],
)
NODE_GAMESERVERS = Gauge("fleetmatch_nodeagent_gameservers", "Game servers this node agent runs now.", ["node"])
NODE_PORTS_FREE = Gauge("fleetmatch_nodeagent_ports_free", "Free game ports left in the node's range.", ["node"])
