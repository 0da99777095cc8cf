"""The fleet controller (unchanged) and the GameServer pod controller on the Kubernetes store, against
the fake API server through the real kubernetes-asyncio client. The fake has no kubelet or scheduler:
the tests bind pods and report their phase through the fake's hooks, and play the SDK sidecar by
writing ``RequestReady`` / ``Shutdown`` as it would."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from allocator.allocation import Allocator
from allocator.controllers.autoscaler import AutoscalerController
from allocator.controllers.fleet import FleetController
from allocator.controllers.pods import PodController
from allocator.fleetops import apply_autoscaler, apply_fleet
from allocator.metrics import PODCONTROLLER_API_ERRORS as API_ERRORS
from allocator.podspec import FINALIZER, GAMESERVER_LABEL, SIDECAR_NAME
from allocator.podstatus import ERROR_ANNOTATION
from fleetmatch.allocation import AllocationState, GameServerAllocationSpec
from fleetmatch.backends.kube.client import KubeBackend, kube_stores
from fleetmatch.backends.kube.config import KubeConfig
from fleetmatch.backends.kube.podstore import KubeStoreSettings
from fleetmatch.backends.kube.store import KubeStore
from fleetmatch.informer import Informer
from fleetmatch.lease import Lease
from fleetmatch.models import (
    AutoscalerPolicy,
    BufferPolicy,
    Fleet,
    FleetAutoscaler,
    FleetAutoscalerSpec,
    FleetSpec,
    GameServer,
    GameServerSpec,
    GameServerState,
    GameServerTemplate,
    ObjectMeta,
    ProcessTemplate,
)
from fleetmatch.settings import PodSettings
from fleetmatch.store import EventType, WatchEvent, modify
from fleetmatch.tasks import Backoff, cancel_and_wait
from sdk_sidecar.pod import Listening, run_pod_sidecar
from tests.kube.fakekube import FakeKube
from tests.waiting import eventually

S = GameServerState
NS = "default"
GAME = ProcessTemplate(("python", "-m", "examples.udp_game.server"))
SETTINGS = PodSettings(sidecar_image="example/fleetmatch:test", port_min=7000, port_max=7099)
SOLO = {"metadata": {"name": "solo"}, "spec": {"process": {"command": ["g"]}}}
pytestmark = pytest.mark.timeout(60)


def fleet(name: str, replicas: int) -> Fleet:
    spec = FleetSpec(replicas=replicas, template=GameServerTemplate(spec=GameServerSpec(process=GAME)))
    return Fleet(metadata=ObjectMeta(name=name), spec=spec)


@dataclass
class Cluster:
    fake: FakeKube
    api: client.ApiClient
    gameservers: KubeStore[GameServer]
    fleets: KubeStore[Fleet]
    autoscalers: KubeStore[FleetAutoscaler]
    pods: PodController
    history: dict[str, list[str]] = field(default_factory=dict)
    """Every state each GameServer went through, as a recorder informer saw it ('DELETED' last)."""

    def gs_docs(self) -> dict[str, dict[str, Any]]:
        return {o["metadata"]["name"]: o for o in self.fake.objects("gameservers", NS)}

    def pod_docs(self) -> dict[str, dict[str, Any]]:
        return {o["metadata"]["name"]: o for o in self.fake.objects("pods", NS)}

    def members(self, fleet_name: str) -> list[dict[str, Any]]:
        return [
            o
            for o in self.gs_docs().values()
            if o["metadata"].get("labels", {}).get("agones.dev/fleet") == fleet_name
            and not o["metadata"].get("deletionTimestamp")
        ]

    def state(self, name: str) -> str | None:
        doc = self.gs_docs().get(name)
        return None if doc is None else (doc.get("status") or {}).get("state")

    def bind(self, name: str, node: str, host_ip: str, phase: str = "Running") -> None:
        """Scheduler + kubelet: put the pod on ``node`` and report it ``phase``."""
        self.fake.update_object("pods", NS, name, lambda pod: pod["spec"].update(nodeName=node))
        self.fake.set_pod_status(NS, name, {"phase": phase, "hostIP": host_ip})

    async def sdk(self, name: str, state: S) -> None:
        """What the sidecar writes for the game's SDK call."""
        await modify(self.gameservers, name, lambda gs: gs.with_status(state=state))


