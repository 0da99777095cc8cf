"""Every Prometheus metric of the allocator package (node agent, fleet, Pod and autoscaler controllers,
allocation)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from allocator.index import Share

GAMESERVERS = Gauge(
    "fleetmatch_gameservers",
    "GameServers by fleet and state, as seen by the fleet controller.",
    ["fleet", "state"],
)
FLEET_DESIRED_REPLICAS = Gauge("fleetmatch_fleet_desired_replicas", "Fleet spec.replicas.", ["fleet"])
FLEET_FAILED_BEFORE_READY = Gauge(
    "fleetmatch_fleet_failed_before_ready",
    "Servers of the fleet that failed before Ready in a row: its crash-loop back-off (0: none).",
    ["fleet"],
)
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

# -- allocation -------------------------------------------------------------------------------

ALLOCATIONS = Counter(
    "fleetmatch_allocations_total",
    "Allocation requests by result: Allocated, UnAllocated (nothing free), Contention, error.",
    ["result"],
)
ALLOCATION_SECONDS = Histogram(
    "fleetmatch_allocation_seconds",
    "Time to answer an allocation request, from parsed request to claimed server, by result (a quick "
    "UnAllocated must not hide a slow claim).",
    ["result"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
)


class ResultMetrics:
    """``ALLOCATIONS`` and ``ALLOCATION_SECONDS`` children bound once per result: ``labels()`` looks
    its child up by building and hashing the label tuple, and costs more than the count itself on a
    path taken by every request. Children are made on first use, so no result shows before it happens."""

    __slots__ = ("_children",)

    def __init__(self) -> None:
        self._children: dict[str, tuple[Counter, Histogram]] = {}

    def observe(self, result: str, seconds: float) -> None:
        children = self._children.get(result)
        if children is None:
            children = self._children[result] = (
                ALLOCATIONS.labels(result=result),
                ALLOCATION_SECONDS.labels(result=result),
            )
        children[0].inc()
        children[1].observe(seconds)


ALLOCATION_RESULTS = ResultMetrics()
CLAIM_CONFLICTS = Counter(
    "fleetmatch_allocation_claim_conflicts_total",
    "Claims that lost a race for a server (another allocator or a state change got there first).",
)
GRPC_ALLOCATIONS = Counter(
    "fleetmatch_allocator_grpc_requests_total",
    "Calls of Agones' allocation.AllocationService/Allocate, by gRPC status code (OK, RESOURCE_EXHAUSTED, ...).",
    ["code"],
)
WORKER_RESTARTS = Gauge(
    "fleetmatch_allocator_worker_restarts",
    "Times this worker's slot of `fleetmatch allocator --workers N` was restarted before it started (0: never).",
)
WORKER_SLOT = Gauge(
    "fleetmatch_allocator_worker_slot",
    "This allocator's slot among those splitting the servers (0..N-1; its share): its rank by slot lease, or its "
    "supervisor's slot of `--workers N` until it sees N allocators; tells which worker a scrape reached.",
)
SHARE_OF = Gauge(
    "fleetmatch_allocator_share_of",
    "How many allocators this one splits the servers with, itself included (1: alone, no share).",
)


def show_share(share: Share | None) -> None:
    """Report this allocator's share of the servers (None: alone, no share) on both gauges."""
    SHARE_OF.set(1 if share is None else share.of)
    WORKER_SLOT.set(0 if share is None else share.slot)


HEAP_SWEEP_SECONDS = Histogram(
    "fleetmatch_allocator_heap_sweep_seconds",
    "Pauses of the periodic full garbage collection (fleetmatch.gctune.keep_heap_frozen; every 5 minutes).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
HEAP_SWEEP_FREED = Counter(
    "fleetmatch_allocator_heap_sweep_freed_objects_total",
    "Objects those collections freed: garbage cycles, mostly frozen while still alive (held until the sweep).",
)


def show_heap_sweep(seconds: float, freed: int) -> None:
    """Report one sweep of the frozen heap."""
    HEAP_SWEEP_SECONDS.observe(seconds)
    HEAP_SWEEP_FREED.inc(freed)


ALLOCATABLE = Gauge(
    "fleetmatch_allocator_cached_gameservers",
    "GameServers in the allocator's cache, by state (Ready and Allocated are the allocatable ones).",
    ["state"],
)

# -- autoscaler -------------------------------------------------------------------------------

AUTOSCALER_DESIRED = Gauge(
    "fleetmatch_autoscaler_desired_replicas", "Replicas the autoscaler's policy asks for.", ["autoscaler", "fleet"]
)
AUTOSCALER_CURRENT = Gauge(
    "fleetmatch_autoscaler_current_replicas", "Fleet replicas when the autoscaler last looked.", ["autoscaler", "fleet"]
)
AUTOSCALER_DECISIONS = Counter(
    "fleetmatch_autoscaler_decisions_total",
    "Autoscaler evaluations by outcome: up, down, hold, cooloff (a scale-down deferred), limited.",
    ["autoscaler", "fleet", "decision"],
)

# -- nodes ------------------------------------------------------------------------------------

FENCED = Gauge(
    "fleetmatch_allocator_fenced_gameservers",
    "Ready or Allocated servers the allocator will not hand out: their node agent is silent or restarted.",
)
NODES_NOT_READY = Gauge(
    "fleetmatch_nodes_not_ready", "Nodes whose agent stopped renewing its heartbeat (seen by the node controller)."
)
NODE_EVICTIONS = Counter(
    "fleetmatch_node_evictions_total",
    "GameServers the node controller marked Unhealthy because their node went silent.",
    ["node"],
)

# -- Pod controller (Kubernetes) --------------------------------------------------------------

PODCONTROLLER_API_ERRORS = Counter(
    "fleetmatch_podcontroller_api_errors_total",
    "Kubernetes API calls of the GameServer (pod) controller that failed, by verb, resource and HTTP code "
    "(0: no answer).",
    ["verb", "resource", "code"],
)
PODCONTROLLER_HOST_PORTS_FREE = Gauge(
    "fleetmatch_podcontroller_host_ports_free", "Host ports of the range that no game-server Pod holds."
)
PODCONTROLLER_ACTIONS = Counter(
    "fleetmatch_podcontroller_actions_total",
    "What the GameServer (pod) controller did: pod-created, pod-deleted, unhealthy, error, shutdown-deleted.",
    ["action"],
)

# -- idempotency, abandoned requests and allocation leases ------------------------------------

ALLOCATIONS_REPLAYED = Counter(
    "fleetmatch_allocations_replayed_total",
    "Requests answered with the server their Idempotency-Key already allocated (a retry), not a new one.",
)
ALLOCATIONS_RELEASED = Counter(
    "fleetmatch_allocations_released_total",
    "Servers given back (to Shutdown) because the allocation under their key was released (an abandoned match).",
)
ALLOCATIONS_ABANDONED = Counter(
    "fleetmatch_allocations_abandoned_total",
    "Requests whose client hung up before the claim: no server was taken for them.",
)
ALLOCATION_LEASES_EXPIRED = Counter(
    "fleetmatch_allocation_leases_expired_total",
    "Allocated servers recycled because their game never confirmed the allocation within its lease.",
)
