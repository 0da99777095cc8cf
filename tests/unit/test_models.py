"""Model validation and codecs: unknown or mistyped fields are errors that name the field."""

from __future__ import annotations

import random
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest

from fleetmatch.codec import format_timestamp, from_wire, to_wire
from fleetmatch.documents import Kind
from fleetmatch.errors import ValidationError
from fleetmatch.manifests import FLEET
from fleetmatch.models import (
    ACCEPTED_API_VERSIONS,
    GameServer,
    GameServerPort,
    GameServerState,
    ObjectMeta,
    PortPolicy,
    PortStatus,
    encode,
    resolve_int_or_percent,
)
from matchmaker.models import id_text, new_ticket_id, queue_of


def fleet_doc(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "replicas": 2,
        "template": {"spec": {"process": {"command": ["python", "-m", "game"]}}},
    }
    base.update(spec)
    return {"apiVersion": "fleetmatch.dev/v1", "kind": "Fleet", "metadata": {"name": "arena"}, "spec": base}


def test_gameserver_roundtrips_through_json_and_msgpack_shapes() -> None:
    gs = GameServer(
        metadata=ObjectMeta(name="gs-1", labels={"agones.dev/fleet": "arena"}, creation_timestamp=1_700_000_000.25),
    ).with_status(state=GameServerState.READY, address="127.0.0.1", ports=(PortStatus("default", 7001),))
    doc = encode(gs)
    assert doc["kind"] == "GameServer"
    assert doc["metadata"]["creationTimestamp"] == "2023-11-14T22:13:20.250Z"
    assert doc["status"]["ports"] == [{"name": "default", "port": 7001}]
    assert Kind(GameServer, ACCEPTED_API_VERSIONS).decode(doc) == gs
    packed = msgpack.unpackb(msgpack.packb(to_wire(gs)))
    assert from_wire(GameServer, packed) == gs


def test_valid_fleet_decodes_with_defaults() -> None:
    fleet = FLEET.decode(fleet_doc())
    assert fleet.spec.replicas == 2
    assert fleet.spec.template.spec.ports == (GameServerPort(),)
    assert fleet.spec.strategy.rolling_update.max_surge == "25%"


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        pytest.param({"replica": 3}, "spec.replica", "unknown field", id="unknown-field"),
        pytest.param({"replicas": "3"}, "spec.replicas", "expected an integer", id="string-for-int"),
        pytest.param({"replicas": True}, "spec.replicas", "expected an integer", id="bool-for-int"),
        pytest.param({"replicas": -1}, "spec.replicas", "must not be negative", id="negative"),
        pytest.param({"scheduling": "Packd"}, "spec.scheduling", "must be one of Packed, Distributed", id="enum"),
        pytest.param(
            {"template": {"spec": {"process": {"command": ["x"]}, "ports": [{"portPolicy": "Dynamc"}]}}},
            "spec.template.spec.ports[0].portPolicy",
            "must be one of",
            id="nested-enum",
        ),
        pytest.param(
            {"template": {"spec": {"process": {"command": ["x"]}, "ports": [{"portPolicy": "Static"}]}}},
            "spec.template.spec.ports[0].hostPort",
            "required with portPolicy Static",
            id="static-needs-port",
        ),
        pytest.param(
            {"template": {"spec": {"process": {"command": ["x"]}, "ports": [{"name": "a"}, {"name": "a"}]}}},
            "spec.template.spec.ports[1].name",
            "duplicate port name",
            id="duplicate-port",
        ),
        pytest.param(
            {"template": {"spec": {"process": {"command": ["x"]}, "health": {"periodSeconds": 0}}}},
            "spec.template.spec.health.periodSeconds",
            "must be positive",
            id="health-period",
        ),
        pytest.param({"template": {"spec": {}}}, "spec.template.spec.process", "is required", id="no-process"),
        pytest.param(
            {"strategy": {"rollingUpdate": {"maxSurge": "150%"}}},
            "spec.strategy.rollingUpdate.maxSurge",
            "percentage",
            id="bad-percent",
        ),
        pytest.param(
            {"template": {"metadata": {"labels": {"bad key!": "x"}}, "spec": {"process": {"command": ["x"]}}}},
            "spec.template.metadata.labels.bad key!",
            "invalid key",
            id="label-key",
        ),
    ],
)
def test_bad_fleets_name_the_field(spec: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        FLEET.decode(fleet_doc(**spec))
    assert info.value.field == field
    assert message in info.value.message


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"apiVersion": "v2", "kind": "Fleet"}, "apiVersion"),
        ({"kind": "GameServer"}, "kind"),
        ({"metadata": {"name": "Not_Valid"}}, "metadata.name"),
        ({"metadata": {"name": "a", "namespace": "UPPER"}}, "metadata.namespace"),
    ],
)
def test_envelope_and_metadata_errors(doc: dict[str, Any], field: str) -> None:
    full = fleet_doc()
    full.update(doc)
    with pytest.raises(ValidationError) as info:
        FLEET.decode(full)
    assert info.value.field == field


