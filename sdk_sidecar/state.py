"""The SDK state machine, pure: what an SDK call asks for, and what that means for a stored GameServer.

An SDK call never writes: it becomes a ``Pending`` change, and pending changes merge (``a.merge(b)``:
``b`` happened later), so a burst of calls turns into one store write. The writer applies the merged
change with ``apply(pending, current, now)`` to the object it has *just read*, so the rules below hold
against the latest stored state, not against whatever the session saw when the call arrived (the node
agent may have written Unhealthy in between).

Rules (Agones' ``pkg/sdkserver``, with the choices Agones leaves open made explicit):

- Ready → ``RequestReady`` (the node agent promotes it to Ready); a server already Ready stays Ready
  rather than flickering through RequestReady.
- Allocate → ``Allocated``, stamping ``agones.dev/last-allocated`` with the write time.
- Shutdown → ``Shutdown``.
- Reserve(s) → ``Reserved`` with ``status.reservedUntil = now + s``; ``s <= 0`` reserves until told
  otherwise. When the timer ends, the session asks for Ready, but only if the server is still Reserved
  (``StateChange.only_from``): a server allocated meanwhile is not pulled back into the pool.
- "No escaping": no state change is applied to a server that is being deleted or is in a terminal state
  (Shutdown, Unhealthy, Error): the fleet replaces such servers, and a late Ready must not revive one.
  Labels and annotations are still applied, as in Agones.
- Among pending changes, a terminal one (Shutdown, Unhealthy) is never overridden by a later call.
- SetLabel/SetAnnotation store the key as ``agones.dev/sdk-<key>``; the full key must be a valid
  Kubernetes qualified name and a label value a valid label value, else ``InvalidArgumentError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum

from fleetmatch.codec import format_timestamp
from fleetmatch.errors import FleetmatchError
from fleetmatch.models import (
    LAST_ALLOCATED_ANNOTATION,
    SDK_PREFIX,
    TERMINAL_STATES,
    GameServer,
    GameServerState,
)
from fleetmatch.names import label_value_error, qualified_name_error

MAX_RESERVE_SECONDS = 10 * 365 * 24 * 3600
"""Longest finite reservation (ten years); beyond it timestamps overflow, and nobody means it."""

_FINAL_CHANGES = frozenset({GameServerState.SHUTDOWN, GameServerState.UNHEALTHY})


class GrpcCode(IntEnum):
    """gRPC status codes: both front doors report errors with these (REST maps them to HTTP)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class SdkCallError(FleetmatchError):
    """An SDK call refused; ``code`` is what a gRPC client sees, REST maps it to an HTTP status."""

    code: GrpcCode = GrpcCode.UNKNOWN

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class InvalidArgumentError(SdkCallError):
    """Malformed request, wrong type, invalid label key or value (HTTP 400)."""

    code = GrpcCode.INVALID_ARGUMENT


class UnavailableError(SdkCallError):
    """The game server's SDK session is closed or unknown (HTTP 503): retry or give up."""

    code = GrpcCode.UNAVAILABLE


@dataclass(frozen=True, slots=True)
class StateChange:
    """A requested ``status.state``; ``reserved_until`` only means something for Reserved."""

    state: GameServerState
    reserved_until: float | None = None
    only_from: GameServerState | None = None
    """Apply only if the stored state is this one (the end of a reservation)."""


def _merge_change(earlier: StateChange | None, later: StateChange | None) -> StateChange | None:
    if later is None:
        return earlier
    if earlier is None:
        return later
    if earlier.state in _FINAL_CHANGES:
        return earlier
    if later.only_from is not None:
        # "Ready if still Reserved" after "Reserve": the condition holds iff the earlier change applies.
        return replace(later, only_from=earlier.only_from) if earlier.state is later.only_from else earlier
    return later


@dataclass(frozen=True, slots=True)
class Pending:
    """Changes not yet written: the last requested state plus labels/annotations (full keys)."""

    change: StateChange | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.change is None and not self.labels and not self.annotations

    def merge(self, later: Pending) -> Pending:
        """Both changes as one, ``later`` winning where they overlap (except after Shutdown/Unhealthy)."""
        if later.empty:
            return self
        if self.empty:
            return later
        return Pending(
            _merge_change(self.change, later.change),
            {**self.labels, **later.labels},
            {**self.annotations, **later.annotations},
        )


# -- SDK calls -> pending changes ------------------------------------------------------------------


def ready() -> Pending:
    return Pending(StateChange(GameServerState.REQUEST_READY))


def allocate() -> Pending:
    return Pending(StateChange(GameServerState.ALLOCATED))


def shutdown() -> Pending:
    return Pending(StateChange(GameServerState.SHUTDOWN))


def unhealthy() -> Pending:
    """What the health tracker asks for once the game stopped pinging."""
    return Pending(StateChange(GameServerState.UNHEALTHY))


def reserve(seconds: int, now: float) -> Pending:
    """Reserved for ``seconds`` from ``now`` (epoch seconds); ``seconds <= 0``: until told otherwise."""
    if seconds > MAX_RESERVE_SECONDS:
        raise InvalidArgumentError(f"seconds must be at most {MAX_RESERVE_SECONDS} (0 reserves indefinitely)")
    until = now + seconds if seconds > 0 else None
    return Pending(StateChange(GameServerState.RESERVED, reserved_until=until))


def end_reservation() -> Pending:
    """The reserve timer ran out: back to Ready, unless something else happened to the server."""
    return Pending(StateChange(GameServerState.REQUEST_READY, only_from=GameServerState.RESERVED))


def sdk_key(key: str) -> str:
    """The stored key of an SDK label or annotation."""
    return SDK_PREFIX + key


def set_label(key: str, value: str) -> Pending:
    full = sdk_key(key)
    err = qualified_name_error(full)
    if err:
        raise InvalidArgumentError(f"invalid label key {full!r}: {err}")
    err = label_value_error(value)
    if err:
        raise InvalidArgumentError(f"invalid label value {value!r}: {err}")
    return Pending(labels={full: value})


def set_annotation(key: str, value: str) -> Pending:
    full = sdk_key(key)
    err = qualified_name_error(full)
    if err:
        raise InvalidArgumentError(f"invalid annotation key {full!r}: {err}")
    return Pending(annotations={full: value})


# -- pending change + stored object -> object to write ---------------------------------------------


def state_change_allowed(current: GameServer, change: StateChange) -> bool:
    """False when "no escaping" applies, or the change is conditional and its condition fails."""
    if current.metadata.deletion_timestamp is not None or current.state in TERMINAL_STATES:
        return False
    return change.only_from is None or current.state is change.only_from


def apply(pending: Pending, current: GameServer, now: float) -> GameServer | None:
    """``current`` with ``pending`` applied at ``now`` (epoch seconds), or None if nothing changes."""
    meta = current.metadata
    labels = {**meta.labels, **pending.labels}
    annotations = {**meta.annotations, **pending.annotations}
    status = current.status
    change = pending.change
    if change is not None and state_change_allowed(current, change):
        if change.state is GameServerState.ALLOCATED:
            annotations[LAST_ALLOCATED_ANNOTATION] = format_timestamp(now)
        already_ready = change.state is GameServerState.REQUEST_READY and status.state is GameServerState.READY
        if not already_ready:
            until = change.reserved_until if change.state is GameServerState.RESERVED else None
            status = replace(status, state=change.state, reserved_until=until)
    if labels == meta.labels and annotations == meta.annotations and status == current.status:
        return None
    return replace(current, metadata=replace(meta, labels=labels, annotations=annotations), status=status)
