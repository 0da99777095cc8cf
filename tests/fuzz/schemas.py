"""Hypothesis strategies from the JSON Schemas of our OpenAPI documents.

A small generator for the subset those documents use (``type`` object/array/string/integer/
number/boolean/null, ``enum``, ``const``, ``$ref`` to ``#/components/...``, ``properties``,
``required``, ``additionalProperties``, ``minItems``/``maxItems``, ``minimum``/``maximum``,
``minLength``/``maxLength``, ``pattern`` for a character class): hypothesis-jsonschema does the
general case but relies on Hypothesis internals that newer Hypothesis releases changed. A keyword
this does not know fails loudly, so the document cannot outgrow the fuzzer unnoticed.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

_KNOWN = {
    "type", "enum", "const", "$ref", "properties", "required", "additionalProperties", "items", "minItems",
    "maxItems", "minimum", "maximum", "minLength", "maxLength", "pattern", "default", "description", "allOf",
}  # fmt: skip
_VISIBLE_ASCII = "^[!-~]+$"


def from_schema(schema: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values ``schema`` accepts; ``$ref``s resolve in ``root`` (the OpenAPI document)."""
    unknown = set(schema) - _KNOWN
    if unknown:
        raise NotImplementedError(f"schema keywords {sorted(unknown)}")
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return from_schema(target, root)
    if "allOf" in schema:
        raise NotImplementedError("allOf (only response schemas use it)")
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kinds = schema.get("type", "object")
    if isinstance(kinds, list):
        return st.one_of(*(from_schema({**schema, "type": kind}, root) for kind in kinds))
    return _typed(kinds, schema, root)


def _typed(kind: str, schema: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[Any]:
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "string":
        alphabet = st.characters(min_codepoint=0x21, max_codepoint=0x7E) if schema.get("pattern") else st.characters()
        if schema.get("pattern") not in (None, _VISIBLE_ASCII):
            raise NotImplementedError(f"pattern {schema['pattern']!r}")
        return st.text(alphabet, min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 30), 30))
    if kind == "array":
        items = from_schema(schema.get("items", {"type": "string"}), root)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 4), 4))
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        fixed = st.fixed_dictionaries(
            {name: from_schema(properties[name], root) for name in required},
            optional={name: from_schema(sub, root) for name, sub in properties.items() if name not in required},
        )
        extra = schema.get("additionalProperties", not properties)
        if extra is False:
            return fixed
        values = from_schema(extra, root) if isinstance(extra, dict) else st.text(max_size=10)
        names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12)
        more = st.dictionaries(names.filter(lambda n: n not in properties), values, max_size=3)
        return st.tuples(fixed, more).map(lambda pair: {**pair[1], **pair[0]})
    raise NotImplementedError(f"type {kind!r}")


def maximal(schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """One value ``schema`` accepts with every optional part present (each map with one entry, each
    list with one item): the document whose every field a test can then spoil in turn."""
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return maximal(target, root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "object":
        out = {name: maximal(sub, root) for name, sub in schema.get("properties", {}).items()}
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            out["x"] = maximal(extra, root)
        return {k: v for k, v in out.items() if v is not None}
    if kind == "array":
        return [maximal(schema.get("items", {"type": "string"}), root)]
    simple: dict[str, Any] = {"null": None, "boolean": True, "integer": schema.get("minimum", 0), "number": 0.5}
    return simple.get(kind, "a")
