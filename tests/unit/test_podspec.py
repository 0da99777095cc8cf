"""GameServer → Pod manifest and Pod → GameServer status (allocator.podspec), without any I/O."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from allocator.podspec import (
    GAMESERVER_LABEL,
    SIDECAR_NAME,
    pod_for,
)
from allocator.podstatus import ports_from_pod
from fleetmatch.errors import ConfigError, ValidationError
from fleetmatch.models import (
    FLEET_LABEL,
    GameServer,
    GameServerPort,
    GameServerSpec,
    GameServerState,
    Health,
    ObjectMeta,
    PortPolicy,
    PortProtocol,
    PortStatus,
    ProcessTemplate,
    SchedulingStrategy,
)
from fleetmatch.settings import PodSettings, Settings

S = GameServerState
SETTINGS = PodSettings(sidecar_image="example/fleetmatch:1", port_min=7000, port_max=7009)
PROCESS = ProcessTemplate(("python", "-m", "game"), args=("--fast",), env={"MODE": "ffa"}, working_dir="/srv")


def gameserver(
    *ports: GameServerPort,
    state: S = S.CREATING,
    process: ProcessTemplate | None = PROCESS,
    health: Health | None = None,
    template: dict[str, Any] | None = None,
    **status: Any,
) -> GameServer:
    spec = GameServerSpec(ports=ports or (GameServerPort(),), process=process, health=health or Health())
    if template is not None:
        spec = replace(spec, template=template)
    gs = GameServer(
        metadata=ObjectMeta(name="arena-abcde", uid="uid-1", labels={FLEET_LABEL: "arena"}, resource_version="7"),
        spec=spec,
    )
    return gs.with_status(state=state, **status)


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


def sidecar_of(pod: dict[str, Any]) -> dict[str, Any]:
    spec = pod["spec"]
    return next(c for c in [*spec.get("initContainers", []), *spec["containers"]] if c["name"] == SIDECAR_NAME)


def game_of(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] != SIDECAR_NAME)


# -- manifest ------------------------------------------------------------------------------------


def test_pod_from_a_process_template_has_sidecar_env_probe_owner_and_labels() -> None:
    gs = gameserver()
    pod = pod_for(gs, SETTINGS, ports=(PortStatus("default", 7003),))
    meta = pod["metadata"]
    assert meta["name"] == "arena-abcde" and meta["namespace"] == "default"
    assert meta["labels"] == {GAMESERVER_LABEL: "arena-abcde", FLEET_LABEL: "arena"}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "fleetmatch.dev/v1",
            "kind": "GameServer",
            "name": "arena-abcde",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    game = game_of(pod)
    assert game["image"] == "example/fleetmatch:1"
    assert game["command"] == ["python", "-m", "game"] and game["args"] == ["--fast"]
    assert game["workingDir"] == "/srv"
    env = env_of(game)
    assert env["MODE"] == "ffa"
    assert env["AGONES_SDK_HTTP_PORT"] == "9358" and env["AGONES_SDK_GRPC_PORT"] == "9357"
    assert env["FLEETMATCH_GAMESERVER"] == "arena-abcde" and env["FLEETMATCH_PORT"] == "7003"
    assert env["FLEETMATCH_PORT_DEFAULT"] == "7003"
    assert game["ports"] == [{"containerPort": 7003, "hostPort": 7003, "protocol": "UDP", "name": "default"}]
    assert game["livenessProbe"] == {
        "httpGet": {"path": "/gshealthz", "port": 8080},
        "initialDelaySeconds": 5,
        "periodSeconds": 5,
        "failureThreshold": 3,
    }
    sidecar = sidecar_of(pod)
    assert sidecar in pod["spec"]["initContainers"] and sidecar["restartPolicy"] == "Always"
    assert sidecar["image"] == "example/fleetmatch:1" and sidecar["command"] == ["fleetmatch", "sidecar"]
    assert (
        env_of(sidecar).items()
        >= {
            "GAMESERVER_NAME": "arena-abcde",
            "POD_NAMESPACE": "default",
            "AGONES_SDK_HTTP_PORT": "9358",
            "AGONES_SDK_GRPC_PORT": "9357",
        }.items()
    )
    assert sidecar["resources"] == {"requests": {"cpu": "30m", "memory": "48Mi"}}
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["terminationGracePeriodSeconds"] == 5
    assert "podAffinity" in pod["spec"]["affinity"]  # Packed


@pytest.mark.parametrize(
    ("port", "assigned", "expected"),
    [
        pytest.param(
            GameServerPort("game", PortPolicy.DYNAMIC, container_port=7777),
            7001,
            [{"containerPort": 7777, "hostPort": 7001, "protocol": "UDP", "name": "game"}],
            id="dynamic-fixed-container-port",
        ),
        pytest.param(
            GameServerPort("game", PortPolicy.DYNAMIC),
            7001,
            [{"containerPort": 7001, "hostPort": 7001, "protocol": "UDP", "name": "game"}],
            id="dynamic-no-container-port",
        ),
        pytest.param(
            GameServerPort("game", PortPolicy.PASSTHROUGH, container_port=7777),
            7002,
            [{"containerPort": 7002, "hostPort": 7002, "protocol": "UDP", "name": "game"}],
            id="passthrough",
        ),
        pytest.param(
            GameServerPort("game", PortPolicy.STATIC, container_port=7777, host_port=7500, protocol=PortProtocol.TCP),
            7500,
            [{"containerPort": 7777, "hostPort": 7500, "protocol": "TCP", "name": "game"}],
            id="static",
        ),
        pytest.param(
            GameServerPort("game", PortPolicy.NONE, container_port=7777),
            7777,
            [{"containerPort": 7777, "protocol": "UDP", "name": "game"}],
            id="none",
        ),
        pytest.param(
            GameServerPort("game", PortPolicy.DYNAMIC, container_port=7777, protocol=PortProtocol.TCPUDP),
            7004,
            [
                {"containerPort": 7777, "hostPort": 7004, "protocol": "TCP"},
                {"containerPort": 7777, "hostPort": 7004, "protocol": "UDP"},
            ],
            id="tcpudp-two-entries",
        ),
        pytest.param(
            GameServerPort("Not_A_Valid_Port_Name", PortPolicy.DYNAMIC, container_port=7777),
            7001,
            [{"containerPort": 7777, "hostPort": 7001, "protocol": "UDP"}],
            id="name-dropped-when-not-iana",
        ),
    ],
)
def test_container_ports_per_policy(port: GameServerPort, assigned: int, expected: list[dict[str, Any]]) -> None:
    gs = gameserver(port)
    pod = pod_for(gs, SETTINGS, ports=(PortStatus(port.name, assigned),))
    assert game_of(pod)["ports"] == expected
    assert ports_from_pod(gs, pod) == (PortStatus(port.name, assigned),)


def test_pod_from_a_pod_template_keeps_its_containers_and_adds_ours() -> None:
    template: dict[str, Any] = {
        "metadata": {"labels": {"team": "red"}, "annotations": {"a": "b"}},
        "spec": {
            "containers": [
                {"name": "game", "image": "game:1", "env": [{"name": "AGONES_SDK_HTTP_PORT", "value": "1"}]},
                {"name": "logger", "image": "log:1"},
            ],
            "restartPolicy": "OnFailure",
            "serviceAccountName": "games",
        },
    }
    gs = gameserver(process=None, template=template)
    pod = pod_for(gs, replace(SETTINGS, service_account="ignored"), ports=(PortStatus("default", 7000),))
    names = [c["name"] for c in pod["spec"]["containers"]]
    assert names == ["game", "logger"]
    assert pod["metadata"]["labels"]["team"] == "red" and pod["metadata"]["annotations"]["a"] == "b"
    for container in pod["spec"]["containers"]:
        env = container["env"]
        assert [e["value"] for e in env if e["name"] == "AGONES_SDK_HTTP_PORT"] == ["9358"]  # ours replace theirs
    assert "ports" not in pod["spec"]["containers"][1]  # host ports go on the first container only
    assert pod["spec"]["restartPolicy"] == "OnFailure" and pod["spec"]["serviceAccountName"] == "games"
    assert template["spec"]["containers"][0]["env"] == [{"name": "AGONES_SDK_HTTP_PORT", "value": "1"}]  # untouched


def test_ordinary_sidecar_container_and_no_probe_when_health_disabled() -> None:
    gs = gameserver(health=Health(disabled=True))
    pod = pod_for(gs, replace(SETTINGS, native_sidecar=False), ports=(PortStatus("default", 7000),))
    assert [c["name"] for c in pod["spec"]["containers"]] == [SIDECAR_NAME, "gameserver"]
    assert "initContainers" not in pod["spec"] and "restartPolicy" not in sidecar_of(pod)
    assert "livenessProbe" not in game_of(pod)


def test_distributed_gets_no_affinity() -> None:
    gs = gameserver()
    gs = replace(gs, spec=replace(gs.spec, scheduling=SchedulingStrategy.DISTRIBUTED))
    assert "affinity" not in pod_for(gs, SETTINGS, ports=(PortStatus("default", 7000),))["spec"]


@pytest.mark.parametrize(
    ("template", "process", "field"),
    [
        ({"spec": {"containers": []}}, None, "spec.template.spec.containers"),
        ({"spec": {}}, None, "spec.template.spec.containers"),
        ({"metadata": {}}, None, "spec.template.spec"),
        ({"spec": {"containers": [{"name": "g"}]}}, None, "spec.template.spec.containers[0]"),
        (
            {"spec": {"containers": [{"name": SIDECAR_NAME, "image": "x"}]}},
            None,
            "spec.template.spec.containers[0].name",
        ),
        (None, None, "spec.template"),
    ],
)
def test_invalid_templates_name_the_field(template: dict[str, Any] | None, process: Any, field: str) -> None:
    gs = gameserver(process=process, template=template)
    with pytest.raises(ValidationError) as err:
        pod_for(gs, SETTINGS, ports=(PortStatus("default", 7000),))
    assert err.value.field == field


def test_ports_must_match_the_spec() -> None:
    with pytest.raises(ValidationError):
        pod_for(gameserver(), SETTINGS, ports=())


# -- settings ------------------------------------------------------------------------------------


def test_settings_from_the_charts_environment() -> None:
    env = {
        "FLEETMATCH_SIDECAR_IMAGE": "reg/fm:2",
        "FLEETMATCH_SIDECAR_HTTP_PORT": "9000",
        "FLEETMATCH_SIDECAR_GRPC_PORT": "9001",
        "FLEETMATCH_SIDECAR_CPU_LIMIT": "",
        "FLEETMATCH_SIDECAR_NATIVE": "false",
        "FLEETMATCH_PROCESS_IMAGE": "reg/game:1",
        "FLEETMATCH_GAMESERVER_SERVICE_ACCOUNT": "fm-sdk",
        "FLEETMATCH_PORT_RANGE": "7100-7200",
    }
    got = Settings.from_env(env).pods
    assert (got.sidecar_image, got.sdk_http_port, got.sdk_grpc_port) == ("reg/fm:2", 9000, 9001)
    assert (got.native_sidecar, got.process_image, got.service_account) == (False, "reg/game:1", "fm-sdk")
    assert (got.port_min, got.port_max, got.sidecar_cpu_limit) == (7100, 7200, "")
    assert Settings.from_env({}).pods == PodSettings()
    assert Settings.from_env({"FLEETMATCH_SIDECAR_CPU_REQUEST": ""}).pods.sidecar_cpu_request == ""  # set: none


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLEETMATCH_SIDECAR_HTTP_PORT": "x"}, "FLEETMATCH_SIDECAR_HTTP_PORT"),
        ({"FLEETMATCH_SIDECAR_NATIVE": "yes"}, "FLEETMATCH_SIDECAR_NATIVE"),
        ({"FLEETMATCH_PORT_RANGE": "7000"}, "FLEETMATCH_PORT_RANGE"),
        ({"FLEETMATCH_PORT_RANGE": "8000-7000"}, "FLEETMATCH_PORT_RANGE"),
        ({"FLEETMATCH_PODS_PER_PORT": "0"}, "FLEETMATCH_PODS_PER_PORT"),
        ({"FLEETMATCH_SIDECAR_HEALTH_PORT": "9358"}, "must differ"),
        ({"FLEETMATCH_SIDECAR_GRPC_PORT": "70000"}, "is not a port"),
    ],
)
def test_bad_settings_name_the_problem(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)
