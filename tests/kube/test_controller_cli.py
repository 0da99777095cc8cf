"""`fleetmatch controller` with FLEETMATCH_BACKEND=kubernetes, as the Helm chart runs it, against the
fake API server and no Redis at all: a Fleet custom resource becomes GameServers with Pods (fleet
controller and Pod controller in one process, leader lease a ``coordination.k8s.io`` Lease), and of
two controller processes one acts; when it is killed the other takes over and creates nothing twice.
A ``REDIS_URL`` pointing at a listener that counts connections proves no Redis is ever dialled,
not for leadership nor anything else."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from fleetmatch.backends.kube.client import kube_stores
from fleetmatch.models import (
    Fleet,
    FleetSpec,
    GameServerSpec,
    GameServerTemplate,
    ObjectMeta,
)
from fleetmatch.store import modify
from tests.kube.fakekube import FakeKube
from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
NS = "games"
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

POD_TEMPLATE = {"spec": {"containers": [{"name": "game", "image": "registry.example.com/udp-game:1"}]}}


def controller_env(fake: FakeKube, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "KUBERNETES_SERVICE_HOST", "KUBECONFIG")}
    return env | {
        "FLEETMATCH_BACKEND": "kubernetes",
        "FLEETMATCH_KUBE_SERVER": fake.url,
        "FLEETMATCH_METRICS_PORT": "0",
        "FLEETMATCH_NAMESPACE": NS,
        "FLEETMATCH_DATA_DIR": str(tmp_path),
        "FLEETMATCH_SIDECAR_IMAGE": "registry.example.com/fleetmatch:test",
        **extra,
    }


@contextlib.asynccontextmanager
async def controller(env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    """A `fleetmatch controller` process; SIGTERM on the way out (unless the test killed it)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetmatch", "controller",
        cwd=REPO, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@pytest.fixture
async def redis_trap() -> AsyncIterator[tuple[str, list[str]]]:
    """A ``REDIS_URL`` whose "server" only records who connects (and hangs up)."""
    seen: list[str] = []

    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(str(writer.get_extra_info("peername")))
        writer.close()

    server = await asyncio.start_server(connected, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0", seen
    finally:
        server.close()
        await server.wait_closed()


def fleet(replicas: int) -> Fleet:
    template = GameServerTemplate(spec=GameServerSpec(template=POD_TEMPLATE))
    return Fleet(ObjectMeta(name="arena"), FleetSpec(replicas=replicas, template=template))


async def test_the_controller_command_turns_a_fleet_into_pods(
    fake_kube: FakeKube, kube_api: client.ApiClient, tmp_path: Path
) -> None:
    async with controller(controller_env(fake_kube, tmp_path)) as proc:  # no REDIS_URL at all
        stores = kube_stores(kube_api, NS)
        await stores.fleets.create(fleet(3))

        async def three_pods() -> bool:
            pods = fake_kube.objects("pods", NS)
            return len(pods) == 3 and len((await stores.gameservers.list())[0]) == 3

        await eventually(three_pods, within=60)
        pods = fake_kube.objects("pods", NS)
        names = {p["metadata"]["name"] for p in pods}
        assert names == {g.name for g in (await stores.gameservers.list())[0]}
        for pod in pods:
            images = [c["image"] for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]]
            assert "registry.example.com/udp-game:1" in images and "registry.example.com/fleetmatch:test" in images
            assert pod["metadata"]["ownerReferences"][0]["kind"] == "GameServer"
        lease = fake_kube.get_object("leases", NS, "fleetmatch-controllers")
        assert lease is not None and lease["spec"]["holderIdentity"].endswith(f"/{proc.pid}")
        assert proc.returncode is None  # still running: no crash loop
    assert await proc.wait() == 0
    released = fake_kube.get_object("leases", NS, "fleetmatch-controllers")
    assert released is not None and released["spec"]["holderIdentity"] == ""  # SIGTERM gives the lease back


def holder_pid(fake: FakeKube) -> int | None:
    lease = fake.get_object("leases", NS, "fleetmatch-controllers")
    holder = (lease or {}).get("spec", {}).get("holderIdentity") or ""
    return int(holder.rsplit("/", 1)[1]) if "/" in holder else None


def gameserver_creates(fake: FakeKube) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.path.endswith("/gameservers") and r.status == 201)


async def test_of_two_controller_processes_one_acts_and_the_other_takes_over_when_it_is_killed(
    fake_kube: FakeKube, kube_api: client.ApiClient, tmp_path: Path, redis_trap: tuple[str, list[str]]
) -> None:
    redis_url, redis_connections = redis_trap
    env = controller_env(fake_kube, tmp_path, FLEETMATCH_LEASE_SECONDS="2", REDIS_URL=redis_url)
    stores = kube_stores(kube_api, NS)
    async with controller(env) as first, controller(env) as second:
        procs = {first.pid: first, second.pid: second}
        await stores.fleets.create(fleet(3))
        await eventually(lambda: len(fake_kube.objects("pods", NS)) == 3, within=60)
        leader = holder_pid(fake_kube)
        assert leader in procs
        assert gameserver_creates(fake_kube) == 3
        standby = next(pid for pid in procs if pid != leader)

        procs[leader].send_signal(signal.SIGKILL)  # no chance to release the lease
        await procs[leader].wait()
        await eventually(lambda: holder_pid(fake_kube) == standby, within=30)
        lease = fake_kube.get_object("leases", NS, "fleetmatch-controllers")
        assert lease is not None and lease["spec"]["leaseTransitions"] == 1

        # The new leader writes the fleet's status meanwhile: re-read and re-apply on a conflict.
        await modify(stores.fleets, "arena", lambda arena: replace(arena, spec=replace(arena.spec, replicas=4)))
        await eventually(lambda: len(fake_kube.objects("pods", NS)) == 4, within=60)
        assert gameserver_creates(fake_kube) == 4  # the new leader acts; nothing was created twice
        assert procs[standby].returncode is None
    assert redis_connections == []  # leadership is the Lease: Redis was never dialled, though configured
