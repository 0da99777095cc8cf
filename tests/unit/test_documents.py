"""One decoder for every kind: each reader checks the envelope and names bad fields the same way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetmatch.allocation import ALLOCATION, GameServerAllocation, decode_allocation
from fleetmatch.documents import Kind, decode, parse_documents
from fleetmatch.errors import ValidationError
from fleetmatch.manifests import AUTOSCALER, FLEET, RESOURCE_KINDS
from fleetmatch.models import Fleet, FleetAutoscaler
from loadtest.scenario import LOADTEST, Scenario, decode_scenario
from matchmaker.rules import QUEUE, Queue, decode_queue

REPO = Path(__file__).resolve().parents[2]
SELECTORS = [{"matchLabels": {"agones.dev/fleet": "arena"}}]
GOOD: dict[str, dict[str, Any]] = {
    "Fleet": {
        "metadata": {"name": "arena"},
        "spec": {"replicas": 1, "template": {"spec": {"process": {"command": ["python", "-m", "game"]}}}},
    },
    "FleetAutoscaler": {
        "metadata": {"name": "arena"},
        "spec": {"fleetName": "arena", "policy": {"type": "Buffer", "buffer": {"bufferSize": 1, "maxReplicas": 5}}},
    },
    "Queue": {"metadata": {"name": "duel"}, "spec": {"teams": {"count": 2}, "allocation": {"selectors": SELECTORS}}},
    "LoadTest": yaml.safe_load((REPO / "loadtest/scenarios/smoke.yaml").read_text()),
    "GameServerAllocation": {"spec": {"selectors": SELECTORS}},
}
READERS: list[tuple[Kind[Any], Callable[[Any], Any], type]] = [
    (FLEET, FLEET.decode, Fleet),
    (AUTOSCALER, AUTOSCALER.decode, FleetAutoscaler),
    (QUEUE, decode_queue, Queue),
    (LOADTEST, decode_scenario, Scenario),
    (ALLOCATION, decode_allocation, GameServerAllocation),  # the request path's fast decoder
]
IDS = [kind.name for kind, _, _ in READERS]


def _error(read: Callable[[Any], Any], doc: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        read(doc)
    return info.value


@pytest.mark.parametrize(("kind", "read", "model"), READERS, ids=IDS)
def test_a_good_document_decodes_with_or_without_its_envelope(kind: Kind[Any], read: Any, model: type) -> None:
    body = {k: v for k, v in GOOD[kind.name].items() if k not in ("apiVersion", "kind")}
    assert isinstance(read(body), model)
    assert isinstance(read({"apiVersion": "fleetmatch.dev/v1", "kind": kind.name, **body}), model)


@pytest.mark.parametrize(("kind", "read", "model"), READERS, ids=IDS)
@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        pytest.param({"apiVersion": "v2"}, "apiVersion", "must be fleetmatch.dev/v1, got 'v2'", id="api-version"),
        pytest.param({"kind": "Nope"}, "kind", "must be {kind}, got 'Nope'", id="kind"),
        pytest.param({"apiVersion": {}}, "apiVersion", "expected a string, got dict", id="api-version-object"),
        pytest.param({"kind": []}, "kind", "expected a string, got list", id="kind-list"),
        pytest.param({"spex": {}}, "spex", "unknown field (known fields here: ", id="unknown-field"),
    ],
)
def test_envelope_and_field_errors_are_the_same_for_every_kind(
    kind: Kind[Any], read: Any, model: type, change: dict[str, Any], field: str, message: str
) -> None:
    error = _error(read, {**GOOD[kind.name], **change})
    assert error.field == field
    assert error.message.startswith(message.format(kind=kind.name))


@pytest.mark.parametrize(("kind", "read", "model"), READERS, ids=IDS)
def test_a_document_that_is_not_a_mapping(kind: Kind[Any], read: Any, model: type) -> None:
    error = _error(read, [GOOD[kind.name]])
    assert (error.field, error.message) == ("", f"a {kind.name} document must be a mapping, got list")


@pytest.mark.parametrize(
    ("kind", "accepted"),
    [(FLEET, "agones.dev/v1"), (AUTOSCALER, "agones.dev/v1"), (ALLOCATION, "allocation.agones.dev/v1")],
    ids=["Fleet", "FleetAutoscaler", "GameServerAllocation"],
)
def test_agones_api_versions_where_the_kind_mirrors_agones(kind: Kind[Any], accepted: str) -> None:
    assert kind.decode({**GOOD[kind.name], "apiVersion": accepted})
    if kind is not ALLOCATION:
        assert _error(kind.decode, {**GOOD[kind.name], "apiVersion": "allocation.agones.dev/v1"}).field == "apiVersion"


def test_queue_and_loadtest_are_ours_only() -> None:
    for kind in (QUEUE, LOADTEST):
        assert _error(kind.decode, {**GOOD[kind.name], "apiVersion": "agones.dev/v1"}).field == "apiVersion"


def test_with_several_kinds_the_kind_picks_the_model_and_is_required() -> None:
    assert isinstance(decode({"kind": "FleetAutoscaler", **GOOD["FleetAutoscaler"]}, RESOURCE_KINDS), FleetAutoscaler)
    assert isinstance(decode({"kind": "Fleet", **GOOD["Fleet"]}, RESOURCE_KINDS), Fleet)
    missing = _error(lambda doc: decode(doc, RESOURCE_KINDS), GOOD["Fleet"])
    assert (missing.field, missing.message) == ("kind", "is required: Fleet or FleetAutoscaler")
    other = _error(lambda doc: decode(doc, RESOURCE_KINDS), {"kind": "Queue", **GOOD["Queue"]})
    assert (other.field, other.message) == ("kind", "must be Fleet or FleetAutoscaler, got 'Queue'")


QUEUES_YAML = """\
kind: Queue
metadata: {name: duel}
spec:
  teams: {count: 2, maxSize: 1}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
---
kind: Queue
metadata: {name: squad}
spec:
  teams: {count: 2, maxSize: 4}
  tickSecond: 1
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
"""


def test_from_yaml_errors_name_source_field_and_line() -> None:
    with pytest.raises(ValidationError) as info:
        parse_documents(QUEUES_YAML, "queues.yaml", (QUEUE,))
    error = info.value
    assert (error.field, error.line) == ("spec.tickSecond", 12)
    assert error.message.startswith("queues.yaml: unknown field")
    assert str(error).startswith("spec.tickSecond (line 12): queues.yaml: unknown field")


def test_a_readers_own_check_is_located_too() -> None:
    def no_squads(queue: Queue) -> None:
        if queue.name == "squad":
            raise ValidationError("metadata.name", "no squads here")

    with pytest.raises(ValidationError) as info:
        parse_documents(QUEUES_YAML.replace("  tickSecond: 1\n", ""), "queues.yaml", (QUEUE,), no_squads)
    assert (info.value.field, info.value.line) == ("metadata.name", 9)
    with pytest.raises(ValidationError, match="no Fleet or FleetAutoscaler document found"):
        parse_documents("# nothing\n", "empty.yaml", RESOURCE_KINDS)
