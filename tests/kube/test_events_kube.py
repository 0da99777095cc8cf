"""Event records on Kubernetes are events.k8s.io/v1 Events about the object: one per (object, reason,
message), its series counting repeats; the fleet controller's and the Pod controller's records land there."""

from __future__ import annotations

from kubernetes_asyncio import client

from fleetmatch.backends.kube.client import KubeBackend, kube_stores
from fleetmatch.backends.kube.events import CONTROLLER, KubeEventLog
from fleetmatch.events import Severity
from fleetmatch.lease import Lease
from tests.kube.fakekube import FakeKube


def no_leases(name: str, holder: str, ttl: float) -> Lease:
    raise AssertionError("no lease here")


async def test_records_are_events_about_the_object_and_repeats_grow_their_series(
    fake_kube: FakeKube, kube_api: client.ApiClient
) -> None:
    backend = KubeBackend(
        kube_api, kube_stores(kube_api, "default"), leases=no_leases, lease_seconds=15, owns_api=False
    )
    events = backend.events
    assert isinstance(events, KubeEventLog)
    for _ in range(3):
        await events.record("Fleet", "arena", "CrashLoopBackOff", "boom: no config", type=Severity.WARNING)
    await events.record("GameServer", "arena-x1", "Unhealthy", "game process exited with code 2")
    (looping,) = await events.list("Fleet", "arena")
    assert (looping.reason, looping.message, looping.count, looping.type) == (
        "CrashLoopBackOff", "boom: no config", 3, Severity.WARNING
    )  # fmt: skip
    assert [r.name for r in await events.list("GameServer")] == ["arena-x1"]
    stored = fake_kube.objects("events", "default")  # what kubectl get events shows
    assert len(stored) == 2
    fleet_event = next(e for e in stored if e["regarding"]["kind"] == "Fleet")
    assert fleet_event["regarding"] == {"apiVersion": "fleetmatch.dev/v1", "kind": "Fleet", "name": "arena",
                                        "namespace": "default"}  # fmt: skip
    assert fleet_event["reportingController"] == CONTROLLER and fleet_event["series"]["count"] == 3
