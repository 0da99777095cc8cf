"""Queue statistics for operators (``GET /v1/queues``, ``fleetmatch queue list``): pure arithmetic
over a ``QueueSnapshot`` the ticket store read with bounded work, so it is tested by tables.

The document is what the dashboard reads; keep its shape::

    {"name", "waitingTickets", "waitingPlayers", "byRegion": {region: players},
     "oldestWaitSeconds", "lastTick": {"at", "seconds", "matches"} | null,
     "timeToMatchSeconds": {"p50", "p95"} | null}

``waitingTickets`` is exact; ``waitingPlayers`` and ``byRegion`` count the ``OLDEST`` longest-waiting
tickets (all of them unless the queue is longer). A ticket counts in the region where its worst
player latency is lowest (``best_region``: the one a match would most likely use), ``"-"`` without
latencies. Time to match covers the matched tickets among the ``RECENT`` most recently finished.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fleetmatch.codec import format_timestamp
from matchmaker.models import Ticket
from matchmaker.store import QueueSnapshot

OLDEST = 10_000
"""Waiting tickets read per queue, at most (the oldest): bounds the work of one request."""
RECENT = 1_000
"""Finished tickets whose waits make the time to match, at most (the most recent)."""


def best_region(ticket: Ticket) -> str:
    """The region with the lowest worst latency over the ticket's players ("-" without latencies)."""
    regions: dict[str, float] = {}
    for player in ticket.players:
        for region, ms in player.latencies.items():
            regions[region] = max(regions.get(region, 0.0), ms)
    return min(regions, key=regions.__getitem__) if regions else "-"


def players_by_region(tickets: Sequence[Ticket]) -> dict[str, int]:
    per_region: dict[str, int] = {}
    for ticket in tickets:
        region = best_region(ticket)
        per_region[region] = per_region.get(region, 0) + ticket.size
    return per_region


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in 0..1] of a non-empty sequence: a value that
    occurred, not an interpolation."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def queue_stats(name: str, snapshot: QueueSnapshot, now: float) -> dict[str, Any]:
    """The queue's statistics document at ``now`` (epoch seconds)."""
    oldest = snapshot.oldest
    tick = snapshot.last_tick
    waits = snapshot.matched_waits
    return {
        "name": name,
        "waitingTickets": snapshot.waiting_tickets,
        "waitingPlayers": sum(t.size for t in oldest),
        "byRegion": dict(sorted(players_by_region(oldest).items())),
        "oldestWaitSeconds": round(max(0.0, now - oldest[0].enqueued_at), 3) if oldest else 0.0,
        "lastTick": (
            None
            if tick is None
            else {"at": format_timestamp(tick.at), "seconds": round(tick.seconds, 6), "matches": tick.matches}
        ),
        "timeToMatchSeconds": (
            None if not waits else {"p50": round(percentile(waits, 0.5), 3), "p95": round(percentile(waits, 0.95), 3)}
        ),
    }
