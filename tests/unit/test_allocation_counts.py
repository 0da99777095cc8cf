"""Counters, lists and player room in allocation: the selector bounds and the claim's actions (pure)."""

from __future__ import annotations

import pytest

from allocator.allocation import allocated
from fleetmatch.allocation import (
    CounterAction,
    CounterActionType,
    CounterSelector,
    GameServerAllocationSpec,
    GameServerSelector,
    ListAction,
    ListSelector,
    PlayerSelector,
    decode_allocation,
)
from fleetmatch.errors import ValidationError
from fleetmatch.models import (
    CounterStatus,
    GameServer,
    GameServerSpec,
    GameServerState,
    ListStatus,
    ObjectMeta,
    PlayersSpec,
    PlayerStatus,
)

INC = CounterActionType.INCREMENT


@pytest.mark.parametrize(
    ("bounds", "count", "capacity", "fits"),
    [
        (CounterSelector(), 5, 10, True),
        (CounterSelector(min_available=1), 9, 10, True),
        (CounterSelector(min_available=1), 10, 10, False),
        (CounterSelector(min_count=3), 2, 10, False),
        (CounterSelector(max_count=4), 5, 10, False),
        (CounterSelector(max_count=0), 500, 1000, True),  # 0: no upper bound
        (CounterSelector(max_available=2), 7, 10, False),
        (CounterSelector(min_available=2, max_available=3), 7, 10, True),
    ],
)
def test_counter_bounds(bounds: CounterSelector, count: int, capacity: int, fits: bool) -> None:
    assert bounds.matches(CounterStatus(count=count, capacity=capacity)) is fits


@pytest.mark.parametrize(
    ("bounds", "values", "fits"),
    [
        (ListSelector(contains_value="p1"), ("p1", "p2"), True),
        (ListSelector(contains_value="p9"), ("p1", "p2"), False),
        (ListSelector(min_available=3), ("p1", "p2"), True),  # capacity 5
        (ListSelector(min_available=4), ("p1", "p2"), False),
        (ListSelector(max_available=2), ("p1",), False),
    ],
)
def test_list_bounds(bounds: ListSelector, values: tuple[str, ...], fits: bool) -> None:
    assert bounds.matches(ListStatus(capacity=5, values=values)) is fits


def server(**spec: object) -> GameServer:
    return GameServer(metadata=ObjectMeta(name="gs"), spec=GameServerSpec(**spec))  # type: ignore[arg-type]


def test_a_server_without_the_counter_never_matches_a_selector_on_it() -> None:
    selector = GameServerSelector(counters={"rooms": CounterSelector()})
    assert not selector.counts_match(server())
    assert selector.counts_match(server(counters={"rooms": CounterStatus(0, 2)}))  # from the spec


def test_player_room() -> None:
    gs = server(players=PlayersSpec(initial_capacity=4))
    assert GameServerSelector(players=PlayerSelector(min_available=4)).counts_match(gs)
    full = gs.with_status(players=PlayerStatus(count=4, capacity=4, ids=("a", "b", "c", "d")))
    assert not GameServerSelector(players=PlayerSelector(min_available=1)).counts_match(full)
    assert not GameServerSelector(players=PlayerSelector(min_available=0, max_available=1)).counts_match(gs)


@pytest.mark.parametrize(
    ("action", "before", "after"),
    [
        (CounterAction(INC, 2), CounterStatus(1, 5), CounterStatus(3, 5)),
        (CounterAction(INC, 5), CounterStatus(1, 5), CounterStatus(1, 5)),  # beyond capacity: not applied
        (CounterAction(CounterActionType.DECREMENT, 2), CounterStatus(1, 5), CounterStatus(1, 5)),  # below 0
        (CounterAction(CounterActionType.DECREMENT, 1), CounterStatus(1, 5), CounterStatus(0, 5)),
        (CounterAction(capacity=9), CounterStatus(1, 5), CounterStatus(1, 9)),
        (CounterAction(INC, 1, capacity=2), CounterStatus(3, 5), CounterStatus(2, 2)),  # shrunk, then full
    ],
)
def test_counter_actions(action: CounterAction, before: CounterStatus, after: CounterStatus) -> None:
    assert action.apply(before) == after


def test_list_actions_skip_duplicates_and_respect_capacity() -> None:
    lst = ListStatus(capacity=3, values=("a", "b"))
    assert ListAction(add_values=("b", "c", "d")).apply(lst) == ListStatus(3, ("a", "b", "c"))
    assert ListAction(delete_values=("a",), add_values=("x",)).apply(lst) == ListStatus(3, ("b", "x"))
    assert ListAction(capacity=1).apply(lst) == ListStatus(1, ("a",))


def test_the_claim_applies_actions_with_the_state_change() -> None:
    gs = server(counters={"rooms": CounterStatus(0, 2)}, lists={"players": ListStatus(4)})
    spec = GameServerAllocationSpec(
        counters={"rooms": CounterAction(INC, 1), "absent": CounterAction(INC, 1)},
        lists={"players": ListAction(add_values=("p1",))},
    )
    claimed = allocated(gs, spec, 1_700_000_000.0)
    assert claimed.status.state is GameServerState.ALLOCATED
    assert claimed.status.counters == {"rooms": CounterStatus(1, 2)}  # no counter is made up
    assert claimed.status.lists["players"].values == ("p1",)


def test_decoding_names_bad_fields() -> None:
    doc = {"spec": {"selectors": [{"lists": {"players": {"minAvailable": "many"}}}]}}
    with pytest.raises(ValidationError) as info:
        decode_allocation(doc)
    assert info.value.field == "spec.selectors[0].lists.players.minAvailable"
    with pytest.raises(ValidationError) as amount:
        decode_allocation({"spec": {"counters": {"rooms": {"amount": 1}}}})
    assert amount.value.field == "spec.counters.rooms.action"


@pytest.mark.parametrize("state", ["Foo", "Creating", "Shutdown", 5, None])
def test_a_selector_state_other_than_ready_or_allocated_names_only_those_two(state: object) -> None:
    """It listed all eleven states, then refused nine of them with another message."""
    with pytest.raises(ValidationError) as info:
        decode_allocation({"spec": {"selectors": [{"gameServerState": state}]}})
    assert info.value.field == "spec.selectors[0].gameServerState"
    assert info.value.message == f"must be Ready or Allocated; got {state!r}"


def test_a_null_where_a_mapping_belongs_says_null_once() -> None:
    with pytest.raises(ValidationError) as info:
        decode_allocation({"spec": None})
    assert (info.value.field, info.value.message) == ("spec", "expected a mapping, got null")
