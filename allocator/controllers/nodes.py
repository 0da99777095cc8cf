"""The node controller: servers of a node whose agent went silent are marked Unhealthy, then replaced.

A node agent renews its heartbeat every quarter lease (``fleetmatch.nodes``). When a node has been
silent for longer than the lease, every GameServer on it that is not terminal yet (Ready and
Allocated ones too: their games are gone with the host) is marked Unhealthy with the reason, an
event record is written for the node and for each server, and the fleet controller replaces them on
the nodes that are alive. The allocator stops handing those servers out on its own, from the same
heartbeats, before this controller gets to them.

Silence is measured from the later of the last heartbeat and the moment this controller could read
the store again (``fleetmatch.nodes.silence``): after a store outage every node gets a fresh lease,
so an outage never evicts a whole fleet. A node silent for ``forget_seconds`` with no server left is
dropped from the registry (``fleetmatch node list`` no longer shows it).
"""

from __future__ import annotations

import logging
import time

from allocator import metrics
from fleetmatch.backends import Backend
from fleetmatch.errors import NotFoundError, StoreError
from fleetmatch.events import Severity, record_quietly
from fleetmatch.models import TERMINAL_STATES, GameServer, GameServerState, failed
from fleetmatch.nodes import NODE_BOOT_ANNOTATION, NodeRecord, OutageGrace, lapsed_nodes, silence
from fleetmatch.reconcile import ReconcileLoop
from fleetmatch.store import modify

log = logging.getLogger(__name__)

FORGET_SECONDS = 3600.0
"""A silent node with no server left is dropped from the registry after this long."""


class NodeController:
    def __init__(
        self,
        backend: Backend,
        *,
        lease_seconds: float,
        resync_seconds: float = 1.0,
        forget_seconds: float = FORGET_SECONDS,
    ) -> None:
        if backend.nodes is None:
            raise ValueError(f"the {backend.engine} backend keeps no node heartbeats")
        self.nodes = backend.nodes
        self.gameservers = backend.gameservers
        self.events = backend.events
        self.informer = backend.informer(GameServer)
        self.lease = lease_seconds
        self.forget = forget_seconds
        self.loop = ReconcileLoop(self.reconcile, resync=resync_seconds)
        self._grace = OutageGrace(gap=resync_seconds + lease_seconds / 4)  # a node renews every lease / 4
        self._not_ready: set[str] = set()

    async def run(self) -> None:
        """Reconcile until cancelled; a new run (a new leadership term) gives every node a fresh lease.
        When it ends, this process reports no Not Ready nodes any more (the new leader does)."""
        self._grace.reset()
        self._not_ready.clear()
        try:
            await self.informer.synced.wait()
            await self.loop.run()
        finally:
            metrics.NODES_NOT_READY.set(0)

    async def reconcile(self) -> None:
        try:
            records, now = await self.nodes.list()
        except StoreError as exc:
            self._grace.failed()
            log.warning("cannot read node heartbeats: %s", exc)
            return
        healthy_since = self._grace.read(now, time.monotonic())
        lapsed = lapsed_nodes(records, now, self.lease, healthy_since)
        for name in self._not_ready - set(lapsed):
            self._not_ready.discard(name)
            log.info("node %s is Ready again", name, extra={"node": name})
            await record_quietly(self.events, "Node", name, "NodeReady", "the node agent renews its heartbeat again")
        metrics.NODES_NOT_READY.set(len(lapsed))
        for name, record in lapsed.items():
            await self._evict(record, silence(record, now, healthy_since))
            if now - record.renewed > self.forget and not self._servers_on(name):
                await self.nodes.remove(name)
                self._not_ready.discard(name)
                log.info("node %s forgotten (silent for %.0fs, no servers)", name, now - record.renewed)

    def _servers_on(self, node: str) -> list[GameServer]:
        return [gs for gs in self.informer.cache.values() if gs.status.node_name == node]

    async def _evict(self, node: NodeRecord, silent: float) -> None:
        why = f"node {node.name} stopped renewing its heartbeat {silent:.0f}s ago (lease {self.lease:g}s)"
        if node.name not in self._not_ready:
            self._not_ready.add(node.name)
            log.warning("node %s is NotReady: %s", node.name, why, extra={"node": node.name})
            await record_quietly(self.events, "Node", node.name, "NodeNotReady", why, type=Severity.WARNING)
        for gs in self._servers_on(node.name):
            if gs.state in TERMINAL_STATES:
                continue

            def change(current: GameServer, node_name: str = node.name) -> GameServer | None:
                if current.status.node_name != node_name:
                    return None  # rescheduled meanwhile
                boot = current.metadata.annotations.get(NODE_BOOT_ANNOTATION)
                if boot is not None and boot != node.boot:
                    return None  # a newer agent run confirmed it: not ours to evict
                return failed(current, GameServerState.UNHEALTHY, why, its_own_fault=False)

            try:
                marked = await modify(self.gameservers, gs.name, change)
            except NotFoundError:
                continue
            if marked is not None:
                metrics.NODE_EVICTIONS.labels(node=node.name).inc()
                log.warning("%s -> Unhealthy: %s", gs.name, why, extra={"gameserver": gs.name})
                await record_quietly(
                    self.events, GameServer.KIND, gs.name, "Unhealthy", why, type=Severity.WARNING, uid=gs.metadata.uid
                )