def test_agones_api_version_is_accepted() -> None:
    doc = fleet_doc()
    doc["apiVersion"] = "agones.dev/v1"
    assert FLEET.decode(doc).name == "arena"


def test_port_policy_none_reports_container_port() -> None:
    port = from_wire(GameServerPort, {"portPolicy": "None", "containerPort": 7777})
    assert port.port_policy is PortPolicy.NONE and port.container_port == 7777
    with pytest.raises(ValidationError, match="containerPort"):
        from_wire(GameServerPort, {"portPolicy": "None"})


@pytest.mark.parametrize(
    ("value", "total", "up", "expected"),
    [(3, 10, True, 3), ("25%", 10, True, 3), ("25%", 10, False, 2), ("100%", 7, False, 7), ("0%", 9, True, 0)],
)
def test_int_or_percent(value: int | str, total: int, up: bool, expected: int) -> None:
    assert resolve_int_or_percent(value, total, round_up=up) == expected


def test_a_kubernetes_fleet_carries_a_pod_template_instead_of_a_process() -> None:
    from pathlib import Path

    from fleetmatch.codec import from_wire
    from fleetmatch.manifests import load_resources
    from fleetmatch.models import Fleet, GameServerSpec, ProcessTemplate

    (fleet,) = load_resources(Path(__file__).resolve().parents[2] / "deploy/examples/kubernetes/fleet.yaml")
    assert isinstance(fleet, Fleet)
    template = fleet.spec.template.spec.template
    assert template is not None and template["spec"]["containers"][0]["name"]
    assert fleet.spec.template.spec.process is None
    with pytest.raises(ValidationError) as both:
        GameServerSpec(process=ProcessTemplate(("python",)), template={"spec": {"containers": []}})
    assert both.value.field == "template"
    with pytest.raises(ValidationError) as neither:
        from_wire(Fleet, {"metadata": {"name": "f"}, "spec": {"template": {"spec": {}}}})
    assert neither.value.field == "spec.template.spec.process"


@pytest.mark.parametrize(
    ("epoch", "text"),
    [
        pytest.param(0.0, "1970-01-01T00:00:00.000Z", id="epoch"),
        pytest.param(1_800_000_000.123, "2027-01-15T08:00:00.123Z", id="milliseconds"),
        pytest.param(1_800_000_000.9999, "2027-01-15T08:00:00.999Z", id="truncated-not-rounded"),
        pytest.param(1_800_000_600.5, "2027-01-15T08:10:00.500Z", id="another-second"),
        pytest.param(-0.001, "1969-12-31T23:59:59.999Z", id="before-the-epoch"),
    ],
)
def test_timestamps_are_rfc3339_with_milliseconds(epoch: float, text: str) -> None:
    for _ in range(2):  # computed, then from the seconds kept
        assert format_timestamp(epoch) == text
        assert format_timestamp(1_800_000_000.0) == "2027-01-15T08:00:00.000Z"  # alternating seconds


def _id_text_by_hand(value: int) -> str:
    """26 characters of 5 bits each, most significant first (how ids were always written)."""
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    return "".join(alphabet[(value >> (5 * i)) & 31] for i in reversed(range(26)))


@pytest.mark.parametrize("seed", range(5))
def test_ticket_ids_are_26_crockford_digits_of_time_then_randomness(seed: int) -> None:
    rng = random.Random(seed)
    for value in [
        0,
        1,
        (1 << 130) - 1,
        1 << 130,
        *(rng.getrandbits(rng.choice((64, 121, 130, 140))) for _ in range(500)),
    ]:
        assert id_text(value) == _id_text_by_hand(value)
    ticket_id = new_ticket_id("duel", 1_800_000_000.5)
    assert queue_of(ticket_id) == "duel"
    rest = ticket_id.removeprefix("duel.")
    assert id_text(1_800_000_000_500 << 80)[:10] == rest[:10]  # 50 bits of milliseconds lead: ids sort by creation