@contextlib.asynccontextmanager
async def running(
    fake: FakeKube, api: client.ApiClient, *, with_fleets: bool = True, backoff: Backoff | None = None
) -> AsyncIterator[Cluster]:
    stores = kube_stores(api, NS)  # as `fleetmatch controller` wires them
    backend = KubeBackend(api, stores, leases=no_leases, lease_seconds=15.0, owns_api=False)
    pods = PodController(backend, SETTINGS, resync_seconds=0.5, backoff=backoff or Backoff(base=0.05, cap=0.5))
    cluster = Cluster(fake, api, stores.gameservers, stores.fleets, stores.autoscalers, pods)
    recorder: Informer[GameServer] = Informer(KubeStore(api, GameServer, NS))

    def record(event: WatchEvent[GameServer]) -> None:
        states = cluster.history.setdefault(event.object.name, [])
        state = "DELETED" if event.type is EventType.DELETED else event.object.state.value
        if not states or states[-1] != state:
            states.append(state)

    recorder.add_handler(record)
    tasks = [asyncio.create_task(recorder.run(), name="test.recorder"), asyncio.create_task(pods.run(), name="pods")]
    if with_fleets:
        controller = FleetController(backend, resync_seconds=0.5)
        scaler = AutoscalerController(backend)
        tasks.append(asyncio.create_task(controller.run(), name="fleets"))
        tasks.append(asyncio.create_task(scaler.run(), name="autoscaler"))
    try:
        await eventually(lambda: pods.pods.synced.is_set() and recorder.synced.is_set(), what=lambda: "synced")
        yield cluster
    finally:
        await cancel_and_wait(*tasks)
        await backend.aclose()


def no_leases(name: str, holder: str, ttl: float) -> Lease:
    raise AssertionError("these tests run one controller: no lease is taken")


@pytest.fixture
async def cluster(fake_kube: FakeKube, kube_api: client.ApiClient) -> AsyncIterator[Cluster]:
    async with running(fake_kube, kube_api) as c:
        yield c


async def five_with_pods(c: Cluster, name: str = "arena", n: int = 5) -> list[dict[str, Any]]:
    await apply_fleet(c.fleets, fleet(name, n))

    def done() -> bool:
        members = c.members(name)
        pods = c.pod_docs()
        return len(members) == n and all(
            m["metadata"]["name"] in pods and (m.get("status") or {}).get("state") == "Starting" for m in members
        )

    await eventually(done, within=15, what=lambda: f"{c.members(name)} / {list(c.pod_docs())}")
    return c.members(name)


