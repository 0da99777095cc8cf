"""An in-process fake Kubernetes API server, for driving the real ``kubernetes-asyncio`` client in tests.

``FakeKube`` serves an ``aiohttp.web`` app on ``127.0.0.1:0`` and reproduces the API server's behaviour
that fleetmatch relies on: the URL layout, exact success
codes, metadata stamping, one global resourceVersion counter, optimistic concurrency (409/422), the
three PATCH flavours, the ``/status`` subresource, generation rules, finalizers, a small garbage
collector, label and field selectors, and watches (synthetic ADDED, history with 410 Expired, selector
transitions, bookmarks, ``timeoutSeconds``). Errors are ``Status`` bodies with the apiserver's messages.

Built-in resources: core ``pods`` (namespaced), ``nodes`` and ``namespaces`` (cluster-scoped), and
``leases`` of ``coordination.k8s.io/v1`` (namespaced; unconditional PUT allowed, as for every
built-in, and a PUT carrying a stale resourceVersion is 409). Custom
resources come from real ``CustomResourceDefinition`` documents (``register_crd``): objects are pruned,
defaulted and validated against the served version's ``openAPIV3Schema`` (``x-kubernetes-*`` ignored).

Deliberate simplifications, each different from a real cluster:

- The garbage collector is synchronous: it runs right after every removal, so dependents vanish
  before the DELETE answers (real GC is eventual). ``Foreground`` deletes dependents first, then the
  owner (no ``foregroundDeletion`` finalizer); ``Orphan`` strips the ownerReference at once. A
  dependent created with an owner uid that never existed is left alone until ``collect_garbage()``.
- Pods are deleted at once (no grace period, no kubelet); finalizers still hold them.
- No namespace existence checks or namespace cascade, no RBAC, no admission, no CEL rules, no
  server-side apply (415), no ``dryRun`` (400 rather than a silent real write), no ``sendInitialEvents``,
  no ``resourceVersionMatch``, no discovery; a list's ``resourceVersion`` parameter is ignored (the
  list is served at the latest version, as ``resourceVersionMatch=NotOlderThan`` may be).
- List paging (``limit``/``continue``) is served from the event history, as etcd serves it from its
  MVCC revisions: every page of one list shows the objects as they were at the first page's
  resourceVersion. Once the history no longer reaches back that far (``history_size`` events, or
  ``compact()``, the fake's etcd compaction), a continue token is 410 Expired. Real clusters compact
  every five minutes, so the window is time there and event count here.
- Strategic merge patch knows the common list merge keys only (see ``_SMP_KEYS``), plus
  ``$patch: delete|replace`` and ``$deleteFromPrimitiveList``; no ``$retainKeys``/``$setElementOrder``.
- Every version of a CRD stores the same object (no conversion); responses carry the requested version.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import random
import re
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from aiohttp.typedefs import Middleware
from jsonschema import Draft4Validator  # type: ignore[import-untyped,unused-ignore]  # types-jsonschema is optional

JSON = dict[str, Any]
"""A Kubernetes object or any other JSON document, as decoded."""

Key = tuple[str, str, str, str]
"""Where an object lives: (group, plural, namespace or "", name)."""

NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""The apiserver's generateName suffix alphabet (no vowels, no confusable characters)."""

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
NO_NEW_FINALIZERS = "no new finalizers can be added if the object is being deleted"
WRONG_NAMESPACE = "the namespace of the provided object does not match the namespace sent on the request"

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
_TRUE = frozenset({"1", "t", "T", "true", "True", "TRUE"})
_FALSE = frozenset({"0", "f", "F", "false", "False", "FALSE", ""})
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SYSTEM_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")


def now_rfc3339() -> str:
    """The apiserver's timestamp format: RFC 3339, UTC, whole seconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """A failure answered as a ``Status`` body with the same HTTP code."""

    def __init__(
        self,
        code: int,
        message: str,
        details: JSON | None = None,
        reason: str | None = None,
        *,
        list_meta: JSON | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.list_meta = list_meta or {}
        """The Status's ``metadata`` (a ListMeta: the inconsistent ``continue`` of an expired one)."""

    def body(self) -> JSON:
        status: JSON = {"kind": "Status", "apiVersion": "v1", "metadata": dict(self.list_meta), "status": "Failure"}
        status.update(message=self.message, reason=self.reason, code=self.code)
        if self.details is not None:
            status["details"] = self.details
        return status


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


# ---------------------------------------------------------------------------------------------------
# List paging
# ---------------------------------------------------------------------------------------------------

CONTINUE_VERSION = "meta.k8s.io/v1"
CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - objects "
    "that were created, modified, or deleted between the time the first chunk was returned and now may show "
    "up in the list."
)
"""The apiserver's message (etcd3 store) when a continue token's snapshot has been compacted away."""


def _storage_key(key: Key) -> str:
    """Where etcd keeps an object below its resource's prefix (``namespace/name``, or ``name``): the
    order a list is served in, and what a continue token points past."""
    return f"{key[2]}/{key[3]}" if key[2] else key[3]


def _encode_continue(rv: int, start: str) -> str:
    """The apiserver's token: unpadded URL-safe base64 of ``{"v", "rv", "start"}``; opaque to clients."""
    raw = json.dumps({"v": CONTINUE_VERSION, "rv": rv, "start": start}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, str]:
    """(resourceVersion, start key) of a continue token; 400 BadRequest when it is not one."""
    try:
        doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as error:
        raise bad_request(f"continue key is not valid: {error}") from error
    if not isinstance(doc, dict) or doc.get("v") != CONTINUE_VERSION:
        raise bad_request("continue key is not valid: server does not recognize this encoded version")
    rv, start = doc.get("rv"), doc.get("start")
    if not isinstance(rv, int) or rv == 0 or rv < -1:
        raise bad_request(
            f"continue key is not valid: incorrect encoded start resourceVersion (version {CONTINUE_VERSION})"
        )
    if not isinstance(start, str) or not start:
        raise bad_request("continue key is not valid: encoded start key empty")
    return rv, start


def _limit(text: str) -> int:
    """``limit``: the most items in one page; 0 (or absent, or negative) for the whole list."""
    try:
        return max(0, int(text or "0"))
    except ValueError as error:
        raise bad_request(f"invalid limit: {text!r}") from error


