"""The allocation API's wire types: a GameServerAllocation request and its result.

Shaped like Agones' ``GameServerAllocation`` (``spec.selectors``, ``scheduling``, ``metadata``;
``status.state`` Allocated / UnAllocated / Contention, ``gameServerName``, ``address``, ``ports``,
``nodeName``, ``metadata``). Shared by the allocator (which serves it) and its clients (the CLI,
the matchmaker), so it lives in the kernel.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from fleetmatch.codec import OneOf, format_timestamp, from_wire, parse_timestamp, to_wire
from fleetmatch.documents import Kind
from fleetmatch.errors import ValidationError
from fleetmatch.models import (
    ACCEPTED_API_VERSIONS,
    API_VERSION,
    FLEET_LABEL,
    CounterStatus,
    GameServer,
    GameServerState,
    GameServerStatus,
    ListStatus,
    PortStatus,
    SchedulingStrategy,
    TemplateMeta,
    initial_status,
)
from fleetmatch.names import label_value_error, qualified_name_error

ALLOCATABLE_STATES = frozenset({GameServerState.READY, GameServerState.ALLOCATED})

IDEMPOTENCY_HEADER = "Idempotency-Key"
"""Request header naming one logical allocation: its retries get the same server, never a second."""
ALLOCATION_KEY_ANNOTATION = "fleetmatch.dev/allocation-key"
"""On an Allocated server: the idempotency keys of the allocations it serves, newest first,
separated by spaces (one, unless it is a high-density server allocated again)."""
ALLOCATION_REQUEST_ANNOTATION = "fleetmatch.dev/allocation-request"
"""Beside it: a digest of each key's request body, in the same order (a key reused with another
body is refused)."""
ALLOCATION_LEASE_ANNOTATION = "fleetmatch.dev/allocation-lease"
"""On a server taken from Ready while allocation leases are on: ``<RFC 3339 expiry> <fingerprint>``.
Until its game changes it (any SDK call that writes), it is recycled at the expiry."""
_ALLOCATOR_ANNOTATIONS = (ALLOCATION_KEY_ANNOTATION, ALLOCATION_REQUEST_ANNOTATION, ALLOCATION_LEASE_ANNOTATION)
MAX_KEYS_PER_SERVER = 16
"""Keys kept on one server (high density: one per room); the oldest are forgotten first."""
MAX_KEY_LENGTH = 128


def idempotency_key_error(key: str) -> str | None:
    """Why ``key`` cannot be an idempotency key, or None: 1 to 128 visible ASCII characters (it is
    stored space-separated in an annotation)."""
    if not key:
        return "must not be empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"must be at most {MAX_KEY_LENGTH} characters, got {len(key)}"
    if not all("!" <= c <= "~" for c in key):
        return "must be visible ASCII characters (no spaces or control characters)"
    return None


@dataclass(frozen=True, slots=True)
class AllocationKey:
    """An allocation request's idempotency key and the digest of its body (``request_digest``)."""

    value: str
    digest: str