async def test_fleet_of_five_gets_one_pod_each_with_sidecar_ports_env_and_owner(cluster: Cluster) -> None:
    members = await five_with_pods(cluster)
    pods = cluster.pod_docs()
    host_ports = []
    for gs in members:
        name = gs["metadata"]["name"]
        pod = pods[name]
        assert FINALIZER in gs["metadata"]["finalizers"]
        assert pod["metadata"]["labels"][GAMESERVER_LABEL] == name
        assert pod["metadata"]["labels"]["agones.dev/fleet"] == "arena"
        (owner,) = pod["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("GameServer", name, gs["metadata"]["uid"])
        assert owner["controller"] is True and owner["blockOwnerDeletion"] is True
        (sidecar,) = pod["spec"]["initContainers"]
        assert sidecar["name"] == SIDECAR_NAME and sidecar["image"] == "example/fleetmatch:test"
        (game,) = pod["spec"]["containers"]
        env = {e["name"]: e["value"] for e in game["env"]}
        assert env["AGONES_SDK_HTTP_PORT"] == "9358" and env["AGONES_SDK_GRPC_PORT"] == "9357"
        assert game["command"] == list(GAME.command)
        (port,) = game["ports"]
        assert 7000 <= port["hostPort"] <= 7099
        assert gs["status"]["ports"] == [{"name": "default", "port": port["hostPort"]}]
        host_ports.append(port["hostPort"])
    assert len(set(host_ports)) == 5


async def test_kubelet_and_sdk_ready_make_ready_servers_with_address_and_port(cluster: Cluster) -> None:
    members = await five_with_pods(cluster)
    names = sorted(m["metadata"]["name"] for m in members)
    for i, name in enumerate(names):
        cluster.bind(name, f"node-{i % 2}", f"10.0.0.{i % 2 + 1}")
    await eventually(lambda: all(cluster.state(n) == "Scheduled" for n in names), what=lambda: str(cluster.gs_docs()))
    for name in names:
        await cluster.sdk(name, S.REQUEST_READY)
    await eventually(lambda: all(cluster.state(n) == "Ready" for n in names), what=lambda: str(cluster.gs_docs()))
    docs, pods = cluster.gs_docs(), cluster.pod_docs()
    by_node: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        status = docs[name]["status"]
        assert status["nodeName"] == f"node-{i % 2}" and status["address"] == f"10.0.0.{i % 2 + 1}"
        host_port = pods[name]["spec"]["containers"][0]["ports"][0]["hostPort"]
        assert status["ports"] == [{"name": "default", "port": host_port}]
        by_node.setdefault(status["nodeName"], []).append(host_port)
        assert cluster.history[name][:4] == ["Creating", "Starting", "Scheduled", "RequestReady"]
    for ports in by_node.values():
        assert len(ports) == len(set(ports))


async def test_deleted_pod_makes_its_server_unhealthy_and_the_fleet_replaces_it(cluster: Cluster) -> None:
    members = await five_with_pods(cluster)
    victim = members[0]["metadata"]["name"]
    cluster.fake.delete_pod(NS, victim)

    def replaced() -> bool:
        members = cluster.members("arena")
        names = {m["metadata"]["name"] for m in members}
        pods = cluster.pod_docs()
        return victim not in cluster.gs_docs() and len(names) == 5 and names <= set(pods)

    await eventually(replaced, within=15, what=lambda: f"{cluster.history} {list(cluster.pod_docs())}")
    await eventually(
        lambda: cluster.history[victim][-2:] == ["Unhealthy", "DELETED"], what=lambda: str(cluster.history)
    )
    assert victim not in cluster.pod_docs()
    # Both controllers' transitions are Events about those very objects (uid: not a later namesake).
    events = {
        (e["regarding"]["kind"], e["regarding"]["name"], e["reason"]): e for e in cluster.fake.objects("events", NS)
    }
    unhealthy = events[("GameServer", victim, "Unhealthy")]
    assert unhealthy["regarding"]["uid"] == members[0]["metadata"]["uid"] and unhealthy["type"] == "Warning"
    arena = cluster.fake.get_object("fleets", NS, "arena")
    assert arena is not None
    scaling = [e for e in cluster.fake.objects("events", NS) if e["reason"] == "Scaling"]
    assert {e["regarding"]["uid"] for e in scaling} == {arena["metadata"]["uid"]}
    assert {e["note"].split()[0] for e in scaling} == {"creating", "deleting"}


async def test_failed_pod_records_the_reason(cluster: Cluster) -> None:
    members = await five_with_pods(cluster, "small", 1)
    name = members[0]["metadata"]["name"]
    cluster.fake.set_pod_status(NS, name, {"phase": "Failed", "reason": "Evicted", "message": "node drained"})
    await eventually(lambda: "Unhealthy" in cluster.history.get(name, []), what=lambda: str(cluster.history))
    # The fleet controller deletes it soon; the reason was on the Unhealthy object.
    await eventually(lambda: name not in cluster.gs_docs(), within=15)


async def test_shutdown_deletes_gameserver_and_pod(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    async with running(fake_kube, kube_api, with_fleets=False) as c:
        await c.gameservers.create(GameServer(metadata=ObjectMeta(name="solo"), spec=GameServerSpec(process=GAME)))
        await eventually(lambda: "solo" in c.pod_docs() and c.state("solo") == "Starting")
        c.bind("solo", "node-0", "10.0.0.9")
        await eventually(lambda: c.state("solo") == "Scheduled")
        await c.sdk("solo", S.REQUEST_READY)
        await eventually(lambda: c.state("solo") == "Ready")
        await c.sdk("solo", S.SHUTDOWN)
        await eventually(lambda: "solo" not in c.gs_docs() and "solo" not in c.pod_docs(), what=lambda: str(c.history))
        await eventually(lambda: c.history["solo"][-2:] == ["Shutdown", "DELETED"], what=lambda: str(c.history))


async def test_deleting_a_gameserver_removes_its_pod_before_the_finalizer(
    fake_kube: FakeKube, kube_api: client.ApiClient
) -> None:
    async with running(fake_kube, kube_api, with_fleets=False) as c:
        await c.gameservers.create(GameServer(metadata=ObjectMeta(name="solo"), spec=GameServerSpec(process=GAME)))
        await eventually(lambda: "solo" in c.pod_docs() and c.state("solo") == "Starting")
        fake_kube.gc_enabled = False  # only the controller may remove the pod
        await c.gameservers.delete("solo")
        assert "deletionTimestamp" in c.gs_docs()["solo"]["metadata"]  # held by our finalizer
        await eventually(lambda: "solo" not in c.gs_docs() and "solo" not in c.pod_docs())


@pytest.mark.parametrize(
    "pod_spec",
    [
        pytest.param({"containers": []}, id="no-containers"),
        pytest.param({}, id="containers-missing"),
        pytest.param({"containers": [{"name": "game"}]}, id="no-image"),
    ],
)
async def test_bad_pod_templates_are_rejected_by_the_crd_schema(
    kube_api: client.ApiClient, pod_spec: dict[str, Any]
) -> None:
    body = {
        "apiVersion": "fleetmatch.dev/v1",
        "kind": "Fleet",
        "metadata": {"name": "broken"},
        "spec": {"replicas": 2, "template": {"spec": {"template": {"spec": pod_spec}}}},
    }
    custom = client.CustomObjectsApi(kube_api)
    with pytest.raises(ApiException) as err:
        await custom.create_namespaced_custom_object("fleetmatch.dev", "v1", NS, "fleets", body)
    assert err.value.status == 422


async def test_pod_the_api_server_rejects_marks_the_server_error(
    fake_kube: FakeKube, kube_api: client.ApiClient
) -> None:
    async with running(fake_kube, kube_api, with_fleets=False) as c:
        fake_kube.fail_next(422, 1, method="POST")
        fake_kube.create_object("gameservers", SOLO, NS)
        await eventually(lambda: c.state("solo") == "Error", what=lambda: str(c.gs_docs()))
        assert "pod rejected by the API server" in c.gs_docs()["solo"]["metadata"]["annotations"][ERROR_ANNOTATION]
        assert "solo" not in c.pod_docs()


async def test_fleet_with_a_pod_template_runs_its_containers(cluster: Cluster) -> None:
    template: dict[str, Any] = {
        "metadata": {"labels": {"team": "red"}},
        "spec": {"containers": [{"name": "game", "image": "example/game:1"}, {"name": "logs", "image": "log:1"}]},
    }
    spec = GameServerSpec(template=template)
    await apply_fleet(
        cluster.fleets,
        Fleet(metadata=ObjectMeta(name="pt"), spec=FleetSpec(replicas=2, template=GameServerTemplate(spec=spec))),
    )
    await eventually(lambda: len(cluster.pod_docs()) == 2, within=15)
    for pod in cluster.pod_docs().values():
        assert [c["name"] for c in pod["spec"]["containers"]] == ["game", "logs"]
        assert pod["metadata"]["labels"]["team"] == "red"
        assert pod["spec"]["initContainers"][0]["name"] == SIDECAR_NAME
        assert pod["spec"]["containers"][0]["ports"][0]["hostPort"] >= 7000


async def test_server_that_cannot_make_a_pod_goes_to_error_and_others_keep_working(cluster: Cluster) -> None:
    # Neither a process nor a pod template: nothing to run on Kubernetes.
    await cluster.gameservers.create(GameServer(metadata=ObjectMeta(name="empty"), spec=GameServerSpec()))
    await eventually(lambda: cluster.state("empty") == "Error", what=lambda: str(cluster.gs_docs().get("empty")))
    reason = cluster.gs_docs()["empty"]["metadata"]["annotations"][ERROR_ANNOTATION]
    assert "spec.template" in reason
    assert "empty" not in cluster.pod_docs()
    await five_with_pods(cluster, "after", 2)


def post_times(fake: FakeKube, stop: asyncio.Event) -> tuple[list[float], asyncio.Task[None]]:
    """Timestamps (monotonic, at 5 ms resolution) of each pod create the fake receives."""
    seen: list[float] = []

    async def sample() -> None:
        counted = 0
        while not stop.is_set():
            posts = [r for r in fake.requests if r.method == "POST" and r.path.endswith("/pods")]
            seen.extend([time.monotonic()] * (len(posts) - counted))
            counted = len(posts)
            await asyncio.sleep(0.005)

    return seen, asyncio.create_task(sample(), name="test.post-sampler")


async def test_api_unavailability_is_retried_with_backoff_not_a_tight_loop(
    fake_kube: FakeKube, kube_api: client.ApiClient
) -> None:
    async with running(fake_kube, kube_api, with_fleets=False, backoff=Backoff(base=0.1, cap=5.0)) as c:
        stop = asyncio.Event()
        times, sampler = post_times(fake_kube, stop)
        before = API_ERRORS.labels(verb="create", resource="pods", code="503")._value.get()
        fake_kube.fail_next(503, 4, method="POST")
        fake_kube.create_object(
            "gameservers", {"metadata": {"name": "solo"}, "spec": {"process": {"command": ["g"]}}}, NS
        )
        await eventually(lambda: "solo" in c.pod_docs(), within=20)
        await eventually(lambda: len(times) == 5)
        stop.set()
        await sampler
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # 0.1, 0.2, 0.4, 0.8 s (+ up to 25% jitter) between the five attempts; a tight loop takes milliseconds.
        assert all(gap >= base * 0.8 for gap, base in zip(gaps, (0.1, 0.2, 0.4, 0.8), strict=True)), gaps
        assert API_ERRORS.labels(verb="create", resource="pods", code="503")._value.get() - before == 4
        await eventually(lambda: c.state("solo") == "Starting")


async def test_forbidden_names_the_missing_rbac_permission(
    fake_kube: FakeKube, kube_api: client.ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(fake_kube, kube_api, with_fleets=False) as c:
        fake_kube.fail_next(403, 2, method="POST")
        with caplog.at_level(logging.ERROR, logger="allocator.controllers.pods"):
            fake_kube.create_object("gameservers", SOLO, NS)  # not through HTTP: the failures are for the controller
            await eventually(lambda: "solo" in c.pod_docs(), within=10)
        forbidden = [r.getMessage() for r in caplog.records if "forbidden" in r.getMessage()]
        assert forbidden and "RBAC `create` on `pods`" in forbidden[0]


async def test_orphan_pods_are_deleted(cluster: Cluster) -> None:
    cluster.fake.create_object(
        "pods",
        {
            "metadata": {"name": "stray", "labels": {GAMESERVER_LABEL: "stray"}},
            "spec": {"containers": [{"name": "g", "image": "g"}]},
        },
        NS,
    )
    await eventually(lambda: "stray" not in cluster.pod_docs())


async def test_ports_stay_distinct_across_a_controller_restart(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    async with running(fake_kube, kube_api) as c:
        await five_with_pods(c, "arena", 3)
    async with running(fake_kube, kube_api) as c:
        await apply_fleet(c.fleets, fleet("arena", 6))
        await eventually(lambda: len(c.pod_docs()) == 6, within=15)
        ports = [p["spec"]["containers"][0]["ports"][0]["hostPort"] for p in c.pod_docs().values()]
        assert len(set(ports)) == 6, ports


async def test_pod_watch_survives_dropped_streams_and_compaction(cluster: Cluster) -> None:
    await five_with_pods(cluster, "arena", 2)
    cluster.fake.compact()
    cluster.fake.drop_watches()
    await apply_fleet(cluster.fleets, fleet("arena", 3))
    await eventually(lambda: len(cluster.pod_docs()) == 3, within=15)
    victim = sorted(cluster.pod_docs())[0]
    cluster.fake.drop_watches()
    cluster.fake.delete_pod(NS, victim)
    await eventually(
        lambda: "Unhealthy" in cluster.history.get(victim, []), within=15, what=lambda: str(cluster.history)
    )


async def test_an_api_outage_heals_without_hammering_the_server(cluster: Cluster) -> None:
    await five_with_pods(cluster, "arena", 2)

    def refused() -> int:
        return sum(r.status == 503 for r in cluster.fake.requests)

    failures = 40
    cluster.fake.fail_next(503, failures)
    started = time.monotonic()
    cluster.fake.update_object("fleets", NS, "arena", lambda f: f["spec"].update(replicas=4))  # no HTTP
    cluster.fake.drop_watches()  # every watcher must come back through the outage
    await eventually(lambda: refused() == failures, within=30, what=lambda: f"{refused()} refused")
    consumed = time.monotonic() - started
    await eventually(lambda: len(cluster.members("arena")) == 4 and len(cluster.pod_docs()) == 4, within=20)
    # Every loop backs off: 40 refusals take far longer than a tight loop's few milliseconds.
    assert consumed > 0.3, consumed


async def test_address_is_the_nodes_external_ip(cluster: Cluster) -> None:
    addresses = [{"type": "InternalIP", "address": "10.1.1.1"}, {"type": "ExternalIP", "address": "203.0.113.7"}]
    cluster.fake.create_object("nodes", {"metadata": {"name": "node-x"}})
    cluster.fake.update_object("nodes", None, "node-x", lambda n: n.update(status={"addresses": addresses}))
    await eventually(lambda: cluster.pods.nodes is not None and "node-x" in cluster.pods.nodes.cache)
    members = await five_with_pods(cluster, "arena", 1)
    name = members[0]["metadata"]["name"]
    cluster.bind(name, "node-x", "10.1.1.1")
    await eventually(lambda: cluster.state(name) == "Scheduled")
    await cluster.sdk(name, S.REQUEST_READY)
    await eventually(lambda: cluster.state(name) == "Ready", what=lambda: str(cluster.gs_docs()))
    assert cluster.gs_docs()[name]["status"]["address"] == "203.0.113.7"


async def test_with_the_real_in_pod_sidecar_ready_allocated_and_shutdown(
    fake_kube: FakeKube, kube_api: client.ApiClient
) -> None:
    """The game talks to the actual sidecar (``sdk_sidecar.pod``) over REST; the controller does the rest."""
    async with running(fake_kube, kube_api, with_fleets=False) as c:
        await c.gameservers.create(GameServer(metadata=ObjectMeta(name="solo"), spec=GameServerSpec(process=GAME)))
        await eventually(lambda: "solo" in c.pod_docs() and c.state("solo") == "Starting")
        c.bind("solo", "node-0", "10.0.0.9")
        await eventually(lambda: c.state("solo") == "Scheduled")
        stop = asyncio.Event()
        listening: list[Listening] = []
        sidecar = asyncio.create_task(
            run_pod_sidecar(
                "solo",
                NS,
                api=KubeConfig.from_url(fake_kube.url),
                http_port=0,
                grpc_port=0,
                health_port=0,
                health_address="127.0.0.1",
                kube=KubeStoreSettings(write_spacing=0.0),
                termination_timeout=5.0,
                stop=stop,
                on_listening=listening.append,
            ),
            name="test.sidecar",
        )
        try:
            await eventually(lambda: bool(listening) or sidecar.done())
            where = listening[0]
            async with aiohttp.ClientSession() as http:
                sdk = f"http://127.0.0.1:{where.http_port}"
                async with http.post(f"{sdk}/ready", json={}) as response:
                    assert response.status == 200
                await eventually(lambda: c.state("solo") == "Ready", what=lambda: str(c.history))

                async def sidecar_sees_ready() -> bool:
                    async with http.get(f"{sdk}/gameserver") as response:
                        status = (await response.json())["status"]
                    return bool(status["state"] == "Ready" and status["address"] == "10.0.0.9")

                await eventually(sidecar_sees_ready)
                # The allocator, on its own client and watch cache, claims it; the game sees it.
                async with client.ApiClient(configuration=client.Configuration(host=fake_kube.url)) as alloc_api:
                    alloc_store = KubeStore(alloc_api, GameServer, NS)
                    alloc_informer = Informer(alloc_store)
                    allocator = Allocator(alloc_store, alloc_informer)
                    cache = asyncio.create_task(alloc_informer.run(), name="test.allocator")
                    try:
                        await eventually(lambda: allocator.ready and len(allocator.index) == 1)
                        claim = await allocator.allocate(GameServerAllocationSpec())
                    finally:
                        await cancel_and_wait(cache)
                assert claim.state is AllocationState.ALLOCATED and claim.game_server_name == "solo"
                assert claim.address == "10.0.0.9"

                async def sidecar_sees_allocated() -> bool:
                    async with http.get(f"{sdk}/gameserver") as response:
                        return bool((await response.json())["status"]["state"] == "Allocated")

                await eventually(sidecar_sees_allocated)
                async with http.post(f"{sdk}/shutdown", json={}) as response:
                    assert response.status == 200
            await eventually(
                lambda: "solo" not in c.gs_docs() and "solo" not in c.pod_docs(), what=lambda: str(c.history)
            )
            assert c.history["solo"][:6] == ["Creating", "Starting", "Scheduled", "RequestReady", "Ready", "Allocated"]
        finally:
            stop.set()
            await asyncio.wait_for(sidecar, 20)


async def test_autoscaler_grows_the_fleet_and_the_new_servers_get_pods(cluster: Cluster) -> None:
    members = await five_with_pods(cluster, "arena", 2)
    policy = AutoscalerPolicy(buffer=BufferPolicy(buffer_size=2, min_replicas=2, max_replicas=6))
    await apply_autoscaler(
        cluster.autoscalers,
        FleetAutoscaler(metadata=ObjectMeta(name="arena-buffer"), spec=FleetAutoscalerSpec("arena", policy)),
    )
    name = members[0]["metadata"]["name"]
    cluster.bind(name, "node-0", "10.0.0.1")
    await eventually(lambda: cluster.state(name) == "Scheduled")
    await cluster.sdk(name, S.REQUEST_READY)
    await eventually(lambda: cluster.state(name) == "Ready")
    await cluster.sdk(name, S.ALLOCATED)  # as an allocation writes it
    await eventually(
        lambda: len(cluster.members("arena")) == 3 and len(cluster.pod_docs()) == 3,
        within=15,
        what=lambda: f"{len(cluster.members('arena'))} members, pods {list(cluster.pod_docs())}",
    )
    assert cluster.state(name) == "Allocated"  # the controller never undoes an allocation


async def test_pod_of_a_gameserver_the_store_cannot_read_is_kept(
    fake_kube: FakeKube, kube_api: client.ApiClient
) -> None:
    async with running(fake_kube, kube_api) as c:
        (member,) = await five_with_pods(c, "arena", 1)
    name = member["metadata"]["name"]
    # Someone writes a value fleetmatch cannot read: the stores skip the object, but it is not gone.
    fake_kube.update_object("gameservers", NS, name, lambda gs: gs["spec"]["ports"][0].update(portPolicy="Weird"))
    async with running(fake_kube, kube_api, with_fleets=False) as c:
        await asyncio.sleep(1.5)  # several passes of the controller
        assert name not in c.pods.gs_informer.cache
        assert name in c.pod_docs()


async def test_the_pod_controller_runs_on_the_backends_informer_and_only_while_running(
    fake_kube: FakeKube, kube_api: client.ApiClient
) -> None:
    """As under a leadership that is lost and taken again: nothing happens between two runs, and the
    second run picks up what arrived meanwhile."""
    stores = kube_stores(kube_api, NS)
    backend = KubeBackend(kube_api, stores, leases=no_leases, lease_seconds=15.0, owns_api=False)
    pods = PodController(backend, SETTINGS, resync_seconds=0.2, backoff=Backoff(base=0.05, cap=0.5))
    assert pods.gs_informer is backend.informer(GameServer)  # one informer per kind in the process
    try:
        term = asyncio.create_task(pods.run(), name="test.term-1")
        await stores.gameservers.create(GameServer(metadata=ObjectMeta(name="one"), spec=GameServerSpec(process=GAME)))
        await eventually(lambda: len(fake_kube.objects("pods", NS)) == 1)
        await cancel_and_wait(term)
        await stores.gameservers.create(GameServer(metadata=ObjectMeta(name="two"), spec=GameServerSpec(process=GAME)))
        await eventually(lambda: "two" in backend.informer(GameServer).cache)
        await asyncio.sleep(0.5)  # several resync periods: nobody acts between terms
        assert [p["metadata"]["name"] for p in fake_kube.objects("pods", NS)] == ["one"]
        term = asyncio.create_task(pods.run(), name="test.term-2")
        await eventually(lambda: len(fake_kube.objects("pods", NS)) == 2)
        await cancel_and_wait(term)
    finally:
        await backend.aclose()