@dataclass(frozen=True, slots=True)
class Resource:
    """One served resource type: a built-in or one registered from a CRD."""

    group: str
    plural: str
    kind: str
    versions: tuple[str, ...]
    namespaced: bool = True
    status_subresource: bool = True
    builtin: bool = False
    """Built-in types accept strategic merge patch and unconditional updates."""
    return_deleted_object: bool = False
    """DELETE answers with the object (pods) instead of a ``Status``."""
    schemas: Mapping[str, JSON] = field(default_factory=dict)
    short_names: tuple[str, ...] = ()
    field_labels: frozenset[str] = frozenset({"metadata.name", "metadata.namespace"})

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    def details(self, name: str, kind: str | None = None) -> JSON:
        details: JSON = {"name": name, "kind": kind or self.plural}
        if self.group:
            details["group"] = self.group
        return details

    def not_found(self, name: str) -> ApiError:
        return ApiError(404, f'{self.qualified} "{name}" not found', self.details(name))

    def conflict(self, name: str) -> ApiError:
        message = (
            f'Operation cannot be fulfilled on {self.qualified} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again"
        )
        return ApiError(409, message, self.details(name))

    def invalid(self, name: str, causes: list[JSON]) -> ApiError:
        listed = [f"{c['field']}: {c['message']}" for c in causes]
        text = listed[0] if len(listed) == 1 else "[" + ", ".join(listed) + "]"
        qualified_kind = f"{self.kind}.{self.group}" if self.group else self.kind
        details = self.details(name, self.kind) | {"causes": causes}
        return ApiError(422, f'{qualified_kind} "{name}" is invalid: {text}', details)


POD_FIELDS = frozenset({"metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy", "status.phase"})
BUILTINS = (
    Resource("", "pods", "Pod", ("v1",), builtin=True, return_deleted_object=True, field_labels=POD_FIELDS),
    Resource("", "nodes", "Node", ("v1",), namespaced=False, builtin=True),
    Resource("", "namespaces", "Namespace", ("v1",), namespaced=False, builtin=True),
    Resource("coordination.k8s.io", "leases", "Lease", ("v1",), builtin=True, status_subresource=False),
    Resource("events.k8s.io", "events", "Event", ("v1",), builtin=True, status_subresource=False),
)


def cause(field_path: str, message: str, kind: str = "FieldValueInvalid") -> JSON:
    return {"type": kind, "message": message, "field": field_path}


_MICRO_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


