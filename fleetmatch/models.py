"""Wire models: GameServer and Fleet, shaped like Agones' resources under ``fleetmatch.dev/v1``.

Frozen dataclasses; change one with ``dataclasses.replace``. ``fleetmatch.codec`` turns them into
camelCase wire dicts (JSON on APIs, msgpack in Redis) and back, strictly: a user-supplied fleet with
an unknown or mistyped field is rejected with the field's path. Validation of values lives in
``__post_init__`` and raises ``ValidationError`` with the wire name of the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, ClassVar, Protocol, TypeVar

from fleetmatch.codec import Timestamp, evolve, to_wire
from fleetmatch.errors import ValidationError
from fleetmatch.names import label_value_error, namespace_error, object_name_error, qualified_name_error

API_VERSION = "fleetmatch.dev/v1"
ACCEPTED_API_VERSIONS = frozenset({API_VERSION, "agones.dev/v1"})
"""Fleet files written for Agones (``agones.dev/v1``) are accepted for the fields we share."""

FLEET_LABEL = "agones.dev/fleet"
"""Label carrying the owning fleet's name, as Agones sets it (games and selectors rely on it)."""
SDK_PREFIX = "agones.dev/sdk-"
"""Prefix of labels and annotations set through the SDK, as in Agones."""
LAST_ALLOCATED_ANNOTATION = "agones.dev/last-allocated"
ERROR_ANNOTATION = "fleetmatch.dev/error"
"""Why a GameServer went to Error or Unhealthy, in words, for ``fleetmatch gs list`` and humans."""
FAILED_BEFORE_READY_ANNOTATION = "fleetmatch.dev/failed-before-ready"
"""``"true"`` on a GameServer that failed before it was ever Ready: what a fleet's crash-loop
back-off counts (a game that crashes at start, a bad template)."""


class GameServerState(StrEnum):
    PORT_ALLOCATION = "PortAllocation"
    CREATING = "Creating"
    STARTING = "Starting"
    SCHEDULED = "Scheduled"
    REQUEST_READY = "RequestReady"
    READY = "Ready"
    RESERVED = "Reserved"
    ALLOCATED = "Allocated"
    SHUTDOWN = "Shutdown"
    UNHEALTHY = "Unhealthy"
    ERROR = "Error"


TERMINAL_STATES = frozenset({GameServerState.SHUTDOWN, GameServerState.UNHEALTHY, GameServerState.ERROR})
"""States a fleet member never leaves: the fleet controller replaces it."""
PENDING_STATES = frozenset(
    {
        GameServerState.PORT_ALLOCATION,
        GameServerState.CREATING,
        GameServerState.STARTING,
        GameServerState.SCHEDULED,
        GameServerState.REQUEST_READY,
    }
)
PROTECTED_STATES = frozenset({GameServerState.ALLOCATED, GameServerState.RESERVED})
"""Never deleted by scale-down or updates: a match (or a reservation) is using the server."""


class PortPolicy(StrEnum):
    DYNAMIC = "Dynamic"
    STATIC = "Static"
    PASSTHROUGH = "Passthrough"
    NONE = "None"


class PortProtocol(StrEnum):
    UDP = "UDP"
    TCP = "TCP"
    TCPUDP = "TCPUDP"


class SchedulingStrategy(StrEnum):
    PACKED = "Packed"
    DISTRIBUTED = "Distributed"


class FleetStrategyType(StrEnum):
    ROLLING_UPDATE = "RollingUpdate"
    RECREATE = "Recreate"


def _check_labels(where: str, items: Mapping[str, str], *, values: bool) -> None:
    for key, value in items.items():
        err = qualified_name_error(key)
        if err:
            raise ValidationError(f"{where}.{key}", f"invalid key: {err}")
        if values:
            err = label_value_error(value)
            if err:
                raise ValidationError(f"{where}.{key}", f"invalid label value {value!r}: {err}")


