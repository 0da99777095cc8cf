"""Custom-resource documents <-> fleetmatch models, for every Kubernetes client (once).

Objects live as ``fleetmatch.dev/v1`` resources (``deploy/crds/``). A stored resource may hold more
than fleetmatch models: a Pod template in ``spec.template``, fields of a newer version, metadata
other controllers set (``finalizers``). ``decode`` reads what the model knows
(nulls dropped, validated by ``fleetmatch.codec``) and returns the rest as ``Kept``; ``encode``
builds the document of a write and puts what was kept back, so a replace never strips what
kubectl or another controller wrote. Optional fields are absent on the wire, never null: CRD
schemas need not allow null.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, cast

from fleetmatch.codec import camel, from_wire, to_wire
from fleetmatch.models import API_VERSION
from fleetmatch.store import R

GROUP, VERSION = API_VERSION.split("/")
"""``fleetmatch.dev`` and ``v1``: where the CRDs in ``deploy/crds/`` serve our kinds."""

META_FIELDS = frozenset(
    {
        "name",
        "namespace",
        "generateName",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "labels",
        "annotations",
        "ownerReferences",
    }
)
"""The metadata the models hold (``managedFields`` and the like are not read)."""
KEPT_META = ("finalizers",)
"""Metadata we do not model but must not strip when we replace an object."""


def strip_nulls(value: Any) -> Any:
    """Drop None values: optional fields are absent on the wire."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


@functools.cache
def model_fields(cls: Any) -> Mapping[str, Any]:
    """Wire name -> type hint, for a model dataclass."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.metadata.get("wire", camel(f.name)): hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _dataclass_of(tp: Any) -> type | None:
    """The dataclass ``tp`` is (through ``Annotated`` and ``X | None``), if it is one."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        return _dataclass_of(args[0])
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        return _dataclass_of(members[0]) if len(members) == 1 else None
    return tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None


def known_part(tp: Any, value: Any, dropped: list[bool]) -> Any:
    """``value`` without nulls and without the keys of model objects the model does not know;
    ``dropped`` records that some went."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        return known_part(args[0], value, dropped)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        return known_part(members[0], value, dropped) if len(members) == 1 else value
    if origin is tuple and isinstance(value, list):
        return [known_part(args[0], item, dropped) for item in value]
    if origin in (Mapping, dict) and isinstance(value, dict):
        return {k: known_part(args[1], v, dropped) for k, v in value.items()}
    cls = _dataclass_of(tp)
    if cls is not None and isinstance(value, dict):
        known = model_fields(cls)
        if any(k not in known for k in value):
            dropped[0] = True
        return {k: known_part(known[k], v, dropped) for k, v in value.items() if k in known and v is not None}
    return value


def overlay(tp: Any, ours: Any, stored: Any) -> Any:
    """Our wire value, keeping the members of ``stored`` model objects that the model does not know."""
    cls = _dataclass_of(tp)
    if cls is None or not isinstance(ours, dict) or not isinstance(stored, dict):
        return ours
    known = model_fields(cls)
    kept = {k: v for k, v in stored.items() if k not in known}
    return kept | {k: overlay(known[k], v, stored.get(k)) for k, v in ours.items()}


@dataclasses.dataclass(slots=True)
class Kept:
    """What a stored resource holds beyond fleetmatch's model, written back unchanged on replace."""

    metadata: dict[str, Any]
    """``finalizers``, if any."""
    spec: Any = None
    """The whole stored spec, when it has members the model does not know (else None)."""
    status: Any = None


def decode(kind: type[R], doc: Mapping[str, Any]) -> tuple[R, Kept | None]:
    """The model of a resource document (``ValidationError`` if it does not fit: kubectl users write
    these too), and what the document holds beyond it (None: nothing)."""
    raw_meta = doc.get("metadata")
    raw_meta = raw_meta if isinstance(raw_meta, Mapping) else {}
    body: dict[str, Any] = {"metadata": {k: v for k, v in raw_meta.items() if k in META_FIELDS and v is not None}}
    kept = Kept({k: raw_meta[k] for k in KEPT_META if raw_meta.get(k)})
    fields = model_fields(cast(Any, kind))
    for part in ("spec", "status"):
        raw = doc.get(part)
        if raw is None:
            continue
        dropped = [False]
        body[part] = known_part(fields[part], raw, dropped)
        if dropped[0]:
            setattr(kept, part, raw)
    obj = from_wire(kind, body)
    return obj, (kept if kept.metadata or kept.spec is not None or kept.status is not None else None)


def encode(obj: Any, namespace: str, *, version: str = "", kept: Kept | None = None) -> dict[str, Any]:
    """The resource document for ``obj`` in ``namespace`` (``version``: the precondition of a PUT);
    ``kept``: what the stored resource holds beyond our model, to write back."""
    meta = obj.metadata
    out: dict[str, Any] = dict(kept.metadata) if kept is not None else {}
    out["namespace"] = namespace
    if meta.name:
        out["name"] = meta.name
    if meta.generate_name:
        out["generateName"] = meta.generate_name
    if meta.labels:
        out["labels"] = dict(meta.labels)
    if meta.annotations:
        out["annotations"] = dict(meta.annotations)
    if meta.owner_references:
        out["ownerReferences"] = [strip_nulls(to_wire(ref)) for ref in meta.owner_references]
    if version:
        out["resourceVersion"] = version
    fields = model_fields(cast(Any, type(obj)))
    wire = to_wire(obj)
    spec = strip_nulls(wire["spec"])
    if kept is not None and kept.spec is not None:
        spec = overlay(fields["spec"], spec, kept.spec)
    status = encode_status(obj.status, kept.status if kept is not None else None, fields["status"])
    return {"apiVersion": API_VERSION, "kind": obj.KIND, "metadata": out, "spec": spec, "status": status}


def encode_status(status: Any, stored: Any, tp: Any = None) -> Any:
    """``status`` on the wire, keeping the members of the ``stored`` status the model does not know."""
    wire = strip_nulls(to_wire(status))
    return overlay(tp if tp is not None else type(status), wire, stored) if stored is not None else wire


__all__ = [
    "GROUP",
    "KEPT_META",
    "META_FIELDS",
    "VERSION",
    "Kept",
    "decode",
    "encode",
    "encode_status",
    "known_part",
    "model_fields",
    "overlay",
    "strip_nulls",
]
