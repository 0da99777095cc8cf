"""Role slots, named teams of their own sizes, large matches and block lists in the pure match
function: tables for each, then hypothesis properties (no player twice, parties whole, roles filled,
blocks honoured, team sizes respected) on generated pools."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetmatch.errors import ValidationError
from fleetmatch.models import FLEET_LABEL
from matchmaker.composition import assign_roles, avoid_sets, roles_fit
from matchmaker.matching import find_matches
from matchmaker.models import Player, Proposal, Ticket, TicketRequest
from matchmaker.rules import Queue, decode_queue, parse_queues

NOW = 1_800_000_000.0
SKILL: dict[str, Any] = {"name": "skill", "type": "distance", "attribute": "skill", "maxDistance": 100}
ROLES = {"tank": 1, "healer": 1, "dps": 3}


def queue(teams: Mapping[str, Any], rules: Sequence[Mapping[str, Any]] = ()) -> Queue:
    return decode_queue(
        {
            "metadata": {"name": "q"},
            "spec": {
                "teams": dict(teams),
                "rules": [dict(r) for r in rules],
                "allocation": {"selectors": [{"matchLabels": {FLEET_LABEL: "f"}}]},
            },
        }
    )


def ticket(
    tid: str,
    *roles: Sequence[str],
    wait: float = 0.0,
    blocks: Sequence[str] = (),
    size: int = 1,
    skill: float = 1500.0,
) -> Ticket:
    """One player per ``roles`` entry (their offered roles), else ``size`` players offering any."""
    offers = list(roles) or [()] * size
    players = tuple(Player(f"{tid}{i}", {"skill": skill}, roles=tuple(r)) for i, r in enumerate(offers))
    return Ticket(tid, "q", players[0].id, players, enqueued_at=NOW - wait, blocked_players=tuple(blocks))


def teams_of(proposals: list[Proposal]) -> list[list[set[str]]]:
    return [[set(team) for team in p.teams] for p in proposals]


# -- bipartite role assignment ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offers", "every_role", "expected"),
    [
        pytest.param([("tank",), ("healer",), ("dps",), ("dps",), ("dps",)], False, True, id="exact"),
        pytest.param([("tank", "dps"), ("dps",), ("dps",), ("healer",), ("tank",)], False, True, id="augmenting-path"),
        pytest.param([("dps",)] * 4, False, False, id="too-many-dps"),
        pytest.param([(), (), (), (), ()], False, True, id="any-role"),
        pytest.param([(), (), (), (), (), ()], False, False, id="more-players-than-slots"),
        pytest.param([("dps",), ("dps",), ("tank", "healer")], True, False, id="smaller-misses-a-role"),
        pytest.param([("dps",), ("tank", "dps"), ("healer", "tank")], True, True, id="smaller-every-role"),
        pytest.param([("tank", "healer"), ("tank",), ("dps",)], True, True, id="required-slots-swap"),
    ],
)
def test_assign_roles(offers: list[tuple[str, ...]], every_role: bool, expected: bool) -> None:
    got = assign_roles(offers, ROLES, every_role=every_role)
    assert (got is not None) == expected
    if got is not None:
        assert all(not offer or role in offer for offer, role in zip(offers, got, strict=True))
        assert all(n <= ROLES[role] for role, n in Counter(got).items())
        if every_role:
            assert set(got) == set(ROLES)


def test_avoid_sets_are_symmetric_and_none_without_blocks() -> None:
    assert avoid_sets([["a"], ["b"]], [[], []]) is None
    avoid = avoid_sets([["a"], ["b", "c"], ["d"]], [["c"], [], []])
    assert avoid == [frozenset({"c"}), frozenset({"a"}), frozenset()]


# -- roles ----------------------------------------------------------------------------------------


def test_a_roles_match_fills_every_slot_and_names_each_players_role() -> None:
    pool = [ticket(f"d{i}", ["dps"], wait=30 - i) for i in range(6)]
    pool += [ticket("t", ["tank"], wait=5), ticket("h", ["healer"], wait=4)]
    q = queue({"count": 2, "roles": ROLES})
    assert find_matches(pool, q, NOW) == []  # one tank and one healer for two teams: no match
    pool += [ticket("u", ["tank", "dps"], wait=3), ticket("i", ["healer"], wait=2)]
    (match,) = find_matches(pool, q, NOW)
    assert [Counter(match.roles[f"{t}0"] for t in team) for team in match.teams] == [Counter(ROLES)] * 2
    assert match.roles["t0"] == "tank" and match.roles["u0"] == "tank"  # u offered dps too: tank was free


def test_a_party_spans_roles_in_one_team() -> None:
    party = ticket("p", ["tank"], ["healer"], ["dps"], wait=10)
    pool = [
        party,
        *(ticket(f"d{i}", ["dps"], wait=5 - i) for i in range(5)),
        ticket("t", ["tank"]),
        ticket("h", ["healer"]),
    ]
    (match,) = find_matches(pool, queue({"count": 2, "roles": ROLES}), NOW)
    team = next(team for team in match.teams if "p" in team)
    assert [match.roles[f"p{i}"] for i in range(3)] == ["tank", "healer", "dps"]
    assert len([t for t in team if t.startswith("d")]) == 2


def test_smaller_teams_with_roles_play_every_role_after_the_wait() -> None:
    q = queue({"count": 2, "roles": ROLES, "minSize": 3, "waitForFullSeconds": 10})
    pool = [ticket("t1", ["tank"], wait=20), ticket("t2", ["tank"]), ticket("h1", ["healer"]), ticket("h2", ["healer"])]
    pool += [ticket("d1", ["dps"]), ticket("d2", ["dps"]), ticket("d3", ["dps"])]
    (match,) = find_matches(pool, q, NOW)
    assert all(len(team) == 3 for team in match.teams)
    assert all({match.roles[f"{t}0"] for t in team} == set(ROLES) for team in match.teams)
    assert find_matches(pool, q, NOW - 15) == []  # before the wait: full teams only


# -- named teams, large matches ---------------------------------------------------------------------


def test_one_hunter_against_four_prey() -> None:
    q = queue({"named": [{"name": "hunter", "size": 1}, {"name": "prey", "size": 4}]})
    pool = [ticket("a", wait=9), ticket("p", size=3, wait=8), ticket("q", size=2, wait=7), ticket("b", wait=6)]
    (match,) = find_matches(pool, q, NOW)
    assert teams_of([match]) == [[{"a"}, {"p", "b"}]] and match.team_names == ("hunter", "prey")


def test_a_party_only_fits_the_team_of_its_size() -> None:
    q = queue({"named": [{"name": "hunter", "size": 1}, {"name": "prey", "size": 4}]})
    pool = [ticket("p", size=4, wait=9), ticket("a", wait=1)]
    assert teams_of(find_matches(pool, q, NOW)) == [[{"a"}, {"p"}]]


def test_named_teams_with_and_without_roles() -> None:
    q = QUEUES["named-roles"]
    pool = [ticket("a", ["dps"], wait=9), ticket("b", size=3, wait=8), ticket("c", ["tank", "dps"], wait=7)]
    (match,) = find_matches(pool, q, NOW)
    assert teams_of([match]) == [[{"a", "c"}, {"b"}]] and match.team_names == ("a", "b")
    assert match.roles == {"a0": "dps", "c0": "tank"}  # team b has no role slots


def test_battle_royale_of_25_teams_of_4() -> None:
    q = queue({"count": 25, "maxSize": 4})
    pool = [ticket(f"s{i:03d}", size=1 + i % 4, wait=i / 100) for i in range(200)]
    proposals = find_matches(pool, q, NOW)
    assert proposals
    for p in proposals:
        assert len(p.teams) == 25
        sizes = {t.id: t.size for t in pool}
        assert all(sum(sizes[t] for t in team) == 4 for team in p.teams)


def test_200_players_in_one_match() -> None:
    q = queue({"count": 2, "maxSize": 100})
    pool = [ticket(f"t{i:03d}", size=4, wait=i) for i in range(50)]
    (match,) = find_matches(pool, q, NOW)
    assert len(match.ticket_ids) == 50


# -- blocks ---------------------------------------------------------------------------------------


def sets_of(proposals: list[Proposal]) -> list[set[frozenset[str]]]:
    return [{frozenset(team) for team in p.teams} for p in proposals]


@pytest.mark.parametrize(
    ("pool", "expected"),
    [
        pytest.param(
            [ticket("a", wait=3, blocks=["b0"]), ticket("b", wait=2), ticket("c", wait=1)],
            [{frozenset("a"), frozenset("c")}],
            id="the-older-blocks",
        ),
        pytest.param(
            [ticket("a", wait=3), ticket("b", wait=2, blocks=["a0"]), ticket("c", wait=1)],
            [{frozenset("a"), frozenset("c")}],
            id="the-younger-blocks",
        ),
        pytest.param([ticket("a", wait=3, blocks=["b0"]), ticket("b", wait=2)], [], id="only-each-other"),
    ],
)
def test_blocked_players_never_share_a_match(pool: list[Ticket], expected: list[set[frozenset[str]]]) -> None:
    assert sets_of(find_matches(pool, queue({"count": 2, "maxSize": 1}), NOW)) == expected


def test_a_blocked_party_member_keeps_the_whole_party_out() -> None:
    pool = [ticket("a", wait=4, blocks=["b1"]), ticket("b", size=2, wait=3), ticket("c", wait=2), ticket("d", wait=1)]
    q = queue({"count": 2, "maxSize": 2})
    assert sets_of(find_matches(pool, q, NOW)) == [{frozenset("b"), frozenset("cd")}]
    unblocked = [ticket("a", wait=4), *pool[1:]]
    assert sets_of(find_matches(unblocked, q, NOW)) == [{frozenset("ac"), frozenset("b")}]


def test_blocks_also_hold_across_teams_of_many() -> None:
    q = queue({"count": 4, "maxSize": 1})
    pool = [ticket(f"t{i}", wait=10 - i) for i in range(5)]
    pool[4] = ticket("t4", wait=6, blocks=["t00"])
    (match,) = find_matches(pool, q, NOW)
    assert "t4" not in match.ticket_ids


# -- validation: the queue file and the ticket ------------------------------------------------------


def queue_yaml(teams: str) -> str:
    return f"""apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {{name: q}}
