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

Counters, lists and player tracking (Agones CountsAndLists and PlayerTracking) are checked when the
call arrives, against the session's view (the last known GameServer with the unwritten changes
applied), with Agones' messages; like Agones these errors are plain ones (gRPC UNKNOWN, HTTP 500):

- Counter and list names must be declared in the GameServer (spec or status): the SDK creates none.
- Counter: ``count`` set within ``[0, capacity]``, ``capacity >= 0``; ``countDiff`` accumulates, and
  the count it leads to must stay within ``[0, capacity]``. A capacity set below the current count
  truncates the count (as Agones does when it writes), recorded as an explicit count.
- List: capacity within ``[0, 1000]``; a capacity below the number of values truncates the values
  (kept in order, first ones first); ``values`` replaces the values (duplicates dropped);
  AddListValue fails on a full list or an existing value, RemoveListValue on a missing value.
- Players: PlayerConnect of a connected id is False (no error), beyond capacity an error;
  PlayerDisconnect of an unknown id is False. SetPlayerCapacity takes any value, negative included
  (Agones does not check it; a negative capacity admits nobody).

At write time the merged change is applied to the object just read: counts are clamped to
``[0, capacity]``, lists truncated to their capacity, values already present are not added twice,
and counters or lists that no longer exist are left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from fleetmatch.codec import format_timestamp
from fleetmatch.errors import FleetmatchError
from fleetmatch.models import (
    LAST_ALLOCATED_ANNOTATION,
    LIST_MAX_CAPACITY,
    SDK_PREFIX,
    TERMINAL_STATES,
    CounterStatus,
    GameServer,
    GameServerState,
    GameServerStatus,
    Health,
    ListStatus,
    PlayerStatus,
)
from fleetmatch.names import label_value_error, qualified_name_error
from sdk_sidecar.codes import GrpcCode as GrpcCode  # re-exported: the errors below carry it

LATEST_TIMESTAMP = 253402300799.0
"""9999-12-31T23:59:59Z, the latest instant an RFC 3339 ``reservedUntil`` can carry."""

_FINAL_CHANGES = frozenset({GameServerState.SHUTDOWN, GameServerState.UNHEALTHY})

C = TypeVar("C", "CounterChange", "ListChange")


class SdkCallError(FleetmatchError):
    """An SDK call refused; ``code`` is what a gRPC client sees, REST maps it to an HTTP status."""

    code: GrpcCode = GrpcCode.UNKNOWN

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class InvalidArgumentError(SdkCallError):
    """Malformed request, wrong type, invalid label key or value (HTTP 400)."""

    code = GrpcCode.INVALID_ARGUMENT


class PermissionDeniedError(SdkCallError):
    """The caller is not this game server's own process (HTTP 403): see ``sdk_sidecar.peers``."""

    code = GrpcCode.PERMISSION_DENIED


class UnavailableError(SdkCallError):
    """The game server's SDK session is closed or unknown (HTTP 503): retry or give up."""

    code = GrpcCode.UNAVAILABLE


class NameNotFoundError(SdkCallError):
    """No counter or list of that name, or no such value in the list (gRPC UNKNOWN, as in Agones)."""


class OutOfRangeError(SdkCallError):
    """A count, capacity or list size out of its range (gRPC UNKNOWN, as in Agones)."""


class DuplicateValueError(SdkCallError):
    """AddListValue of a value the list holds already (gRPC UNKNOWN, as in Agones)."""


class PlayersAtCapacityError(SdkCallError):
    """PlayerConnect while the player capacity is reached (gRPC UNKNOWN, as in Agones)."""


class MalformedRequestError(SdkCallError):
    """UpdateCounter without anything to update, an UpdateList mask naming what ``List`` lacks
    (gRPC UNKNOWN, as in Agones)."""


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


def _edit(values: Iterable[str], removed: frozenset[str], added: Iterable[str]) -> list[str]:
    """``values`` without ``removed``, then ``added`` appended where not present (order kept)."""
    out = [v for v in values if v not in removed]
    present = set(out)
    for v in added:
        if v not in present:
            out.append(v)
            present.add(v)
    return out


