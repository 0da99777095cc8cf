"""The autoscaler controller: sets each autoscaled Fleet's ``spec.replicas`` from its FleetAutoscaler.

Agones evaluates an autoscaler only on its fixed interval (30 s by default), so a burst of
allocations drains the buffer and players wait for the next tick (agones.md §8 item 6). Here a
fleet is evaluated as soon as its allocated count changes, and also every
``spec.sync.fixedInterval.seconds`` (default 1 s) as a level-triggered safety net.

Three informers feed it. The GameServer handler keeps an allocated count per fleet up to date
incrementally (``allocator.autoscale.allocated_fleet``: Allocated, not being deleted, Reserved not
counted) and marks the fleet dirty when the count moves; Fleet and FleetAutoscaler events mark
their fleet dirty too. Handlers only touch dicts and set an event: the loop does the I/O.

Rules:

- One autoscaler per fleet. If several target one fleet, the **oldest** (creationTimestamp, then
  name) scales it; the others report ``ableToScale: false`` and never write the fleet, so adding a
  second autoscaler by mistake cannot make the fleet flap between two policies.
- ``ableToScale`` is false (desired 0, limited false, as Agones reports it) when the fleet does not
  exist. ``currentReplicas`` is the fleet's ``status.replicas`` (Agones: the servers it has).
- ``lastScaleTime`` changes only when this controller actually wrote a new ``spec.replicas``; it
  starts the scale-down cool-off (``spec.scaleDownCooloffSeconds``).
- The decision is re-made inside the conditional fleet write (``fleetmatch.store.modify``) against
  the fleet as stored, so a stale cache never applies a wrong number.
- Only the process holding the controllers' lease runs it (``fleetmatch.lease.Leadership``): two
  controllers never fight.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from allocator import metrics
from allocator.autoscale import Decision, ScaleDecision, allocated_fleet, decide
from fleetmatch.backends import Backend
from fleetmatch.errors import NotFoundError, StoreError
from fleetmatch.models import Fleet, FleetAutoscaler, FleetAutoscalerStatus, GameServer
from fleetmatch.reconcile import ReconcileLoop
from fleetmatch.store import EventType, WatchEvent, modify

log = logging.getLogger(__name__)


def _age_key(fas: FleetAutoscaler) -> tuple[float, str]:
    return (fas.metadata.creation_timestamp or 0.0, fas.name)


class AutoscalerController:
    def __init__(
        self,
        backend: Backend,
        *,
        clock: Callable[[], float] = time.time,
        resync_seconds: float = 3600.0,
    ) -> None:
        self.gameservers = backend.gameservers
        self.fleets = backend.fleets
        self.autoscalers = backend.autoscalers
        self.gs_informer = backend.informer(GameServer)
        self.fleet_informer = backend.informer(Fleet)
        self.fas_informer = backend.informer(FleetAutoscaler)
        self._clock = clock
        self.allocated: Counter[str] = Counter()
        """Allocated servers per fleet name, kept current by the GameServer handler."""
        self._counted: dict[str, str] = {}  # gameserver -> the fleet whose count it is in
        self._targets: dict[str, str] = {}  # autoscaler -> the fleet it targets
        self._dirty: set[str] = set()  # fleets to evaluate now
        self._due: dict[str, float] = {}  # autoscaler -> loop time of its next interval evaluation
        self._scaled_at: dict[str, float] = {}  # autoscaler -> our last scale (until the cache shows it)
        self._gauged: set[tuple[str, str]] = set()
        self._standby: set[str] = set()  # autoscalers that lost to an older one (logged once)
        self.loop = ReconcileLoop(self._pass, resync=resync_seconds, next_due=self._next_due)

    # -- informer handlers: bookkeeping only, never I/O --------------------------------------

    def _mark(self, *fleets: str | None) -> None:
        for fleet in fleets:
            if fleet is not None:
                self._dirty.add(fleet)
        self.loop.poke()

    def _on_gameserver(self, event: WatchEvent[GameServer]) -> None:
        name = event.object.name
        new = None if event.type is EventType.DELETED else allocated_fleet(event.object)
        old = self._counted.get(name)
        if new == old:
            return
        if old is not None:
            self.allocated[old] -= 1
            if not self.allocated[old]:
                del self.allocated[old]
            del self._counted[name]
        if new is not None:
            self.allocated[new] += 1
            self._counted[name] = new
        self._mark(old, new)

    def _on_fleet(self, event: WatchEvent[Fleet]) -> None:
        self._mark(event.object.name)

    def _on_autoscaler(self, event: WatchEvent[FleetAutoscaler]) -> None:
        name = event.object.name
        old = self._targets.get(name)
        if event.type is EventType.DELETED:
            self._targets.pop(name, None)
            self._due.pop(name, None)
            self._scaled_at.pop(name, None)
            self._standby.discard(name)
            for key in [g for g in self._gauged if g[0] == name]:
                self._ungauge(*key)
            self._mark(old)  # a standby autoscaler of that fleet may take over
            return
        self._targets[name] = event.object.spec.fleet_name
        self._mark(old, event.object.spec.fleet_name)

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Evaluate dirty and due fleets until cancelled. A new run (a new leadership term) evaluates
        everything at once (the previous leader may be long gone); metrics it reported are withdrawn
        when it ends (the next leader reports them)."""
        self._reset()
        removers = [
            self.gs_informer.add_handler(self._on_gameserver),
            self.fleet_informer.add_handler(self._on_fleet),
            self.fas_informer.add_handler(self._on_autoscaler),
        ]
        try:
            for informer in (self.gs_informer, self.fleet_informer, self.fas_informer):
                await informer.synced.wait()
            await self.loop.run()
        finally:
            for remove in removers:
                remove()
            self._ungauge_all()

    def _reset(self) -> None:
        self.allocated.clear()
        self._counted.clear()
        self._targets.clear()
        self._dirty.clear()
        self._due.clear()
        self._scaled_at.clear()
        self._standby.clear()

    async def _pass(self) -> None:
        await self.reconcile(asyncio.get_running_loop().time())

    def _next_due(self) -> float | None:
        """Seconds until the next interval evaluation (None if there is no autoscaler)."""
        if not self._due:
            return None
        return min(self._due.values()) - asyncio.get_running_loop().time()

    async def reconcile(self, loop_now: float) -> None:
        """Evaluate every dirty fleet and every fleet with an autoscaler due for its interval."""
        fleets = self._dirty
        self._dirty = set()
        for name, fas in self.fas_informer.cache.items():
            if self._due.get(name, loop_now) <= loop_now:
                fleets.add(fas.spec.fleet_name)
        for fleet in sorted(fleets):
            try:
                await self.evaluate(fleet)
            except StoreError as exc:  # the interval retries it
                log.warning("autoscaling fleet %s: %s", fleet, exc, extra={"fleet": fleet})
            for fas in self.fas_informer.cache.values():
                if fas.spec.fleet_name == fleet:
                    self._due[fas.name] = loop_now + fas.spec.sync.fixed_interval.seconds

    async def evaluate(self, fleet_name: str) -> None:
        """Apply the policy of the fleet's (oldest) autoscaler; report the others as unable to scale."""
        scalers = sorted((f for f in self.fas_informer.cache.values() if f.spec.fleet_name == fleet_name), key=_age_key)
        if not scalers:
            return
        leader, *others = scalers
        fleet = self.fleet_informer.cache.get(fleet_name)
        self._standby.difference_update({leader.name})
        for fas in others:
            if fas.name not in self._standby:
                self._standby.add(fas.name)
                log.warning(
                    "autoscaler %s: fleet %s is scaled by the older autoscaler %s; this one stands by",
                    fas.name,
                    fleet_name,
                    leader.name,
                    extra={"fleet": fleet_name},
                )
            await self._unable(fas, fleet)
        if fleet is None:
            await self._unable(leader, None)
            return
        await self._scale(leader, fleet)

    async def _scale(self, fas: FleetAutoscaler, fleet: Fleet) -> None:
        buffer = fas.spec.policy.buffer
        if buffer is None:  # the model requires it with type Buffer, the only type so far
            await self._unable(fas, fleet)
            return
        now = self._clock()
        allocated = self.allocated[fleet.name]
        known = [t for t in (fas.status.last_scale_time, self._scaled_at.get(fas.name)) if t is not None]
        cooloff = fas.spec.scale_down_cooloff_seconds

        def decide_for(current: int) -> ScaleDecision:
            return decide(
                buffer,
                current=current,
                allocated=allocated,
                now=now,
                last_scale_time=max(known, default=None),
                cooloff=cooloff,
            )

        decision = decide_for(fleet.spec.replicas)
        scaled = False
        if decision.decision in (Decision.UP, Decision.DOWN):
            decisions: list[ScaleDecision] = []

            def change(current: Fleet) -> Fleet | None:
                decisions.append(decide_for(current.spec.replicas))
                if decisions[-1].replicas == current.spec.replicas:
                    return None
                return replace(current, spec=replace(current.spec, replicas=decisions[-1].replicas))

            try:
                updated = await modify(self.fleets, fleet.name, change)
            except NotFoundError:
                await self._unable(fas, None)
                return
            decision = decisions[-1]
            if updated is not None:
                scaled = True
                fleet = updated
                self._scaled_at[fas.name] = now
                log.info(
                    "autoscaler %s: fleet %s %s to %d replicas (%d allocated%s)",
                    fas.name,
                    fleet.name,
                    "scaled up" if decision.decision is Decision.UP else "scaled down",
                    decision.replicas,
                    allocated,
                    ", limited" if decision.limited else "",
                    extra={"fleet": fleet.name},
                )
        self._count(fas, fleet, decision)
        await self._set_status(
            fas,
            FleetAutoscalerStatus(
                current_replicas=fleet.status.replicas,
                desired_replicas=decision.desired,
                last_scale_time=now if scaled else fas.status.last_scale_time,
                able_to_scale=True,
                scaling_limited=decision.limited,
            ),
            scaled=scaled,
        )

    async def _unable(self, fas: FleetAutoscaler, fleet: Fleet | None) -> None:
        current = fleet.status.replicas if fleet is not None else 0
        await self._set_status(
            fas,
            FleetAutoscalerStatus(
                current_replicas=current,
                desired_replicas=0,
                last_scale_time=fas.status.last_scale_time,
                able_to_scale=False,
                scaling_limited=False,
            ),
            scaled=False,
        )
        self._ungauge(fas.name, fas.spec.fleet_name)

    async def _set_status(self, fas: FleetAutoscaler, status: FleetAutoscalerStatus, *, scaled: bool) -> None:
        """Write ``status`` unless the cache shows it already (an event re-checks a stale cache).

        Without a new scale, the stored ``lastScaleTime`` is kept: the cache may be behind it.
        """
        if status == fas.status:
            return

        def change(current: FleetAutoscaler) -> FleetAutoscaler | None:
            new = status if scaled else replace(status, last_scale_time=current.status.last_scale_time)
            return replace(current, status=new) if new != current.status else None

        try:
            await modify(self.autoscalers, fas.name, change)
        except NotFoundError:
            pass  # deleted meanwhile: its DELETED event cleans up

    # -- metrics -------------------------------------------------------------------------------

    def _count(self, fas: FleetAutoscaler, fleet: Fleet, decision: ScaleDecision) -> None:
        labels = {"autoscaler": fas.name, "fleet": fleet.name}
        metrics.AUTOSCALER_DESIRED.labels(**labels).set(decision.desired)
        metrics.AUTOSCALER_CURRENT.labels(**labels).set(fleet.status.replicas)
        metrics.AUTOSCALER_DECISIONS.labels(**labels, decision=decision.decision.value).inc()
        if decision.limited:
            metrics.AUTOSCALER_DECISIONS.labels(**labels, decision="limited").inc()
        self._gauged.add((fas.name, fleet.name))
        for stale in [g for g in self._gauged if g[0] == fas.name and g[1] != fleet.name]:
            self._ungauge(*stale)

    def _ungauge(self, autoscaler: str, fleet: str) -> None:
        if (autoscaler, fleet) in self._gauged:
            metrics.AUTOSCALER_DESIRED.remove(autoscaler, fleet)
            metrics.AUTOSCALER_CURRENT.remove(autoscaler, fleet)
            self._gauged.discard((autoscaler, fleet))

    def _ungauge_all(self) -> None:
        for key in list(self._gauged):
            self._ungauge(*key)


__all__ = ["AutoscalerController"]
