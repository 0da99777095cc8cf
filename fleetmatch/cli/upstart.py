"""What ``fleetmatch up`` applies when it starts, and what it leaves alone.

Files the user names (``up --fleet FILE``) are applied as given, every start: they are the user's
statement of what should run. The demo is different: it is a starting point that users then edit
(``fleetmatch fleet scale demo 7``, a changed template, a deleted autoscaler), so it is created only
when its fleet is missing; once the demo fleet exists, every demo resource is kept as it is.
Re-applying it on each start silently undid those edits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from allocator.fleetops import apply_autoscaler, apply_fleet, scale_fleet
from fleetmatch.backends import Backend
from fleetmatch.errors import NotFoundError
from fleetmatch.models import Fleet, FleetAutoscaler

log = logging.getLogger(__name__)

Resource = Fleet | FleetAutoscaler


async def apply_at_start(
    backend: Backend, resources: Sequence[Resource], *, demo: bool, replicas: int | None = None
) -> list[Fleet]:
    """Apply ``resources`` (``demo``: only if the demo fleet is missing) and return the fleets as
    stored. ``replicas`` (``up --replicas``) sets the first fleet's replicas, the kept demo's too."""
    fleets = [r for r in resources if isinstance(r, Fleet)]
    kept = await _stored(backend, fleets[0].name) if demo and fleets else None
    if kept is not None:
        log.info(
            "Fleet %s exists: kept as it is (%d replicas; the demo is created only when missing, "
            "delete the fleet to get the original back)",
            kept.name,
            kept.spec.replicas,
        )
        if replicas is not None and replicas != kept.spec.replicas:
            kept = await scale_fleet(backend.fleets, kept.name, replicas)
            log.info("Fleet %s scaled to %d (--replicas)", kept.name, replicas)
        return [kept]
    stored: list[Fleet] = []
    for resource in resources:
        if isinstance(resource, Fleet):
            if replicas is not None and not stored:
                resource = replace(resource, spec=replace(resource.spec, replicas=replicas))
            fleet, action = await apply_fleet(backend.fleets, resource)
            stored.append(fleet)
        else:
            _, action = await apply_autoscaler(backend.autoscalers, resource)
        log.info("%s %s %s%s", resource.KIND, resource.name, action, " (demo)" if demo else "")
    return stored


async def _stored(backend: Backend, name: str) -> Fleet | None:
    try:
        return await backend.fleets.get(name)
    except NotFoundError:
        return None
