"""The SDK state machine, by tables: calls → pending changes → what gets written."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fleetmatch.codec import format_timestamp, from_wire, to_wire
from fleetmatch.models import (
    LAST_ALLOCATED_ANNOTATION,
    GameServer,
    GameServerState,
    GameServerStatus,
    ObjectMeta,
)
from sdk_sidecar import state
from sdk_sidecar.state import LATEST_TIMESTAMP, GrpcCode, InvalidArgumentError, Pending, StateChange

S = GameServerState
NOW = 1_700_000_000.0


def gs(
    st: S = S.READY,
    *,
    reserved_until: float | None = None,
    deleting: bool = False,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> GameServer:
    return GameServer(
        metadata=ObjectMeta(
            name="gs-1",
            resource_version="7-0",
            deletion_timestamp=NOW - 1 if deleting else None,
            labels=labels or {},
            annotations=annotations or {},
        ),
        status=GameServerStatus(state=st, address="10.0.0.5", reserved_until=reserved_until),
    )


# -- one call against each stored state ------------------------------------------------------------

CALLS: dict[str, Callable[[], Pending]] = {
    "ready": state.ready,
    "allocate": state.allocate,
    "shutdown": state.shutdown,
    "unhealthy": state.unhealthy,
    "reserve5": lambda: state.reserve(5, NOW),
    "reserve0": lambda: state.reserve(0, NOW),
    "reserve-3": lambda: state.reserve(-3, NOW),
    "end_reservation": state.end_reservation,
}

# (call, stored state, stored reservedUntil, deleting) -> (written state, written reservedUntil) or None (no write)
SINGLE_CALLS = [
    ("ready", S.SCHEDULED, None, False, (S.REQUEST_READY, None)),
    ("ready", S.ALLOCATED, None, False, (S.REQUEST_READY, None)),
    ("ready", S.RESERVED, NOW + 9, False, (S.REQUEST_READY, None)),
    ("ready", S.READY, None, False, None),
    ("ready", S.REQUEST_READY, None, False, None),
    ("ready", S.UNHEALTHY, None, False, None),
    ("ready", S.SHUTDOWN, None, False, None),
    ("ready", S.ERROR, None, False, None),
    ("ready", S.ALLOCATED, None, True, None),
    ("allocate", S.READY, None, False, (S.ALLOCATED, None)),
    ("allocate", S.RESERVED, NOW + 9, False, (S.ALLOCATED, None)),
    ("allocate", S.UNHEALTHY, None, False, None),
    ("shutdown", S.ALLOCATED, None, False, (S.SHUTDOWN, None)),
    ("shutdown", S.SCHEDULED, None, False, (S.SHUTDOWN, None)),
    ("shutdown", S.UNHEALTHY, None, False, None),
    ("shutdown", S.READY, None, True, None),
    ("unhealthy", S.ALLOCATED, None, False, (S.UNHEALTHY, None)),
    ("unhealthy", S.RESERVED, NOW + 9, False, (S.UNHEALTHY, None)),
    ("unhealthy", S.SHUTDOWN, None, False, None),
    ("unhealthy", S.UNHEALTHY, None, False, None),
    ("reserve5", S.READY, None, False, (S.RESERVED, NOW + 5)),
    ("reserve5", S.ALLOCATED, None, False, (S.RESERVED, NOW + 5)),
    ("reserve5", S.RESERVED, None, False, (S.RESERVED, NOW + 5)),
    ("reserve0", S.READY, None, False, (S.RESERVED, None)),
    ("reserve0", S.RESERVED, NOW + 9, False, (S.RESERVED, None)),
    ("reserve-3", S.READY, None, False, (S.RESERVED, None)),
    ("reserve5", S.UNHEALTHY, None, False, None),
    ("end_reservation", S.RESERVED, NOW, False, (S.REQUEST_READY, None)),
    ("end_reservation", S.ALLOCATED, None, False, None),
    ("end_reservation", S.READY, None, False, None),
    ("end_reservation", S.SHUTDOWN, None, False, None),
]


@pytest.mark.parametrize(
    ("call", "stored", "until", "deleting", "expected"),
    [pytest.param(*row, id=f"{row[0]}-from-{row[1]}{'-deleting' if row[3] else ''}") for row in SINGLE_CALLS],
)
def test_one_call_against_stored_state(
    call: str, stored: S, until: float | None, deleting: bool, expected: tuple[S, float | None] | None
) -> None:
    current = gs(stored, reserved_until=until, deleting=deleting)
    written = state.apply(CALLS[call](), current, NOW)
    if expected is None:
        assert written is None
        return
    assert written is not None
    assert (written.state, written.status.reserved_until) == expected
    assert written.metadata == current.metadata or call == "allocate"
    assert written.status.address == "10.0.0.5"


def test_allocate_stamps_last_allocated_with_the_write_time() -> None:
    written = state.apply(state.allocate(), gs(S.READY, annotations={"a": "b"}), NOW)
    assert written is not None
    assert written.metadata.annotations == {"a": "b", LAST_ALLOCATED_ANNOTATION: format_timestamp(NOW)}


def test_allocate_again_restamps_and_refused_allocate_does_not() -> None:
    earlier = {LAST_ALLOCATED_ANNOTATION: format_timestamp(NOW - 60)}
    again = state.apply(state.allocate(), gs(S.ALLOCATED, annotations=earlier), NOW)
    assert again is not None and again.metadata.annotations[LAST_ALLOCATED_ANNOTATION] == format_timestamp(NOW)
    assert state.apply(state.allocate(), gs(S.UNHEALTHY, annotations=earlier), NOW) is None


# -- merging: a burst of calls, one write ----------------------------------------------------------

# (calls in order, stored state) -> written state (None: no state change)
SEQUENCES = [
    (["ready", "allocate"], S.READY, S.ALLOCATED),
    (["allocate", "ready"], S.READY, None),  # net Ready on a Ready server: nothing to write
    (["allocate", "ready"], S.ALLOCATED, S.REQUEST_READY),
    (["shutdown", "ready"], S.ALLOCATED, S.SHUTDOWN),
    (["shutdown", "unhealthy"], S.ALLOCATED, S.SHUTDOWN),
    (["unhealthy", "ready"], S.ALLOCATED, S.UNHEALTHY),
    (["unhealthy", "reserve5"], S.READY, S.UNHEALTHY),
    (["reserve5", "ready"], S.READY, None),
    (["reserve5", "allocate"], S.READY, S.ALLOCATED),
    (["allocate", "reserve5"], S.READY, S.RESERVED),
    # Timer end after a Reserve not yet written: the reservation is over, back to Ready.
    (["reserve5", "end_reservation"], S.ALLOCATED, S.REQUEST_READY),
    (["reserve5", "end_reservation"], S.UNHEALTHY, None),
    # Timer end after another call: that call wins (the condition "still Reserved" fails).
    (["allocate", "end_reservation"], S.RESERVED, S.ALLOCATED),
    (["end_reservation", "allocate"], S.RESERVED, S.ALLOCATED),
    (["end_reservation"], S.RESERVED, S.REQUEST_READY),
    (["end_reservation"], S.ALLOCATED, None),
    (["end_reservation", "shutdown"], S.RESERVED, S.SHUTDOWN),
]


@pytest.mark.parametrize(
    ("calls", "stored", "expected"),
    [pytest.param(*row, id=f"{'+'.join(row[0])}-on-{row[1]}") for row in SEQUENCES],
)
def test_merged_calls(calls: list[str], stored: S, expected: S | None) -> None:
    pending = Pending()
    for call in calls:
        pending = pending.merge(CALLS[call]())
    written = state.apply(pending, gs(stored), NOW)
    if expected is None:
        assert written is None
    else:
        assert written is not None and written.state is expected


def test_merge_keeps_every_label_with_the_latest_value() -> None:
    pending = Pending()
    for i in range(100):
        pending = pending.merge(state.set_label(f"k{i % 10}", f"v{i}"))
    pending = pending.merge(state.set_annotation("note", "x")).merge(state.ready())
    assert pending.labels == {f"agones.dev/sdk-k{j}": f"v{90 + j}" for j in range(10)}
    assert pending.annotations == {"agones.dev/sdk-note": "x"}
    assert pending.change == StateChange(S.REQUEST_READY)


def test_merge_with_empty_is_identity() -> None:
    p = state.set_label("a", "b")
    assert Pending().empty and not p.empty
    assert p.merge(Pending()) is p
    assert Pending().merge(p) is p


# -- labels and annotations ------------------------------------------------------------------------


def test_metadata_applies_under_the_sdk_prefix_even_when_state_is_final() -> None:
    pending = state.set_label("mode", "ctf").merge(state.set_annotation("map", "de_dust 2!")).merge(state.ready())
    written = state.apply(pending, gs(S.UNHEALTHY, labels={"agones.dev/fleet": "f"}), NOW)
    assert written is not None
    assert written.state is S.UNHEALTHY
    assert written.metadata.labels == {"agones.dev/fleet": "f", "agones.dev/sdk-mode": "ctf"}
    assert written.metadata.annotations == {"agones.dev/sdk-map": "de_dust 2!"}


def test_setting_what_is_already_stored_writes_nothing() -> None:
    current = gs(S.READY, labels={"agones.dev/sdk-mode": "ctf"})
    assert state.apply(state.set_label("mode", "ctf"), current, NOW) is None


@pytest.mark.parametrize(
    ("key", "value", "ok"),
    [
        ("mode", "ctf", True),
        ("session.ready", "true", True),
        ("a_b-c.d", "", True),
        ("x" * 59, "v", True),  # sdk- + 59 = 63, the longest name part
        ("x" * 60, "v", False),
        ("", "v", False),
        ("has space", "v", False),
        ("nested/key", "v", False),
        ("trailing-", "v", False),
        ("Ümlaut", "v", False),
        ("mode", "has space", False),
        ("mode", "-lead", False),
        ("mode", "v" * 64, False),
        ("mode", "v" * 63, True),
    ],
)
def test_label_validation(key: str, value: str, ok: bool) -> None:
    if ok:
        assert state.set_label(key, value).labels == {f"agones.dev/sdk-{key}": value}
    else:
        with pytest.raises(InvalidArgumentError) as info:
            state.set_label(key, value)
        assert info.value.code is GrpcCode.INVALID_ARGUMENT
        assert "invalid label" in info.value.message


@pytest.mark.parametrize(("key", "ok"), [("map", True), ("x" * 59, True), ("", False), ("a b", False), ("a/b", False)])
def test_annotation_keys_are_validated_but_values_are_free(key: str, ok: bool) -> None:
    if ok:
        assert state.set_annotation(key, "any value: ☃ / !").annotations == {
            f"agones.dev/sdk-{key}": "any value: ☃ / !"
        }
    else:
        with pytest.raises(InvalidArgumentError, match="invalid annotation key"):
            state.set_annotation(key, "v")


@pytest.mark.parametrize(
    ("seconds", "until"),
    [
        (10 * 365 * 24 * 3600 + 1, NOW + 10 * 365 * 24 * 3600 + 1),  # once the limit: taken as given now
        (int(LATEST_TIMESTAMP - NOW), LATEST_TIMESTAMP),
        (int(LATEST_TIMESTAMP - NOW) + 1, LATEST_TIMESTAMP),
        (2**63 - 1, LATEST_TIMESTAMP),
    ],
)
def test_reserve_has_no_upper_bound(seconds: int, until: float) -> None:
    """Agones takes any int64; beyond what a timestamp can carry, the reservation ends in the year 9999."""
    pending = state.reserve(seconds, NOW)
    assert pending.change == StateChange(S.RESERVED, until)
    written = state.apply(pending, gs(S.READY), NOW)
    assert written is not None
    assert from_wire(GameServer, to_wire(written)).status.reserved_until == until  # storable
