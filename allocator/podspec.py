"""GameServer → Pod, for the Kubernetes GameServer controller (pure; the other direction is
``allocator.podstatus``).

``pod_for(gs, settings, ports=...)`` builds the Pod manifest (a plain dict, camelCase as the API
takes it) from the GameServer's pod template, as Agones does:

- the template's containers, each game container getting ``AGONES_SDK_HTTP_PORT`` /
  ``AGONES_SDK_GRPC_PORT`` (and fleetmatch's ``FLEETMATCH_GAMESERVER`` / ``FLEETMATCH_PORT[_NAME]``,
  so a game written for the node agent runs unchanged);
- the SDK sidecar (``PodSettings``: image, command, resources), a native sidecar by default
  (an init container with ``restartPolicy: Always``, so it starts first and outlives the game);
- host ports per ``spec.ports`` (Dynamic and Passthrough from ``allocator.ports.PortPool``, Static
  as given, None without a host port) on the first container;
- a liveness probe on the first container against the sidecar's ``/gshealthz``
  (``spec.health`` timings), unless health checking is disabled or the container has its own;
- an owner reference to the GameServer (``controller``, ``blockOwnerDeletion``), the labels
  ``fleetmatch.dev/gameserver`` and the fleet's, and the GameServer's name.

A GameServer without a pod template but with a local ``process`` (what the node agent runs) gets one
container running that command in ``PodSettings.process_image``: one fleet file works on both.

Import rule: no asyncio, aiohttp, kubernetes_asyncio or prometheus_client here.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fleetmatch.errors import ValidationError
from fleetmatch.models import (
    API_VERSION,
    FLEET_LABEL,
    GameServer,
    PortPolicy,
    PortProtocol,
    PortStatus,
    SchedulingStrategy,
)
from fleetmatch.settings import PodSettings

GAMESERVER_LABEL = "fleetmatch.dev/gameserver"
"""Label on every Pod the controller makes: the name of its GameServer (the Pod watch selects on it)."""
FINALIZER = "fleetmatch.dev/pod-cleanup"
"""Finalizer on GameServers: the controller removes it once the Pod is gone."""
SAFE_TO_EVICT_ANNOTATION = "cluster-autoscaler.kubernetes.io/safe-to-evict"
SIDECAR_NAME = "fleetmatch-sidecar"
GAME_CONTAINER = "gameserver"
"""Name of the container made from a ``process`` template."""
GSHEALTHZ = "/gshealthz"
HEALTHZ = "/healthz"

_IANA_SVC_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")


# -- GameServer -> Pod --------------------------------------------------------------------------


def pod_template_of(gs: GameServer) -> Mapping[str, Any] | None:
    """The GameServer's PodTemplateSpec (``spec.template``), or None."""
    template = gs.spec.template
    return template if isinstance(template, Mapping) else None


def _env_list(pairs: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"name": k, "value": v} for k, v in pairs.items()]


def _with_env(container: dict[str, Any], env: Mapping[str, str]) -> None:
    kept = [e for e in container.get("env") or [] if not (isinstance(e, Mapping) and e.get("name") in env)]
    container["env"] = [*kept, *_env_list(env)]


def _base_pod_template(gs: GameServer, settings: PodSettings) -> dict[str, Any]:
    """A deep copy of the pod template (or one made from ``spec.process``), checked for containers."""
    template = pod_template_of(gs)
    if template is not None:
        out = copy.deepcopy(dict(template))
        spec = out.get("spec")
        if not isinstance(spec, Mapping):
            raise ValidationError("spec.template.spec", "is required: a pod spec with at least one container")
        out["spec"] = spec = dict(spec)
        containers = spec.get("containers")
        if not isinstance(containers, list) or not containers:
            raise ValidationError("spec.template.spec.containers", "must list at least one container")
        for i, c in enumerate(containers):
            if not isinstance(c, Mapping) or not c.get("name") or not c.get("image"):
                raise ValidationError(f"spec.template.spec.containers[{i}]", "needs a name and an image")
            if c.get("name") == SIDECAR_NAME:
                raise ValidationError(f"spec.template.spec.containers[{i}].name", f"{SIDECAR_NAME!r} is reserved")
        spec["containers"] = [dict(c) for c in containers]
        return out
    process = gs.spec.process
    if process is None:
        raise ValidationError("spec.template", "is required on Kubernetes: a pod template with at least one container")
    container: dict[str, Any] = {
        "name": GAME_CONTAINER,
        "image": settings.process_image or settings.sidecar_image,
        "command": list(process.command),
    }
    if process.args:
        container["args"] = list(process.args)
    if process.env:
        container["env"] = _env_list(process.env)
    if process.working_dir:
        container["workingDir"] = process.working_dir
    return {
        "spec": {
            "containers": [container],
            "terminationGracePeriodSeconds": math.ceil(process.termination_grace_seconds),
        }
    }