def request_digest(spec: Any) -> str:
    """A digest of a request's ``spec`` as sent (JSON), the same whatever the key order."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def allocation_keys(gs: GameServer) -> list[tuple[str, str]]:
    """(key, request digest) pairs recorded on ``gs``, newest first; none unless it is Allocated
    (a server back in Ready, or going away, serves no allocation any more)."""
    annotations = gs.metadata.annotations
    keys = annotations.get(ALLOCATION_KEY_ANNOTATION)
    if not keys or gs.status.state is not GameServerState.ALLOCATED:
        return []
    digests = annotations.get(ALLOCATION_REQUEST_ANNOTATION, "").split(" ")
    return [(key, digests[i] if i < len(digests) else "") for i, key in enumerate(keys.split(" "))]


def with_allocation_key(annotations: dict[str, str], key: AllocationKey, *, kept: list[tuple[str, str]]) -> None:
    """Record ``key`` in ``annotations`` (in place), newest first, after the ``kept`` ones."""
    pairs = [(key.value, key.digest), *((k, d) for k, d in kept if k != key.value)][:MAX_KEYS_PER_SERVER]
    annotations[ALLOCATION_KEY_ANNOTATION] = " ".join(k for k, _ in pairs)
    annotations[ALLOCATION_REQUEST_ANNOTATION] = " ".join(d for _, d in pairs)


def allocation_fingerprint(labels: Mapping[str, str], annotations: Mapping[str, str], status: GameServerStatus) -> str:
    """What a game could change through the SDK (state, players, counters, lists, labels,
    annotations but the lease's own), digested: equal while the game has done nothing."""
    doc = {
        "l": labels,
        "a": {k: v for k, v in annotations.items() if k != ALLOCATION_LEASE_ANNOTATION},
        "s": [status.state.value, status.reserved_until],
        "p": None if status.players is None else to_wire(status.players),
        "c": {k: [c.count, c.capacity] for k, c in status.counters.items()},
        "li": {k: [v.capacity, list(v.values)] for k, v in status.lists.items()},
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def lease_annotation(
    expiry: float, labels: Mapping[str, str], annotations: Mapping[str, str], status: GameServerStatus
) -> str:
    """The ``ALLOCATION_LEASE_ANNOTATION`` value of a server written with these labels, annotations
    and status, leased until ``expiry``."""
    return f"{format_timestamp(expiry)} {allocation_fingerprint(labels, annotations, status)}"


def lease_expired(gs: GameServer, now: float) -> bool:
    """Is ``gs`` an allocation its game never confirmed, past its lease? Allocated, leased, unchanged
    since the allocation wrote it (no SDK call changed anything), and ``now`` past the expiry. A
    malformed lease is never expired: recycling a server is not done on a guess."""
    lease = gs.metadata.annotations.get(ALLOCATION_LEASE_ANNOTATION)
    if lease is None or gs.status.state is not GameServerState.ALLOCATED:
        return False
    expiry_text, _, fingerprint = lease.partition(" ")
    try:
        expiry = parse_timestamp(expiry_text)
    except ValueError:
        return False
    if now < expiry:
        return False
    return fingerprint == allocation_fingerprint(gs.metadata.labels, gs.metadata.annotations, gs.status)


def lease_expiry(gs: GameServer) -> float | None:
    """When ``gs``'s allocation lease expires (None: it has none, or it is not Allocated)."""
    lease = gs.metadata.annotations.get(ALLOCATION_LEASE_ANNOTATION)
    if lease is None or gs.status.state is not GameServerState.ALLOCATED:
        return None
    try:
        return parse_timestamp(lease.partition(" ")[0])
    except ValueError:
        return None


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


def _not_negative(where: str, **values: int) -> None:
    for name, value in values.items():
        if value < 0:
            raise ValidationError(f"{where}{name}", f"must not be negative, got {value}")


@dataclass(frozen=True, slots=True)
class CounterSelector:
    """A counter's bounds (Agones ``selectors[].counters``): ``maxCount``/``maxAvailable`` 0 = no upper bound.
    Available is capacity minus count."""

    min_count: int = 0
    max_count: int = 0
    min_available: int = 0
    max_available: int = 0

    def __post_init__(self) -> None:
        _not_negative("", minCount=self.min_count, maxCount=self.max_count, minAvailable=self.min_available,
                      maxAvailable=self.max_available)  # fmt: skip

    def matches(self, counter: CounterStatus) -> bool:
        available = max(0, counter.capacity - counter.count)
        return _within(counter.count, self.min_count, self.max_count) and _within(
            available, self.min_available, self.max_available
        )


@dataclass(frozen=True, slots=True)
class ListSelector:
    """A list's bounds (Agones ``selectors[].lists``): it holds ``containsValue`` (if set) and has
    between ``minAvailable`` and ``maxAvailable`` (0 = no bound) free places."""

    contains_value: str = ""
    min_available: int = 0
    max_available: int = 0

    def __post_init__(self) -> None:
        _not_negative("", minAvailable=self.min_available, maxAvailable=self.max_available)

    def matches(self, lst: ListStatus) -> bool:
        if self.contains_value and self.contains_value not in lst.values:
            return False
        return _within(max(0, lst.capacity - len(lst.values)), self.min_available, self.max_available)


@dataclass(frozen=True, slots=True)
class PlayerSelector:
    """Room for players (Agones ``selectors[].players``): free places within [minAvailable, maxAvailable]."""

    min_available: int = 0
    max_available: int = 0

    def __post_init__(self) -> None:
        _not_negative("", minAvailable=self.min_available, maxAvailable=self.max_available)


def _within(value: int, low: int, high: int) -> bool:
    return value >= low and (high == 0 or value <= high)


@dataclass(frozen=True, slots=True)
class GameServerSelector:
    """Which servers a request may take: labels (all must match), the state to take them from, and
    bounds on counters, lists and player room (high-density servers: several matches per process)."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[LabelRequirement, ...] = ()
    game_server_state: Annotated[GameServerState, OneOf((GameServerState.READY, GameServerState.ALLOCATED))] = (
        GameServerState.READY
    )
    counters: Mapping[str, CounterSelector] = field(default_factory=dict)
    lists: Mapping[str, ListSelector] = field(default_factory=dict)
    players: PlayerSelector | None = None

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

    @property
    def filters_counts(self) -> bool:
        return bool(self.counters or self.lists or self.players)

    def counts_match(self, gs: GameServer) -> bool:
        """Counters, lists and players within the bounds; one the server lacks never matches."""
        status = initial_status(gs.spec, gs.status)
        for name, bounds in self.counters.items():
            counter = status.counters.get(name)
            if counter is None or not bounds.matches(counter):
                return False
        for name, list_bounds in self.lists.items():
            lst = status.lists.get(name)
            if lst is None or not list_bounds.matches(lst):
                return False
        if self.players is not None:
            players = status.players
            if players is None:
                return False
            room = max(0, players.capacity - players.count)
            if not _within(room, self.players.min_available, self.players.max_available):
                return False
        return True

    @classmethod
    def for_fleet(cls, fleet: str, **labels: str) -> GameServerSelector:
        return cls(match_labels={FLEET_LABEL: fleet, **labels})


class CounterActionType(StrEnum):
    INCREMENT = "Increment"
    DECREMENT = "Decrement"


@dataclass(frozen=True, slots=True)
class CounterAction:
    """Done to a counter in the claiming write (Agones ``spec.counters``): count +/- amount, and/or
    a new capacity. An action that would leave [0, capacity] is not applied (the allocation still
    succeeds; select with ``minAvailable`` to be sure of room), as in Agones."""

    action: CounterActionType | None = None
    amount: int = 0
    capacity: int | None = None

    def __post_init__(self) -> None:
        _not_negative("", amount=self.amount)
        if self.capacity is not None:
            _not_negative("", capacity=self.capacity)
        if self.amount and self.action is None:
            raise ValidationError("action", "is required with an amount (Increment or Decrement)")

    def apply(self, counter: CounterStatus) -> CounterStatus:
        capacity = counter.capacity if self.capacity is None else self.capacity
        count = min(counter.count, capacity)
        if self.action is not None:
            step = self.amount if self.action is CounterActionType.INCREMENT else -self.amount
            if 0 <= count + step <= capacity:
                count += step
        return CounterStatus(count=count, capacity=capacity)


@dataclass(frozen=True, slots=True)
class ListAction:
    """Done to a list in the claiming write (Agones ``spec.lists``): values added (those already
    there, or beyond capacity, are skipped), values deleted, and/or a new capacity."""

    add_values: tuple[str, ...] = ()
    delete_values: tuple[str, ...] = ()
    capacity: int | None = None

    def __post_init__(self) -> None:
        if self.capacity is not None:
            ListStatus(capacity=self.capacity)  # validates the range

    def apply(self, lst: ListStatus) -> ListStatus:
        capacity = lst.capacity if self.capacity is None else self.capacity
        deleted = set(self.delete_values)
        values = [v for v in lst.values if v not in deleted][:capacity]
        for value in self.add_values:
            if value not in values and len(values) < capacity:
                values.append(value)
        return ListStatus(capacity=capacity, values=tuple(values))


@dataclass(frozen=True, slots=True)
class GameServerAllocationSpec:
    selectors: tuple[GameServerSelector, ...] = (GameServerSelector(),)
    """Tried in order; the first that finds a server wins (e.g. Allocated-with-room, then Ready)."""
    scheduling: SchedulingStrategy = SchedulingStrategy.PACKED
    metadata: TemplateMeta = field(default_factory=TemplateMeta)
    """Labels and annotations put on the server in the same write that marks it Allocated."""
    counters: Mapping[str, CounterAction] = field(default_factory=dict)
    """Counter changes made in the claiming write (e.g. ``rooms: {action: Increment, amount: 1}``)."""
    lists: Mapping[str, ListAction] = field(default_factory=dict)
    """List changes made in the claiming write (e.g. ``players: {addValues: [p1, p2]}``)."""

    def __post_init__(self) -> None:
        for name in _ALLOCATOR_ANNOTATIONS:
            if name in self.metadata.annotations:
                raise ValidationError(f"metadata.annotations.{name}", "is set by the allocator; leave it out")
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
    counters: Mapping[str, CounterStatus] = field(default_factory=dict)
    """The server's counters after the allocation."""
    lists: Mapping[str, ListStatus] = field(default_factory=dict)
    """The server's lists after the allocation."""


@dataclass(frozen=True, slots=True)
class GameServerAllocation:
    spec: GameServerAllocationSpec = GameServerAllocationSpec()
    status: GameServerAllocationStatus | None = None

    KIND: ClassVar[str] = "GameServerAllocation"


ALLOCATION = Kind(
    GameServerAllocation,
    ACCEPTED_API_VERSIONS | {"allocation.agones.dev/v1"},
    ignored=frozenset({"metadata"}),  # accepted for kubectl-shaped documents; the namespace is the allocator's
)


def decode_allocation(doc: Any) -> GameServerAllocation:
    """A request body: ``{"spec": {...}}``, with optional ``apiVersion``/``kind``/``metadata``.

    The envelope is ``ALLOCATION``'s, as for every document; the spec takes a faster path than the
    generic decoder (it is on every request), with the same errors, and selectors are cached."""
    if isinstance(doc, Mapping):
        for name in ("apiVersion", "kind"):
            value = doc.get(name)
            if value is not None and not isinstance(value, str):
                raise ValidationError(name, f"expected a string, got {type(value).__name__}")
        if not isinstance(doc.get("metadata", {}), Mapping):
            raise ValidationError("metadata", f"expected a mapping, got {type(doc['metadata']).__name__}")
    body = ALLOCATION.body(doc)
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
    if set(spec) - {"selectors"}:
        rest = {k: v for k, v in spec.items() if k != "selectors"}
        decoded = from_wire(GameServerAllocationSpec, rest, "spec")
        fields.update(
            scheduling=decoded.scheduling, metadata=decoded.metadata, counters=decoded.counters, lists=decoded.lists
        )
    try:
        return GameServerAllocation(spec=GameServerAllocationSpec(**fields))
    except ValidationError as exc:
        raise exc.under("spec") from None


_SPEC_FIELDS = frozenset({"selectors", "scheduling", "metadata", "counters", "lists"})
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
