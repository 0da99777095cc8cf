"""The inspection and operation commands on Kubernetes: ``fleetmatch apply -f``, ``fleet list/apply/
scale/delete``, ``autoscaler apply/list/delete`` and ``gs list`` run as the real CLI process with
``FLEETMATCH_BACKEND=kubernetes FLEETMATCH_KUBE_SERVER=<the fake API server>`` and no Redis."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.kube.fakekube import FakeKube

REPO = Path(__file__).resolve().parents[2]
NS = "games"
pytestmark = pytest.mark.timeout(90)

FLEET = """
apiVersion: fleetmatch.dev/v1
kind: Fleet
metadata: {name: arena}
spec:
  replicas: 2
  template:
    spec:
      ports: [{name: default, containerPort: 7654}]
      template:
        spec:
          containers: [{name: game, image: registry.example.com/udp-game:1}]
---
apiVersion: fleetmatch.dev/v1
kind: FleetAutoscaler
metadata: {name: arena-buffer}
spec:
  fleetName: arena
  policy:
    type: Buffer
    buffer: {bufferSize: 2, minReplicas: 2, maxReplicas: 10}
"""


@dataclass
class Result:
    code: int
    out: str
    err: str


async def fleetmatch(fake: FakeKube, tmp_path: Path, *args: str) -> Result:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "KUBERNETES_SERVICE_HOST", "KUBECONFIG")}
    env |= {
        "FLEETMATCH_BACKEND": "kubernetes",
        "FLEETMATCH_KUBE_SERVER": fake.url,
        "FLEETMATCH_NAMESPACE": NS,
        "FLEETMATCH_DATA_DIR": str(tmp_path / "data"),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetmatch", *args, cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def stored(fake: FakeKube, plural: str, name: str) -> dict[str, Any] | None:
    return fake.get_object(plural, NS, name)


def gameserver(name: str, state: str, port: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"agones.dev/fleet": "arena"}},
        "spec": {"ports": [{"name": "default", "containerPort": 7654}]},
        "status": {"state": state, "address": "10.0.0.7", "ports": [{"name": "default", "port": port}]},
    }


async def test_apply_list_scale_and_delete_fleets_and_autoscalers(fake_kube: FakeKube, tmp_path: Path) -> None:
    manifest = tmp_path / "fleet.yaml"
    manifest.write_text(FLEET)

    applied = await fleetmatch(fake_kube, tmp_path, "apply", "-f", str(manifest))
    assert applied.code == 0, applied.err
    assert applied.out.splitlines() == ["fleet/arena created", "fleetautoscaler/arena-buffer created"]
    fleet = stored(fake_kube, "fleets", "arena")
    assert fleet is not None and fleet["spec"]["replicas"] == 2
    assert fleet["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]["name"] == "game"
    assert stored(fake_kube, "fleetautoscalers", "arena-buffer") is not None

    fleet_file, autoscaler_file = tmp_path / "only-fleet.yaml", tmp_path / "only-autoscaler.yaml"
    fleet_part, autoscaler_part = FLEET.split("---")
    fleet_file.write_text(fleet_part)
    autoscaler_file.write_text(autoscaler_part.replace("bufferSize: 2", "bufferSize: 3"))
    again = await fleetmatch(fake_kube, tmp_path, "fleet", "apply", "-f", str(fleet_file))
    assert again.code == 0 and again.out.strip() == "fleet/arena unchanged", again

    listed = await fleetmatch(fake_kube, tmp_path, "fleet", "list")
    assert listed.code == 0, listed.err
    header, row = listed.out.splitlines()
    assert header.split()[:3] == ["NAME", "SCHEDULING", "DESIRED"] and row.split()[:3] == ["arena", "Packed", "2"]
    as_json = await fleetmatch(fake_kube, tmp_path, "fleet", "list", "-o", "json")
    assert [f["metadata"]["name"] for f in json.loads(as_json.out)["items"]] == ["arena"]

    scaled = await fleetmatch(fake_kube, tmp_path, "fleet", "scale", "arena", "5")
    assert scaled.code == 0 and scaled.out.strip() == "fleet/arena scaled to 5", scaled
    assert "fleetautoscaler/arena-buffer manages this fleet" in scaled.err
    fleet = stored(fake_kube, "fleets", "arena")
    assert fleet is not None and fleet["spec"]["replicas"] == 5
    assert fleet["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]["name"] == "game"  # kept

    autoscalers = await fleetmatch(fake_kube, tmp_path, "autoscaler", "list")
    assert autoscalers.code == 0, autoscalers.err
    assert autoscalers.out.splitlines()[1].split()[:5] == ["arena-buffer", "arena", "2", "2", "10"]
    reapplied = await fleetmatch(fake_kube, tmp_path, "autoscaler", "apply", "-f", str(autoscaler_file))
    assert reapplied.code == 0 and reapplied.out.strip() == "fleetautoscaler/arena-buffer configured", reapplied
    fas = stored(fake_kube, "fleetautoscalers", "arena-buffer")
    assert fas is not None and fas["spec"]["policy"]["buffer"]["bufferSize"] == 3

    deleted = await fleetmatch(fake_kube, tmp_path, "autoscaler", "delete", "arena-buffer")
    assert deleted.code == 0 and deleted.out.strip() == "fleetautoscaler/arena-buffer deleted", deleted
    assert stored(fake_kube, "fleetautoscalers", "arena-buffer") is None
    gone = await fleetmatch(fake_kube, tmp_path, "fleet", "delete", "arena")
    assert gone.code == 0 and gone.out.strip() == "fleet/arena deleted", gone
    assert stored(fake_kube, "fleets", "arena") is None


async def test_gs_list_shows_the_servers_of_the_namespace(fake_kube: FakeKube, tmp_path: Path) -> None:
    fake_kube.create_object("gameservers", gameserver("arena-b2c4d", "Ready", 7012), NS)
    fake_kube.create_object("gameservers", gameserver("arena-x7z9q", "Allocated", 7013), NS)
    other = gameserver("lobby-1", "Ready", 7100)
    other["metadata"]["labels"] = {"agones.dev/fleet": "lobby"}
    fake_kube.create_object("gameservers", other, NS)
    fake_kube.create_object("gameservers", gameserver("elsewhere", "Ready", 7200), "default")

    listed = await fleetmatch(fake_kube, tmp_path, "gs", "list", "--fleet", "arena")
    assert listed.code == 0, listed.err
    rows = [line.split() for line in listed.out.splitlines()[1:]]
    assert [r[:3] for r in rows] == [
        ["arena-b2c4d", "Ready", "10.0.0.7:7012"],
        ["arena-x7z9q", "Allocated", "10.0.0.7:7013"],
    ]
    everything = await fleetmatch(fake_kube, tmp_path, "gs", "list", "-o", "json")
    assert sorted(g["metadata"]["name"] for g in json.loads(everything.out)["items"]) == [
        "arena-b2c4d",
        "arena-x7z9q",
        "lobby-1",
    ]
    other_namespace = await fleetmatch(fake_kube, tmp_path, "-n", "default", "gs", "list", "-o", "json")
    assert [g["metadata"]["name"] for g in json.loads(other_namespace.out)["items"]] == ["elsewhere"]
    after = await fleetmatch(fake_kube, tmp_path, "gs", "list", "-n", "default", "-o", "name")
    assert after.out.split() == ["gameserver/elsewhere"], after


async def test_refusals_are_one_line(fake_kube: FakeKube, tmp_path: Path) -> None:
    missing = await fleetmatch(fake_kube, tmp_path, "fleet", "delete", "nope")
    assert missing.code == 1 and missing.err.strip() == 'error: fleet "nope" not found', missing
    fake_kube.fail_next(403)
    denied = await fleetmatch(fake_kube, tmp_path, "gs", "list")
    assert denied.code == 1 and denied.err.count("\n") == 1 and "RBAC" in denied.err, denied
    bad = tmp_path / "bad.yaml"
    bad.write_text(FLEET.replace("replicas: 2", "replicas: lots"))
    invalid = await fleetmatch(fake_kube, tmp_path, "apply", "-f", str(bad))
    assert invalid.code == 2 and "replicas" in invalid.err, invalid
