"""Fleet operations used by the CLI and ``fleetmatch up``: apply (create or update) and delete."""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from fleetmatch.errors import NotFoundError
from fleetmatch.models import Fleet, with_meta
from fleetmatch.store import FleetStore, modify


class Applied(StrEnum):
    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"


async def apply_fleet(store: FleetStore, fleet: Fleet) -> tuple[Fleet, Applied]:
    """Create the fleet, or replace its spec, labels and annotations (status is the controller's)."""
    try:
        await store.get(fleet.name)
    except NotFoundError:
        created = await store.create(with_meta(fleet, resource_version="", namespace=store.namespace))
        return created, Applied.CREATED

    def change(current: Fleet) -> Fleet | None:
        meta = fleet.metadata
        if (current.spec, current.metadata.labels, current.metadata.annotations) == (
            fleet.spec,
            meta.labels,
            meta.annotations,
        ):
            return None
        return replace(with_meta(current, labels=meta.labels, annotations=meta.annotations), spec=fleet.spec)

    updated = await modify(store, fleet.name, change)
    if updated is None:
        return await store.get(fleet.name), Applied.UNCHANGED
    return updated, Applied.CONFIGURED
