"""Fleet and FleetAutoscaler operations used by the CLI and ``fleetmatch up``: apply (create or update), scale."""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from fleetmatch.codec import INT64_MAX, evolve
from fleetmatch.errors import NotFoundError, ValidationError
from fleetmatch.models import Fleet, FleetAutoscaler, with_meta
from fleetmatch.store import AutoscalerStore, FleetStore, R, Store, modify


class Applied(StrEnum):
    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"


async def apply_resource(store: Store[R], obj: R) -> tuple[R, Applied]:
    """Create ``obj``, or replace its spec, labels and annotations. Status belongs to the
    controllers: a created object starts with an empty one, an updated one keeps its own."""
    try:
        await store.get(obj.name)
    except NotFoundError:
        fresh = evolve(with_meta(obj, resource_version="", namespace=store.namespace), status=type(obj.status)())
        return await store.create(fresh), Applied.CREATED
    meta = obj.metadata

    def change(current: R) -> R | None:
        if (current.spec, current.metadata.labels, current.metadata.annotations) == (
            obj.spec,
            meta.labels,
            meta.annotations,
        ):
            return None
        return evolve(with_meta(current, labels=meta.labels, annotations=meta.annotations), spec=obj.spec)

    updated = await modify(store, obj.name, change)
    if updated is None:
        return await store.get(obj.name), Applied.UNCHANGED
    return updated, Applied.CONFIGURED


async def apply_fleet(store: FleetStore, fleet: Fleet) -> tuple[Fleet, Applied]:
    return await apply_resource(store, fleet)


async def apply_autoscaler(store: AutoscalerStore, fas: FleetAutoscaler) -> tuple[FleetAutoscaler, Applied]:
    return await apply_resource(store, fas)


async def scale_fleet(store: FleetStore, name: str, replicas: int) -> Fleet:
    """Set the fleet's ``spec.replicas`` (a no-op write is skipped); ``NotFoundError`` if there is no such fleet.

    A FleetAutoscaler targeting the fleet overrides this at its next evaluation, as in Agones.
    """
    if replicas < 0:
        raise ValidationError("spec.replicas", f"must not be negative, got {replicas}")
    if replicas > INT64_MAX:
        raise ValidationError("spec.replicas", f"must be within int64 (at most {INT64_MAX}), got {replicas}")

    def change(current: Fleet) -> Fleet | None:
        if current.spec.replicas == replicas:
            return None
        return replace(current, spec=replace(current.spec, replicas=replicas))

    updated = await modify(store, name, change)
    return updated if updated is not None else await store.get(name)
