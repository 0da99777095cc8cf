"""Counters, lists and player tracking, pure: the models' rules, the SDK calls against a view, how
pending changes merge, and what a write does to the stored object (which may have moved meanwhile)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest

from fleetmatch.backends.memory import MemoryStore
from fleetmatch.codec import from_wire, to_wire
from fleetmatch.errors import ValidationError
from fleetmatch.models import (
    CounterStatus,
    GameServer,
    GameServerSpec,
    GameServerState,
    GameServerStatus,
    ListStatus,
    ObjectMeta,
    PlayersSpec,
    PlayerStatus,
    initial_status,
    with_meta,
)
from fleetmatch.settings import SdkSettings
from sdk_sidecar import jsonpb, state
from sdk_sidecar.session import SdkSession
from sdk_sidecar.state import (
    CounterChange,
    DuplicateValueError,
    GrpcCode,
    ListChange,
    MalformedRequestError,
    NameNotFoundError,
    OutOfRangeError,
    Pending,
    PlayerChange,
    PlayersAtCapacityError,
    SdkCallError,
)

NOW = 1_700_000_000.0


def gs(
    *,
    counters: dict[str, CounterStatus] | None = None,
    lists: dict[str, ListStatus] | None = None,
    players: PlayerStatus | None = None,
    spec_counters: dict[str, CounterStatus] | None = None,
    spec_lists: dict[str, ListStatus] | None = None,
    spec_players: PlayersSpec | None = None,
) -> GameServer:
    return GameServer(
        metadata=ObjectMeta(name="gs-1", resource_version="7-0"),
        spec=GameServerSpec(counters=spec_counters or {}, lists=spec_lists or {}, players=spec_players),
        status=GameServerStatus(
            state=GameServerState.READY, counters=counters or {}, lists=lists or {}, players=players
        ),
    )


ROOMS = CounterStatus(count=3, capacity=10)
PLAYERS = ListStatus(capacity=3, values=("a", "b"))
VIEW = gs(counters={"rooms": ROOMS}, lists={"players": PLAYERS}).counts


# -- models ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "field", "message"),
    [
        ({"counters": {"rooms": {"count": 11, "capacity": 10}}}, "counters.rooms.count", "within [0, capacity=10]"),
        ({"counters": {"rooms": {"count": -1, "capacity": 10}}}, "counters.rooms.count", "within [0, capacity=10]"),
        ({"counters": {"rooms": {"capacity": -1}}}, "counters.rooms.capacity", "must not be negative"),
        ({"counters": {"rooms": {"count": "1"}}}, "counters.rooms.count", "expected an integer"),
        ({"lists": {"p": {"capacity": 1001}}}, "lists.p.capacity", "within [0, 1000]"),
        ({"lists": {"p": {"capacity": -1}}}, "lists.p.capacity", "within [0, 1000]"),
        ({"lists": {"p": {"capacity": 1, "values": ["a", "b"]}}}, "lists.p.values", "more than capacity 1"),
        ({"lists": {"p": {"capacity": 5, "values": ["a", "b", "a"]}}}, "lists.p.values[2]", "duplicate value 'a'"),
        ({"players": {"initialCapacity": -2}}, "players.initialCapacity", "must not be negative"),
        ({"counters": {"": {}}}, "counters", "names must not be empty"),
        ({"players": {"capacity": 3}}, "players.capacity", "unknown field"),
    ],
)
def test_spec_validation_names_the_field(doc: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        from_wire(GameServerSpec, doc)
    assert info.value.field == field
    assert message in str(info.value)


def test_spec_wire_form_is_camel_case_and_round_trips() -> None:
    spec = GameServerSpec(
        counters={"rooms": CounterStatus(1, 10)},
        lists={"players": ListStatus(100, ("x",))},
        players=PlayersSpec(initial_capacity=8),
    )
    wire = to_wire(spec)
    assert wire["counters"] == {"rooms": {"count": 1, "capacity": 10}}
    assert wire["lists"] == {"players": {"capacity": 100, "values": ["x"]}}
    assert wire["players"] == {"initialCapacity": 8}
    assert from_wire(GameServerSpec, wire) == spec
    status = GameServerStatus(players=PlayerStatus(1, 8, ("p1",)))
    assert to_wire(status)["players"] == {"count": 1, "capacity": 8, "ids": ["p1"]}


def test_initial_status_takes_what_the_spec_declares() -> None:
    spec = GameServerSpec(
        counters={"rooms": CounterStatus(1, 10), "games": CounterStatus(0, 2)},
        lists={"players": ListStatus(4)},
        players=PlayersSpec(initial_capacity=8),
    )
    status = initial_status(spec)
    assert status.counters == {"rooms": CounterStatus(1, 10), "games": CounterStatus(0, 2)}
    assert status.lists == {"players": ListStatus(4)}
    assert status.players == PlayerStatus(0, 8, ())
    # What the status has wins; nothing declared, nothing added.
    stored = GameServerStatus(counters={"rooms": CounterStatus(7, 10)}, players=PlayerStatus(1, 3, ("p",)))
    merged = initial_status(spec, stored)
    assert merged.counters["rooms"] == CounterStatus(7, 10) and merged.players == PlayerStatus(1, 3, ("p",))
    plain = GameServerStatus()
    assert initial_status(GameServerSpec(), plain) is plain
    assert gs().counts.players is None


# -- counters --------------------------------------------------------------------------------------

# (update kwargs) -> resulting counter, or (error type, message)
COUNTER_UPDATES: list[tuple[dict[str, Any], CounterStatus | tuple[type[SdkCallError], str]]] = [
    ({"count_diff": 1}, CounterStatus(4, 10)),
    ({"count_diff": -3}, CounterStatus(0, 10)),
    ({"count_diff": 7}, CounterStatus(10, 10)),
    ({"count": 0}, CounterStatus(0, 10)),
    ({"count": 10}, CounterStatus(10, 10)),
    ({"capacity": 20}, CounterStatus(3, 20)),
    ({"capacity": 0}, CounterStatus(0, 0)),
    ({"capacity": 2}, CounterStatus(2, 2)),
    ({"capacity": 20, "count": 15}, CounterStatus(15, 20)),
    ({"count": 5, "count_diff": 2}, CounterStatus(7, 10)),
    ({"capacity": 2, "count_diff": -1}, CounterStatus(1, 2)),
    (
        {"count_diff": 8},
        (OutOfRangeError, "out of range. Count must be within range [0,Capacity]. Found Count: 11, Capacity: 10"),
    ),
    (
        {"count_diff": -4},
        (OutOfRangeError, "out of range. Count must be within range [0,Capacity]. Found Count: -1, Capacity: 10"),
    ),
    (
        {"count": 11},
        (OutOfRangeError, "out of range. Count must be within range [0,Capacity]. Found Count: 11, Capacity: 10"),
    ),
    (
        {"count": -1},
        (OutOfRangeError, "out of range. Count must be within range [0,Capacity]. Found Count: -1, Capacity: 10"),
    ),
    (
        {"count": 5, "capacity": 4},
        (OutOfRangeError, "out of range. Count must be within range [0,Capacity]. Found Count: 5, Capacity: 4"),
    ),
    (
        {"capacity": -1},
        (OutOfRangeError, "out of range. Capacity must be greater than or equal to 0. Found Capacity: -1"),
    ),
    ({}, (MalformedRequestError, 'invalid argument. Malformed CounterUpdateRequest: name:"rooms"')),
]


@pytest.mark.parametrize(("kwargs", "expected"), COUNTER_UPDATES)
def test_update_counter(kwargs: dict[str, Any], expected: CounterStatus | tuple[type[SdkCallError], str]) -> None:
    if isinstance(expected, CounterStatus):
        change, result = state.update_counter(VIEW, "rooms", **kwargs)
        assert result == expected
        assert state.view(change, gs(counters={"rooms": ROOMS})).counters["rooms"] == expected
        written = state.apply(change, gs(counters={"rooms": ROOMS}), NOW)
        assert written is not None and written.status.counters["rooms"] == expected
    else:
        kind, message = expected
        with pytest.raises(kind) as info:
            state.update_counter(VIEW, "rooms", **kwargs)
        assert info.value.message == message
        assert info.value.code is GrpcCode.UNKNOWN  # Agones answers these as plain errors: HTTP 500


def test_unknown_counter() -> None:
    for call in (
        lambda: state.get_counter(VIEW, "nope"),
        lambda: state.update_counter(VIEW, "nope", count_diff=1),
    ):
        with pytest.raises(NameNotFoundError, match=r"^counter not found: nope$"):
            call()


def test_count_diffs_accumulate_into_one_change() -> None:
    view_gs = gs(counters={"rooms": CounterStatus(0, 1000)})
    pending = Pending()
    for i in range(1000):
        change, result = state.update_counter(state.view(pending, view_gs), "rooms", count_diff=1)
        assert result.count == i + 1
        pending = pending.merge(change)
    assert pending.counters == {"rooms": CounterChange(None, None, 1000)}
    with pytest.raises(OutOfRangeError):
        state.update_counter(state.view(pending, view_gs), "rooms", count_diff=1)


def test_count_set_resets_earlier_diffs() -> None:
    merged = CounterChange(diff=5).merge(CounterChange(count=2)).merge(CounterChange(diff=3))
    assert merged == CounterChange(2, None, 3)
    assert CounterChange(capacity=4).merge(CounterChange(diff=1)) == CounterChange(None, 4, 1)


@pytest.mark.parametrize(
    ("stored", "change", "written"),
    [
        (CounterStatus(3, 10), CounterChange(diff=5), CounterStatus(8, 10)),
        (CounterStatus(9, 10), CounterChange(diff=5), CounterStatus(10, 10)),  # moved meanwhile: clamped
        (CounterStatus(1, 10), CounterChange(diff=-5), CounterStatus(0, 10)),
        (CounterStatus(8, 10), CounterChange(capacity=5), CounterStatus(5, 5)),
        (CounterStatus(8, 10), CounterChange(count=2, diff=1), CounterStatus(3, 10)),
    ],
)
def test_counter_write_is_checked_against_the_stored_object(
    stored: CounterStatus, change: CounterChange, written: CounterStatus
) -> None:
    result = state.apply(Pending(counters={"rooms": change}), gs(counters={"rooms": stored}), NOW)
    assert result is not None and result.status.counters == {"rooms": written}


def test_write_leaves_unknown_names_alone_and_fills_declared_ones() -> None:
    pending = Pending(counters={"gone": CounterChange(diff=1)}, lists={"gone": ListChange(added=("x",))})
    assert state.apply(pending, gs(), NOW) is None
    declared = gs(spec_counters={"rooms": CounterStatus(1, 5)}, spec_lists={"players": ListStatus(2)})
    assert declared.status.counters == {}
    pending = Pending(counters={"rooms": CounterChange(diff=1)}, lists={"players": ListChange(added=("x",))})
    written = state.apply(pending, declared, NOW)
    assert written is not None
    assert written.status.counters == {"rooms": CounterStatus(2, 5)}
    assert written.status.lists == {"players": ListStatus(2, ("x",))}
    assert state.get_counter(declared.counts, "rooms") == CounterStatus(1, 5)


# -- lists -----------------------------------------------------------------------------------------

ListCall = Callable[[GameServerStatus], tuple[Pending, ListStatus]]

LIST_CALLS: list[tuple[str, ListCall, ListStatus | tuple[type[SdkCallError], str]]] = [
    ("add", lambda v: state.add_list_value(v, "players", "c"), ListStatus(3, ("a", "b", "c"))),
    ("remove", lambda v: state.remove_list_value(v, "players", "a"), ListStatus(3, ("b",))),
    ("capacity", lambda v: state.update_list(v, "players", capacity=10), ListStatus(10, ("a", "b"))),
    ("truncate", lambda v: state.update_list(v, "players", capacity=1), ListStatus(1, ("a",))),
    ("values", lambda v: state.update_list(v, "players", values=["x", "y", "x"]), ListStatus(3, ("x", "y"))),
    (
        "values-over-capacity",
        lambda v: state.update_list(v, "players", values=["w", "x", "y", "z"]),
        ListStatus(3, ("w", "x", "y")),
    ),
    ("both", lambda v: state.update_list(v, "players", capacity=1, values=["z", "y"]), ListStatus(1, ("z",))),
    ("no-op", lambda v: state.update_list(v, "players"), PLAYERS),
    ("max-capacity", lambda v: state.update_list(v, "players", capacity=1000), ListStatus(1000, ("a", "b"))),
    (
        "duplicate",
        lambda v: state.add_list_value(v, "players", "a"),
        (DuplicateValueError, "already exists. Value: a already in List: players"),
    ),
    (
        "absent",
        lambda v: state.remove_list_value(v, "players", "zz"),
        (NameNotFoundError, "not found. Value: zz not found in List: players"),
    ),
    (
        "capacity-over-max",
        lambda v: state.update_list(v, "players", capacity=1001),
        (OutOfRangeError, "out of range. Capacity must be within range [0,1000]. Found Capacity: 1001"),
    ),
    (
        "capacity-negative",
        lambda v: state.update_list(v, "players", capacity=-1),
        (OutOfRangeError, "out of range. Capacity must be within range [0,1000]. Found Capacity: -1"),
    ),
    ("unknown-get", lambda v: (Pending(), state.get_list(v, "nope")), (NameNotFoundError, "list not found: nope")),
    ("unknown-add", lambda v: state.add_list_value(v, "nope", "a"), (NameNotFoundError, "list not found: nope")),
    ("unknown-remove", lambda v: state.remove_list_value(v, "nope", "a"), (NameNotFoundError, "list not found: nope")),
    (
        "unknown-update",
        lambda v: state.update_list(v, "nope", capacity=1),
        (NameNotFoundError, "not found. nope List not found"),
    ),
]


@pytest.mark.parametrize(("call", "expected"), [pytest.param(c, e, id=i) for i, c, e in LIST_CALLS])
def test_list_calls(call: ListCall, expected: ListStatus | tuple[type[SdkCallError], str]) -> None:
    if isinstance(expected, ListStatus):
        change, result = call(VIEW)
        assert result == expected
        stored = gs(counters={"rooms": ROOMS}, lists={"players": PLAYERS})
        assert state.view(change, stored).lists["players"] == expected
        written = state.apply(change, stored, NOW)
        assert (written.status.lists["players"] if written else PLAYERS) == expected
    else:
        kind, message = expected
        with pytest.raises(kind) as info:
            call(VIEW)
        assert info.value.message == message and info.value.code is GrpcCode.UNKNOWN


def test_add_to_a_full_list() -> None:
    full = gs(lists={"players": ListStatus(2, ("a", "b"))}).counts
    with pytest.raises(OutOfRangeError) as info:
        state.add_list_value(full, "players", "c")
    assert info.value.message == "out of range. No available capacity. Current Capacity: 2, List Size: 2"
    with pytest.raises(OutOfRangeError):  # full wins over duplicate, as in Agones
        state.add_list_value(full, "players", "a")


def test_list_write_against_a_list_that_moved() -> None:
    change = Pending(lists={"players": ListChange(added=("c", "d"), removed=frozenset({"a"}))})
    moved = gs(lists={"players": ListStatus(3, ("b", "c", "x"))})  # someone added c and x meanwhile
    assert state.apply(change, moved, NOW) is None  # b, c, x: full, and nothing else changes
    roomy = gs(lists={"players": ListStatus(9, ("a", "b"))})
    written = state.apply(change, roomy, NOW)
    assert written is not None and written.status.lists["players"] == ListStatus(9, ("b", "c", "d"))


def _sequence_property(
    seed: int, base: GameServer, step: Callable[[random.Random, GameServerStatus], Pending | None]
) -> None:
    """Merging the changes of a run of calls gives what applying them one by one gives."""
    rng = random.Random(seed)
    merged = Pending()
    current = base
    for _ in range(60):
        try:
            change = step(rng, state.view(merged, base))
        except SdkCallError:
            continue
        if change is None:
            continue
        merged = merged.merge(change)
        one = state.apply(change, current, NOW)
        current = one or current
        assert state.view(merged, base) == current.counts
    written = state.apply(merged, base, NOW)
    assert (written or base).counts == current.counts


@pytest.mark.parametrize("seed", range(20))
def test_merged_list_changes_equal_the_calls_one_by_one(seed: int) -> None:
    def step(rng: random.Random, view: GameServerStatus) -> Pending:
        value = rng.choice("abcdefg")
        kind = rng.randrange(10)
        if kind < 4:
            return state.add_list_value(view, "l", value)[0]
        if kind < 8:
            return state.remove_list_value(view, "l", value)[0]
        if kind == 8:
            return state.update_list(view, "l", capacity=rng.randrange(0, 8))[0]
        return state.update_list(view, "l", values=rng.sample("abcdefg", rng.randrange(0, 5)))[0]

    _sequence_property(seed, gs(lists={"l": ListStatus(5, ("a", "b"))}), step)


@pytest.mark.parametrize("seed", range(20))
def test_merged_counter_changes_equal_the_calls_one_by_one(seed: int) -> None:
    def step(rng: random.Random, view: GameServerStatus) -> Pending:
        kind = rng.randrange(6)
        if kind < 4:
            return state.update_counter(view, "c", count_diff=rng.randrange(-3, 4) or 1)[0]
        if kind == 4:
            return state.update_counter(view, "c", capacity=rng.randrange(0, 12))[0]
        return state.update_counter(view, "c", count=rng.randrange(0, 6))[0]

    _sequence_property(seed, gs(counters={"c": CounterStatus(3, 10)}), step)


@pytest.mark.parametrize("seed", range(20))
def test_merged_player_changes_equal_the_calls_one_by_one(seed: int) -> None:
    def step(rng: random.Random, view: GameServerStatus) -> Pending:
        player = rng.choice(["p1", "p2", "p3", "p4", "p5"])
        kind = rng.randrange(9)
        if kind < 4:
            return state.player_connect(view, player)[0]
        if kind < 8:
            return state.player_disconnect(view, player)[0]
        return state.set_player_capacity(rng.randrange(0, 6))

    _sequence_property(seed, gs(spec_players=PlayersSpec(initial_capacity=3)), step)


# -- players ---------------------------------------------------------------------------------------


def test_player_tracking() -> None:
    base = gs(spec_players=PlayersSpec(initial_capacity=2))
    pending = Pending()

    def view() -> GameServerStatus:
        return state.view(pending, base)

    assert (state.get_player_capacity(view()), state.get_player_count(view())) == (2, 0)
    for player, expected in (("p1", True), ("p1", False), ("p2", True)):
        change, connected = state.player_connect(view(), player)
        assert connected is expected
        pending = pending.merge(change)
    with pytest.raises(PlayersAtCapacityError) as info:
        state.player_connect(view(), "p3")
    assert info.value.message == "players are already at capacity" and info.value.code is GrpcCode.UNKNOWN
    change, connected = state.player_connect(view(), "p2")  # connected already: False, not an error
    assert connected is False and change.empty
    assert state.get_connected_players(view()) == ["p1", "p2"]
    assert state.is_player_connected(view(), "p2") and not state.is_player_connected(view(), "p3")
    change, gone = state.player_disconnect(view(), "p1")
    assert gone is True
    pending = pending.merge(change)
    assert state.player_disconnect(view(), "p1") == (Pending(), False)
    pending = pending.merge(state.set_player_capacity(5))
    assert pending.players == PlayerChange(5, ("p2",), frozenset({"p1"}))
    written = state.apply(pending, base, NOW)
    assert written is not None and written.status.players == PlayerStatus(1, 5, ("p2",))


def test_a_negative_player_capacity_is_kept_as_given() -> None:
    """Agones does not check SetPlayerCapacity: -3 is stored and read back, and admits nobody."""
    base = gs(spec_players=PlayersSpec(initial_capacity=2))
    pending = state.set_player_capacity(-3)
    assert state.get_player_capacity(state.view(pending, base)) == -3
    with pytest.raises(PlayersAtCapacityError):
        state.player_connect(state.view(pending, base), "p1")
    written = state.apply(pending, base, NOW)
    assert written is not None and written.status.players == PlayerStatus(0, -3, ())
    assert from_wire(GameServer, to_wire(written)).status.players == PlayerStatus(0, -3, ())


def test_players_without_declaration_have_capacity_zero() -> None:
    undeclared = gs().counts
    assert state.get_player_capacity(undeclared) == 0 and state.get_connected_players(undeclared) == []
    with pytest.raises(PlayersAtCapacityError):
        state.player_connect(undeclared, "p1")


def test_counts_changes_ride_along_with_state_changes() -> None:
    pending = state.ready().merge(Pending(counters={"rooms": CounterChange(diff=2)}))
    pending = pending.merge(state.set_label("mode", "ctf"))
    assert pending.change is not None and pending.counters and pending.labels
    written = state.apply(pending, gs(counters={"rooms": ROOMS}), NOW)
    assert written is not None
    assert written.status.counters["rooms"] == CounterStatus(5, 10)
    assert written.metadata.labels == {"agones.dev/sdk-mode": "ctf"}
    assert not Pending(players=PlayerChange()).empty and Pending().empty


# -- JSON ------------------------------------------------------------------------------------------


def test_gameserver_json_counts() -> None:
    doc = jsonpb.gameserver_json(
        gs(
            counters={"rooms": CounterStatus(1, 10)},
            spec_lists={"players": ListStatus(100)},
            spec_players=PlayersSpec(initial_capacity=4),
        )
    )
    assert doc["status"]["counters"] == {"rooms": {"count": "1", "capacity": "10"}}
    assert doc["status"]["lists"] == {"players": {"capacity": "100", "values": []}}
    assert doc["status"]["players"] == {"count": "0", "capacity": "4", "ids": []}
    assert jsonpb.gameserver_json(gs())["status"]["players"] is None
    assert jsonpb.counter_json("rooms", CounterStatus(1, 10)) == {"name": "rooms", "count": "1", "capacity": "10"}
    assert jsonpb.list_json("l", ListStatus(2, ("a",))) == {"name": "l", "capacity": "2", "values": ["a"]}


# -- the session's view ----------------------------------------------------------------------------


async def test_session_view_includes_its_own_write_before_the_watch_brings_it_back() -> None:
    """No informer here: the session never observes its writes, yet answers as if it had."""
    store: MemoryStore[GameServer] = MemoryStore(GameServer)
    template = gs(spec_lists={"l": ListStatus(5)}, spec_counters={"c": CounterStatus(0, 5)})
    created = await store.create(with_meta(template, resource_version=""))
    session = SdkSession(created, store, SdkSettings(write_interval=0.01))
    session.start()
    try:
        assert session.add_list_value("l", "x") == ListStatus(5, ("x",))
        assert session.update_counter("c", count_diff=2) == CounterStatus(2, 5)
        assert await session.flush(5)
        stored = await store.get("gs-1")
        assert stored.status.lists["l"].values == ("x",) and stored.status.counters["c"].count == 2
        with pytest.raises(DuplicateValueError):
            session.add_list_value("l", "x")
        assert session.get_counter("c") == CounterStatus(2, 5)
        assert session.update_counter("c", count_diff=3) == CounterStatus(5, 5)
        # The watch catches up (an older version first, then ours): the view never goes back.
        session.observe(created)
        assert session.get_list("l").values == ("x",)
        session.observe(stored)
        assert session.get_list("l").values == ("x",) and session.get_counter("c").count == 5
        assert await session.flush(5)
        assert (await store.get("gs-1")).status.counters["c"].count == 5
    finally:
        await session.close()


class EchoingStore(MemoryStore[GameServer]):
    """The watch is faster than the write's answer: the session observes the new version while
    ``update`` has not returned yet (the order a real informer can deliver them in)."""

    session: SdkSession | None = None
    gate: asyncio.Event | None = None
    echoed: asyncio.Event | None = None

    async def update(self, obj: GameServer) -> GameServer:
        written = await super().update(obj)
        if self.session is not None and self.gate is not None and self.echoed is not None:
            self.session.observe(written)
            self.echoed.set()
            await self.gate.wait()
        return written


async def test_a_write_echoed_by_the_watch_before_it_returns_is_not_counted_twice() -> None:
    store = EchoingStore(GameServer)
    created = await store.create(with_meta(gs(spec_counters={"c": CounterStatus(0, 10)}), resource_version=""))
    session = SdkSession(created, store, SdkSettings(write_interval=0.01))
    store.session, store.gate, store.echoed = session, asyncio.Event(), asyncio.Event()
    session.start()
    try:
        assert session.update_counter("c", count_diff=2) == CounterStatus(2, 10)
        await asyncio.wait_for(store.echoed.wait(), 5)  # stored and observed; the write not returned yet
        assert session.get_counter("c") == CounterStatus(2, 10)
        assert session.update_counter("c", count_diff=-1) == CounterStatus(1, 10)
        store.gate.set()
        assert await session.flush(5)
        assert (await store.get("gs-1")).status.counters["c"] == CounterStatus(1, 10)
        assert session.get_counter("c") == CounterStatus(1, 10)
    finally:
        store.gate.set()
        await session.close()


@pytest.mark.parametrize(
    ("paths", "sets"),
    [
        ([], set()),
        (["capacity"], {"capacity"}),
        (["values", "capacity"], {"capacity", "values"}),
        (["name"], set()),  # a field of List, so valid; the name itself never changes
    ],
)
def test_list_mask_sets_the_named_fields(paths: list[str], sets: set[str]) -> None:
    assert state.list_mask(paths) == sets


def test_list_mask_refuses_a_path_of_no_field_naming_every_path() -> None:
    with pytest.raises(MalformedRequestError) as info:
        state.list_mask(["capacity", "nme"])
    assert info.value.code is GrpcCode.UNKNOWN  # a plain error in Agones: HTTP 500 over REST
    assert info.value.message == (
        "invalid argument. Field Mask Path(s): [capacity nme] are invalid for List. "
        "Use valid field name(s): [name capacity values]"
    )
