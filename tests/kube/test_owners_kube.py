"""GameServers a fleet makes on Kubernetes are owned by the Fleet (``ownerReferences``, as Agones'), so
the garbage collector removes them with it; ``fleetmatch``'s own fleet delete orphans them instead so
that Allocated servers finish their match; a Fleet being deleted gets no new servers. The fake API
server runs the garbage collector synchronously (a real cluster's is eventual)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from kubernetes_asyncio import client

from allocator.controllers.fleet import FleetController
from fleetmatch.backends.kube.client import KubeBackend, kube_stores
from fleetmatch.lease import Lease
from fleetmatch.models import (
    API_VERSION,
    Fleet,
    FleetSpec,
    GameServerSpec,
    GameServerState,
    GameServerTemplate,
    ObjectMeta,
    ProcessTemplate,
)
from fleetmatch.store import modify
from fleetmatch.tasks import cancel_and_wait
from tests.kube.fakekube import FakeKube
from tests.waiting import eventually

NS = "default"
pytestmark = pytest.mark.timeout(60)


def no_leases(name: str, holder: str, ttl: float) -> Lease:
    raise AssertionError("one controller: no lease")


def fleet(name: str, replicas: int) -> Fleet:
    template = GameServerTemplate(spec=GameServerSpec(process=ProcessTemplate(("game",))))
    return Fleet(ObjectMeta(name=name), FleetSpec(replicas=replicas, template=template))


@contextlib.asynccontextmanager
async def backend_with_controller(api: client.ApiClient) -> AsyncIterator[tuple[KubeBackend, asyncio.Task[None]]]:
    backend = KubeBackend(api, kube_stores(api, NS), leases=no_leases, lease_seconds=15.0, owns_api=False)
    task = asyncio.create_task(FleetController(backend, resync_seconds=0.2).run(), name="fleets")
    try:
        yield backend, task
    finally:
        await cancel_and_wait(task)
        await backend.aclose()


def gameservers(fake: FakeKube) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in fake.objects("gameservers", NS)}


async def test_a_fleets_gameservers_are_owned_by_it_and_collected_with_it(
    fake_kube: FakeKube, kube_api: client.ApiClient
) -> None:
    async with backend_with_controller(kube_api) as (backend, controller):
        arena = await backend.fleets.create(fleet("arena", 3))
        await eventually(lambda: len(gameservers(fake_kube)) == 3)
        owner = {"apiVersion": API_VERSION, "kind": "Fleet", "name": "arena", "uid": arena.metadata.uid,
                 "controller": True, "blockOwnerDeletion": True}  # fmt: skip
        assert all(gs["metadata"]["ownerReferences"] == [owner] for gs in gameservers(fake_kube).values())
        name = next(iter(gameservers(fake_kube)))
        await modify(backend.gameservers, name, lambda gs: gs.with_status(state=GameServerState.READY))
        assert gameservers(fake_kube)[name]["metadata"]["ownerReferences"] == [owner]  # a replace keeps it
        await cancel_and_wait(controller)  # from here on only the garbage collector acts

        fake_kube.delete_object("fleets", NS, "arena")  # kubectl delete fleet arena (Background)
        assert gameservers(fake_kube) == {}


async def test_fleetmatch_deletes_a_fleet_orphaning_its_servers_so_allocated_ones_finish(
    fake_kube: FakeKube, kube_api: client.ApiClient
) -> None:
    async with backend_with_controller(kube_api) as (backend, _):
        await backend.fleets.create(fleet("arena", 3))
        await eventually(lambda: len(gameservers(fake_kube)) == 3)
        playing = next(iter(gameservers(fake_kube)))
        await modify(backend.gameservers, playing, lambda gs: gs.with_status(state=GameServerState.ALLOCATED))

        await backend.fleets.delete("arena")  # what `fleetmatch fleet delete arena` does
        (delete,) = [r for r in fake_kube.requests if r.method == "DELETE" and "/fleets/" in r.path]
        assert parse_qs(delete.query)["propagationPolicy"] == ["Orphan"]
        await eventually(
            lambda: list(gameservers(fake_kube)) == [playing], what=lambda: str(list(gameservers(fake_kube)))
        )
        assert "ownerReferences" not in gameservers(fake_kube)[playing]["metadata"]


async def test_a_fleet_being_deleted_gets_no_new_servers(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    async with backend_with_controller(kube_api) as (backend, _):
        await backend.fleets.create(fleet("arena", 2))
        await eventually(lambda: len(gameservers(fake_kube)) == 2)
        # A foreground deletion (or any finalizer) keeps the Fleet, marked, until its servers are gone.
        fake_kube.update_object("fleets", NS, "arena", lambda f: f["metadata"].update(finalizers=["example.com/hold"]))
        fake_kube.delete_object("fleets", NS, "arena")
        assert fake_kube.get_object("fleets", NS, "arena") is not None  # still there, being deleted

        await eventually(lambda: gameservers(fake_kube) == {})
        creates = sum(1 for r in fake_kube.requests if r.method == "POST" and r.path.endswith("/gameservers"))
        await asyncio.sleep(0.6)  # three resync passes: none creates a replacement
        assert gameservers(fake_kube) == {}
        assert sum(1 for r in fake_kube.requests if r.method == "POST" and r.path.endswith("/gameservers")) == creates
