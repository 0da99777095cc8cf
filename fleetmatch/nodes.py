"""Node heartbeats: how the rest of the system knows a node agent (and so its game servers) is alive.

Each node agent renews its record every ``lease/4`` seconds, like a kubelet renews its Lease. A
record carries the agent's ``boot`` id, random per agent run: the agent stamps it on every server it
schedules or promotes to Ready (``NODE_BOOT_ANNOTATION``). A Ready server counts as allocatable only
while its node's current record is fresh AND carries that same boot, so:

- a node agent that died (SIGKILL, host lost) stops renewing: once its record is older than the
  lease, the allocator stops choosing its servers and the node controller marks them Unhealthy (the
  fleet replaces them elsewhere);
- a node agent that restarted has a new boot: servers the old run left behind are not handed out
  until the new run confirms them (it marks lost ones Unhealthy, promotes live ones again).

Times are the store's clock (``NodeRegistry.list`` returns it), so hosts with skewed clocks agree.
A store outage is nobody's node's fault: a record is judged against the later of its renewal and
the moment the store became reachable again (``healthy_since``), so every node gets a fresh lease
after an outage instead of all of them lapsing at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

NODE_BOOT_ANNOTATION = "fleetmatch.dev/node-boot"
"""The boot id of the node agent run that scheduled (or last confirmed) a GameServer."""
DEFAULT_LEASE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class NodeRecord:
    name: str
    boot: str
    """Random id of the agent run that wrote the record."""
    address: str
    capacity: int
    """Game servers the agent may run at once."""
    renewed: float
    """Unix time (store clock) of the latest heartbeat."""
    started: float
    """Unix time (store clock) when this boot first heartbeated."""


class OutageGrace:
    """``healthy_since`` for one reader of node heartbeats (the allocator, the node controller): the
    store time of its first read after an outage, or of its first read at all.

    An outage is a read that failed, or a gap of more than ``gap`` seconds (monotonic) since the
    last read that succeeded: a read can span an outage without failing (redis-py retries a lost
    connection with backoff, a paused store answers late), and no node agent could renew meanwhile.
    A reader whose own loop stalled that long gives the nodes the same grace: it cannot tell."""

    def __init__(self, gap: float) -> None:
        self.gap = gap
        self.since: float | None = None
        self._last_read: float | None = None

    def reset(self) -> None:
        """Start over (a new leadership term): the next read gives every node a fresh lease."""
        self.since = self._last_read = None

    def failed(self) -> None:
        self.since = None

    def read(self, now: float, at: float) -> float:
        """A read that succeeded, answered at store time ``now`` and monotonic time ``at``: the
        ``healthy_since`` to judge its records by."""
        if self.since is None or self._last_read is None or at - self._last_read > self.gap:
            self.since = now
        self._last_read = at
        return self.since


class NodeRegistry(Protocol):
    """Node heartbeats of one namespace."""

    async def heartbeat(self, name: str, *, boot: str, address: str, capacity: int) -> None:
        """Renew ``name``'s record (a new ``boot`` restarts its ``started``)."""

    async def list(self) -> tuple[list[NodeRecord], float]:
        """Every record, and the store's current time."""

    async def remove(self, name: str) -> None: ...


def silence(record: NodeRecord, now: float, healthy_since: float) -> float:
    """Seconds the node has been silent, not counting a store outage that ended at ``healthy_since``."""
    return now - max(record.renewed, healthy_since)


def live_nodes(
    records: Iterable[NodeRecord], now: float, lease: float, healthy_since: float = float("-inf")
) -> dict[str, str]:
    """node name -> boot id of every node whose agent renewed within ``lease``."""
    return {r.name: r.boot for r in records if silence(r, now, healthy_since) <= lease}


def lapsed_nodes(
    records: Iterable[NodeRecord], now: float, lease: float, healthy_since: float = float("-inf")
) -> dict[str, NodeRecord]:
    """The records of nodes silent for longer than ``lease``."""
    return {r.name: r for r in records if silence(r, now, healthy_since) > lease}


def confirmed(annotations: Mapping[str, str], node: str, live: Mapping[str, str]) -> bool:
    """Is a server with these annotations on ``node`` confirmed by a live agent run? Servers no node
    agent placed (Kubernetes Pods) carry no boot id and are not gated."""
    boot = annotations.get(NODE_BOOT_ANNOTATION)
    return boot is None or live.get(node) == boot
