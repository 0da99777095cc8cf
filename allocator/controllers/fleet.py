"""The fleet controller: keeps each Fleet at ``spec.replicas`` GameServers and its status current.

Level-triggered on two informers (fleets and gameservers). Decisions come from
``allocator.fleetplan`` (scaling, replacement, rolling updates and Recreate); this module only does
the I/O. Creations and deletions it made but has not yet seen come back through the watch are
remembered ("expectations", as in Kubernetes controllers), so a quick second pass neither creates
twice nor counts a deleted server. Deletes are conditional on the version the plan saw: a server
allocated in between is not deleted.

A Fleet being deleted (``deletionTimestamp`` set while a finalizer, such as a foreground
deletion's, holds it) is treated as gone: nothing is created for it, and its servers no match is
using are deleted, so a foreground deletion ends instead of racing the controller's replacements.

Replacements of servers that fail before Ready back off per fleet (``allocator.crashloop``): the
wait doubles with each such failure in a row, a crash-looping fleet starts one server at a time and
reports the ``CrashLoopBackOff`` condition in its status, and an event record keeps why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace

from allocator import crashloop, metrics
from allocator.crashloop import Streak
from allocator.fleetplan import FleetPlan, new_gameserver, plan_fleet, plan_orphans, template_hash
from fleetmatch.backends import Backend
from fleetmatch.errors import ConflictError, NotFoundError, StoreError
from fleetmatch.events import Severity, record_quietly
from fleetmatch.models import Fleet, GameServer, GameServerState
from fleetmatch.reconcile import ReconcileLoop
from fleetmatch.store import create_with_generated_name, modify

log = logging.getLogger(__name__)

EXPECTATION_SECONDS = 30.0
"""How long an unseen create/delete is trusted before the controller looks at the store afresh."""


class FleetController:
    def __init__(
        self,
        backend: Backend,
        *,
        resync_seconds: float = 5.0,
        parallelism: int = 16,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.gameservers = backend.gameservers
        self.fleets = backend.fleets
        self.gs_informer = backend.informer(GameServer)
        self.fleet_informer = backend.informer(Fleet)
        self.loop = ReconcileLoop(self.reconcile, resync=resync_seconds, next_due=self._next_due)
        self.events = backend.events
        self.streaks: dict[str, Streak] = {}
        """Per fleet: its servers' failures before Ready in a row."""
        self._held: dict[str, float] = {}
        """Fleets whose creations wait for their back-off -> when the next attempt is due."""
        self._limit = asyncio.Semaphore(parallelism)
        self._clock = clock
        self._creating: dict[str, dict[str, float]] = defaultdict(dict)
        self._deleting: dict[str, float] = {}
        self._gauged: set[str] = set()

    async def run(self) -> None:
        """Reconcile until cancelled. Expectations start empty: a new run (a new leadership term)
        trusts nothing an earlier one remembered. Its gauges are withdrawn when it ends: a standby
        that kept them would report stale counts beside the new leader's."""
        self._creating.clear()
        self._deleting.clear()
        self.streaks.clear()
        self._held.clear()
        removers = [
            self.gs_informer.add_handler(self.loop.on_event),
            self.fleet_informer.add_handler(self.loop.on_event),
        ]
        try:
            await self.gs_informer.synced.wait()
            await self.fleet_informer.synced.wait()
            await self.loop.run()
        finally:
            for remove in removers:
                remove()
            for fleet in list(self._gauged):
                self._ungauge(fleet)

    async def reconcile(self) -> None:
        now = self._clock()
        cache = self.gs_informer.cache
        self._deleting = {n: t for n, t in self._deleting.items() if n in cache and t > now}
        by_fleet: dict[str, list[GameServer]] = defaultdict(list)
        for gs in cache.values():
            if gs.fleet is not None and gs.name not in self._deleting:
                by_fleet[gs.fleet].append(gs)
        for fleet in list(self.fleet_informer.cache.values()):
            if fleet.metadata.deletion_timestamp is not None:
                continue  # being deleted (a finalizer, a foreground deletion): its servers are orphans
            members = by_fleet.pop(fleet.name, [])
            expected = self._creating[fleet.name]
            for name in [n for n, t in expected.items() if n in cache or t <= now]:
                del expected[name]
            plan = await self._back_off(
                fleet, plan_fleet(fleet, members, now=now, in_flight=len(expected)), members, now
            )
            try:
                await self._execute(fleet, plan, now)
            except StoreError as exc:
                log.warning("fleet %s: %s", fleet.name, exc, extra={"fleet": fleet.name})
            self._gauge(fleet.name, members, fleet.spec.replicas)
        for fleet_name, members in by_fleet.items():
            orphans = plan_orphans(members)
            if orphans:
                await self._delete(fleet_name, orphans, ("fleet-deleted",) * len(orphans), now)
        for gone in self._gauged - set(self.fleet_informer.cache):
            self._ungauge(gone)
            self.streaks.pop(gone, None)
            self._held.pop(gone, None)

    def _next_due(self) -> float | None:
        """Seconds until the earliest held creation may happen (None: nothing is held)."""
        if not self._held:
            return None
        return min(self._held.values()) - self._clock()

    async def _back_off(self, fleet: Fleet, plan: FleetPlan, members: Sequence[GameServer], now: float) -> FleetPlan:
        """``plan`` with its creations held back while the fleet's servers fail before Ready, and the
        CrashLoopBackOff condition in its status."""
        name = fleet.name
        before = self.streaks.get(name, Streak())
        streak = crashloop.observe(before, template_hash(fleet.spec.template), members, now)
        self.streaks[name] = streak
        metrics.FLEET_FAILED_BEFORE_READY.labels(fleet=name).set(streak.failures)
        if streak.failures > before.failures:
            log.warning(
                "fleet %s: %d servers failed before Ready in a row (last: %s); next creation in %gs",
                name, streak.failures, streak.reason, streak.delay, extra={"fleet": name},
            )  # fmt: skip
            if streak.looping:
                await record_quietly(
                    self.events, Fleet.KIND, name, crashloop.CONDITION, streak.reason, type=Severity.WARNING,
                    uid=fleet.metadata.uid,
                )  # fmt: skip
        elif before.failures and not streak.failures:
            log.info("fleet %s: a new server runs; creations no longer back off", name, extra={"fleet": name})
        create = crashloop.allowed_creations(streak, plan.create, members, now)
        if create < plan.create:
            self._held[name] = max(streak.next_attempt(), now + 0.05)
        else:
            self._held.pop(name, None)
        known = next((c for c in fleet.status.conditions if c.type == crashloop.CONDITION), None)
        condition = crashloop.condition(streak, known.last_transition_time if known is not None else now)
        status = replace(plan.status, conditions=(condition,) if condition is not None else ())
        return replace(plan, create=create, status=status)

    async def _execute(self, fleet: Fleet, plan: FleetPlan, now: float) -> None:
        if plan.create:
            await self._scaling(fleet, f"creating {plan.create} GameServer(s): {plan.create_reason}")
            await asyncio.gather(*(self._create(fleet, now, plan.create_reason) for _ in range(plan.create)))
        if plan.delete:
            why = ", ".join(sorted(set(plan.reasons)))
            await self._scaling(fleet, f"deleting {len(plan.delete)} GameServer(s): {why}")
            await self._delete(fleet.name, plan.delete, plan.reasons, now)
        if plan.status != fleet.status:
            await modify(
                self.fleets, fleet.name, lambda f: replace(f, status=plan.status) if f.status != plan.status else None
            )

    async def _scaling(self, fleet: Fleet, message: str) -> None:
        """An event record on the fleet (Agones' ``ScalingGameServerSet``): what it creates or deletes, why."""
        await record_quietly(self.events, Fleet.KIND, fleet.name, "Scaling", message, uid=fleet.metadata.uid)

    async def _create(self, fleet: Fleet, now: float, reason: str) -> None:
        async with self._limit:
            gs = await create_with_generated_name(self.gameservers, new_gameserver(fleet))
        self._creating[fleet.name][gs.name] = now + EXPECTATION_SECONDS
        metrics.CONTROLLER_ACTIONS.labels(fleet=fleet.name, action="create", reason=reason).inc()
        log.info(
            "fleet %s: created %s (%s)", fleet.name, gs.name, reason, extra={"fleet": fleet.name, "gameserver": gs.name}
        )

    async def _delete(self, fleet: str, servers: Sequence[GameServer], reasons: Sequence[str], now: float) -> None:
        async def one(gs: GameServer, reason: str) -> None:
            async with self._limit:
                try:
                    await self.gameservers.delete(gs.name, version=gs.metadata.resource_version)
                except (ConflictError, NotFoundError):
                    return  # it changed (maybe allocated) or is gone: the next pass decides again
            self._deleting[gs.name] = now + EXPECTATION_SECONDS
            metrics.CONTROLLER_ACTIONS.labels(fleet=fleet, action="delete", reason=reason).inc()
            log.info("fleet %s: deleted %s (%s)", fleet, gs.name, reason, extra={"fleet": fleet, "gameserver": gs.name})

        await asyncio.gather(*(one(gs, reason) for gs, reason in zip(servers, reasons, strict=True)))

    def _gauge(self, fleet: str, members: Sequence[GameServer], replicas: int) -> None:
        counts = dict.fromkeys(GameServerState, 0)
        for gs in members:
            counts[gs.state] += 1
        for state, n in counts.items():
            metrics.GAMESERVERS.labels(fleet=fleet, state=state.value).set(n)
        metrics.FLEET_DESIRED_REPLICAS.labels(fleet=fleet).set(replicas)
        self._gauged.add(fleet)

    def _ungauge(self, fleet: str) -> None:
        for state in GameServerState:
            metrics.GAMESERVERS.remove(fleet, state.value)
        metrics.FLEET_DESIRED_REPLICAS.remove(fleet)
        with contextlib.suppress(KeyError):
            metrics.FLEET_FAILED_BEFORE_READY.remove(fleet)
        self._gauged.discard(fleet)


__all__ = ["FleetController"]