def _merge_edits(
    earlier_added: tuple[str, ...], earlier_removed: frozenset[str], added: tuple[str, ...], removed: frozenset[str]
) -> tuple[tuple[str, ...], frozenset[str]]:
    """Two (remove, then append) edits as one: ``base - r1 + a1 - r2 + a2 == base - (r1|r2) + (a1-r2) + a2``."""
    if not removed:
        return earlier_added + added, earlier_removed
    return tuple(v for v in earlier_added if v not in removed) + added, earlier_removed | removed


@dataclass(frozen=True, slots=True)
class CounterChange:
    """Pending change of one counter: set ``count`` (if given), then add ``diff``; set ``capacity``."""

    count: int | None = None
    capacity: int | None = None
    diff: int = 0

    def merge(self, later: CounterChange) -> CounterChange:
        capacity = self.capacity if later.capacity is None else later.capacity
        if later.count is not None:
            return CounterChange(later.count, capacity, later.diff)
        return CounterChange(self.count, capacity, self.diff + later.diff)

    def applied(self, current: CounterStatus) -> CounterStatus:
        """The counter after this change, the count clamped to ``[0, capacity]``."""
        capacity = current.capacity if self.capacity is None else max(self.capacity, 0)
        count = (current.count if self.count is None else self.count) + self.diff
        return CounterStatus(min(max(count, 0), capacity), capacity)


@dataclass(frozen=True, slots=True)
class ListChange:
    """Pending change of one list: start from ``values`` (if given, else the stored ones), drop
    ``removed``, append ``added``, set ``capacity``, truncate to it."""

    capacity: int | None = None
    values: tuple[str, ...] | None = None
    added: tuple[str, ...] = ()
    removed: frozenset[str] = frozenset()

    def merge(self, later: ListChange) -> ListChange:
        capacity = self.capacity if later.capacity is None else later.capacity
        if later.values is not None:
            return replace(later, capacity=capacity)
        added, removed = _merge_edits(self.added, self.removed, later.added, later.removed)
        return ListChange(capacity, self.values, added, removed)

    def applied(self, current: ListStatus) -> ListStatus:
        capacity = current.capacity if self.capacity is None else min(max(self.capacity, 0), LIST_MAX_CAPACITY)
        values = _edit(current.values if self.values is None else self.values, self.removed, self.added)
        return ListStatus(capacity, tuple(values[:capacity]))


@dataclass(frozen=True, slots=True)
class PlayerChange:
    """Pending player tracking: drop ``disconnected``, append ``connected``, set ``capacity``.

    As in Agones the sidecar's memory is the truth: connected players are not dropped at write time
    when the capacity is lower (the capacity was checked when each one connected).
    """

    capacity: int | None = None
    connected: tuple[str, ...] = ()
    disconnected: frozenset[str] = frozenset()

    def merge(self, later: PlayerChange) -> PlayerChange:
        capacity = self.capacity if later.capacity is None else later.capacity
        connected, disconnected = _merge_edits(self.connected, self.disconnected, later.connected, later.disconnected)
        return PlayerChange(capacity, connected, disconnected)

    def applied(self, current: PlayerStatus | None) -> PlayerStatus:
        current = current or PlayerStatus()
        ids = tuple(_edit(current.ids, self.disconnected, self.connected))
        capacity = current.capacity if self.capacity is None else self.capacity
        return PlayerStatus(len(ids), capacity, ids)


def _merge_named(earlier: Mapping[str, C], later: Mapping[str, C]) -> Mapping[str, C]:
    if not earlier:
        return later
    if not later:
        return earlier
    out = dict(earlier)
    for name, change in later.items():
        before = out.get(name)
        out[name] = change if before is None else before.merge(change)
    return out


