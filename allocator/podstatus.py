"""Pod → GameServer, for the Kubernetes GameServer controller (pure; the other direction is
``allocator.podspec``).

``observe(gs, pod)``: the GameServer the controller should write after looking at its Pod (or at
its absence), or None when nothing changes; ``status_from_pod`` is its status part. ``errored``
puts a GameServer whose Pod cannot be made into Error. The rest reads Pods and Nodes: the owner of
a Pod, its host ports, the ports a GameServer got, and where players reach a node.

Import rule: no asyncio, aiohttp, kubernetes_asyncio or prometheus_client here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from allocator.podspec import SIDECAR_NAME
from fleetmatch.models import (
    TERMINAL_STATES,
    GameServer,
    GameServerState,
    GameServerStatus,
    PortPolicy,
    PortProtocol,
    PortStatus,
    with_meta,
)

ERROR_ANNOTATION = "fleetmatch.dev/error"
"""Why a GameServer went to Error or Unhealthy (the node agent writes the same key)."""
ERRORED_AT_ANNOTATION = "fleetmatch.dev/errored-at"
"""When the GameServer went to Error (RFC 3339 is Agones'; we write epoch seconds)."""

_UNBOUND_STATES = frozenset({GameServerState.PORT_ALLOCATION, GameServerState.CREATING, GameServerState.STARTING})


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(key)
    return doc


def pod_owner_uid(pod: Mapping[str, Any]) -> str | None:
    """The uid of the GameServer that controls ``pod`` (None: not ours)."""
    for ref in _get(pod, "metadata", "ownerReferences") or ():
        if isinstance(ref, Mapping) and ref.get("kind") == GameServer.KIND and ref.get("controller"):
            uid = ref.get("uid")
            return str(uid) if uid else None
    return None


def pod_host_ports(pod: Mapping[str, Any]) -> tuple[int, ...]:
    """Every host port the Pod's containers declare (distinct, in order)."""
    out: dict[int, None] = {}
    for key in ("initContainers", "containers"):
        for c in _get(pod, "spec", key) or ():
            for p in _get(c, "ports") or ():
                host = _get(p, "hostPort")
                if isinstance(host, int) and host > 0:
                    out[host] = None
    return tuple(out)


def ports_from_pod(gs: GameServer, pod: Mapping[str, Any]) -> tuple[PortStatus, ...]:
    """The GameServer's ports as the Pod has them (its first container carries them, in spec order)."""
    containers = _get(pod, "spec", "containers") or []
    game = next((c for c in containers if _get(c, "name") != SIDECAR_NAME), None)
    declared = [p for p in _get(game, "ports") or [] if isinstance(p, Mapping)]
    out: list[PortStatus] = []
    # The controller appended ours last: one entry per spec port, two for TCPUDP.
    ours = sum(2 if p.protocol is PortProtocol.TCPUDP else 1 for p in gs.spec.ports)
    entries = iter(declared[len(declared) - ours :] if ours <= len(declared) else [])
    for p in gs.spec.ports:
        entry = next(entries, None)
        if p.protocol is PortProtocol.TCPUDP:
            next(entries, None)
        if p.port_policy is PortPolicy.NONE:
            out.append(PortStatus(p.name, p.container_port))
        else:
            host = _get(entry, "hostPort")
            out.append(PortStatus(p.name, host if isinstance(host, int) else p.host_port))
    return tuple(out)


def _unhealthy(gs: GameServer, why: str) -> GameServer:
    annotations = {**gs.metadata.annotations, ERROR_ANNOTATION: why}
    return with_meta(gs, annotations=annotations).with_status(state=GameServerState.UNHEALTHY)


def errored(gs: GameServer, why: str, now: float) -> GameServer | None:
    """``gs`` in Error with the reason (None if it is terminal already)."""
    if gs.state in TERMINAL_STATES:
        return None
    annotations = {**gs.metadata.annotations, ERROR_ANNOTATION: why, ERRORED_AT_ANNOTATION: f"{now:.3f}"}
    return with_meta(gs, annotations=annotations).with_status(state=GameServerState.ERROR)


def node_address(node: Mapping[str, Any]) -> str:
    """Where players reach a node: its ExternalIP, else ExternalDNS, else InternalIP ("" if none)."""
    addresses = [a for a in _get(node, "status", "addresses") or () if isinstance(a, Mapping)]
    for kind in ("ExternalIP", "ExternalDNS", "InternalIP"):
        for a in addresses:
            if a.get("type") == kind and a.get("address"):
                return str(a["address"])
    return ""


def _pod_failure(gs: GameServer, pod: Mapping[str, Any]) -> str | None:
    """Why the Pod makes its GameServer Unhealthy, or None."""
    if _get(pod, "metadata", "deletionTimestamp"):
        return "pod is being deleted"
    phase = _get(pod, "status", "phase")
    reason = _get(pod, "status", "reason") or ""
    message = _get(pod, "status", "message") or ""
    if phase == "Failed":
        detail = ": ".join(x for x in (reason, message) if x)
        return f"pod failed ({detail})" if detail else "pod failed"
    if phase == "Succeeded":
        return "game container exited"
    for cond in _get(pod, "status", "conditions") or ():
        if (
            _get(cond, "type") == "PodScheduled"
            and _get(cond, "status") == "False"
            and _get(cond, "reason") == "Unschedulable"
            and "port" in str(_get(cond, "message") or "")
        ):
            return f"pod unschedulable: {_get(cond, 'message')}"
    return None


def observe(gs: GameServer, pod: Mapping[str, Any] | None, *, node_address: str = "") -> GameServer | None:
    """What ``gs`` should become given its Pod (``None``: the Pod is gone); None if nothing changes.

    - a GameServer being deleted, or terminal, is left alone (no escaping Unhealthy);
    - no Pod: Unhealthy once one existed (Starting or later); before that there is nothing to see;
    - a failed, finished, evicted, being-deleted Pod, or one unschedulable for its host ports:
      Unhealthy, with the reason in ``fleetmatch.dev/error``;
    - a Pod created: Starting, ports from the Pod; bound to a node: Scheduled with ``nodeName``,
      address (``node_address``, else ``status.hostIP``) and ports;
    - RequestReady (the SDK's Ready) and the Pod Running with an address: Ready, as the node agent does.
    """
    if gs.metadata.deletion_timestamp is not None or gs.state in TERMINAL_STATES:
        return None
    if pod is None:
        if gs.state in (GameServerState.PORT_ALLOCATION, GameServerState.CREATING):
            return None
        return _unhealthy(gs, "pod was deleted")
    why = _pod_failure(gs, pod)
    if why is not None:
        return _unhealthy(gs, why)
    status = gs.status
    node = _get(pod, "spec", "nodeName") or ""
    ports = ports_from_pod(gs, pod)
    address = node_address or _get(pod, "status", "hostIP") or status.address
    state = status.state
    if state in _UNBOUND_STATES:
        state = GameServerState.SCHEDULED if node else GameServerState.STARTING
    if node and state is GameServerState.REQUEST_READY and address and _get(pod, "status", "phase") == "Running":
        state = GameServerState.READY
    changes: dict[str, Any] = {"state": state, "ports": ports}
    if node:
        changes.update(node_name=node, address=address)
    new = replace(status, **changes)
    if new == status:
        return None
    return replace(gs, status=new)


def status_from_pod(
    gs: GameServer, pod: Mapping[str, Any] | None, *, node_address: str = ""
) -> GameServerStatus | None:
    """The status ``observe`` would write, or None when it changes nothing."""
    updated = observe(gs, pod, node_address=node_address)
    return None if updated is None else updated.status


__all__ = [
    "ERRORED_AT_ANNOTATION",
    "ERROR_ANNOTATION",
    "errored",
    "node_address",
    "observe",
    "pod_host_ports",
    "pod_owner_uid",
    "ports_from_pod",
    "status_from_pod",
]
