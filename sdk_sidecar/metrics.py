"""Every Prometheus metric of the SDK sidecar (house rule: one module per service declares them).

Method labels are the gRPC method names (``Ready``, ``SetLabel``...), the same for both front doors.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SDK_CALLS = Counter("fleetmatch_sdk_calls_total", "SDK calls received, by method (refused ones included)", ["method"])
SDK_ERRORS = Counter(
    "fleetmatch_sdk_errors_total", "SDK calls refused, by method and gRPC status code name", ["method", "code"]
)
HEALTH_FAILURES = Counter(
    "fleetmatch_sdk_health_failures_total", "Game servers turned Unhealthy because their health pings stopped"
)
STORE_WRITES = Counter(
    "fleetmatch_sdk_store_writes_total",
    "Coalesced store writes of SDK changes, by result (written, unchanged, gone, failed)",
    ["result"],
)
COALESCED_CALLS = Counter(
    "fleetmatch_sdk_coalesced_changes_total", "SDK changes handed to the store writer (compare with store writes)"
)
WRITE_SECONDS = Histogram(
    "fleetmatch_sdk_store_write_seconds",
    "Time of one coalesced read-modify-write of a GameServer, conflict retries included",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
SESSIONS = Gauge("fleetmatch_sdk_sessions", "Game servers whose SDK endpoint this process serves")
WATCH_STREAMS = Gauge("fleetmatch_sdk_watch_streams", "Open WatchGameServer streams")
HOST_STALLS = Counter(
    "fleetmatch_sdk_host_stalls_total",
    "Times the SDK host was stalled (could not read pings) long enough to move its games' health deadlines",
)
MASS_HEALTH_FAILURES = Counter(
    "fleetmatch_sdk_mass_health_failures_total",
    "Times many game servers missed their health checks at once and got one more period (suspected host problem)",
)