@dataclass(frozen=True, slots=True)
class OwnerReference:
    """The object another belongs to (Kubernetes' ``ownerReferences``): a GameServer's Fleet. On
    Kubernetes the garbage collector deletes an object once its owners are gone, as it deletes a
    Deployment's Pods; the other engines keep the reference as data."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    """True: this owner manages the object (at most one owner is)."""
    block_owner_deletion: bool | None = None
    """True: a foreground deletion of the owner waits until this object is gone."""


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    name: str = ""
    namespace: str = "default"
    generate_name: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    creation_timestamp: Timestamp | None = None
    deletion_timestamp: Timestamp | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    owner_references: tuple[OwnerReference, ...] = ()

    def __post_init__(self) -> None:
        if self.name:
            err = object_name_error(self.name)
            if err:
                raise ValidationError("name", f"{self.name!r} {err}")
        err = namespace_error(self.namespace)
        if err:
            raise ValidationError("namespace", f"{self.namespace!r} {err}")
        _check_labels("labels", self.labels, values=True)
        _check_labels("annotations", self.annotations, values=False)


@dataclass(frozen=True, slots=True)
class TemplateMeta:
    """Labels and annotations copied onto every GameServer made from a template."""

    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_labels("labels", self.labels, values=True)
        _check_labels("annotations", self.annotations, values=False)


@dataclass(frozen=True, slots=True)
class GameServerPort:
    name: str = "default"
    port_policy: PortPolicy = PortPolicy.DYNAMIC
    container_port: int = 0
    """With policy None, the port the game listens on and that is reported; otherwise informative."""
    host_port: int = 0
    """With policy Static, the port to use; filled by the node for Dynamic and Passthrough."""
    protocol: PortProtocol = PortProtocol.UDP

    def __post_init__(self) -> None:
        if not self.name:
            raise ValidationError("name", "must not be empty")
        for attr, wire in (("container_port", "containerPort"), ("host_port", "hostPort")):
            value = getattr(self, attr)
            if not 0 <= value <= 65535:
                raise ValidationError(wire, f"must be within 0..65535, got {value}")
        if self.port_policy is PortPolicy.STATIC and not self.host_port:
            raise ValidationError("hostPort", "is required with portPolicy Static")
        if self.port_policy is PortPolicy.NONE and not self.container_port:
            raise ValidationError("containerPort", "is required with portPolicy None")


@dataclass(frozen=True, slots=True)
class Health:
    """Health checking as in Agones: pings must arrive within ``periodSeconds``."""

    disabled: bool = False
    period_seconds: int = 5
    failure_threshold: int = 3
    initial_delay_seconds: int = 5

    def __post_init__(self) -> None:
        for attr, wire in (
            ("period_seconds", "periodSeconds"),
            ("failure_threshold", "failureThreshold"),
        ):
            if getattr(self, attr) <= 0:
                raise ValidationError(wire, f"must be positive, got {getattr(self, attr)}")
        if self.initial_delay_seconds < 0:
            raise ValidationError("initialDelaySeconds", "must not be negative")


@dataclass(frozen=True, slots=True)
class ProcessTemplate:
    """What the local node agent runs for a GameServer: command + args + env.

    The node agent adds ``AGONES_SDK_HTTP_PORT``, ``AGONES_SDK_GRPC_PORT``, ``FLEETMATCH_GAMESERVER``
    and ``FLEETMATCH_PORT`` (plus ``FLEETMATCH_PORT_<NAME>`` per port) to ``env``.
    """

    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str = ""
    termination_grace_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not self.command or not self.command[0]:
            raise ValidationError("command", "must name a program")
        if self.termination_grace_seconds < 0:
            raise ValidationError("terminationGraceSeconds", "must not be negative")


LIST_MAX_CAPACITY = 1000
"""Largest list capacity (Agones' ``gameservers.lists.maxItems`` default)."""


@dataclass(frozen=True, slots=True)
class CounterStatus:
    """A named counter (Agones CountsAndLists): in the spec its initial value, in the status its value."""

    count: int = 0
    capacity: int = 0

    def __post_init__(self) -> None:
        if self.capacity < 0:
            raise ValidationError("capacity", f"must not be negative, got {self.capacity}")
        if not 0 <= self.count <= self.capacity:
            raise ValidationError("count", f"must be within [0, capacity={self.capacity}], got {self.count}")


@dataclass(frozen=True, slots=True)
class ListStatus:
    """A named list of distinct strings with a capacity (Agones CountsAndLists)."""

    capacity: int = 0
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.capacity <= LIST_MAX_CAPACITY:
            raise ValidationError("capacity", f"must be within [0, {LIST_MAX_CAPACITY}], got {self.capacity}")
        if len(self.values) > self.capacity:
            raise ValidationError("values", f"has {len(self.values)} values, more than capacity {self.capacity}")
        seen: set[str] = set()
        for i, value in enumerate(self.values):
            if value in seen:
                raise ValidationError(f"values[{i}]", f"duplicate value {value!r}")
            seen.add(value)


@dataclass(frozen=True, slots=True)
class PlayersSpec:
    """Player tracking (Agones alpha): declaring it makes ``status.players`` exist."""

    initial_capacity: int = 0

    def __post_init__(self) -> None:
        if self.initial_capacity < 0:
            raise ValidationError("initialCapacity", f"must not be negative, got {self.initial_capacity}")


@dataclass(frozen=True, slots=True)
class PlayerStatus:
    """Connected players (``count == len(ids)``) and the capacity the game set (as Agones, unchecked:
    a negative one is kept, and simply admits nobody)."""

    count: int = 0
    capacity: int = 0
    ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValidationError("count", f"must not be negative, got {self.count}")


@dataclass(frozen=True, slots=True)
class GameServerSpec:
    ports: tuple[GameServerPort, ...] = (GameServerPort(),)
    health: Health = Health()
    scheduling: SchedulingStrategy = SchedulingStrategy.PACKED
    process: ProcessTemplate | None = None
    """What the local node agent runs."""
    template: Mapping[str, Any] | None = None
    """Kubernetes only: the Pod template (a PodTemplateSpec, as in Agones), to which the controller
    adds the SDK sidecar, host ports and the health probe. Kept as plain JSON: the API server
    validates Pods."""
    counters: Mapping[str, CounterStatus] = field(default_factory=dict)
    """Counters the game may use, with their initial count and capacity (the SDK cannot add any)."""
    lists: Mapping[str, ListStatus] = field(default_factory=dict)
    """Lists the game may use, with their initial capacity and values (the SDK cannot add any)."""
    players: PlayersSpec | None = None
    """Player tracking; None: ``status.players`` stays null until the game uses it."""

    def __post_init__(self) -> None:
        names = [p.name for p in self.ports]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValidationError(f"ports[{i}].name", f"duplicate port name {name!r}")
        if self.process is not None and self.template is not None:
            raise ValidationError(
                "template", "give either process (local node agent) or template (Kubernetes), not both"
            )
        for where, keys in (("counters", self.counters), ("lists", self.lists)):
            for key in keys:
                if not key:
                    raise ValidationError(where, "names must not be empty")


@dataclass(frozen=True, slots=True)
class PortStatus:
    name: str
    port: int


@dataclass(frozen=True, slots=True)
class GameServerStatus:
    state: GameServerState = GameServerState.CREATING
    address: str = ""
    ports: tuple[PortStatus, ...] = ()
    node_name: str = ""
    reserved_until: Timestamp | None = None
    counters: Mapping[str, CounterStatus] = field(default_factory=dict)
    lists: Mapping[str, ListStatus] = field(default_factory=dict)
    players: PlayerStatus | None = None
    """None unless player tracking is declared (``spec.players``) or used."""


def initial_status(spec: GameServerSpec, status: GameServerStatus | None = None) -> GameServerStatus:
    """``status`` (default: a new one) with the counters, lists and players it lacks taken from ``spec``.

    A GameServer made from a template starts with this; readers of an older GameServer whose status
    lacks something its spec declares see the same thing through ``GameServer.counts``.
    """
    status = status or GameServerStatus()
    counters = {**spec.counters, **status.counters}
    lists = {**spec.lists, **status.lists}
    players = status.players
    if players is None and spec.players is not None:
        players = PlayerStatus(capacity=spec.players.initial_capacity)
    if counters == status.counters and lists == status.lists and players is status.players:
        return status
    return replace(status, counters=counters, lists=lists, players=players)


@dataclass(frozen=True, slots=True)
class GameServer:
    metadata: ObjectMeta
    spec: GameServerSpec = GameServerSpec()
    status: GameServerStatus = GameServerStatus()

    KIND: ClassVar[str] = "GameServer"
    PLURAL: ClassVar[str] = "gameservers"

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def state(self) -> GameServerState:
        return self.status.state

    @property
    def fleet(self) -> str | None:
        return self.metadata.labels.get(FLEET_LABEL)

    def with_status(self, **changes: Any) -> GameServer:
        return replace(self, status=replace(self.status, **changes))

    @property
    def counts(self) -> GameServerStatus:
        """The status with declared counters, lists and players filled in from the spec where missing."""
        return initial_status(self.spec, self.status)


@dataclass(frozen=True, slots=True)
class GameServerTemplate:
    metadata: TemplateMeta = TemplateMeta()
    spec: GameServerSpec = GameServerSpec()


def _check_int_or_percent(wire: str, value: int | str) -> None:
    if isinstance(value, int):
        if value < 0:
            raise ValidationError(wire, f"must not be negative, got {value}")
        return
    if not value.endswith("%") or not value[:-1].isdigit() or int(value[:-1]) > 100:
        raise ValidationError(wire, f"must be an integer or a percentage like '25%', got {value!r}")


def resolve_int_or_percent(value: int | str, total: int, *, round_up: bool) -> int:
    """Kubernetes IntOrString arithmetic: ``'25%'`` of ``total``, rounded as the caller needs."""
    if isinstance(value, int):
        return value
    scaled = int(value[:-1]) * total / 100
    return math.ceil(scaled) if round_up else math.floor(scaled)


@dataclass(frozen=True, slots=True)
class RollingUpdate:
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"

    def __post_init__(self) -> None:
        _check_int_or_percent("maxSurge", self.max_surge)
        _check_int_or_percent("maxUnavailable", self.max_unavailable)


@dataclass(frozen=True, slots=True)
class FleetStrategy:
    type: FleetStrategyType = FleetStrategyType.ROLLING_UPDATE
    rolling_update: RollingUpdate = RollingUpdate()


@dataclass(frozen=True, slots=True)
class FleetSpec:
    replicas: int = 0
    scheduling: SchedulingStrategy = SchedulingStrategy.PACKED
    strategy: FleetStrategy = FleetStrategy()
    template: GameServerTemplate = GameServerTemplate()

    def __post_init__(self) -> None:
        if self.replicas < 0:
            raise ValidationError("replicas", f"must not be negative, got {self.replicas}")
        spec = self.template.spec
        if spec.process is None and spec.template is None:
            raise ValidationError(
                "template.spec.process",
                "is required: what should run? (process on the local node agent, or template: a Pod template "
                "on Kubernetes)",
            )


@dataclass(frozen=True, slots=True)
class FleetCondition:
    """Something true of a fleet that an operator should know, as Kubernetes conditions go (e.g.
    ``CrashLoopBackOff``: its servers fail before Ready and replacements slow down)."""

    type: str
    status: str = "True"
    reason: str = ""
    message: str = ""
    last_transition_time: Timestamp | None = None


@dataclass(frozen=True, slots=True)
class FleetStatus:
    replicas: int = 0
    """Servers that count toward ``spec.replicas``: every member not Shutdown or being deleted."""
    ready_replicas: int = 0
    reserved_replicas: int = 0
    allocated_replicas: int = 0
    updated_replicas: int = 0
    """Members made from the current template (a rolling update is done when this equals replicas)."""
    states: Mapping[str, int] = field(default_factory=dict)
    """Members per state, e.g. ``{"Ready": 3, "Allocated": 1, "Unhealthy": 1}``."""
    observed_generation: int = 0
    conditions: tuple[FleetCondition, ...] = ()


@dataclass(frozen=True, slots=True)
class Fleet:
    metadata: ObjectMeta
    spec: FleetSpec
    status: FleetStatus = FleetStatus()

    KIND: ClassVar[str] = "Fleet"
    PLURAL: ClassVar[str] = "fleets"

    @property
    def name(self) -> str:
        return self.metadata.name


class AutoscalerPolicyType(StrEnum):
    BUFFER = "Buffer"


class AutoscalerSyncType(StrEnum):
    FIXED_INTERVAL = "FixedInterval"


@dataclass(frozen=True, slots=True)
class BufferPolicy:
    """Keep ``bufferSize`` servers (or that share of the fleet) Ready beyond the Allocated ones."""

    buffer_size: int | str = 5
    min_replicas: int = 0
    max_replicas: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.buffer_size, int):
            if self.buffer_size <= 0:
                raise ValidationError("bufferSize", f"must be positive, got {self.buffer_size}")
        else:
            pct = self.buffer_size[:-1]
            if not self.buffer_size.endswith("%") or not pct.isdigit() or not 1 <= int(pct) <= 99:
                raise ValidationError(
                    "bufferSize", f"must be an integer or a percentage 1%..99%, got {self.buffer_size!r}"
                )
            if self.min_replicas < 1:
                raise ValidationError("minReplicas", "must be at least 1 with a percentage bufferSize")
        if self.min_replicas < 0:
            raise ValidationError("minReplicas", f"must not be negative, got {self.min_replicas}")
        if self.max_replicas < 1:
            raise ValidationError("maxReplicas", f"must be at least 1, got {self.max_replicas}")
        if self.min_replicas > self.max_replicas:
            raise ValidationError(
                "minReplicas", f"must not exceed maxReplicas ({self.min_replicas} > {self.max_replicas})"
            )
        if isinstance(self.buffer_size, int) and self.buffer_size > self.max_replicas:
            raise ValidationError(
                "maxReplicas", f"must be at least bufferSize ({self.max_replicas} < {self.buffer_size})"
            )


