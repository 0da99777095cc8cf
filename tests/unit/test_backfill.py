"""The pure backfill decision (``matchmaker.backfill``): tables for each rule, then hypothesis
properties over random pools (no ticket or player twice, slots never exceeded, nobody already in
the match added, blocks honoured both ways, every newcomer fits the rules)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetmatch.allocation import GameServerAllocationSpec, ListAction
from fleetmatch.errors import ValidationError
from matchmaker.backfill import (
    MATCH_PROFILE_ANNOTATION,
    MIN_SCAN,
    PLAYER_TEAMS_ANNOTATION,
    PLAYERS_LIST,
    Backfill,
    BackfillState,
    MatchProfile,
    Opening,
    allocation_extras,
    fits,
    plan_fills,
    profile_of,
    slots_by_name,
    slots_from_list,
)
from matchmaker.models import Player, Proposal, Ticket
from matchmaker.rules import parse_queues

QUEUES = parse_queues("""
kind: Queue
metadata: {name: q}
spec:
  teams: {count: 2, maxSize: 4}
  rules:
    - name: skill
      type: distance
      attribute: skill
      maxDistance: 100
      widen: {steps: [{afterSeconds: 10, value: 300}]}
    - {name: ping, type: latency, maxLatencyMs: 80, regions: [eu, us]}
    - {name: mode, type: equal, attribute: mode}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
---
kind: Queue
metadata: {name: roles}
spec:
  teams: {count: 2, roles: {tank: 1, dps: 2}}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
---
kind: Queue
metadata: {name: named}
spec:
  teams: {named: [{name: hunter, size: 1}, {name: prey, size: 4}]}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
