"""The CRDs in deploy/crds: generated, valid, structural, in step with the models, and they accept
every example and reject bad objects with the field's name."""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from fleetmatch import models
from fleetmatch.codec import camel
from fleetmatch.demo import DEMO_FILES, DEMO_QUEUES
from fleetmatch.manifests import load_resources
from tests.deploy.schemas import (
    CHART,
    CRD_DIR,
    EXAMPLES,
    crds,
    drop_nulls,
    errors,
    load_generator,
    openapi_schema,
    structural_errors,
)

KINDS = ("GameServer", "Fleet", "FleetAutoscaler")


def example_documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted([*DEMO_FILES, DEMO_QUEUES, *EXAMPLES.glob("kubernetes/*.yaml")]):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc is not None:
                out.append((f"{path.parent.name}/{path.name}#{i}", doc))
    return out


EXAMPLE_DOCS = example_documents()


def test_committed_crds_are_what_the_generator_writes() -> None:
    gen = load_generator()
    expected = {name: gen.render(doc) for name, doc in gen.definitions().items()}
    assert {p.name for p in CRD_DIR.glob("*.yaml")} == set(expected)
    for name, text in expected.items():
        assert (CRD_DIR / name).read_text() == text, f"{name} is stale: run python deploy/crds/generate.py"


