"""A controller's gauges last as long as its run (its leadership term): a standby that kept them
would report stale figures beside the new leader's, and `sum` over controllers would count twice."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from allocator.controllers.fleet import FleetController
from allocator.fleetops import apply_fleet
from fleetmatch.backends.base import Backend
from fleetmatch.tasks import cancel_and_wait
from tests.integration.fleetenv import example_game, make_fleet
from tests.waiting import eventually


def desired(fleet: str) -> float | None:
    return REGISTRY.get_sample_value("fleetmatch_fleet_desired_replicas", {"fleet": fleet})


def creating(fleet: str) -> float | None:
    return REGISTRY.get_sample_value("fleetmatch_gameservers", {"fleet": fleet, "state": "Creating"})


async def test_the_fleet_controller_withdraws_its_gauges_when_its_run_ends(backend: Backend) -> None:
    await apply_fleet(backend.fleets, make_fleet("gauged", 2, example_game()))
    run = asyncio.create_task(FleetController(backend).run(), name="test.fleets")
    try:
        await eventually(lambda: desired("gauged") == 2.0 and creating("gauged") == 2.0, what=lambda: "gauges set")
    finally:
        await cancel_and_wait(run)
    assert (desired("gauged"), creating("gauged")) == (None, None)
