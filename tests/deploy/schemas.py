"""Helpers of the deploy tests: the CRDs as JSON Schemas, and Kubernetes' rules for structural schemas."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CRD_DIR = DEPLOY / "crds"
CHART = DEPLOY / "helm" / "fleetmatch"
EXAMPLES = DEPLOY / "examples"


def load_generator() -> ModuleType:
    """deploy/crds/generate.py as a module (deploy/ is not a package)."""
    spec = importlib.util.spec_from_file_location("fleetmatch_crd_generate", CRD_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def crds() -> dict[str, dict[str, Any]]:
    """kind -> CRD document, from the committed YAML."""
    out = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        out[doc["spec"]["names"]["kind"]] = doc
    return out


def openapi_schema(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def strip_extensions(node: Any) -> Any:
    """The schema without ``x-kubernetes-*`` keys (JSON Schema ignores unknown keywords anyway, but
    this makes explicit that their meaning is not checked here)."""
    if isinstance(node, dict):
        return {k: strip_extensions(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if isinstance(node, list):
        return [strip_extensions(v) for v in node]
    return node


def validator(kind: str) -> jsonschema.Draft4Validator:
    """OpenAPI v3.0 schemas are closest to Draft 4 (boolean exclusiveMinimum). IntOrString needs no
    special case: the schemas spell it as ``anyOf: [integer, string]``, which JSON Schema understands."""
    return jsonschema.Draft4Validator(strip_extensions(openapi_schema(crds()[kind])))


def errors(kind: str, doc: dict[str, Any]) -> list[str]:
    """``path: message`` of every violation, as the API server would name the field."""
    found = []
    for err in validator(kind).iter_errors(doc):
        for leaf in _leaves(err):
            path = ".".join(str(p) for p in leaf.absolute_path)
            found.append(f"{path}: {leaf.message}")
    return sorted(found)


def _leaves(err: jsonschema.ValidationError) -> Iterator[jsonschema.ValidationError]:
    if not err.context:
        yield err
        return
    for sub in err.context:
        yield from _leaves(sub)


def drop_nulls(node: Any) -> Any:
    """What the API server does with ``null`` in a non-nullable field: prunes it."""
    if isinstance(node, dict):
        return {k: drop_nulls(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [drop_nulls(v) for v in node]
    return node


# -- structural schemas ------------------------------------------------------------------------

_JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
_FORBIDDEN_IN_JUNCTORS = ("type", "description", "default", "additionalProperties", "nullable", "title")


def structural_errors(schema: dict[str, Any], path: str = "") -> list[str]:
    """The rules of https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema
    that an offline validator does not check: every node has a type (or is int-or-string or
    preserves unknown fields); junctors carry no type, description, default...; every property a
    junctor mentions is also specified outside it; list-map keys are required or defaulted."""
    found: list[str] = []
    int_or_string = schema.get("x-kubernetes-int-or-string") is True
    if "type" not in schema and not int_or_string and not schema.get("x-kubernetes-preserve-unknown-fields"):
        found.append(f"{path or '<root>'}: no type")
    if int_or_string and schema.get("anyOf") != [{"type": "integer"}, {"type": "string"}]:
        found.append(f"{path}: int-or-string must be anyOf [integer, string]")
    for name, sub in schema.get("properties", {}).items():
        found += structural_errors(sub, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        found += structural_errors(schema["additionalProperties"], f"{path}.*")
    if "items" in schema:
        found += structural_errors(schema["items"], f"{path}[]") + _list_map_errors(schema, path)
    for junctor in _JUNCTORS:
        if junctor not in schema:
            continue
        if int_or_string and junctor == "anyOf":
            continue
        subs = schema[junctor] if isinstance(schema[junctor], list) else [schema[junctor]]
        for sub in subs:
            found += _junctor_errors(sub, schema, f"{path}/{junctor}")
    if "default" in schema:
        try:
            jsonschema.Draft4Validator(strip_extensions(schema)).validate(schema["default"])
        except jsonschema.ValidationError as exc:
            found.append(f"{path}: default {schema['default']!r} is invalid: {exc.message}")
    return found


def _list_map_errors(schema: dict[str, Any], path: str) -> list[str]:
    item = schema["items"]
    return [
        f"{path}: list-map key {key} is neither required nor defaulted"
        for key in schema.get("x-kubernetes-list-map-keys", [])
        if key not in item.get("required", []) and "default" not in item["properties"].get(key, {})
    ]


def _junctor_errors(sub: dict[str, Any], outer: dict[str, Any], path: str) -> list[str]:
    found = [f"{path}: {key} inside a junctor" for key in _FORBIDDEN_IN_JUNCTORS if key in sub]
    for name, prop in sub.get("properties", {}).items():
        if name not in outer.get("properties", {}):
            found.append(f"{path}: property {name} is not specified outside the junctor")
        else:
            found += _junctor_errors(prop, outer["properties"][name], f"{path}.{name}")
    for name in sub.get("required", []):
        if name not in outer.get("properties", {}):
            found.append(f"{path}: required {name} is not specified outside the junctor")
    for junctor in _JUNCTORS:
        if junctor in sub:
            inner = sub[junctor] if isinstance(sub[junctor], list) else [sub[junctor]]
            for s in inner:
                found += _junctor_errors(s, outer, f"{path}/{junctor}")
    return found