def test_chart_crds_are_identical_to_deploy_crds() -> None:
    ours = {p.name: p.read_bytes() for p in CRD_DIR.glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert chart == ours


@pytest.mark.parametrize("kind", KINDS)
def test_crd_validates_strictly_against_kubernetes(kind: str) -> None:
    kubernetes_validate.validate(crds()[kind], kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize("kind", KINDS)
def test_crd_schema_is_structural(kind: str) -> None:
    assert structural_errors(openapi_schema(crds()[kind])) == []


def test_crd_names_columns_and_subresources() -> None:
    by_kind = crds()
    expected = {
        "GameServer": ("gs", ["State", "Address", "Port", "Node", "Age"]),
        "Fleet": ("flt", ["Scheduling", "Desired", "Current", "Allocated", "Ready", "Age"]),
        "FleetAutoscaler": ("fas", ["Fleet", "Current", "Desired", "Age"]),
    }
    for kind, (short, columns) in expected.items():
        spec = by_kind[kind]["spec"]
        assert spec["group"] == "fleetmatch.dev" and spec["scope"] == "Namespaced"
        assert spec["names"]["shortNames"] == [short]
        (version,) = spec["versions"]
        assert version["name"] == "v1" and version["served"] and version["storage"]
        assert [c["name"] for c in version["additionalPrinterColumns"]] == columns
    fleet_version = by_kind["Fleet"]["spec"]["versions"][0]
    assert fleet_version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    assert "status" in by_kind["FleetAutoscaler"]["spec"]["versions"][0]["subresources"]
    # GameServer: no status subresource, so one update claims a server (labels + state): see generate.py.
    assert "subresources" not in by_kind["GameServer"]["spec"]["versions"][0]


# -- the schemas follow the models -------------------------------------------------------------

EXTRA_FIELDS: dict[type, set[str]] = {models.GameServerSpec: {"template"}}
"""Wire fields the CRDs add to a model: the Kubernetes pod template (the models' work to come)."""


def _dataclass_in(tp: Any) -> tuple[str, type] | None:
    """('self' | 'items' | 'values', the dataclass) if ``tp`` holds one."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _dataclass_in(args[0])
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        return _dataclass_in(members[0]) if len(members) == 1 else None
    if origin is tuple:
        inner = _dataclass_in(args[0])
        return ("items", inner[1]) if inner else None
    if origin in (Mapping, dict):
        inner = _dataclass_in(args[1])
        return ("values", inner[1]) if inner else None
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return ("self", tp)
    return None


def _mismatches(cls: type, schema: dict[str, Any], path: str) -> list[str]:
    hints = typing.get_type_hints(cls, include_extras=True)
    wire = {f.metadata.get("wire", camel(f.name)): f.name for f in dataclasses.fields(cls) if f.init}
    props = schema.get("properties", {})
    found = [f"{path}.{w}: in {cls.__name__}, not in the CRD" for w in sorted(set(wire) - set(props))]
    extra = set(props) - set(wire) - EXTRA_FIELDS.get(cls, set())
    found += [f"{path}.{p}: in the CRD, not in {cls.__name__}" for p in sorted(extra)]
    for w, name in wire.items():
        if w not in props:
            continue
        held = _dataclass_in(hints[name])
        if held is None:
            continue
        where, inner = held
        sub = props[w]
        sub = sub["items"] if where == "items" else sub["additionalProperties"] if where == "values" else sub
        found += _mismatches(inner, sub, f"{path}.{w}")
    return found


@pytest.mark.parametrize(
    ("kind", "spec_cls", "status_cls"),
    [
        ("GameServer", models.GameServerSpec, models.GameServerStatus),
        ("Fleet", models.FleetSpec, models.FleetStatus),
        ("FleetAutoscaler", models.FleetAutoscalerSpec, models.FleetAutoscalerStatus),
    ],
)
def test_crd_fields_are_the_model_fields(kind: str, spec_cls: type, status_cls: type) -> None:
    schema = openapi_schema(crds()[kind])
    found = _mismatches(spec_cls, schema["properties"]["spec"], "spec")
    found += _mismatches(status_cls, schema["properties"]["status"], "status")
    assert found == []


def test_model_enums_are_the_crd_enums() -> None:
    gs = openapi_schema(crds()["GameServer"])
    port = gs["properties"]["spec"]["properties"]["ports"]["items"]["properties"]
    assert port["portPolicy"]["enum"] == [p.value for p in models.PortPolicy]
    assert port["protocol"]["enum"] == [p.value for p in models.PortProtocol]
    assert gs["properties"]["status"]["properties"]["state"]["enum"] == [s.value for s in models.GameServerState]
    fleet = openapi_schema(crds()["Fleet"])["properties"]["spec"]["properties"]
    assert fleet["scheduling"]["enum"] == [s.value for s in models.SchedulingStrategy]
    assert fleet["strategy"]["properties"]["type"]["enum"] == [t.value for t in models.FleetStrategyType]


def test_what_the_models_write_validates() -> None:
    """Objects as fleetmatch encodes them (nulls pruned, as the API server does) are accepted."""
    for resource in [r for path in DEMO_FILES for r in load_resources(path)]:
        doc = drop_nulls(models.encode(resource))
        doc["metadata"] = {"name": resource.name}
        assert errors(resource.KIND, doc) == []
    gs = models.GameServer(
        metadata=models.ObjectMeta(name="demo-x7k2p", labels={models.FLEET_LABEL: "demo"}),
        spec=models.GameServerSpec(
            process=models.ProcessTemplate(command=("game",)),
            counters={"rooms": models.CounterStatus(count=1, capacity=4)},
            lists={"players": models.ListStatus(capacity=8, values=("p1",))},
            players=models.PlayersSpec(initial_capacity=8),
        ),
        status=models.GameServerStatus(
            state=models.GameServerState.RESERVED,
            address="10.0.0.7",
            ports=(models.PortStatus(name="default", port=7042),),
            node_name="node-1",
            reserved_until=1_800_000_000.0,
            players=models.PlayerStatus(count=1, capacity=8, ids=("p1",)),
        ),
    )
    doc = drop_nulls(models.encode(gs))
    doc["metadata"] = {"name": gs.name}
    assert errors("GameServer", doc) == []


# -- examples ----------------------------------------------------------------------------------


def test_examples_cover_every_kind() -> None:
    kinds = {doc["kind"] for _, doc in EXAMPLE_DOCS}
    assert kinds == {*KINDS, "Queue"}  # Queue is matchmaker configuration, not a Kubernetes resource


@pytest.mark.parametrize(("where", "doc"), [e for e in EXAMPLE_DOCS if e[1]["kind"] in KINDS], ids=lambda v: v)
def test_example_validates_against_its_crd(where: str, doc: dict[str, Any]) -> None:
    assert doc["apiVersion"] == "fleetmatch.dev/v1"
    assert errors(doc["kind"], doc) == []


def test_kubernetes_examples_use_pod_templates() -> None:
    for path in sorted((EXAMPLES / "kubernetes").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        spec = doc["spec"]["template"]["spec"] if doc["kind"] == "Fleet" else doc["spec"]
        if doc["kind"] != "FleetAutoscaler":
            assert "template" in spec and "process" not in spec, path


# -- rejections --------------------------------------------------------------------------------


def k8s_fleet() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / "kubernetes" / "fleet.yaml").read_text())
    return doc


def test_a_bad_fleet_is_rejected_naming_each_field() -> None:
    doc = k8s_fleet()
    doc["spec"]["replicas"] = -1
    doc["spec"]["template"]["spec"]["ports"][0]["portPolicy"] = "Sometimes"
    doc["spec"]["template"]["spec"]["template"]["spec"]["containers"] = []
    found = "\n".join(errors("Fleet", doc))
    assert "spec.replicas: -1 is less than the minimum of 0" in found
    assert "spec.template.spec.ports.0.portPolicy: 'Sometimes' is not one of" in found
    assert "spec.template.spec.template.spec.containers: []" in found  # "is too short" / "should be non-empty"


def _set(doc: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[int(last) if isinstance(node, list) else last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("spec.template.spec.template.spec.containers", _DELETE, "'containers' is a required property"),
        ("spec.template.spec.template.spec.containers.0.image", _DELETE, "'image' is a required property"),
        ("spec.template.spec.ports.0.containerPort", 70000, "70000 is greater than the maximum of 65535"),
        ("spec.template.spec.ports.0.protocol", "SCTP", "'SCTP' is not one of"),
        ("spec.scheduling", "Random", "'Random' is not one of"),
        ("spec.strategy.type", "BlueGreen", "'BlueGreen' is not one of"),
        ("spec.strategy.rollingUpdate.maxSurge", "lots", "does not match"),
        ("spec.strategy.rollingUpdate.maxUnavailable", -2, "-2 is less than the minimum of 0"),
        ("spec.strategy.rollingUpdate.maxUnavailable", True, "True is not of type 'integer'"),
        ("spec.replicas", "4", "'4' is not of type 'integer'"),
        ("spec.template.spec.health.periodSeconds", 0, "0 is less than the minimum of 1"),
        ("spec.template.spec.template", _DELETE, "spec.template.spec: 'template' is a required property"),
    ],
)
def test_bad_fleet_field_is_rejected(field: str, value: Any, expected: str) -> None:
    doc = k8s_fleet()
    _set(doc, field, value)
    found = errors("Fleet", doc)
    assert any(expected in e for e in found), found


def test_fleet_template_may_not_carry_both_a_process_and_a_pod() -> None:
    doc = k8s_fleet()
    doc["spec"]["template"]["spec"]["process"] = {"command": ["game"]}
    assert any("is valid under each of" in e for e in errors("Fleet", doc))


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        ({"name": "p", "portPolicy": "Static"}, "'hostPort' is a required property"),
        ({"name": "p", "portPolicy": "Static", "hostPort": 0}, "0 is less than the minimum of 1"),
        ({"name": "p", "portPolicy": "None"}, "'containerPort' is a required property"),
    ],
)
def test_port_policy_needs_its_port(port: dict[str, Any], expected: str) -> None:
    doc = k8s_fleet()
    doc["spec"]["template"]["spec"]["ports"] = [port]
    assert any(expected in e for e in errors("Fleet", doc))


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("spec.policy.buffer.bufferSize", "150%", "does not match"),
        ("spec.policy.buffer.bufferSize", 0, "0 is less than the minimum of 1"),
        ("spec.policy.type", "Webhook", "'Webhook' is not one of"),
        ("spec.sync.fixedInterval.seconds", 0, "less than or equal to the minimum of 0"),
        ("spec.fleetName", "Not_A_Name", "does not match"),
        ("spec.policy.buffer", _DELETE, "'buffer' is a required property"),
    ],
)
def test_bad_autoscaler_is_rejected(field: str, value: Any, expected: str) -> None:
    doc = yaml.safe_load((EXAMPLES / "kubernetes" / "autoscaler.yaml").read_text())
    _set(doc, field, value)
    found = errors("FleetAutoscaler", doc)
    assert any(expected in e for e in found), found


def test_standalone_gameserver_may_omit_both_but_not_have_both() -> None:
    doc = yaml.safe_load((EXAMPLES / "kubernetes" / "gameserver.yaml").read_text())
    neither = copy.deepcopy(doc)
    del neither["spec"]["template"]
    assert errors("GameServer", neither) == []
    doc["spec"]["process"] = {"command": ["game"]}
    assert errors("GameServer", doc) != []


def test_crd_files_are_plain_yaml() -> None:
    for path in Path(CRD_DIR).glob("*.yaml"):
        text = path.read_text()
        assert "&id" not in text and "*id" not in text, path


def test_structural_checker_finds_violations() -> None:
    """The checker above is only worth something if it fails on non-structural schemas."""
    bad = {
        "type": "object",
        "properties": {"a": {"description": "untyped"}, "b": {"type": "string", "default": 3}},
        "anyOf": [{"type": "object"}, {"properties": {"c": {"enum": [1]}}}],
    }
    found = "\n".join(structural_errors(bad))
    assert ".a: no type" in found
    assert ".b: default 3 is invalid" in found
    assert "type inside a junctor" in found
    assert "property c is not specified outside the junctor" in found
