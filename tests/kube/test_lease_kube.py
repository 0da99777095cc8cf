"""Leader leases as ``coordination.k8s.io/v1`` Leases (``fleetmatch.backends.kube.lease``) on the fake
API server: the election record, expiry as the standby observes it (virtual clocks: no waiting),
conditional writes so that two candidates never both win, release, two controller processes'
worth of ``Leadership`` with one taking over from the other, and allocator replicas' slot leases."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from allocator.controllers.fleet import FleetController
from allocator.index import Share
from allocator.roster import Roster
from fleetmatch.backends.kube.client import KubeBackend, kube_backend
from fleetmatch.backends.kube.lease import KubeLease
from fleetmatch.lease import Leadership, Lease
from fleetmatch.models import Fleet, FleetSpec, GameServerSpec, GameServerTemplate, ObjectMeta, ProcessTemplate
from fleetmatch.settings import KubeSettings, Settings
from fleetmatch.tasks import cancel_and_wait
from tests.kube.fakekube import FakeKube
from tests.waiting import eventually

NS = "default"
pytestmark = pytest.mark.timeout(60)


class Clock:
    """A monotonic clock the test moves; the wall clock moves with it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return datetime(2026, 12, 1, tzinfo=UTC) + timedelta(seconds=self.now)


def lease(api: client.ApiClient, holder: str, clock: Clock, ttl: float = 10.0) -> KubeLease:
    return KubeLease(api, "fleetmatch-controllers", holder, namespace=NS, ttl=ttl, clock=clock, wall_clock=clock.wall)


def record(fake: FakeKube) -> dict[str, Any]:
    obj = fake.get_object("leases", NS, "fleetmatch-controllers")
    assert obj is not None
    spec: dict[str, Any] = obj["spec"]
    return spec


def requests(fake: FakeKube) -> list[str]:
    return [r.method for r in fake.requests if "/leases" in r.path]