@dataclass(frozen=True, slots=True)
class AutoscalerPolicy:
    type: AutoscalerPolicyType = AutoscalerPolicyType.BUFFER
    buffer: BufferPolicy | None = None

    def __post_init__(self) -> None:
        if self.type is AutoscalerPolicyType.BUFFER and self.buffer is None:
            raise ValidationError("buffer", "is required with type Buffer")


@dataclass(frozen=True, slots=True)
class FixedInterval:
    seconds: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.seconds <= 3600:
            raise ValidationError("seconds", f"must be within (0, 3600], got {self.seconds}")


@dataclass(frozen=True, slots=True)
class AutoscalerSync:
    """How often the policy is evaluated besides on every allocation (default every second)."""

    type: AutoscalerSyncType = AutoscalerSyncType.FIXED_INTERVAL
    fixed_interval: FixedInterval = FixedInterval()


@dataclass(frozen=True, slots=True)
class FleetAutoscalerSpec:
    fleet_name: str
    policy: AutoscalerPolicy
    sync: AutoscalerSync = AutoscalerSync()
    scale_down_cooloff_seconds: float = 0.0
    """Scale down only if no scaling happened for this long: a burst does not make the fleet flap."""

    def __post_init__(self) -> None:
        err = object_name_error(self.fleet_name)
        if err:
            raise ValidationError("fleetName", f"{self.fleet_name!r} {err}")
        if self.scale_down_cooloff_seconds < 0:
            raise ValidationError("scaleDownCooloffSeconds", "must not be negative")


