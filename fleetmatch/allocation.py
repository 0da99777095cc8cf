"""The allocation API's wire types: a GameServerAllocation request and its result.

Shaped like Agones' ``GameServerAllocation`` (``spec.selectors``, ``scheduling``, ``metadata``;
``status.state`` Allocated / UnAllocated / Contention, ``gameServerName``, ``address``, ``ports``,
``nodeName``, ``metadata``). Shared by the allocator (which serves it) and its clients (the CLI,
the matchmaker), so it lives in the kernel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from fleetmatch.codec import from_wire, to_wire
from fleetmatch.errors import ValidationError
from fleetmatch.models import (
    ACCEPTED_API_VERSIONS,
    API_VERSION,
    FLEET_LABEL,
    GameServerState,
    PortStatus,
    SchedulingStrategy,
    TemplateMeta,
)
from fleetmatch.names import label_value_error, qualified_name_error

ALLOCATABLE_STATES = frozenset({GameServerState.READY, GameServerState.ALLOCATED})


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True, slots=True)
class LabelRequirement:
    """One Kubernetes ``matchExpressions`` entry."""

    key: str
    operator: SelectorOperator
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        err = qualified_name_error(self.key)
        if err:
            raise ValidationError("key", f"invalid label key {self.key!r}: {err}")
        if self.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN):
            if not self.values:
                raise ValidationError("values", f"must not be empty with operator {self.operator}")
        elif self.values:
            raise ValidationError("values", f"must be empty with operator {self.operator}")
        for i, value in enumerate(self.values):
            err = label_value_error(value)
            if err:
                raise ValidationError(f"values[{i}]", f"invalid label value {value!r}: {err}")

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.operator is SelectorOperator.IN:
            return value is not None and value in self.values
        if self.operator is SelectorOperator.NOT_IN:
            return value is None or value not in self.values
        if self.operator is SelectorOperator.EXISTS:
            return value is not None
        return value is None


@dataclass(frozen=True, slots=True)
class GameServerSelector:
    """Which servers a request may take: labels (all must match) and the state to take them from."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[LabelRequirement, ...] = ()
    game_server_state: GameServerState = GameServerState.READY

    def __post_init__(self) -> None:
        for key, value in self.match_labels.items():
            err = qualified_name_error(key)
            if err:
                raise ValidationError(f"matchLabels.{key}", f"invalid label key: {err}")
            err = label_value_error(value)
            if err:
                raise ValidationError(f"matchLabels.{key}", f"invalid label value {value!r}: {err}")
        if self.game_server_state not in ALLOCATABLE_STATES:
            raise ValidationError("gameServerState", f"must be Ready or Allocated, got {self.game_server_state}")

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.match_labels.items():
            if labels.get(key) != value:
                return False
        return all(req.matches(labels) for req in self.match_expressions)

    @classmethod
    def for_fleet(cls, fleet: str, **labels: str) -> GameServerSelector:
        return cls(match_labels={FLEET_LABEL: fleet, **labels})


@dataclass(frozen=True, slots=True)
class GameServerAllocationSpec:
    selectors: tuple[GameServerSelector, ...] = (GameServerSelector(),)
    """Tried in order; the first that finds a server wins (e.g. Allocated-with-room, then Ready)."""
    scheduling: SchedulingStrategy = SchedulingStrategy.PACKED
    metadata: TemplateMeta = field(default_factory=TemplateMeta)
    """Labels and annotations put on the server in the same write that marks it Allocated."""

    def __post_init__(self) -> None:
        if not self.selectors:
            raise ValidationError("selectors", "must name at least one selector")
        if len(self.selectors) > 16:
            raise ValidationError("selectors", f"at most 16 selectors, got {len(self.selectors)}")


class AllocationState(StrEnum):
    ALLOCATED = "Allocated"
    UNALLOCATED = "UnAllocated"
    CONTENTION = "Contention"


@dataclass(frozen=True, slots=True)
class GameServerAllocationStatus:
    state: AllocationState
    game_server_name: str = ""
    address: str = ""
    ports: tuple[PortStatus, ...] = ()
    node_name: str = ""
    metadata: TemplateMeta = field(default_factory=TemplateMeta)
    """The server's labels and annotations after the allocation."""


@dataclass(frozen=True, slots=True)
class GameServerAllocation:
    spec: GameServerAllocationSpec = GameServerAllocationSpec()
    status: GameServerAllocationStatus | None = None

    KIND: ClassVar[str] = "GameServerAllocation"


def decode_allocation(doc: Any) -> GameServerAllocation:
    """A request body: ``{"spec": {...}}``, with optional ``apiVersion``/``kind``/``metadata``."""
    if not isinstance(doc, Mapping):
        raise ValidationError("", f"the body must be a JSON object, got {type(doc).__name__}")
    body = dict(doc)
    api_version = body.pop("apiVersion", API_VERSION)
    kind = body.pop("kind", GameServerAllocation.KIND)
    body.pop("metadata", None)  # accepted for kubectl-shaped documents; the namespace is the allocator's
    if api_version not in ACCEPTED_API_VERSIONS and api_version != "allocation.agones.dev/v1":
        raise ValidationError("apiVersion", f"must be {API_VERSION}, got {api_version!r}")
    if kind != GameServerAllocation.KIND:
        raise ValidationError("kind", f"must be {GameServerAllocation.KIND}, got {kind!r}")
    if body.get("status") is not None:
        raise ValidationError("status", "is set by the allocator; leave it out of requests")
    unknown = set(body) - {"spec", "status"}
    if unknown:
        return from_wire(GameServerAllocation, body)  # the generic decoder names the unknown field
    spec = body.get("spec", {})
    if not isinstance(spec, Mapping) or set(spec) - _SPEC_FIELDS or not isinstance(spec.get("selectors", []), list):
        return from_wire(GameServerAllocation, body)
    fields: dict[str, Any] = {}
    if "selectors" in spec:
        fields["selectors"] = _selectors(spec["selectors"])
    if "scheduling" in spec or "metadata" in spec:
        rest = {k: v for k, v in spec.items() if k != "selectors"}
        decoded = from_wire(GameServerAllocationSpec, rest, "spec")
        fields.update(scheduling=decoded.scheduling, metadata=decoded.metadata)
    try:
        return GameServerAllocation(spec=GameServerAllocationSpec(**fields))
    except ValidationError as exc:
        raise exc.under("spec") from None


_SPEC_FIELDS = frozenset({"selectors", "scheduling", "metadata"})
_SELECTOR_CACHE: dict[str, tuple[GameServerSelector, ...]] = {}
_SELECTOR_CACHE_SIZE = 1024


def _selectors(raw: list[Any]) -> tuple[GameServerSelector, ...]:
    """Selectors decoded and validated once per distinct JSON: clients send the same few over and
    over (the per-match part of a request is its metadata), and selectors are immutable."""
    key = repr(raw)
    cached = _SELECTOR_CACHE.get(key)
    if cached is None:
        cached = from_wire(_Selectors, {"selectors": raw}, "spec").selectors
        if len(_SELECTOR_CACHE) >= _SELECTOR_CACHE_SIZE:
            del _SELECTOR_CACHE[next(iter(_SELECTOR_CACHE))]
        _SELECTOR_CACHE[key] = cached
    return cached


@dataclass(frozen=True, slots=True)
class _Selectors:
    selectors: tuple[GameServerSelector, ...]


def encode_allocation(allocation: GameServerAllocation) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": GameServerAllocation.KIND, **to_wire(allocation)}