async def test_the_first_candidate_creates_and_holds_the_lease(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    clock = Clock()
    a, b = lease(kube_api, "a", clock, ttl=7.5), lease(kube_api, "b", clock, ttl=7.5)
    assert await a.acquire()
    first = record(fake_kube)
    assert first["holderIdentity"] == "a" and first["leaseDurationSeconds"] == 8 and first["leaseTransitions"] == 0
    assert first["acquireTime"] == first["renewTime"] and first["renewTime"].endswith("Z")
    assert not await b.acquire()
    clock.now += 2
    before = len(requests(fake_kube))
    assert await a.acquire()
    assert requests(fake_kube)[before:] == ["PUT"]  # a holder renews on the version it wrote: no read
    renewed = record(fake_kube)
    assert renewed["acquireTime"] == first["acquireTime"] and renewed["renewTime"] > first["renewTime"]
    assert renewed["leaseTransitions"] == 0


async def test_a_standby_takes_over_only_once_the_record_stood_still_for_the_duration(
    fake_kube: FakeKube, kube_api: client.ApiClient
) -> None:
    leader_clock, standby_clock = Clock(), Clock()
    standby_clock.now = 5.0  # clocks of different machines need not agree
    leader, standby = lease(kube_api, "leader", leader_clock), lease(kube_api, "standby", standby_clock)
    assert await leader.acquire()
    assert not await standby.acquire()
    for _ in range(3):  # a live leader renews: the standby keeps seeing a fresh record
        standby_clock.now += 9
        leader_clock.now += 3
        assert await leader.acquire()
        assert not await standby.acquire()
    standby_clock.now += 9.9  # the leader died; not yet a full duration since the last change seen
    assert not await standby.acquire()
    standby_clock.now += 0.2
    assert await standby.acquire()
    taken = record(fake_kube)
    assert taken["holderIdentity"] == "standby" and taken["leaseTransitions"] == 1
    assert taken["acquireTime"] == taken["renewTime"]
    leader_clock.now += 1  # the old leader comes back (a long pause): it finds the lease taken
    assert not leader.leading or not await leader.acquire()
    assert not await leader.acquire()
    assert record(fake_kube)["holderIdentity"] == "standby"


async def test_release_clears_the_holder_and_the_next_candidate_takes_it_at_once(
    fake_kube: FakeKube, kube_api: client.ApiClient
) -> None:
    clock = Clock()
    a, b = lease(kube_api, "a", clock), lease(kube_api, "b", clock)
    assert await a.acquire()
    assert not await b.acquire()
    await a.release()
    released = record(fake_kube)
    assert released["holderIdentity"] == "" and released["leaseDurationSeconds"] == 1
    assert await b.acquire()  # no waiting out the duration
    assert record(fake_kube)["leaseTransitions"] == 1
    await a.release()  # not ours any more: nothing written
    assert record(fake_kube)["holderIdentity"] == "b"


async def test_two_candidates_racing_for_a_free_lease_never_both_win(
    fake_kube: FakeKube, kube_api: client.ApiClient
) -> None:
    clock = Clock()
    async with client.ApiClient(configuration=client.Configuration(host=fake_kube.url)) as other_api:
        candidates = [lease(kube_api, "a", clock), lease(other_api, "b", clock)]
        assert await candidates[0].acquire()
        fake_kube.delay = 0.05  # both read before either writes
        for round_ in range(4):
            holder = next(c for c in candidates if c.leading)
            await holder.release()
            won = await asyncio.gather(*(c.acquire() for c in candidates))
            assert sorted(won) == [False, True], (round_, won)
            assert record(fake_kube)["holderIdentity"] == candidates[won.index(True)].holder
            assert record(fake_kube)["leaseTransitions"] == round_ + 1


async def test_a_deleted_lease_is_created_again(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    clock = Clock()
    a = lease(kube_api, "a", clock)
    assert await a.acquire()
    fake_kube.delete_object("leases", NS, "fleetmatch-controllers")
    assert await a.acquire()
    assert record(fake_kube)["holderIdentity"] == "a"


async def test_the_fake_serves_leases_like_the_api_server(kube_api: client.ApiClient) -> None:
    coordination = client.CoordinationV1Api(kube_api)

    def body(spec: dict[str, Any], version: str = "") -> Any:
        meta = {"name": "l", "resourceVersion": version} if version else {"name": "l"}
        return {"metadata": meta, "spec": spec}

    created = await coordination.create_namespaced_lease(NS, body({"holderIdentity": "x"}))
    assert created.spec.holder_identity == "x" and created.metadata.resource_version
    moved = await coordination.replace_namespaced_lease("l", NS, body({"holderIdentity": "y"}))  # unconditional
    assert moved.spec.holder_identity == "y" and moved.metadata.resource_version != created.metadata.resource_version
    with pytest.raises(ApiException) as conflict:
        await coordination.replace_namespaced_lease(
            "l", NS, body({"holderIdentity": "z"}, created.metadata.resource_version)
        )
    assert conflict.value.status == 409
    for bad in ({"leaseDurationSeconds": 0}, {"leaseTransitions": -1}, {"renewTime": "yesterday"}):
        with pytest.raises(ApiException) as invalid:
            await coordination.replace_namespaced_lease("l", NS, body(bad))
        assert invalid.value.status == 422
    with pytest.raises(ApiException) as missing:
        await coordination.read_namespaced_lease("nope", NS)
    assert missing.value.status == 404


# -- two controller processes' worth of leadership ------------------------------------------------------

TTL = 1.5


def fleet(replicas: int) -> Fleet:
    template = GameServerTemplate(spec=GameServerSpec(process=ProcessTemplate(("game",))))
    return Fleet(ObjectMeta(name="arena"), FleetSpec(replicas=replicas, template=template))


async def controller_backend(fake: FakeKube, holder: str) -> KubeBackend:
    settings = Settings(backend="kubernetes", namespace=NS, kube=KubeSettings(server=fake.url), lease_seconds=TTL)
    return await kube_backend(settings, holder=holder)


def creates(fake: FakeKube) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.path.endswith("/gameservers"))


async def test_one_of_two_controllers_acts_and_the_other_takes_over_when_it_dies(
    fake_kube: FakeKube, monkeypatch: pytest.MonkeyPatch
) -> None:
    backends = {name: await controller_backend(fake_kube, name) for name in ("one", "two")}
    leading: list[str] = []
    leases = {name: backend.lease("controllers") for name, backend in backends.items()}

    def acting(name: str, body: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            leading.append(name)
            await body()

        return run

    tasks = {
        name: asyncio.create_task(
            Leadership(leases[name], f"controllers[{name}]").run(
                [("fleetcontroller", acting(name, FleetController(backend, resync_seconds=0.2).run))]
            ),
            name=f"test.controller[{name}]",
        )
        for name, backend in backends.items()
    }
    try:
        await backends["one"].fleets.create(fleet(3))
        await eventually(lambda: len(fake_kube.objects("gameservers", NS)) == 3, within=20)
        await asyncio.sleep(TTL)  # both running, several renewals: still one leader
        assert len(leading) == 1, leading
        first = leading[0]
        second = next(name for name in backends if name != first)
        assert record(fake_kube)["holderIdentity"] == first

        async def no_release() -> None:
            return None

        monkeypatch.setattr(leases[first], "release", no_release)  # it dies: nobody gives the lease back
        await cancel_and_wait(tasks.pop(first))
        await eventually(lambda: leading[-1:] == [second], within=TTL * 6, what=lambda: str(leading))
        taken = record(fake_kube)
        assert taken["holderIdentity"] == second and taken["leaseTransitions"] == 1
        assert creates(fake_kube) == 3 and len(fake_kube.objects("gameservers", NS)) == 3  # nothing twice

        arena = await backends[second].fleets.get("arena")
        await backends[second].fleets.update(replace(arena, spec=replace(arena.spec, replicas=4)))
        await eventually(lambda: len(fake_kube.objects("gameservers", NS)) == 4, within=20)
        assert creates(fake_kube) == 4  # the new leader acts
    finally:
        await cancel_and_wait(*tasks.values())
        for backend in backends.values():
            await backend.aclose()


async def test_taken_reads_the_record_as_acquire_judges_it(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    """``taken`` (``allocator.roster`` looking at other allocators' slots): a GET, never a write; held
    while the record keeps changing, free once it stood still for the duration as this process saw
    it, and free at once when released or absent."""
    holder_clock, looker_clock = Clock(), Clock()
    looker_clock.now = 50.0
    holder, looker = lease(kube_api, "holder", holder_clock), lease(kube_api, "looker", looker_clock)
    assert not await looker.taken()  # no Lease yet
    assert await holder.acquire()
    writes = [m for m in requests(fake_kube) if m != "GET"]
    assert await looker.taken()
    for _ in range(3):
        holder_clock.now += 3
        looker_clock.now += 9
        assert await holder.acquire()
        assert await looker.taken()
    looker_clock.now += 9.9
    assert await looker.taken()
    looker_clock.now += 0.2  # the holder stopped renewing a full duration ago
    assert not await looker.taken()
    holder_clock.now += 1
    assert await holder.acquire()  # it comes back (a long pause): a new record, seen as held again
    assert await looker.taken()
    await holder.release()
    assert not await looker.taken()
    assert [m for m in requests(fake_kube) if m != "GET"] == [*writes, "PUT", "PUT", "PUT", "PUT", "PUT"]
    assert record(fake_kube)["holderIdentity"] == ""  # the looker wrote nothing


async def test_allocator_replicas_split_the_servers_by_slot_leases(fake_kube: FakeKube) -> None:
    """Two allocator replicas' rosters (``allocator.roster``) on the Kubernetes backend: each holds an
    ``allocator-slot-<i>`` Lease and ranks itself among the held ones; when one leaves, the other is
    alone again. Looking at the other's slot is a GET, never a write."""
    backends = {name: await controller_backend(fake_kube, name) for name in ("pod-a", "pod-b")}

    def slot_leases(backend: KubeBackend) -> Callable[[str, float], Lease]:
        return lambda name, ttl: backend.lease(name, ttl=ttl)

    rosters = {name: Roster(slot_leases(backend), lambda share: None) for name, backend in backends.items()}
    try:
        for _ in range(2):
            for roster in rosters.values():
                await roster.step()
        assert [r.share for r in rosters.values()] == [Share(0, 2), Share(1, 2)]
        slots = [fake_kube.get_object("leases", NS, f"fleetmatch-allocator-slot-{i}") for i in range(2)]
        assert [slot["spec"]["holderIdentity"] if slot else None for slot in slots] == ["pod-a", "pod-b"]
        await rosters["pod-a"].leave()
        await rosters["pod-b"].step()
        assert rosters["pod-b"].slot == 0 and rosters["pod-b"].share is None
    finally:
        for backend in backends.values():
            await backend.aclose()
