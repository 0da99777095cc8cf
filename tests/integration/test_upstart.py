"""What ``up`` applies at start, on a real Redis: the demo only when its fleet is missing (then
``--replicas`` still scales it), a user's file every time, as given."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fleetmatch.backends.base import Backend
from fleetmatch.cli.upstart import apply_at_start
from fleetmatch.demo import DEMO_FILES
from fleetmatch.errors import NotFoundError
from fleetmatch.manifests import load_resources
from fleetmatch.models import Fleet, SchedulingStrategy


def demo_resources() -> list[Fleet]:
    return [r for path in DEMO_FILES for r in load_resources(path) if isinstance(r, Fleet)]


async def test_the_demo_is_created_once_then_kept(backend: Backend) -> None:
    resources = [r for path in DEMO_FILES for r in load_resources(path)]
    [created] = await apply_at_start(backend, resources, demo=True)
    assert created.spec.replicas == 4
    await backend.autoscalers.delete("demo-autoscaler")
    edited = replace(created, spec=replace(created.spec, replicas=7, scheduling=SchedulingStrategy.DISTRIBUTED))
    await backend.fleets.update(edited)

    [kept] = await apply_at_start(backend, resources, demo=True)
    assert (kept.spec.replicas, kept.spec.scheduling) == (7, SchedulingStrategy.DISTRIBUTED)
    with pytest.raises(NotFoundError):
        await backend.autoscalers.get("demo-autoscaler")  # deleted by the user: stays deleted

    [scaled] = await apply_at_start(backend, resources, demo=True, replicas=2)
    assert (scaled.spec.replicas, scaled.spec.scheduling) == (2, SchedulingStrategy.DISTRIBUTED)


async def test_a_given_file_is_applied_as_given(backend: Backend) -> None:
    [fleet] = demo_resources()
    await apply_at_start(backend, [replace(fleet, spec=replace(fleet.spec, replicas=7))], demo=False)
    [applied] = await apply_at_start(backend, [fleet], demo=False, replicas=3)
    assert applied.spec.replicas == 3 and applied.spec.template == fleet.spec.template
    assert (await backend.fleets.get("demo")).spec.replicas == 3
