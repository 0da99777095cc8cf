"""Every Prometheus metric of the web dashboard."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CLIENTS = Gauge("fleetmatch_dashboard_clients", "Browsers connected to the dashboard's live stream.")
PUSHES = Counter(
    "fleetmatch_dashboard_pushes_total",
    "Updates the dashboard built and pushed (one per coalesced change, whatever the number of browsers).",
)
SOURCE_ERRORS = Counter(
    "fleetmatch_dashboard_source_errors_total",
    "Reads of the dashboard's sources that failed: queues (the ticket API), metrics, nodes, events.",
    ["source"],
)
