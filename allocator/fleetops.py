"""Fleet and FleetAutoscaler operations used by the CLI and ``fleetmatch up``: apply (create or update), scale."""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from fleetmatch.errors import NotFoundError, ValidationError
from fleetmatch.models import Fleet, FleetAutoscaler, FleetAutoscalerStatus, with_meta
from fleetmatch.store import AutoscalerStore, FleetStore, modify


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


async def apply_autoscaler(store: AutoscalerStore, fas: FleetAutoscaler) -> tuple[FleetAutoscaler, Applied]:
    """Create the autoscaler, or replace its spec, labels and annotations (status is the controller's)."""
    try:
        await store.get(fas.name)
    except NotFoundError:
        created = await store.create(
            replace(with_meta(fas, resource_version="", namespace=store.namespace), status=FleetAutoscalerStatus())
        )
        return created, Applied.CREATED

    def change(current: FleetAutoscaler) -> FleetAutoscaler | None:
        meta = fas.metadata
        if (current.spec, current.metadata.labels, current.metadata.annotations) == (
            fas.spec,
            meta.labels,
            meta.annotations,
        ):
            return None
        return replace(with_meta(current, labels=meta.labels, annotations=meta.annotations), spec=fas.spec)

    updated = await modify(store, fas.name, change)
    if updated is None:
        return await store.get(fas.name), Applied.UNCHANGED
    return updated, Applied.CONFIGURED


async def scale_fleet(store: FleetStore, name: str, replicas: int) -> Fleet:
    """Set the fleet's ``spec.replicas`` (a no-op write is skipped); ``NotFoundError`` if there is no such fleet.

    A FleetAutoscaler targeting the fleet overrides this at its next evaluation, as in Agones.
    """
    if replicas < 0:
        raise ValidationError("spec.replicas", f"must not be negative, got {replicas}")

    def change(current: Fleet) -> Fleet | None:
        if current.spec.replicas == replicas:
            return None
        return replace(current, spec=replace(current.spec, replicas=replicas))

    updated = await modify(store, name, change)
    return updated if updated is not None else await store.get(name)