spec:
  teams:
{teams}
  allocation: {{selectors: [{{matchLabels: {{a: b}}}}]}}
"""


@pytest.mark.parametrize(
    ("teams", "where"),
    [
        pytest.param("    roles: {tank: 1, dps: 0}", "spec.teams.roles.dps (line 6)", id="zero-slots"),
        pytest.param("    roles: {tank: 1, 'a b': 1}", "spec.teams.roles.a b (line 6)", id="role-name"),
        pytest.param("    roles: {tank: 1}\n    maxSize: 3", "spec.teams.maxSize (line 7)", id="size-not-slots"),
        pytest.param(
            "    roles: {tank: 1, healer: 1, dps: 3}\n    minSize: 2",
            "spec.teams.minSize (line 7)",
            id="min-below-roles",
        ),
        pytest.param("    roles: tank", "spec.teams.roles (line 6)", id="roles-not-a-mapping"),
        pytest.param("    named: [{name: a, size: 0}]", "spec.teams.named[0].size (line 6)", id="named-size"),
        pytest.param("    named: [{name: a, size: 1}, {name: a, size: 2}]", "spec.teams.named[1].name", id="twice"),
        pytest.param(
            "    named: [{name: a, size: 1}]\n    count: 2", "spec.teams.count (line 7)", id="named-and-count"
        ),
        pytest.param(
            "    named:\n      - {name: a, size: 2}\n      - {name: b, size: 2, roles: {x: 1}}",
            "spec.teams.named[1].roles (line 8)",
            id="named-roles-not-size",
        ),
        pytest.param("    named: [{name: a, size: 150}, {name: b, size: 51}]", "spec.teams.named (line 6)", id="201"),
        pytest.param("    count: 51\n    maxSize: 4", "spec.teams.maxSize (line 7)", id="204-players"),
    ],
)
def test_bad_teams_name_field_and_line(teams: str, where: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_queues(queue_yaml(teams))
    assert where in str(err.value)


def test_the_old_teams_shape_means_what_it_meant() -> None:
    (q,) = parse_queues(queue_yaml("    count: 2\n    maxSize: 4\n    minSize: 2")).values()
    assert q.spec.teams.caps == (4, 4) and q.spec.teams.uniform and q.min_players == 4
    (q,) = parse_queues(queue_yaml("    waitForFullSeconds: 5")).values()
    assert q.spec.teams.caps == (1, 1)


@pytest.mark.parametrize(
    ("players", "field"),
    [
        pytest.param([Player("p", roles=("mage",))], "players[0].roles[0]", id="unknown-role"),
        pytest.param([Player("p", roles=("tank",)), Player("r", roles=("tank",))], "players", id="two-tanks"),
    ],
)
def test_check_ticket_refuses_roles_the_queue_cannot_use(players: list[Player], field: str) -> None:
    q = queue({"count": 2, "roles": ROLES})
    with pytest.raises(ValidationError) as err:
        q.check_ticket(TicketRequest("q", tuple(players)))
    assert err.value.field == field


# -- properties -------------------------------------------------------------------------------------

QUEUES = {
    "roles": queue({"count": 2, "roles": ROLES}, [SKILL]),
    "roles-smaller": queue({"count": 3, "roles": {"tank": 1, "healer": 1, "dps": 2}, "minSize": 3}),
    "1v4": queue({"named": [{"name": "hunter", "size": 1}, {"name": "prey", "size": 4}]}),
    "named-roles": queue(
        {"named": [{"name": "a", "size": 2, "roles": {"tank": 1, "dps": 1}}, {"name": "b", "size": 3}]}, [SKILL]
    ),
    "25x4": queue({"count": 25, "maxSize": 4}),
    "4v4": queue({"count": 2, "maxSize": 4, "minSize": 2}, [SKILL]),
}
ROLE_NAMES = ("tank", "healer", "dps")


@st.composite
def pools(draw: st.DrawFn, name: str) -> list[Ticket]:
    q = QUEUES[name]
    biggest = min(4, max(q.spec.teams.caps))
    count = draw(st.integers(1, 60))
    players_per_ticket = draw(st.lists(st.integers(1, biggest), min_size=count, max_size=count))
    everyone = [f"t{i}p{j}" for i, n in enumerate(players_per_ticket) for j in range(n)]
    pool = []
    for i, n in enumerate(players_per_ticket):
        players = []
        for j in range(n):
            offers = (
                draw(st.lists(st.sampled_from(ROLE_NAMES), unique=True, max_size=2)) if q.spec.teams.has_roles else []
            )
            players.append(
                Player(f"t{i}p{j}", {"skill": draw(st.sampled_from((1450, 1500, 1550)))}, roles=tuple(offers))
            )
        blocks = draw(st.lists(st.sampled_from(everyone), unique=True, max_size=3)) if draw(st.booleans()) else []
        blocks = [b for b in blocks if not b.startswith(f"t{i}p")]
        wait = draw(st.sampled_from((0.0, 5.0, 30.0)))
        pool.append(
            Ticket(
                f"t{i}",
                "q",
                players[0].id,
                tuple(players),
                enqueued_at=NOW - wait - i / 1000,
                blocked_players=tuple(blocks),
            )
        )
    return pool


def check(q: Queue, pool: list[Ticket], proposals: list[Proposal]) -> None:
    teams_spec = q.spec.teams
    by_id = {t.id: t for t in pool}
    seen: set[str] = set()
    for p in proposals:
        ids = p.ticket_ids
        assert len(set(ids)) == len(ids) and not seen & set(ids), "a ticket twice"
        seen |= set(ids)
        players = [pl for t in ids for pl in by_id[t].players]
        assert len({pl.id for pl in players}) == len(players), "a player twice"
        assert len(p.teams) == teams_spec.count
        sizes = [sum(by_id[t].size for t in team) for team in p.teams]  # parties whole: a ticket is in one team
        if teams_spec.named:
            assert tuple(sizes) == teams_spec.caps and p.team_names == teams_spec.names
        else:
            assert len(set(sizes)) == 1 and teams_spec.smallest <= sizes[0] <= teams_spec.max_size
        pids = {pl.id for pl in players}
        for t in ids:
            others = pids - {pl.id for pl in by_id[t].players}
            assert not others & set(by_id[t].blocked_players), "a blocked player in the match"
        if teams_spec.has_roles:
            in_slots = {
                pl.id
                for team, slots in zip(p.teams, teams_spec.team_roles, strict=True)
                if slots
                for t in team
                for pl in by_id[t].players
            }
            assert set(p.roles) == in_slots
            for team, slots, size, cap in zip(p.teams, teams_spec.team_roles, sizes, teams_spec.caps, strict=True):
                if not slots:
                    continue  # a named team without role slots
                members = [pl for t in team for pl in by_id[t].players]
                assert all(not pl.roles or p.roles[pl.id] in pl.roles for pl in members), "a role not offered"
                got = Counter(p.roles[pl.id] for pl in members)
                assert all(got[r] <= n for r, n in slots.items()) and set(got) <= set(slots)
                assert size < cap or got == Counter(slots), "a full team fills every slot"
                assert size == cap or set(got) == set(slots), "a smaller team plays every role"
        else:
            assert p.roles == {}


@pytest.mark.parametrize("name", sorted(QUEUES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_properties_hold_on_any_pool(name: str, data: st.DataObject) -> None:
    q = QUEUES[name]
    pool = data.draw(pools(name))
    proposals = find_matches(pool, q, NOW)
    check(q, pool, proposals)
    assert find_matches(pool[::-1], q, NOW) == proposals, "the same pool in another order: the same result"


_OFFER = st.sampled_from([(), ("tank",), ("healer",), ("dps",), ("tank", "dps"), ("healer", "dps")])


@given(
    offers=st.lists(_OFFER, max_size=6),
    slots=st.sampled_from([{"tank": 1, "healer": 1, "dps": 3}, {"tank": 2, "dps": 1}, {"healer": 1}]),
    every_role=st.booleans(),
    data=st.data(),
)
def test_roles_fit_answers_as_assign_roles_in_any_order(
    offers: list[tuple[str, ...]], slots: dict[str, int], every_role: bool, data: st.DataObject
) -> None:
    """``roles_fit`` remembers its answer by the sorted offers: right only if the order never matters."""
    expected = assign_roles(offers, slots, every_role=every_role) is not None
    shuffled = data.draw(st.permutations(offers))
    assert roles_fit(shuffled, tuple(slots.items()), every_role=every_role) is expected


def test_remembered_role_assignment_is_assign_roles() -> None:
    """``assigned_roles`` (the matcher's, remembered) answers as ``assign_roles`` for the same offers."""
    import random

    from matchmaker.composition import assigned_roles

    rng = random.Random(3)
    roles = {"tank": 1, "healer": 1, "dps": 3}
    kinds: list[tuple[str, ...]] = [("tank",), ("healer",), ("dps",), ("tank", "dps"), ()]
    for _ in range(500):
        offers = tuple(rng.choice(kinds) for _ in range(rng.randint(1, 6)))
        for every_role in (False, True):
            want = assign_roles(offers, roles, every_role=every_role)
            got = assigned_roles(offers, tuple(roles.items()), every_role)
            assert got == (None if want is None else tuple(want))