@dataclass(frozen=True, slots=True)
class Pending:
    """Changes not yet written: the last requested state plus labels/annotations (full keys), and
    the accumulated counter, list and player changes."""

    change: StateChange | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    counters: Mapping[str, CounterChange] = field(default_factory=dict)
    lists: Mapping[str, ListChange] = field(default_factory=dict)
    players: PlayerChange | None = None

    @property
    def empty(self) -> bool:
        return (
            self.change is None
            and not self.labels
            and not self.annotations
            and not self.counters
            and not self.lists
            and self.players is None
        )

    def merge(self, later: Pending) -> Pending:
        """Both changes as one, ``later`` winning where they overlap (except after Shutdown/Unhealthy)."""
        if later.empty:
            return self
        if self.empty:
            return later
        players = later.players if self.players is None else self.players.merge(later.players or PlayerChange())
        return Pending(
            _merge_change(self.change, later.change),
            {**self.labels, **later.labels} if later.labels else self.labels,
            {**self.annotations, **later.annotations} if later.annotations else self.annotations,
            _merge_named(self.counters, later.counters),
            _merge_named(self.lists, later.lists),
            players,
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
    """Reserved for ``seconds`` from ``now`` (epoch seconds); ``seconds <= 0``: until told otherwise.

    No upper bound, as in Agones: a reservation beyond the year 9999 is stored as ending then.
    """
    until = min(now + seconds, LATEST_TIMESTAMP) if seconds > 0 else None
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


def reported_health(health: Health) -> tuple[int, int, int]:
    """``(period_seconds, failure_threshold, initial_delay_seconds)`` as the SDK reports them.

    Agones fills in the defaults (5, 3, 5) only when health checking is enabled, so a template saying
    ``health: {disabled: true}`` reads 0 for all three. Our model always carries its defaults, so a
    disabled health reports 0 whatever it holds.
    """
    if health.disabled:
        return 0, 0, 0
    return health.period_seconds, health.failure_threshold, health.initial_delay_seconds


# -- counters, lists, players: checked against the session's view -----------------------------------


def _counter(view: GameServerStatus, name: str) -> CounterStatus:
    counter = view.counters.get(name)
    if counter is None:
        raise NameNotFoundError(f"counter not found: {name}")
    return counter


def _list(view: GameServerStatus, name: str) -> ListStatus:
    found = view.lists.get(name)
    if found is None:
        raise NameNotFoundError(f"list not found: {name}")
    return found


def _count_range(count: int, capacity: int) -> OutOfRangeError:
    return OutOfRangeError(
        f"out of range. Count must be within range [0,Capacity]. Found Count: {count}, Capacity: {capacity}"
    )


def get_counter(view: GameServerStatus, name: str) -> CounterStatus:
    return _counter(view, name)


def update_counter(
    view: GameServerStatus, name: str, *, count: int | None = None, capacity: int | None = None, count_diff: int = 0
) -> tuple[Pending, CounterStatus]:
    """UpdateCounter: the change to submit and the counter as it will be once written."""
    if count is None and capacity is None and count_diff == 0:
        raise MalformedRequestError(f'invalid argument. Malformed CounterUpdateRequest: name:"{name}"')
    current = _counter(view, name)
    if capacity is not None and capacity < 0:
        raise OutOfRangeError(f"out of range. Capacity must be greater than or equal to 0. Found Capacity: {capacity}")
    new_capacity = current.capacity if capacity is None else capacity
    if count is not None and not 0 <= count <= new_capacity:
        raise _count_range(count, new_capacity)
    if count is None and current.count > new_capacity:
        count = new_capacity  # a lower capacity truncates the count: made explicit, so diffs add up right
    base = current.count if count is None else count
    if count_diff and not 0 <= base + count_diff <= new_capacity:
        raise _count_range(base + count_diff, new_capacity)
    change = CounterChange(count, capacity, count_diff)
    return Pending(counters={name: change}), change.applied(current)


LIST_FIELDS = ("name", "capacity", "values")
"""The fields of the SDK's ``List`` message: what an ``UpdateList`` mask may name."""


def list_mask(paths: Sequence[str]) -> frozenset[str]:
    """The fields an ``UpdateList`` mask sets (``name`` is valid but sets nothing). A path that is no
    field of ``List`` is refused with Agones' words, which list every path given."""
    if any(path not in LIST_FIELDS for path in paths):
        raise MalformedRequestError(
            f"invalid argument. Field Mask Path(s): [{' '.join(paths)}] are invalid for List. "
            f"Use valid field name(s): [{' '.join(LIST_FIELDS)}]"
        )
    return frozenset(paths) - {"name"}


def get_list(view: GameServerStatus, name: str) -> ListStatus:
    return _list(view, name)


def update_list(
    view: GameServerStatus, name: str, *, capacity: int | None = None, values: Sequence[str] | None = None
) -> tuple[Pending, ListStatus]:
    """UpdateList; None leaves a field as it is (not in the update mask)."""
    if capacity is not None and not 0 <= capacity <= LIST_MAX_CAPACITY:
        raise OutOfRangeError(
            f"out of range. Capacity must be within range [0,{LIST_MAX_CAPACITY}]. Found Capacity: {capacity}"
        )
    current = view.lists.get(name)
    if current is None:
        raise NameNotFoundError(f"not found. {name} List not found")
    new_values: tuple[str, ...] | None = None
    if values is not None:
        new_values = tuple(dict.fromkeys(values))
    kept = current.values if new_values is None else new_values
    limit = current.capacity if capacity is None else capacity
    if len(kept) > limit:
        new_values = kept[:limit]  # truncation made explicit, so later adds and removes add up right
    change = ListChange(capacity, new_values)
    if change == ListChange():
        return Pending(), current
    return Pending(lists={name: change}), change.applied(current)


def add_list_value(view: GameServerStatus, name: str, value: str) -> tuple[Pending, ListStatus]:
    current = _list(view, name)
    if len(current.values) >= current.capacity:
        raise OutOfRangeError(
            f"out of range. No available capacity. Current Capacity: {current.capacity}, "
            f"List Size: {len(current.values)}"
        )
    if value in current.values:
        raise DuplicateValueError(f"already exists. Value: {value} already in List: {name}")
    change = ListChange(added=(value,))
    return Pending(lists={name: change}), change.applied(current)


def remove_list_value(view: GameServerStatus, name: str, value: str) -> tuple[Pending, ListStatus]:
    current = _list(view, name)
    if value not in current.values:
        raise NameNotFoundError(f"not found. Value: {value} not found in List: {name}")
    change = ListChange(removed=frozenset({value}))
    return Pending(lists={name: change}), change.applied(current)


def _players(view: GameServerStatus) -> PlayerStatus:
    return view.players or PlayerStatus()


def player_connect(view: GameServerStatus, player_id: str) -> tuple[Pending, bool]:
    """PlayerConnect: (change, True), or (nothing, False) if connected already."""
    players = _players(view)
    if player_id in players.ids:
        return Pending(), False
    if len(players.ids) >= players.capacity:
        raise PlayersAtCapacityError("players are already at capacity")
    return Pending(players=PlayerChange(connected=(player_id,))), True


def player_disconnect(view: GameServerStatus, player_id: str) -> tuple[Pending, bool]:
    """PlayerDisconnect: (change, True), or (nothing, False) if not connected."""
    if player_id not in _players(view).ids:
        return Pending(), False
    return Pending(players=PlayerChange(disconnected=frozenset({player_id}))), True


def set_player_capacity(count: int) -> Pending:
    """Any capacity, negative included: Agones stores what the game says."""
    return Pending(players=PlayerChange(capacity=count))


def get_player_capacity(view: GameServerStatus) -> int:
    return _players(view).capacity


def get_player_count(view: GameServerStatus) -> int:
    return len(_players(view).ids)


def is_player_connected(view: GameServerStatus, player_id: str) -> bool:
    return player_id in _players(view).ids


def get_connected_players(view: GameServerStatus) -> list[str]:
    return list(_players(view).ids)


# -- pending change + stored object -> object to write ---------------------------------------------


def _apply_counts(pending: Pending, status: GameServerStatus, declared: GameServerStatus) -> GameServerStatus:
    """``status`` with the counter, list and player changes applied; ``declared`` is what exists
    (``GameServer.counts``: the status, with what the spec declares and the status lacks)."""
    if not pending.counters and not pending.lists and pending.players is None:
        return status
    counters = dict(status.counters)
    for name, change in pending.counters.items():
        counter = declared.counters.get(name)
        if counter is not None:
            counters[name] = change.applied(counter)
    lists = dict(status.lists)
    for name, list_change in pending.lists.items():
        found = declared.lists.get(name)
        if found is not None:
            lists[name] = list_change.applied(found)
    players = status.players if pending.players is None else pending.players.applied(declared.players)
    return replace(status, counters=counters, lists=lists, players=players)


def view(pending: Pending, gs: GameServer) -> GameServerStatus:
    """What the SDK answers with: ``gs``'s counters, lists and players with ``pending`` applied."""
    declared = gs.counts
    return _apply_counts(pending, declared, declared)


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
    status = _apply_counts(pending, status, current.counts)
    if labels == meta.labels and annotations == meta.annotations and status == current.status:
        return None
    return replace(current, metadata=replace(meta, labels=labels, annotations=annotations), status=status)
