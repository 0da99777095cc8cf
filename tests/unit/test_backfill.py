"""The pure backfill decision (``matchmaker.backfill``): tables for each rule, then hypothesis
properties over random pools (no ticket or player twice, slots never exceeded, nobody already in
the match added, blocks honoured both ways, every newcomer fits the rules)."""

from __future__ import annotations

import json
from collections import Counter

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
    open_roles,
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
metadata: {name: five}
spec:
  teams: {count: 2, roles: {tank: 1, healer: 1, dps: 3}}
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


def test_closed_backfills_and_other_queues_get_nobody() -> None:
    closed = Opening(Backfill("b", "q", "m", "gs", (1, 1), NOW, state=BackfillState.FILLED))
    other = Opening(Backfill("b", "other", "m", "gs", (1, 1), NOW))
    assert plan_fills([closed, other], [ticket("t")], Q, NOW) == []


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


# -- role slots -------------------------------------------------------------------------------------

FIVE = QUEUES["five"]
TEAM_ROLES = FIVE.spec.teams.team_roles
# team 0: t0 tank, h0 healer, d0 d1 d2 dps; team 1 likewise with the 1-suffixed ids
TEAMS_OF = {p: int(p[-1]) for p in ("tk0", "hl0", "da0", "db0", "dc0", "tk1", "hl1", "da1", "db1", "dc1")}
ROLES_OF = {p: {"tk": "tank", "hl": "healer"}.get(p[:2], "dps") for p in TEAMS_OF}


def role_ticket(tid: str, *offers: tuple[str, ...], age: float = 1) -> Ticket:
    party = tuple(Player(f"{tid}.{i}", roles=offer) for i, offer in enumerate(offers))
    return Ticket(f"five.{tid}", "five", party[0].id, party, enqueued_at=NOW - age)


def role_opening(left: tuple[str, ...], slots: tuple[int, ...] = (1, 0), bid: str = "rb") -> Opening:
    """A match of FIVE whose players ``left`` have gone: its open roles from the rest, as the director reads them."""
    present = [p for p in TEAMS_OF if p not in left]
    roles = open_roles(TEAM_ROLES, present, TEAMS_OF, ROLES_OF)
    return Opening(Backfill(bid, "five", "m1", "gs-1", slots, NOW), frozenset(TEAMS_OF), MatchProfile(), roles)


def test_open_roles_are_the_team_roles_the_remaining_players_do_not_hold() -> None:
    assert open_roles(TEAM_ROLES, [p for p in TEAMS_OF if p != "tk0"], TEAMS_OF, ROLES_OF) == ({"tank": 1}, {})
    gone = {"da1", "db1", "hl0"}
    assert open_roles(TEAM_ROLES, [p for p in TEAMS_OF if p not in gone], TEAMS_OF, ROLES_OF) == (
        {"healer": 1},
        {"dps": 2},
    )
    # a present player of no recorded role holds no slot; an unknown team's player none either
    assert open_roles(TEAM_ROLES, ["tk0", "x"], {**TEAMS_OF, "x": 0}, ROLES_OF)[0] == {"healer": 1, "dps": 3}


def test_a_tank_leaving_is_filled_by_a_tank_only() -> None:
    pool = [
        role_ticket("healer", ("healer",), age=9),
        role_ticket("dps", ("dps",), age=8),
        role_ticket("tank", ("tank",)),
    ]
    [fill] = plan_fills([role_opening(("tk0",))], pool, FIVE, NOW)
    assert fill.teams == (("five.tank",), ())
    assert fill.roles == {"tank.0": "tank"}
    assert plan_fills([role_opening(("tk0",))], pool[:2], FIVE, NOW) == []


def test_a_player_offering_several_roles_takes_the_open_one() -> None:
    [fill] = plan_fills([role_opening(("tk0",))], [role_ticket("flex", ("dps", "tank"))], FIVE, NOW)
    assert fill.roles == {"flex.0": "tank"}


def test_a_player_offering_no_role_takes_any_open_one() -> None:
    [fill] = plan_fills([role_opening(("hl0",))], [role_ticket("any", ())], FIVE, NOW)
    assert fill.roles == {"any.0": "healer"}


def test_a_party_of_two_does_not_fit_one_slot() -> None:
    party = role_ticket("duo", ("tank",), ("tank",), age=5)
    [fill] = plan_fills([role_opening(("tk0",))], [party, role_ticket("solo", ("tank",))], FIVE, NOW)
    assert fill.ticket_ids == ("five.solo",)


def test_a_party_goes_to_the_team_whose_open_roles_it_can_take() -> None:
    """Two slots open on each team; the party fits only the team missing a healer and a dps."""
    opening = role_opening(("tk0", "da0", "hl1", "db1"), slots=(2, 2))
    party = role_ticket("duo", ("healer",), ("dps", "tank"))
    [fill] = plan_fills([opening], [party], FIVE, NOW)
    assert fill.teams == ((), ("five.duo",))
    assert fill.roles == {"duo.0": "healer", "duo.1": "dps"}


def test_newcomers_of_one_fill_never_take_one_role_twice() -> None:
    pool = [role_ticket("a", ("tank",), age=3), role_ticket("b", ("tank",), age=2), role_ticket("c", ("dps",))]
    [fill] = plan_fills([role_opening(("tk0", "da0"), slots=(2, 0))], pool, FIVE, NOW)
    assert fill.teams == (("five.a", "five.c"), ())
    assert fill.roles == {"a.0": "tank", "c.0": "dps"}


ROLE_NAMES = ("tank", "healer", "dps")


@st.composite
def role_pools(draw: st.DrawFn) -> tuple[list[Opening], list[Ticket]]:
    pool = []
    for i in range(draw(st.integers(0, 15))):
        size = draw(st.integers(1, 3))
        offers = [tuple(draw(st.lists(st.sampled_from(ROLE_NAMES), max_size=2, unique=True))) for _ in range(size)]
        pool.append(role_ticket(f"t{i}", *offers, age=draw(st.floats(0, 20))))
    openings = []
    for j in range(draw(st.integers(1, 3))):
        left = tuple(draw(st.lists(st.sampled_from(sorted(TEAMS_OF)), max_size=6, unique=True)))
        counts = tuple(draw(st.integers(0, sum(1 for p in left if TEAMS_OF[p] == t))) for t in (0, 1))
        openings.append(role_opening(left, counts, bid=f"rb{j}"))
    return openings, pool


@settings(max_examples=300, deadline=None)
@given(role_pools())
def test_role_fills_take_open_roles_only(case: tuple[list[Opening], list[Ticket]]) -> None:
    openings, pool = case
    by_id = {t.id: t for t in pool}
    by_backfill = {o.backfill.id: o for o in openings}
    fills = plan_fills(openings, pool, FIVE, NOW)
    everyone = [p.id for f in fills for tid in f.ticket_ids for p in by_id[tid].players]
    assert len(everyone) == len(set(everyone))  # no player twice
    for fill in fills:
        o = by_backfill[fill.backfill_id]
        for team, members in enumerate(fill.teams):
            players = [p for tid in members for p in by_id[tid].players]
            assert len(players) <= o.backfill.open_slots[team]
            taken = [fill.roles[p.id] for p in players]  # every newcomer has a role
            for player, role in zip(players, taken, strict=True):
                assert not player.roles or role in player.roles  # one they offered
            for role, n in Counter(taken).items():
                assert n <= o.roles[team].get(role, 0)  # an open one, never twice
        assert set(fill.roles) == {p.id for tid in fill.ticket_ids for p in by_id[tid].players}