@dataclass(frozen=True, slots=True)
class FleetAutoscalerStatus:
    current_replicas: int = 0
    desired_replicas: int = 0
    last_scale_time: Timestamp | None = None
    able_to_scale: bool = False
    scaling_limited: bool = False


@dataclass(frozen=True, slots=True)
class FleetAutoscaler:
    metadata: ObjectMeta
    spec: FleetAutoscalerSpec
    status: FleetAutoscalerStatus = FleetAutoscalerStatus()

    KIND: ClassVar[str] = "FleetAutoscaler"
    PLURAL: ClassVar[str] = "fleetautoscalers"

    @property
    def name(self) -> str:
        return self.metadata.name


class Resource(Protocol):
    """What every stored object has: metadata, and its kind names."""

    KIND: ClassVar[str]
    PLURAL: ClassVar[str]

    @property
    def metadata(self) -> ObjectMeta: ...


R = TypeVar("R", bound=GameServer | Fleet | FleetAutoscaler)


def stamp(obj: R, **changes: Any) -> R:
    """``with_meta`` without re-validating: for server-owned fields (versions, uid, timestamps) and
    values the caller validated already. Hot paths (store writes, claims) use it."""
    return evolve(obj, metadata=evolve(obj.metadata, **changes))


def with_meta(obj: R, **changes: Any) -> R:
    """``obj`` with some metadata fields replaced."""
    return replace(obj, metadata=replace(obj.metadata, **changes))


def encode(obj: GameServer | Fleet | FleetAutoscaler) -> dict[str, Any]:
    """The wire document of a resource, with ``apiVersion`` and ``kind``."""
    return {"apiVersion": API_VERSION, "kind": obj.KIND, **to_wire(obj)}


def failed(gs: GameServer, state: GameServerState, why: str, *, its_own_fault: bool = True) -> GameServer | None:
    """``gs`` moved to terminal ``state`` with the reason ``why`` and, if it never got to Ready and
    the failure is its own (not its node's), marked as failed before Ready; None if it is terminal
    already (never leave a terminal state)."""
    if gs.state in TERMINAL_STATES:
        return None
    annotations = {**gs.metadata.annotations, ERROR_ANNOTATION: why}
    if its_own_fault and gs.state in PENDING_STATES:
        annotations[FAILED_BEFORE_READY_ANNOTATION] = "true"
    return with_meta(gs, annotations=annotations).with_status(state=state)
