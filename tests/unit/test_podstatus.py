"""Pod -> GameServer (``allocator.podstatus``): the state, ports and address a GameServer gets from its
Pod and Node, and Error for one that cannot have a Pod."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from allocator.podspec import FINALIZER, pod_for
from allocator.podstatus import (
    ERROR_ANNOTATION,
    ERRORED_AT_ANNOTATION,
    errored,
    node_address,
    observe,
    pod_host_ports,
    pod_owner_uid,
    status_from_pod,
)
from fleetmatch.models import GameServerState, PortStatus
from tests.unit.test_podspec import SETTINGS, gameserver

S = GameServerState


def pod(node: str = "", phase: str = "Pending", host_ip: str = "", **status: Any) -> dict[str, Any]:
    gs = gameserver()
    manifest = pod_for(gs, SETTINGS, ports=(PortStatus("default", 7005),))
    if node:
        manifest["spec"]["nodeName"] = node
    manifest["status"] = {"phase": phase, **({"hostIP": host_ip} if host_ip else {}), **status}
    return manifest


@pytest.mark.parametrize(
    ("state", "the_pod", "expected_state", "address"),
    [
        (S.CREATING, pod(), S.STARTING, ""),
        (S.STARTING, pod(), None, ""),
        (S.STARTING, pod("node-1", "Pending", "10.0.0.1"), S.SCHEDULED, "10.0.0.1"),
        (S.CREATING, pod("node-1", "Running", "10.0.0.1"), S.SCHEDULED, "10.0.0.1"),
        (S.SCHEDULED, pod("node-1", "Running", "10.0.0.1"), None, "10.0.0.1"),
        (S.REQUEST_READY, pod("node-1", "Running", "10.0.0.1"), S.READY, "10.0.0.1"),
        (S.REQUEST_READY, pod("node-1", "Pending", "10.0.0.1"), None, "10.0.0.1"),
        (S.ALLOCATED, pod("node-1", "Running", "10.0.0.1"), None, "10.0.0.1"),
        (S.READY, pod("node-1", "Failed", "10.0.0.1", reason="Evicted", message="low memory"), S.UNHEALTHY, ""),
        (S.READY, pod("node-1", "Succeeded", "10.0.0.1"), S.UNHEALTHY, ""),
        (S.READY, None, S.UNHEALTHY, ""),
        (S.STARTING, None, S.UNHEALTHY, ""),
        (S.CREATING, None, None, ""),
        (S.UNHEALTHY, None, None, ""),
        (S.SHUTDOWN, pod("node-1", "Failed"), None, ""),
        (
            S.STARTING,
            pod(
                conditions=[
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/3 nodes are available: 3 node(s) didn't have free ports for the pod.",
                    }
                ]
            ),
            S.UNHEALTHY,
            "",
        ),
    ],
)
def test_state_from_pod(state: S, the_pod: dict[str, Any] | None, expected_state: S | None, address: str) -> None:
    already: dict[str, Any] = {"node_name": "node-1", "address": "10.0.0.1", "ports": (PortStatus("default", 7005),)}
    if state is S.CREATING:
        already = {}
    elif state is S.STARTING:
        already = {"ports": already["ports"]}
    gs = gameserver(state=state, **already)
    updated = observe(gs, the_pod)
    if expected_state is None:
        assert updated is None
        assert status_from_pod(gs, the_pod) is None
        return
    assert updated is not None and updated.state is expected_state
    if expected_state is S.UNHEALTHY:
        assert updated.metadata.annotations[ERROR_ANNOTATION]
        assert updated.status.ports == gs.status.ports  # nothing else changes
        return
    assert updated.status.ports == (PortStatus("default", 7005),)
    assert updated.status.address == address
    if the_pod is not None and the_pod["spec"].get("nodeName"):
        assert updated.status.node_name == "node-1"


def test_eviction_reason_is_recorded() -> None:
    gs = gameserver(state=S.ALLOCATED, node_name="n", address="1.2.3.4", ports=(PortStatus("default", 7005),))
    updated = observe(gs, pod("n", "Failed", reason="Evicted", message="The node was low on resource: memory."))
    assert updated is not None
    assert updated.metadata.annotations[ERROR_ANNOTATION] == (
        "pod failed (Evicted: The node was low on resource: memory.)"
    )


def test_node_address_wins_over_host_ip_and_deleting_gameservers_are_left_alone() -> None:
    gs = gameserver(state=S.STARTING)
    updated = observe(gs, pod("node-1", "Running", "10.0.0.1"), node_address="203.0.113.9")
    assert updated is not None and updated.status.address == "203.0.113.9"
    deleting = replace(gs, metadata=replace(gs.metadata, deletion_timestamp=1.0))
    assert observe(deleting, None) is None


def test_pod_helpers() -> None:
    the_pod = pod("n")
    assert pod_owner_uid(the_pod) == "uid-1"
    assert pod_host_ports(the_pod) == (7005,)
    assert pod_owner_uid({"metadata": {}}) is None


def test_errored_records_reason_and_time_once() -> None:
    gs = gameserver()
    out = errored(gs, "bad template", 12.5)
    assert out is not None and out.state is S.ERROR
    assert out.metadata.annotations[ERROR_ANNOTATION] == "bad template"
    assert out.metadata.annotations[ERRORED_AT_ANNOTATION] == "12.500"
    assert errored(out, "again", 13.0) is None
    assert FINALIZER == "fleetmatch.dev/pod-cleanup"


@pytest.mark.parametrize(
    ("addresses", "expected"),
    [
        ([{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "ExternalIP", "address": "1.2.3.4"}], "1.2.3.4"),
        ([{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.1"}], "10.0.0.1"),
        ([{"type": "ExternalDNS", "address": "n1.example.com"}, {"type": "InternalIP", "address": "10.0.0.1"}],
         "n1.example.com"),
        ([{"type": "Hostname", "address": "n1"}], ""),
        ([], ""),
    ],
)  # fmt: skip
def test_node_address_prefers_external(addresses: list[dict[str, str]], expected: str) -> None:
    assert node_address({"status": {"addresses": addresses}}) == expected