""")
Q = QUEUES["q"]
NOW = 1000.0
PROFILE = MatchProfile("eu", {"skill": 1500.0}, {"mode": "ranked"}, ("grudge",))


def ticket(tid: str, *players: str, skill: float = 1500, ms: float = 20, mode: str = "ranked", age: float = 1,
           blocks: tuple[str, ...] = ()) -> Ticket:  # fmt: skip
    party = tuple(Player(p, {"skill": skill, "mode": mode}, {"eu": ms}) for p in players or (tid,))
    return Ticket(f"q.{tid}", "q", party[0].id, party, enqueued_at=NOW - age, blocked_players=blocks)


def opening(slots: tuple[int, ...] = (0, 1), *, players: tuple[str, ...] = ("a", "b"), age: float = 0,
            bid: str = "b1", profile: MatchProfile = PROFILE) -> Opening:  # fmt: skip
    return Opening(Backfill(bid, "q", "m1", "gs-1", slots, NOW - age), frozenset(players), profile)


@pytest.mark.parametrize(
    ("candidate", "age", "expected"),
    [
        pytest.param(ticket("t", skill=1590), 0, True, id="within-skill"),
        pytest.param(ticket("t", skill=1650), 0, False, id="too-far"),
        pytest.param(ticket("t", skill=1650, age=11), 0, True, id="widened-by-the-ticket-wait"),
        pytest.param(ticket("t", skill=1650), 11, True, id="widened-by-the-backfill-age"),
        pytest.param(ticket("t", ms=90), 0, False, id="latency"),
        pytest.param(ticket("t", mode="casual"), 0, False, id="equal-rule"),
        pytest.param(ticket("a"), 0, False, id="already-in-the-match"),
        pytest.param(ticket("grudge"), 0, False, id="blocked-by-the-match"),
        pytest.param(ticket("t", blocks=("b",)), 0, False, id="blocks-someone-in-the-match"),
    ],
)
def test_fits(candidate: Ticket, age: float, expected: bool) -> None:
    assert fits(candidate, opening(age=age), Q, NOW) is expected


def test_an_empty_profile_constrains_nothing_but_players() -> None:
    bare = opening(profile=MatchProfile())
    assert fits(ticket("t", skill=9000, ms=900, mode="x"), bare, Q, NOW)
    assert not fits(ticket("a"), bare, Q, NOW)


def test_a_party_needs_the_room_of_one_team() -> None:
    pool = [ticket("duo", "d1", "d2", age=5), ticket("solo", age=1)]
    assert plan_fills([opening((1, 1))], pool, Q, NOW)[0].teams == (("q.solo",), ())
    [fill] = plan_fills([opening((0, 2))], pool, Q, NOW)
    assert fill.teams == ((), ("q.duo",))  # oldest first: the duo fits team 1, then it is full


def test_oldest_backfill_first_and_no_ticket_twice() -> None:
    young, old = opening((0, 1), bid="young", age=1), opening((0, 1), bid="old", age=5)
    pool = [ticket("t1", age=3), ticket("t2", age=2)]
    fills = plan_fills([young, old], pool, Q, NOW)
    assert [(f.backfill_id, f.ticket_ids) for f in fills] == [("old", ("q.t1",)), ("young", ("q.t2",))]


def test_newcomers_do_not_block_each_other() -> None:
    pool = [ticket("t1", age=3, blocks=("t2",)), ticket("t2", age=2), ticket("t3", age=1)]
    [fill] = plan_fills([opening((0, 2))], pool, Q, NOW)
    assert fill.ticket_ids == ("q.t1", "q.t3")


def test_closed_backfills_other_queues_and_role_queues_get_nobody() -> None:
    closed = Opening(Backfill("b", "q", "m", "gs", (1, 1), NOW, state=BackfillState.FILLED))
    other = Opening(Backfill("b", "other", "m", "gs", (1, 1), NOW))
    assert plan_fills([closed, other], [ticket("t")], Q, NOW) == []
    assert plan_fills([opening()], [ticket("t")], QUEUES["roles"], NOW) == []


@pytest.mark.parametrize(
    ("queue", "given", "expected"),
    [
        pytest.param("q", {"1": 2}, (0, 2), id="index"),
        pytest.param("named", {"prey": 2, "hunter": 1}, (1, 2), id="names"),
        pytest.param("named", {"0": 1}, (1, 0), id="index-of-a-named-team"),
    ],
)
def test_slots_by_name(queue: str, given: dict[str, int], expected: tuple[int, ...]) -> None:
    assert slots_by_name(given, QUEUES[queue]) == expected


@pytest.mark.parametrize(
    ("given", "field"),
    [({"2": 1}, "openSlots.2"), ({"1": 5}, "openSlots.1"), ({"01x": 1}, "openSlots.01x"), ({}, "openSlots")],
)
def test_slots_by_name_refuses(given: dict[str, int], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        slots_by_name(given, Q)
    assert refused.value.field == field


def test_slots_from_list() -> None:
    teams = {"a": 0, "b": 0, "c": 1, "d": 1}
    assert slots_from_list(["a", "b", "c", "d"], teams, (2, 2)) == (0, 0)
    assert slots_from_list(["a", "c"], teams, (2, 2)) == (1, 1)
    assert slots_from_list(["a", "stranger"], teams, (2, 2)) == (1, 2)


def test_profile_round_trip_and_garbage() -> None:
    tickets = [ticket("t1", skill=1400, blocks=("x",)), ticket("t2", "p", "r", skill=1600)]
    profile = profile_of(tickets, Q, "eu")
    assert profile == MatchProfile("eu", {"skill": 1500.0}, {"mode": "ranked"}, ("x",))
    assert MatchProfile.decode(profile.encode()) == profile
    for garbage in (None, "", "{", "[]", '{"anchors": {"skill": "high"}, "blocked": [1, "y"], "region": 3}'):
        decoded = MatchProfile.decode(garbage)
        assert decoded.anchors == {} and decoded.region == "" and set(decoded.blocked) <= {"y"}


def test_allocation_extras_list_the_players_and_their_teams() -> None:
    tickets = {t.id: t for t in (ticket("t1"), ticket("t2", "p2", "p3"))}
    spec = GameServerAllocationSpec(lists={PLAYERS_LIST: ListAction(add_values=("host",))})
    proposal = Proposal(teams=(("q.t1",), ("q.t2",)), region="eu")
    notes, out = allocation_extras(spec, proposal, tickets, Q)
    assert json.loads(notes[PLAYER_TEAMS_ANNOTATION]) == {"t1": 0, "p2": 1, "p3": 1}
    assert MatchProfile.decode(notes[MATCH_PROFILE_ANNOTATION]).region == "eu"
    assert out.lists[PLAYERS_LIST].add_values == ("host", "t1", "p2", "p3")


# -- properties -------------------------------------------------------------------------------------

NAMES = [f"u{i}" for i in range(12)]


@st.composite
def pools(draw: st.DrawFn) -> tuple[list[Opening], list[Ticket]]:
    count = draw(st.integers(0, 25))
    pool = []
    for i in range(count):
        size = draw(st.integers(1, 3))
        players = draw(st.lists(st.sampled_from(NAMES), min_size=size, max_size=size, unique=True))
        pool.append(
            ticket(
                f"t{i}",
                *players,
                skill=draw(st.floats(1200, 1800)),
                ms=draw(st.floats(0, 120)),
                mode=draw(st.sampled_from(["ranked", "ranked", "casual"])),
                age=draw(st.floats(0, 20)),
                blocks=tuple(draw(st.lists(st.sampled_from(NAMES), max_size=2, unique=True))),
            )
        )
    openings = [
        opening(
            (draw(st.integers(0, 4)), draw(st.integers(0, 4))),
            players=tuple(draw(st.lists(st.sampled_from(NAMES), max_size=3, unique=True))),
            bid=f"b{j}",
            age=draw(st.floats(0, 20)),
        )
        for j in range(draw(st.integers(1, 3)))
    ]
    return openings, pool


@settings(max_examples=300, deadline=None)
@given(pools())
def test_fills_never_break_a_rule(case: tuple[list[Opening], list[Ticket]]) -> None:
    openings, pool = case
    by_id = {t.id: t for t in pool}
    by_backfill = {o.backfill.id: o for o in openings}
    fills = plan_fills(openings, pool, Q, NOW)
    taken = [tid for f in fills for tid in f.ticket_ids]
    assert len(taken) == len(set(taken))  # no ticket twice
    everyone = [p.id for tid in taken for p in by_id[tid].players]
    assert len(everyone) == len(set(everyone))  # no player twice, in one match or across
    assert len({f.backfill_id for f in fills}) == len(fills)
    for fill in fills:
        o = by_backfill[fill.backfill_id]
        newcomers = {p.id for tid in fill.ticket_ids for p in by_id[tid].players}
        assert not newcomers & o.players  # nobody already in the match
        for team, members in enumerate(fill.teams):
            assert sum(by_id[tid].size for tid in members) <= o.backfill.open_slots[team]
        for tid in fill.ticket_ids:
            t = by_id[tid]
            assert fits(t, o, Q, NOW)
            assert not set(t.blocked_players) & (newcomers - {p.id for p in t.players})  # blocks among newcomers
        assert fill.ticket_ids  # a fill adds somebody


def test_a_backfill_looks_at_a_bounded_number_of_tickets() -> None:
    """Bounded work per backfill: a fitting ticket behind more than the budget of older ones that do
    not fit waits (the backfill's windows widen with its age)."""
    far = [ticket(f"far{i}", skill=5000, age=100) for i in range(MIN_SCAN)]
    assert plan_fills([opening()], [*far, ticket("near", age=1)], Q, NOW) == []
    assert plan_fills([opening()], [*far[1:], ticket("near", age=1)], Q, NOW)[0].ticket_ids == ("q.near",)
