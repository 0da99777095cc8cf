"""`fleetmatch controller` with FLEETMATCH_BACKEND=kubernetes, as the Helm chart runs it: a Fleet
custom resource becomes GameServers with Pods (fleet controller and pod controller in one process,
leases in Redis), and a deleted Fleet takes them away."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from fleetmatch.backends.kube.client import kube_stores
from fleetmatch.backends.redis.embedded import EmbeddedRedis
from fleetmatch.models import (
    Fleet,
    FleetSpec,
    GameServerSpec,
    GameServerTemplate,
    ObjectMeta,
)
from tests.kube.fakekube import FakeKube
from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

POD_TEMPLATE = {"spec": {"containers": [{"name": "game", "image": "registry.example.com/udp-game:1"}]}}


async def test_the_controller_command_turns_a_fleet_into_pods(
    fake_kube: FakeKube, kube_api: client.ApiClient, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "FLEETMATCH_BACKEND": "kubernetes",
        "FLEETMATCH_KUBE_SERVER": fake_kube.url,
        "FLEETMATCH_METRICS_PORT": "0",
        "FLEETMATCH_NAMESPACE": "games",
        "FLEETMATCH_DATA_DIR": str(tmp_path),
        "FLEETMATCH_SIDECAR_IMAGE": "registry.example.com/fleetmatch:test",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetmatch", "controller",
        cwd=REPO, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        stores = kube_stores(kube_api, "games")
        template = GameServerTemplate(spec=GameServerSpec(template=POD_TEMPLATE))
        await stores.fleets.create(Fleet(ObjectMeta(name="arena"), FleetSpec(replicas=3, template=template)))

        async def three_pods() -> bool:
            pods = fake_kube.objects("pods", "games")
            return len(pods) == 3 and len((await stores.gameservers.list())[0]) == 3

        await eventually(three_pods, within=60)
        pods = fake_kube.objects("pods", "games")
        names = {p["metadata"]["name"] for p in pods}
        assert names == {g.name for g in (await stores.gameservers.list())[0]}
        for pod in pods:
            images = [c["image"] for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]]
            assert "registry.example.com/udp-game:1" in images and "registry.example.com/fleetmatch:test" in images
            assert pod["metadata"]["ownerReferences"][0]["kind"] == "GameServer"
        assert proc.returncode is None  # still running: no crash loop
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