def _container_ports(gs: GameServer, ports: Sequence[PortStatus]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p, assigned in zip(gs.spec.ports, ports, strict=True):
        if p.port_policy is PortPolicy.NONE:
            container_port, host_port = p.container_port, 0
        elif p.port_policy is PortPolicy.PASSTHROUGH:
            container_port = host_port = assigned.port
        else:  # Dynamic keeps the game's fixed containerPort; without one the game listens on the host port
            container_port, host_port = p.container_port or assigned.port, assigned.port
        protocols = ("TCP", "UDP") if p.protocol is PortProtocol.TCPUDP else (p.protocol.value,)
        for proto in protocols:
            entry: dict[str, Any] = {"containerPort": container_port, "protocol": proto}
            if host_port:
                entry["hostPort"] = host_port
            if len(protocols) == 1 and _IANA_SVC_NAME.match(p.name):
                entry["name"] = p.name
            out.append(entry)
    return out


def _game_env(gs: GameServer, settings: PodSettings, ports: Sequence[PortStatus]) -> dict[str, str]:
    env = {
        "AGONES_SDK_HTTP_PORT": str(settings.sdk_http_port),
        "AGONES_SDK_GRPC_PORT": str(settings.sdk_grpc_port),
        "FLEETMATCH_GAMESERVER": gs.name,
        "FLEETMATCH_NAMESPACE": gs.metadata.namespace,
    }
    for i, port in enumerate(ports):
        if i == 0:
            env["FLEETMATCH_PORT"] = str(port.port)
        env[f"FLEETMATCH_PORT_{port.name.upper().replace('-', '_')}"] = str(port.port)
    return env


def _sidecar(gs: GameServer, settings: PodSettings) -> dict[str, Any]:
    requests = {"cpu": settings.sidecar_cpu_request, "memory": settings.sidecar_memory_request}
    limits = {"cpu": settings.sidecar_cpu_limit, "memory": settings.sidecar_memory_limit}
    resources = {
        key: {k: v for k, v in values.items() if v}
        for key, values in (("requests", requests), ("limits", limits))
        if any(values.values())
    }
    env = {
        "GAMESERVER_NAME": gs.name,
        "POD_NAMESPACE": gs.metadata.namespace,
        "FLEETMATCH_NAMESPACE": gs.metadata.namespace,
        "AGONES_SDK_HTTP_PORT": str(settings.sdk_http_port),
        "AGONES_SDK_GRPC_PORT": str(settings.sdk_grpc_port),
        "HEALTH_PORT": str(settings.health_port),
    }
    sidecar: dict[str, Any] = {
        "name": SIDECAR_NAME,
        "image": settings.sidecar_image,
        "env": _env_list(env),
        "livenessProbe": {
            "httpGet": {"path": HEALTHZ, "port": settings.health_port},
            "initialDelaySeconds": 3,
            "periodSeconds": 3,
        },
    }
    if settings.sidecar_command:
        sidecar["command"] = list(settings.sidecar_command)
    if settings.sidecar_args:
        sidecar["args"] = list(settings.sidecar_args)
    if resources:
        sidecar["resources"] = resources
    if settings.native_sidecar:
        sidecar["restartPolicy"] = "Always"
    return sidecar


def _health_probe(gs: GameServer, settings: PodSettings) -> dict[str, Any]:
    h = gs.spec.health
    return {
        "httpGet": {"path": GSHEALTHZ, "port": settings.health_port},
        "initialDelaySeconds": h.initial_delay_seconds,
        "periodSeconds": h.period_seconds,
        "failureThreshold": h.failure_threshold,
    }


def owner_reference(gs: GameServer) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": gs.KIND,
        "name": gs.name,
        "uid": gs.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _packed_affinity() -> dict[str, Any]:
    """Prefer nodes that already run game servers (Agones' Packed): empty nodes can be scaled away."""
    return {
        "podAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchExpressions": [{"key": GAMESERVER_LABEL, "operator": "Exists"}]},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }
            ]
        }
    }


def pod_for(gs: GameServer, settings: PodSettings, *, ports: Sequence[PortStatus] | None = None) -> dict[str, Any]:
    """The Pod manifest for ``gs`` with ``ports`` (one per ``spec.ports``; default ``status.ports``).

    ``ValidationError`` (naming the field) if the template cannot make a Pod.
    """
    ports = tuple(gs.status.ports if ports is None else ports)
    if len(ports) != len(gs.spec.ports):
        raise ValidationError("status.ports", f"{len(gs.spec.ports)} port(s) in the spec but {len(ports)} assigned")
    template = _base_pod_template(gs, settings)
    spec: dict[str, Any] = template["spec"]
    tmeta = template.get("metadata") if isinstance(template.get("metadata"), Mapping) else {}
    assert isinstance(tmeta, Mapping)
    labels = {**(tmeta.get("labels") or {}), GAMESERVER_LABEL: gs.name}
    if gs.fleet is not None:
        labels[FLEET_LABEL] = gs.fleet
    annotations = {SAFE_TO_EVICT_ANNOTATION: "false", **(tmeta.get("annotations") or {})}

    containers: list[dict[str, Any]] = spec["containers"]
    env = _game_env(gs, settings, ports)
    for container in containers:
        _with_env(container, env)
    game = containers[0]
    game["ports"] = [*(game.get("ports") or []), *_container_ports(gs, ports)]
    if not gs.spec.health.disabled and "livenessProbe" not in game:
        game["livenessProbe"] = _health_probe(gs, settings)

    sidecar = _sidecar(gs, settings)
    if settings.native_sidecar:
        spec["initContainers"] = [sidecar, *(spec.get("initContainers") or [])]
    else:
        spec["containers"] = [sidecar, *containers]
    spec.setdefault("restartPolicy", "Never")  # a game that exits is replaced, not restarted (Agones with sidecars)
    if settings.service_account:
        spec.setdefault("serviceAccountName", settings.service_account)
    if gs.spec.scheduling is SchedulingStrategy.PACKED:
        spec.setdefault("affinity", _packed_affinity())
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": gs.name,
            "namespace": gs.metadata.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(gs)],
        },
        "spec": spec,
    }


__all__ = [
    "FINALIZER",
    "GAMESERVER_LABEL",
    "SIDECAR_NAME",
    "owner_reference",
    "pod_for",
    "pod_template_of",
]