def _lease_causes(spec: JSON) -> list[JSON]:
    """The apiserver's Lease checks: positive duration, non-negative transitions, MicroTime stamps."""
    causes: list[JSON] = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and (not isinstance(duration, int) or duration <= 0):
        causes.append(cause("spec.leaseDurationSeconds", f"Invalid value: {duration}: must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if transitions is not None and (not isinstance(transitions, int) or transitions < 0):
        causes.append(
            cause("spec.leaseTransitions", f"Invalid value: {transitions}: must be greater than or equal to 0")
        )
    for key in ("acquireTime", "renewTime"):
        value = spec.get(key)
        if value is not None and not (isinstance(value, str) and _MICRO_TIME_RE.match(value)):
            causes.append(cause(f"spec.{key}", f"Invalid value: {json.dumps(value)}: not an RFC 3339 time"))
    return causes


# ---------------------------------------------------------------------------------------------------
# Selectors
# ---------------------------------------------------------------------------------------------------

_KEY = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\(([^()]*)\)\s*$")
_CMP_RE = re.compile(rf"^\s*({_KEY})\s*(==|=|!=|>|<)\s*({_VALUE})\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")
_VALUE_RE = re.compile(rf"^{_VALUE}$")
_LABEL_KEY_RE = re.compile(rf"^{_KEY}$")

LabelMatcher = Callable[[Mapping[str, str]], bool]


def _split_top_level(text: str) -> Iterator[str]:
    depth, start = 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            yield text[start:i]
            start = i + 1
    yield text[start:]


def _requirement(part: str) -> LabelMatcher:
    if m := _SET_RE.match(part):
        key, op, raw = m.groups()
        values = frozenset(v.strip() for v in raw.split(","))
        if not raw.strip() or not all(_VALUE_RE.match(v) for v in values):
            raise ValueError(f"invalid values for {op!r}: {raw!r}")
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if m := _CMP_RE.match(part):
        key, op, value = m.groups()
        if op in ("=", "=="):
            return lambda labels: labels.get(key) == value
        if op == "!=":
            return lambda labels: labels.get(key) != value
        if not value.isdigit():
            raise ValueError(f"for {op!r}, the value must be an integer: {value!r}")
        bound = int(value)
        sign = 1 if op == ">" else -1
        return lambda labels: (labels.get(key) or "").lstrip("-").isdigit() and sign * int(labels[key]) > sign * bound
    if m := _EXISTS_RE.match(part):
        negated, key = m.groups()
        return (lambda labels: key not in labels) if negated else (lambda labels: key in labels)
    raise ValueError(f"unable to parse requirement: {part.strip()!r}")


def parse_label_selector(text: str) -> LabelMatcher:
    """``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``, ``!k``, ``k>N``, ``k<N``, ANDed
    by commas. Raises ``ValueError`` on a malformed selector."""
    if not text.strip():
        return lambda _labels: True
    requirements = [_requirement(part) for part in _split_top_level(text)]
    return lambda labels: all(req(labels) for req in requirements)


def _dotted(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return "" if value is None else str(value)


FieldMatcher = Callable[[Mapping[str, Any]], bool]


def parse_field_selector(text: str, supported: frozenset[str]) -> FieldMatcher:
    """``field=value``, ``field==value``, ``field!=value`` over the resource's supported field labels."""
    tests: list[tuple[str, bool, str]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.match(r"^([A-Za-z.]+)\s*(==|=|!=)\s*(.*)$", part)
        if not m:
            raise ValueError(f"invalid field selector: {part!r}")
        name, op, value = m.groups()
        if name not in supported:
            raise ValueError(f"field label not supported: {name}")
        tests.append((name, op != "!=", value))
    return lambda obj: all((_dotted(obj, name) == value) is equal for name, equal, value in tests)


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    labels = obj.get("metadata", {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


# ---------------------------------------------------------------------------------------------------
# Patches
# ---------------------------------------------------------------------------------------------------


class PatchError(Exception):
    """A JSON patch that does not apply (422)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


_SMP_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
    "addresses": "type",
    "ownerReferences": "uid",
}
"""List merge keys of the built-in types (a subset of the Go struct tags)."""
_SMP_UNION = frozenset({"finalizers"})
"""Primitive lists with ``patchStrategy: merge``."""


def _merge_keyed_list(current: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    out = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            out.append(copy.deepcopy(item))
            continue
        same = (i for i, x in enumerate(out) if isinstance(x, dict) and x.get(merge_key) == item[merge_key])
        index = next(same, None)
        if item.get("$patch") == "delete":
            if index is not None:
                del out[index]
        elif index is None:
            out.append(strategic_merge_patch({}, item))
        else:
            out[index] = strategic_merge_patch(out[index], item)
    return out


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge for built-in types: keyed lists merge by their key, the rest as a merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        current = result.get(key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(current, list) and key in _SMP_KEYS:
            result[key] = _merge_keyed_list(current, value, _SMP_KEYS[key])
        elif isinstance(value, list) and isinstance(current, list) and key in _SMP_UNION:
            result[key] = current + [v for v in value if v not in current]
        else:
            result[key] = strategic_merge_patch(current, value)
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/") and isinstance(value, list):
            name = key.split("/", 1)[1]
            if isinstance(result.get(name), list):
                result[name] = [v for v in result[name] if v not in value]
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer: {path!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _index(container: list[Any], token: str, *, insert: bool) -> int:
    if token == "-" and insert:
        return len(container)
    if not token.isdigit() or int(token) > len(container) - (0 if insert else 1):
        raise PatchError(f"index out of range: {token}")
    return int(token)


def _parent(doc: Any, tokens: list[str]) -> Any:
    for token in tokens[:-1]:
        if isinstance(doc, dict) and token in doc:
            doc = doc[token]
        elif isinstance(doc, list):
            doc = doc[_index(doc, token, insert=False)]
        else:
            raise PatchError(f"path not found: /{'/'.join(tokens)}")
    return doc


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent, last = _parent(doc, tokens), tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, insert=False)]
    raise PatchError(f"path not found: {path}")


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    parent, last = _parent(doc, tokens), tokens[-1] if tokens else ""
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, insert=False))
    raise PatchError(f"path not found: {path}")


def _add(doc: Any, path: str, value: Any, *, replace: bool = False) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return copy.deepcopy(value)
    parent, last = _parent(doc, tokens), tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError(f"path not found: {path}")
        parent[last] = copy.deepcopy(value)
    elif isinstance(parent, list):
        index = _index(parent, last, insert=not replace)
        if replace:
            parent[index] = copy.deepcopy(value)
        else:
            parent.insert(index, copy.deepcopy(value))
    else:
        raise PatchError(f"path not found: {path}")
    return doc


def json_patch(target: Any, ops: list[Any]) -> Any:
    """RFC 6902 over a copy of ``target``; ``PatchError`` when an operation does not apply."""
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise PatchError(f"invalid operation: {op!r}")
        kind, path = op.get("op"), op["path"]
        if kind in ("add", "replace"):
            if "value" not in op:
                raise PatchError(f"{kind} operation needs a value: {path}")
            doc = _add(doc, path, op["value"], replace=kind == "replace")
        elif kind == "remove":
            _remove(doc, path)
        elif kind in ("move", "copy"):
            source = str(op.get("from", ""))
            value = _remove(doc, source) if kind == "move" else copy.deepcopy(_get(doc, source))
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise PatchError(f"testing value {path} failed")
        else:
            raise PatchError(f"unexpected operation: {kind!r}")
    return doc


# ---------------------------------------------------------------------------------------------------
# CRD schemas: pruning, defaulting, validation
# ---------------------------------------------------------------------------------------------------


def _as_jsonschema(schema: Any) -> Any:
    """OpenAPI v3 (structural) schema → JSON Schema draft 4: ``nullable`` widens ``type``, extensions go."""
    if isinstance(schema, list):
        return [_as_jsonschema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _as_jsonschema(v) for k, v in schema.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if schema.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _structural(value: Any, schema: Mapping[str, Any]) -> Any:
    """Prune unknown fields and nulls the schema does not allow, and apply ``default`` values."""
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_structural(v, schema["items"]) for v in value]
    if not isinstance(value, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return value
    properties: Mapping[str, Any] = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    out: JSON = {}
    for key, item in value.items():
        if key in properties:
            sub = properties[key]
        elif isinstance(extra, Mapping):
            sub = extra
        elif extra is True or (not properties and extra is None and "type" not in schema):
            out[key] = item
            continue
        else:
            continue  # pruned, as the apiserver does with fields its structural schema does not know
        if item is not None or sub.get("nullable"):
            out[key] = _structural(item, sub)
    for key, sub in properties.items():
        if key not in out and isinstance(sub, Mapping) and "default" in sub:
            out[key] = _structural(copy.deepcopy(sub["default"]), sub)
    return out


def _invalid_causes(validator: Any, obj: JSON) -> list[JSON]:
    causes = []
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else ""
            causes.append(cause(".".join(filter(None, [path, missing])), "Required value", "FieldValueRequired"))
        else:
            shown = json.dumps(error.instance)
            causes.append(cause(path, f"Invalid value: {shown}: {path or '<root>'} in body {error.message}"))
    return causes


def resource_from_crd(crd: Mapping[str, Any]) -> Resource:
    """The served resource a ``CustomResourceDefinition`` (apiextensions.k8s.io/v1) declares."""
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec["versions"] if v.get("served", True)]
    schemas = {v["name"]: v["schema"]["openAPIV3Schema"] for v in served if v.get("schema")}
    return Resource(
        group=spec["group"],
        plural=names["plural"],
        kind=names["kind"],
        versions=tuple(v["name"] for v in served),
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        status_subresource=any("status" in (v.get("subresources") or {}) for v in served),
        schemas=schemas,
        short_names=tuple(names.get("shortNames") or ()),
    )


def go_bool(text: str, name: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise bad_request(f"invalid boolean value {text!r} for {name}")


# ---------------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class RecordedRequest:
    """One request the fake answered, for assertions (``status`` is 0 while a watch is being set up)."""

    method: str
    path: str
    query: str
    content_type: str
    status: int = 0


RECORD_KEY = web.RequestKey("fakekube.record", RecordedRequest)


@dataclass(frozen=True, slots=True)
class _Event:
    rv: int
    type: str
    resource: Resource
    obj: JSON
    old: JSON | None


@dataclass(eq=False, slots=True)
class _Watcher:
    resource: Resource
    version: str
    namespace: str | None
    labels: LabelMatcher
    fields: FieldMatcher
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)

    def matches(self, obj: JSON | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.labels(labels_of(obj)) and self.fields(obj)

    def line(self, kind: str, obj: JSON) -> str:
        return json.dumps({"type": kind, "object": obj | {"apiVersion": self.resource.api_version(self.version)}})

    def translate(self, event: _Event) -> str | None:
        """The event this watcher sees, if any: selector transitions become ADDED or DELETED."""
        if event.resource != self.resource:
            return None
        now, before = self.matches(event.obj), self.matches(event.old)
        if event.type == "DELETED":
            return self.line("DELETED", event.obj) if before or now else None
        if now:
            return self.line("MODIFIED" if before else "ADDED", event.obj)
        if before and event.old is not None:
            previous = copy.deepcopy(event.old)
            previous["metadata"]["resourceVersion"] = str(event.rv)
            return self.line("DELETED", previous)
        return None


@dataclass(frozen=True, slots=True)
class _Target:
    resource: Resource
    version: str
    namespace: str | None
    name: str | None
    status: bool


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeKube:
    """The fake API server. ``await start()``, point a client at ``url``, ``await stop()``.

    Test hooks: ``inject_conflicts``, ``compact``, ``drop_watches``, ``fail_next``, ``delay``, ``on_request``,
    ``objects``, ``requests``, ``create_object``, ``update_object``, ``set_pod_status``, ``delete_pod``,
    ``delete_object``, ``collect_garbage``, ``write_kubeconfig``.
    """

    def __init__(self, *, history_size: int = 1000, bookmark_interval: float = 0.5) -> None:
        self.url = ""
        self.delay = 0.0
        """Seconds every request waits before it is handled."""
        self.bookmark_interval = bookmark_interval
        """An idle watch that allows bookmarks gets one after this many seconds without events."""
        self.gc_enabled = True
        self.requests: list[RecordedRequest] = []
        self.on_request: Callable[[RecordedRequest], None] | None = None
        """Called with each request before it is handled: a test acts at an exact point (``compact()``
        between two pages of a list, a write while a list is half read)."""
        self._resources: dict[tuple[str, str], Resource] = {}
        self._validators: dict[tuple[str, str, str], Any] = {}
        self._objects: dict[Key, JSON] = {}
        self._rv = 0
        self._history: deque[_Event] = deque(maxlen=history_size)
        self._horizon = 0
        self._watchers: set[_Watcher] = set()
        self._conflicts = 0
        self._failures: deque[tuple[int, str | None]] = deque()
        self._runner: web.AppRunner | None = None
        for resource in BUILTINS:
            self._resources[resource.group, resource.plural] = resource

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware()], client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.drop_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig whose current context points at this server, with an empty user."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "nobody", "user": {}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "nobody", "namespace": namespace}}],
            "current-context": "fake",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # -- registration -------------------------------------------------------------------------------

    def register_crd(self, crd: Mapping[str, Any]) -> Resource:
        """Serve the custom resource a CRD document declares (re-registering replaces it)."""
        resource = resource_from_crd(crd)
        self._resources[resource.group, resource.plural] = resource
        for version, schema in resource.schemas.items():
            self._validators[resource.group, resource.plural, version] = Draft4Validator(_as_jsonschema(schema))
        return resource

    def resource(self, plural: str) -> Resource:
        """A served resource by plural (``"pods"``), or qualified when ambiguous (``"fleets.fleetmatch.dev"``).

        Every hook taking ``plural`` accepts both forms."""
        name, _, group = plural.partition(".")
        found = [r for r in self._resources.values() if r.plural == name and (not group or r.group == group)]
        if len(found) != 1:
            raise KeyError(f"{len(found)} resources named {plural!r}; qualify it as plural.group")
        return found[0]

    # -- test hooks ---------------------------------------------------------------------------------

    def inject_conflicts(self, n: int = 1) -> None:
        """The next ``n`` updates (PUT, PATCH, status writes) answer 409 Conflict without applying."""
        self._conflicts += n

    def fail_next(self, status: int, n: int = 1, *, method: str | None = None) -> None:
        """The next ``n`` requests (of ``method``, if given) answer ``status`` (e.g. 403, 503) untouched."""
        self._failures.extend([(status, method)] * n)

    def compact(self) -> None:
        """Forget the event history: watching from any older resourceVersion now gets 410 Expired."""
        self._history.clear()
        self._horizon = self._rv

    def drop_watches(self) -> None:
        """Close every open watch stream (clients without ``timeout_seconds`` reconnect)."""
        for watcher in self._watchers:
            watcher.queue.put_nowait(None)

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    @property
    def watch_count(self) -> int:
        return len(self._watchers)

    def objects(self, plural: str, namespace: str | None = None) -> list[JSON]:
        """Copies of the stored objects of a resource, sorted by namespace and name."""
        res = self.resource(plural)
        return [
            copy.deepcopy(obj)
            for key, obj in sorted(self._objects.items())
            if key[:2] == (res.group, res.plural) and namespace in (None, key[2])
        ]

    def get_object(self, plural: str, namespace: str | None, name: str) -> JSON | None:
        res = self.resource(plural)
        obj = self._objects.get((res.group, res.plural, namespace or "", name))
        return copy.deepcopy(obj) if obj is not None else None

    def create_object(self, plural: str, body: Mapping[str, Any], namespace: str | None = None) -> JSON:
        """Create as a POST would (validation, events), without going through HTTP."""
        res = self.resource(plural)
        return copy.deepcopy(self._create(res, res.versions[0], namespace, copy.deepcopy(dict(body))))

    def update_object(self, plural: str, namespace: str | None, name: str, change: Callable[[JSON], None]) -> JSON:
        """Apply ``change`` to a copy of the object and store it as a controller or kubelet would: spec
        changes bump generation, status changes do not; no-ops emit nothing."""
        res = self.resource(plural)
        key = (res.group, res.plural, namespace or "", name)
        current = self._objects.get(key)
        if current is None:
            raise res.not_found(name)
        candidate = copy.deepcopy(current)
        change(candidate)
        return copy.deepcopy(self._commit(res, key, current, candidate))

    def set_pod_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> JSON:
        """The kubelet reporting: merge ``status`` into the pod's status (MODIFIED event)."""
        return self.update_object(
            "pods", namespace, name, lambda pod: pod.update(status=merge_patch(pod.get("status") or {}, status))
        )

    def delete_object(self, plural: str, namespace: str | None, name: str) -> JSON:
        res = self.resource(plural)
        key = (res.group, res.plural, namespace or "", name)
        if key not in self._objects:
            raise res.not_found(name)
        return copy.deepcopy(self._delete(res, key, "Background")[0])

    def delete_pod(self, namespace: str, name: str) -> JSON:
        """The pod goes away as if the kubelet confirmed its deletion (finalizers still hold it)."""
        return self.delete_object("pods", namespace, name)

    # -- storage core -------------------------------------------------------------------------------

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _emit(self, kind: str, resource: Resource, obj: JSON, old: JSON | None) -> None:
        event = _Event(self._rv, kind, resource, copy.deepcopy(obj), copy.deepcopy(old) if old else None)
        if self._history.maxlen is not None and len(self._history) == self._history.maxlen:
            self._horizon = self._history[0].rv
        self._history.append(event)
        for watcher in self._watchers:
            line = watcher.translate(event)
            if line is not None:
                watcher.queue.put_nowait(line)

    def _validate(self, res: Resource, version: str, obj: JSON) -> JSON:
        """Prune and default a CR against its schema, then validate it (422). Pods need named containers."""
        name = obj["metadata"].get("name") or obj["metadata"].get("generateName", "")
        causes: list[JSON] = []
        schema = res.schemas.get(version)
        if schema is not None:
            kept = {k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}
            pruned: JSON = _structural(obj, schema)
            obj = pruned | kept
            causes += _invalid_causes(self._validators[res.group, res.plural, version], obj)
        if res.plural == "pods":
            containers = (obj.get("spec") or {}).get("containers")
            if not isinstance(containers, list) or not containers:
                causes.append(cause("spec.containers", "Required value", "FieldValueRequired"))
            else:
                for i, c in enumerate(containers):
                    if not isinstance(c, dict) or not c.get("name"):
                        causes.append(cause(f"spec.containers[{i}].name", "Required value", "FieldValueRequired"))
        if res.plural == "leases":
            causes += _lease_causes(obj.get("spec") or {})
        for key, value in labels_of(obj).items():
            if not _LABEL_KEY_RE.match(key) or len(value) > 63 or not _VALUE_RE.match(value):
                causes.append(cause(f"metadata.labels.{key}", f"Invalid value: {json.dumps(value)}"))
        for i, ref in enumerate(obj["metadata"].get("ownerReferences") or []):
            for required in ("apiVersion", "kind", "name", "uid"):
                if not ref.get(required):
                    causes.append(cause(f"metadata.ownerReferences[{i}].{required}", "Required value"))
        if causes:
            raise res.invalid(name, causes)
        return obj

    def _create(self, res: Resource, version: str, namespace: str | None, raw: Any) -> JSON:
        if not isinstance(raw, dict):
            raise bad_request("the body of the request must be a JSON object")
        body: JSON = raw
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        self._check_kind(res, version, body)
        if meta.get("resourceVersion"):
            raise ApiError(500, "Internal error occurred: resourceVersion should not be set on objects to be created")
        if res.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise bad_request(WRONG_NAMESPACE)
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and not meta.get("generateName"):
            cause_ = cause("metadata.name", "Required value: name or generateName is required", "FieldValueRequired")
            raise res.invalid("", [cause_])
        for system in (*_SYSTEM_META, "resourceVersion"):
            meta.pop(system, None)
        if res.plural == "pods":
            body["status"] = {"phase": "Pending"}
        elif res.status_subresource:
            body.pop("status", None)
        body = self._validate(res, version, body)
        meta = body["metadata"]
        if meta.get("name") and not _NAME_RE.match(meta["name"]):
            raise res.invalid(meta["name"], [cause("metadata.name", f"Invalid value: {json.dumps(meta['name'])}")])
        key = self._free_key(res, namespace, meta)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339(), generation=1)
        meta["resourceVersion"] = str(self._next_rv())
        body["apiVersion"], body["kind"] = res.api_version(res.versions[0]), res.kind
        self._objects[key] = body
        self._emit("ADDED", res, body, None)
        return body

    def _free_key(self, res: Resource, namespace: str | None, meta: JSON) -> Key:
        for _attempt in range(8):
            if not meta.get("name"):
                suffix = "".join(random.choices(NAME_ALPHABET, k=5))
                key = (res.group, res.plural, namespace or "", f"{meta['generateName']}{suffix}")
                if key in self._objects:
                    continue
                meta["name"] = key[3]
            key = (res.group, res.plural, namespace or "", meta["name"])
            if key in self._objects:
                raise ApiError(409, f'{res.qualified} "{key[3]}" already exists', res.details(key[3]), "AlreadyExists")
            return key
        raise ApiError(500, "Internal error occurred: could not generate a unique name")

    def _check_kind(self, res: Resource, version: str, body: JSON) -> None:
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if api_version not in (None, res.api_version(version)) or kind not in (None, res.kind):
            raise bad_request(f"the API version in the data ({api_version}) does not match the expected API version")

    def _update(self, target: _Target, key: Key, body: Any, *, require_rv: bool) -> JSON:
        """A PUT, or a PATCH's result, on the object or its ``/status``."""
        res, name = target.resource, key[3]
        current = self._objects.get(key)
        if current is None:
            raise res.not_found(name)
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise bad_request("the body of the request must be a JSON object")
        self._check_kind(res, target.version, body)
        meta: JSON = body.setdefault("metadata", {})
        if self._conflicts > 0:
            self._conflicts -= 1
            raise res.conflict(name)
        rv = meta.get("resourceVersion")
        if not rv and require_rv and not res.builtin:
            message = "Invalid value: 0x0: must be specified for an update"
            raise res.invalid(name, [cause("metadata.resourceVersion", message)])
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise res.conflict(name)
        _check_identity(res, key, meta, current)
        if target.status:
            candidate = copy.deepcopy(current)
            candidate.pop("status", None)
            if body.get("status") is not None:
                candidate["status"] = copy.deepcopy(body["status"])
        else:
            candidate = copy.deepcopy(body)
            candidate["metadata"].update({k: current["metadata"][k] for k in _SYSTEM_META if k in current["metadata"]})
            candidate["metadata"].update(name=name, resourceVersion=current["metadata"]["resourceVersion"])
            if res.namespaced:
                candidate["metadata"]["namespace"] = key[2]
            if res.status_subresource:
                candidate.pop("status", None)
                if "status" in current:
                    candidate["status"] = copy.deepcopy(current["status"])
        candidate["apiVersion"], candidate["kind"] = current["apiVersion"], res.kind
        candidate = self._validate(res, target.version, candidate)
        return self._commit(res, key, current, candidate)

    def _commit(self, res: Resource, key: Key, current: JSON, candidate: JSON) -> JSON:
        """Store a changed object: no-op detection, finalizer rules, generation, RV, events."""
        old_meta, new_meta = current["metadata"], candidate["metadata"]
        new_meta["resourceVersion"] = old_meta["resourceVersion"]
        if candidate == current:
            return current
        if old_meta.get("deletionTimestamp"):
            added = set(new_meta.get("finalizers") or ()) - set(old_meta.get("finalizers") or ())
            if added:
                message = f"Forbidden: {NO_NEW_FINALIZERS}, found new finalizers {sorted(added)}"
                raise res.invalid(key[3], [cause("metadata.finalizers", message, "FieldValueForbidden")])
        if _without(candidate, res) != _without(current, res):
            new_meta["generation"] = int(old_meta.get("generation", 1)) + 1
        new_meta["resourceVersion"] = str(self._next_rv())
        if new_meta.get("deletionTimestamp") and not new_meta.get("finalizers"):
            del self._objects[key]
            self._emit("DELETED", res, candidate, current)
            self._after_removal()
        else:
            self._objects[key] = candidate
            self._emit("MODIFIED", res, candidate, current)
        return candidate

    def _delete(self, res: Resource, key: Key, propagation: str) -> tuple[JSON, bool]:
        """Mark for deletion while finalizers remain, else remove. Returns the object and whether it went."""
        current = self._objects[key]
        meta = current["metadata"]
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return current, False
            marked = copy.deepcopy(current)
            marked["metadata"].update(deletionTimestamp=now_rfc3339(), deletionGracePeriodSeconds=0)
            marked["metadata"]["resourceVersion"] = str(self._next_rv())
            self._objects[key] = marked
            self._emit("MODIFIED", res, marked, current)
            return marked, False
        if propagation == "Orphan":
            self._orphan(meta["uid"])
        elif propagation == "Foreground":
            self._delete_dependents(meta["uid"])
        final = copy.deepcopy(self._objects[key])
        final["metadata"]["resourceVersion"] = str(self._next_rv())
        del self._objects[key]
        self._emit("DELETED", res, final, current)
        self._after_removal()
        return final, True

    # -- garbage collection -------------------------------------------------------------------------

    def _after_removal(self) -> None:
        if self.gc_enabled:
            self.collect_garbage()

    def _dependents(self, uid: str) -> list[Key]:
        return [
            key
            for key, obj in self._objects.items()
            if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])
        ]

    def _orphan(self, uid: str) -> None:
        for key in self._dependents(uid):
            res = self._resources[key[0], key[1]]
            current = self._objects[key]
            candidate = copy.deepcopy(current)
            refs = [r for r in candidate["metadata"]["ownerReferences"] if r.get("uid") != uid]
            candidate["metadata"]["ownerReferences"] = refs
            if not refs:
                del candidate["metadata"]["ownerReferences"]
            self._commit(res, key, current, candidate)

    def _delete_dependents(self, uid: str) -> None:
        for key in self._dependents(uid):
            if key in self._objects:
                self._delete(self._resources[key[0], key[1]], key, "Foreground")

    def collect_garbage(self) -> None:
        """Delete objects all of whose owners are gone, and drop dangling references from objects that
        still have a live owner. Synchronous here; a real cluster's GC is eventually consistent."""
        changed = True
        while changed:
            changed = False
            uids = {o["metadata"]["uid"] for o in self._objects.values()}
            for key in list(self._objects):
                obj = self._objects.get(key)
                refs = (obj or {}).get("metadata", {}).get("ownerReferences") or []
                alive = [r for r in refs if r.get("uid") in uids]
                if obj is None or len(alive) == len(refs):
                    continue
                res = self._resources[key[0], key[1]]
                if alive:
                    candidate = copy.deepcopy(obj)
                    candidate["metadata"]["ownerReferences"] = alive
                    self._commit(res, key, obj, candidate)
                elif obj["metadata"].get("deletionTimestamp"):
                    continue
                else:
                    self._delete(res, key, "Background")
                changed = True

    # -- HTTP ---------------------------------------------------------------------------------------

    def _middleware(self) -> Middleware:
        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            record = RecordedRequest(request.method, request.path, request.query_string, request.content_type)
            self.requests.append(record)
            request[RECORD_KEY] = record
            if self.on_request is not None:
                self.on_request(record)
            if self.delay > 0:
                await asyncio.sleep(self.delay)
            response: web.StreamResponse
            if self._failures and self._failures[0][1] in (None, request.method):
                code = self._failures.popleft()[0]
                message = f'injected failure: User "system:anonymous" cannot {request.method} {request.path}'
                response = web.json_response(ApiError(code, message).body(), status=code)
            else:
                try:
                    response = await handler(request)
                except ApiError as error:
                    response = web.json_response(error.body(), status=error.code)
            record.status = response.status
            return response

        return middleware

    def _route(self, path: str) -> _Target:
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "the server could not find the requested resource", {})
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and not (len(rest) == 3 and rest[2] == "status"):
            namespace, rest = rest[1], rest[2:]
        resource = self._resources.get((group, rest[0])) if rest else None
        if (
            resource is None
            or version not in resource.versions
            or len(rest) > 3
            or (len(rest) == 3 and (rest[2] != "status" or not resource.status_subresource))
            or (namespace is not None and not resource.namespaced)
            or (len(rest) > 1 and resource.namespaced and namespace is None)
        ):
            raise ApiError(404, "the server could not find the requested resource", {})
        return _Target(resource, version, namespace, rest[1] if len(rest) > 1 else None, len(rest) == 3)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        target = self._route(request.path)
        method = request.method
        if "dryRun" in request.query:
            raise bad_request("dryRun is not implemented by the fake API server: it would have written for real")
        if target.name is None:
            if method == "GET" and go_bool(request.query.get("watch", ""), "watch"):
                return await self._watch(request, target)
            if method == "GET":
                return web.json_response(self._list(request, target))
            if method == "POST" and (target.namespace is not None or not target.resource.namespaced):
                obj = self._create(target.resource, target.version, target.namespace, await _read_json(request))
                return web.json_response(self._render(obj, target), status=201)
            if method == "DELETE":
                return web.json_response(await self._delete_collection(request, target))
        else:
            key = (target.resource.group, target.resource.plural, target.namespace or "", target.name)
            if method == "GET":
                return web.json_response(self._render(self._get(target, key), target))
            if method == "PUT":
                obj = self._update(target, key, await _read_json(request), require_rv=True)
                return web.json_response(self._render(obj, target))
            if method == "PATCH":
                return web.json_response(self._render(await self._patch(request, target, key), target))
            if method == "DELETE" and not target.status:
                return await self._delete_request(request, target, key)
        raise ApiError(405, f"the server does not allow this method on the requested resource ({method})")

    def _render(self, obj: JSON, target: _Target) -> JSON:
        return obj | {"apiVersion": target.resource.api_version(target.version)}

    def _get(self, target: _Target, key: Key) -> JSON:
        obj = self._objects.get(key)
        if obj is None:
            raise target.resource.not_found(key[3])
        return obj

    def _selected(self, request: web.Request, target: _Target) -> _Watcher:
        """A watcher (also used as the list filter) built from the request's selectors."""
        res = target.resource
        try:
            labels = parse_label_selector(request.query.get("labelSelector", ""))
            fields = parse_field_selector(request.query.get("fieldSelector", ""), res.field_labels)
        except ValueError as error:
            raise bad_request(f"unable to parse selector: {error}") from error
        return _Watcher(res, target.version, target.namespace, labels, fields)

    def _matching(self, watcher: _Watcher) -> list[JSON]:
        res = watcher.resource
        found = [(k, o) for k, o in self._objects.items() if k[:2] == (res.group, res.plural) and watcher.matches(o)]
        return [o for _, o in sorted(found, key=lambda item: _storage_key(item[0]))]

    def _list(self, request: web.Request, target: _Target) -> JSON:
        """A list, whole or one page of it (``limit``, ``continue``), as the apiserver's etcd store
        serves it: objects in storage-key order (namespace/name), every page at the first page's
        resourceVersion, ``remainingItemCount`` only when no selector filters the list."""
        query = request.query
        watcher = self._selected(request, target)
        limit = _limit(query.get("limit", ""))
        token = query.get("continue", "")
        rv, start = self._rv, ""
        if token:
            if query.get("resourceVersion", "") not in ("", "0"):
                raise bad_request("specifying resource version is not allowed when using continue")
            rv, start = _decode_continue(token)
            if rv == -1:  # an inconsistent token (from a 410): the rest at the latest version
                rv = self._rv
            elif rv < self._horizon:  # the history no longer reaches back to the list's snapshot
                inconsistent = {"continue": _encode_continue(-1, start)}  # what the apiserver offers instead
                raise ApiError(410, CONTINUE_EXPIRED, reason="Expired", list_meta=inconsistent)
        state = self._snapshot(target.resource, rv)
        found = sorted(
            (path, obj) for key, obj in state.items() if (path := _storage_key(key)) >= start and watcher.matches(obj)
        )
        page = found[:limit] if limit else found
        meta: JSON = {"resourceVersion": str(rv)}
        rest = len(found) - len(page)
        if rest:
            meta["continue"] = _encode_continue(rv, page[-1][0] + "\x00")
            if not query.get("labelSelector") and not query.get("fieldSelector"):
                meta["remainingItemCount"] = rest
        return self._list_body(target, [self._render(obj, target) for _, obj in page], meta)

    def _snapshot(self, res: Resource, rv: int) -> dict[Key, JSON]:
        """The objects of ``res`` as they were at ``rv``: the current ones with the later history undone."""
        state = {k: o for k, o in self._objects.items() if k[:2] == (res.group, res.plural)}
        for event in reversed(self._history):
            if event.rv <= rv:
                break
            if (event.resource.group, event.resource.plural) != (res.group, res.plural):
                continue
            meta = event.obj["metadata"]
            key = (res.group, res.plural, meta.get("namespace") or "", meta["name"])
            if event.type == "ADDED" or event.old is None:
                state.pop(key, None)
            else:  # MODIFIED or DELETED: back to the state before
                state[key] = event.old
        return state

    def _list_body(self, target: _Target, items: list[JSON], meta: JSON | None = None) -> JSON:
        """``items`` is always present: typed list models raise ``ValueError`` without it."""
        res = target.resource
        return {
            "apiVersion": res.api_version(target.version),
            "kind": f"{res.kind}List",
            "metadata": meta if meta is not None else {"resourceVersion": str(self._rv)},
            "items": items,
        }

    async def _patch(self, request: web.Request, target: _Target, key: Key) -> JSON:
        res, content_type = target.resource, request.content_type
        accepted = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH] + ([STRATEGIC_PATCH] if res.builtin else [])
        if content_type not in accepted or content_type == APPLY_PATCH:
            message = "the body of the request was in an unknown format - accepted media types include: " + ", ".join(
                accepted
            )
            raise ApiError(415, message)
        patch = await _read_json(request)
        current = self._get(target, key)
        if content_type == JSON_PATCH:
            if not isinstance(patch, list):
                kind = type(patch).__name__
                raise bad_request(f"json: cannot unmarshal {kind} into Go value of type jsonpatch.Patch")
            try:
                patched = json_patch(current, patch)
            except PatchError as error:
                message = f"the server rejected our request due to an error in our request: {error}"
                raise ApiError(422, message) from error
        elif not isinstance(patch, dict):
            raise bad_request("the patch must be a JSON object")
        elif content_type == STRATEGIC_PATCH:
            patched = strategic_merge_patch(current, patch)
        else:
            patched = merge_patch(current, patch)
        return self._update(target, key, patched, require_rv=False)

    def _delete_options(self, request: web.Request, body: Any) -> JSON:
        options: JSON = dict(body) if isinstance(body, dict) else {}
        for name in ("propagationPolicy", "orphanDependents", "gracePeriodSeconds"):
            if name in request.query:
                options[name] = request.query[name]
        if "orphanDependents" in options and not isinstance(options["orphanDependents"], bool):
            options["orphanDependents"] = go_bool(str(options["orphanDependents"]), "orphanDependents")
        return options

    def _check_preconditions(self, res: Resource, obj: JSON, options: JSON) -> None:
        pre = options.get("preconditions") or {}
        meta = obj["metadata"]
        if pre.get("uid") not in (None, meta["uid"]):
            message = f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta['uid']}"
            raise ApiError(409, message, res.details(meta["name"]), "Conflict")
        if pre.get("resourceVersion") not in (None, meta["resourceVersion"]):
            raise res.conflict(meta["name"])

    async def _delete_request(self, request: web.Request, target: _Target, key: Key) -> web.Response:
        res = target.resource
        options = self._delete_options(request, await _read_json(request))
        current = self._get(target, key)
        self._check_preconditions(res, current, options)
        orphan = options.get("orphanDependents")
        policy = options.get("propagationPolicy") or ("Orphan" if orphan else "Background")
        obj, gone = self._delete(res, key, str(policy))
        if not gone:
            return web.json_response(self._render(obj, target), status=202 if orphan is False else 200)
        if res.return_deleted_object:
            return web.json_response(self._render(obj, target))
        details = res.details(key[3]) | {"uid": obj["metadata"]["uid"]}
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
        return web.json_response(status)

    async def _delete_collection(self, request: web.Request, target: _Target) -> JSON:
        options = self._delete_options(request, await _read_json(request))
        watcher = self._selected(request, target)
        res = target.resource
        policy = str(options.get("propagationPolicy", "Background"))
        deleted = []
        for obj in self._matching(watcher):
            key = (res.group, res.plural, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            if key in self._objects:
                deleted.append(self._render(self._delete(res, key, policy)[0], target))
        return self._list_body(target, deleted)

    # -- watch --------------------------------------------------------------------------------------

    def _subscribe(self, watcher: _Watcher, since: str) -> str | None:
        """Queue the watch's first events and register it, in one synchronous step so nothing is lost.
        Returns the ERROR line when ``since`` is older than the history."""
        if since in ("", "0"):
            for obj in self._matching(watcher):
                watcher.queue.put_nowait(watcher.line("ADDED", obj))
        else:
            if not since.isdigit():
                raise bad_request(f"invalid resource version: {since!r}")
            if int(since) < self._horizon:
                expired = ApiError(410, f"too old resource version: {since} ({self._horizon + 1})", reason="Expired")
                return json.dumps({"type": "ERROR", "object": expired.body()})
            for event in self._history:
                line = watcher.translate(event) if event.rv > int(since) else None
                if line is not None:
                    watcher.queue.put_nowait(line)
        self._watchers.add(watcher)
        return None

    def _bookmark(self, watcher: _Watcher) -> str:
        res = watcher.resource
        meta = {"resourceVersion": str(self._rv)}
        obj = {"kind": res.kind, "apiVersion": res.api_version(watcher.version), "metadata": meta}
        return json.dumps({"type": "BOOKMARK", "object": obj})

    async def _watch(self, request: web.Request, target: _Target) -> web.StreamResponse:
        query = request.query
        try:
            timeout = float(query["timeoutSeconds"]) if "timeoutSeconds" in query else None
        except ValueError as error:
            raise bad_request(f"invalid timeoutSeconds: {query['timeoutSeconds']!r}") from error
        bookmarks = go_bool(query.get("allowWatchBookmarks", ""), "allowWatchBookmarks")
        watcher = self._selected(request, target)
        error_line = self._subscribe(watcher, query.get("resourceVersion", ""))
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            if RECORD_KEY in request:
                request[RECORD_KEY].status = 200
            if error_line is not None:
                await response.write(error_line.encode() + b"\n")
            else:
                await self._pump(request, response, watcher, timeout, bookmarks)
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away
        finally:
            self._watchers.discard(watcher)
        return response

    async def _pump(
        self,
        request: web.Request,
        response: web.StreamResponse,
        watcher: _Watcher,
        seconds: float | None,
        bookmarks: bool,
    ) -> None:
        """Write the watcher's events until ``seconds`` pass, the client leaves or ``drop_watches``."""
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + seconds
        last_write = loop.time()
        while True:
            now = loop.time()
            if deadline is not None and now >= deadline:
                return
            if request.transport is None or request.transport.is_closing():
                return
            if bookmarks and now - last_write >= self.bookmark_interval:
                await response.write(self._bookmark(watcher).encode() + b"\n")
                last_write = now
            wait = 0.1 if deadline is None else min(0.1, deadline - now)
            try:
                line = await asyncio.wait_for(watcher.queue.get(), wait)
            except TimeoutError:
                continue
            if line is None:
                return
            await response.write(line.encode() + b"\n")
            last_write = loop.time()


def _check_identity(res: Resource, key: Key, meta: JSON, current: JSON) -> None:
    """An update may not rename, move or re-identify the object."""
    name = key[3]
    if meta.get("name", name) != name:
        raise bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
    if meta.get("namespace") not in (None, "", key[2] or None):
        raise bad_request(WRONG_NAMESPACE)
    if meta.get("uid") not in (None, "", current["metadata"]["uid"]):
        shown = json.dumps(meta["uid"])
        raise res.invalid(name, [cause("metadata.uid", f"Invalid value: {shown}: field is immutable")])


def _without(obj: JSON, res: Resource) -> JSON:
    """The part of an object whose change bumps ``generation``."""
    skip = {"metadata", "apiVersion", "kind"} | ({"status"} if res.status_subresource else set())
    return {k: v for k, v in obj.items() if k not in skip}


async def _read_json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as error:
        raise bad_request(f"the request body is not valid JSON: {error}") from error
