"""The pure match function: tables for each rule, then invariants on seeded random pools. Each test
runs twice: with the inner loop in C (``matchmaker/_matchloop.c``) and in Python."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from fleetmatch.codec import load_trusted
from fleetmatch.models import FLEET_LABEL
from matchmaker import matching
from matchmaker.matching import find_matches
from matchmaker.models import Player, Proposal, Ticket, TicketState
from matchmaker.rules import PartyAggregation, Queue, decode_queue

NOW = 1_800_000_000.0


@pytest.fixture(autouse=True, params=["c-loop", "python-loop"])
def _loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matching, "COMPILED", request.param == "c-loop" and matching.COMPILED)


SKILL: dict[str, Any] = {"name": "skill", "type": "distance", "attribute": "skill", "maxDistance": 100}
PING: dict[str, Any] = {"name": "ping", "type": "latency", "maxLatencyMs": 80}
MODE: dict[str, Any] = {"name": "mode", "type": "equal", "attribute": "mode"}


def make_queue(
    *,
    count: int = 2,
    max_size: int = 1,
    min_size: int = 0,
    wait_for_full: float = 0.0,
    rules: Sequence[Mapping[str, Any]] = (SKILL,),
    **spec: Any,
) -> Queue:
    teams = {"count": count, "maxSize": max_size, "minSize": min_size, "waitForFullSeconds": wait_for_full}
    doc = {
        "metadata": {"name": "q"},
        "spec": {
            "teams": teams,
            "rules": [dict(r) for r in rules],
            "allocation": {"selectors": [{"matchLabels": {FLEET_LABEL: "f"}}]},
            **spec,
        },
    }
    return decode_queue(doc)


def ticket(
    tid: str,
    *skills: float,
    wait: float = 0.0,
    lat: Mapping[str, float] | None = None,
    mode: str | None = None,
    **extra: Any,
) -> Ticket:
    """A ticket with one player per skill (a party when several), waiting ``wait`` seconds."""
    players = []
    for i, skill in enumerate(skills or (1500.0,)):
        attributes: dict[str, float | str] = {"skill": skill, **extra}
        if mode is not None:
            attributes["mode"] = mode
        players.append(Player(f"{tid}-{i}", attributes, dict(lat or {})))
    return Ticket(tid, "q", f"{tid}-0", tuple(players), enqueued_at=NOW - wait)


def teams_of(proposals: list[Proposal]) -> list[set[frozenset[str]]]:
    """Each proposal's teams, order-free (which team is "first" carries no meaning)."""
    return [{frozenset(team) for team in p.teams} for p in proposals]


def T(*teams: str | list[str]) -> set[frozenset[str]]:
    """Teams of one-letter ids as strings (``"ab"``), of longer ids as lists."""
    return {frozenset(team) for team in teams}


# -- parties and team sizes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("queue", "pool", "expected"),
    [
        pytest.param(
            make_queue(max_size=2),
            [ticket("a", 1500, 1500, wait=3), ticket("b", wait=2), ticket("c", wait=1)],
            [T("a", "bc")],
            id="a-duo-is-one-team",
        ),
        pytest.param(
            make_queue(max_size=2),
            [ticket("a", 1500, 1500, wait=2), ticket("b", 1500, 1500, wait=1)],
            [T("a", "b")],
            id="duo-against-duo",
        ),
        pytest.param(
            make_queue(max_size=4),
            [
                ticket("a", 1500, 1500, 1500, wait=5),
                ticket("b", 1500, 1500, 1500, wait=4),
                ticket("c", 1500, 1500),
                ticket("d", wait=2),
                ticket("e", wait=1),
            ],
            [T("ad", "be")],
            id="trios-take-solos-not-the-duo",
        ),
        pytest.param(
            make_queue(max_size=4),
            [ticket("a", 1500, 1500, 1500, wait=3), ticket("b", 1500, 1500, 1500, wait=2), ticket("c", 1500, 1500)],
            [],
            id="3-3-2-cannot-make-4v4",
        ),
        pytest.param(
            make_queue(max_size=2),
            [ticket("a", 1500, 1500, 1500, wait=5), ticket("b", wait=1), ticket("c"), ticket("d")],
            [],
            id="party-bigger-than-a-team-is-never-matched",
        ),
        pytest.param(
            make_queue(max_size=3),
            [
                ticket("a", 1500, 1500, wait=3),
                ticket("b", 1500, 1500, wait=2),
                ticket("c", wait=1),
                *map(ticket, "def"),
            ],
            [T("ac", "bd")],
            id="duos-on-both-sides",
        ),
        pytest.param(
            make_queue(max_size=2), [ticket("a", wait=2), ticket("b", wait=1), ticket("c")], [], id="only-full"
        ),
        pytest.param(
            make_queue(max_size=2, min_size=1),
            [ticket("a", wait=2), ticket("b", wait=1), ticket("c")],
            [T("a", "b")],
            id="smaller-teams-stay-equal",
        ),
        pytest.param(
            make_queue(max_size=4, min_size=1),
            [ticket("a", 1500, 1500, 1500, wait=3), ticket("b", wait=2), ticket("c", wait=1), ticket("d")],
            [T("a", "bcd")],
            id="3v3-from-a-trio-and-three-solos",
        ),
        pytest.param(
            make_queue(max_size=2, min_size=1, wait_for_full=10),
            [ticket("a", wait=9), ticket("b")],
            [],
            id="waits-for-full-teams",
        ),
        pytest.param(
            make_queue(max_size=2, min_size=1, wait_for_full=10),
            [ticket("a", wait=10), ticket("b")],
            [T("a", "b")],
            id="then-accepts-smaller",
        ),
        pytest.param(
            make_queue(count=1, max_size=3),
            [ticket("a", wait=2), ticket("b", 1500, 1500, wait=1), ticket("c")],
            [T("ab")],
            id="one-team-free-for-all",
        ),
        pytest.param(
            make_queue(count=3, max_size=1),
            [ticket("a", wait=3), ticket("b", wait=2), ticket("c", wait=1), ticket("d")],
            [T("a", "b", "c")],
            id="three-teams",
        ),
    ],
)
def test_parties_and_team_sizes(queue: Queue, pool: list[Ticket], expected: list[set[frozenset[str]] | None]) -> None:
    proposals = find_matches(pool, queue, NOW)
    got = teams_of(proposals)
    assert len(got) == len(expected)
    for want, have in zip(expected, got, strict=True):
        if want is not None:
            assert have == want
    sizes = {t.id: t.size for t in pool}
    for p in proposals:
        team_players = {sum(sizes[t] for t in team) for team in p.teams}
        assert len(team_players) == 1 and len(p.teams) == queue.spec.teams.count


def test_parties_that_first_fit_cannot_place_are_packed_exactly() -> None:
    """Teams of 6 from a trio, three duos and a trio: placing each in the first team with room
    strands the last party in every order; 3+3 against 2+2+2 exists, and is found. Only the trio
    that waited can form it (the others' windows are too narrow for the 400-point spread)."""
    queue = make_queue(max_size=6, rules=[{**SKILL, "widen": {"perSecond": 10, "max": 400}}])
    pool = [ticket("t1", 1500, 1500, 1500, wait=30), ticket("t2", 1700, 1700, 1700)]
    pool += [ticket("d1", 1300, 1300), ticket("d2", 1400, 1400), ticket("d3", 1600, 1600)]
    assert teams_of(find_matches(pool, queue, NOW)) == [T(["t1", "t2"], ["d1", "d2", "d3"])]


# -- windows ------------------------------------------------------------------------------------------

LINEAR = {**SKILL, "widen": {"perSecond": 10, "max": 300}}
STEPS = {**SKILL, "widen": {"steps": [{"afterSeconds": 10, "value": 200}, {"afterSeconds": 30, "value": 400}]}}


@pytest.mark.parametrize(
    ("rule", "wait", "distance", "matched"),
    [
        (SKILL, 0, 100, True),
        (SKILL, 0, 100.5, False),
        (SKILL, 3600, 101, False),
        (LINEAR, 0, 100, True),
        (LINEAR, 0, 101, False),
        (LINEAR, 5, 150, True),
        (LINEAR, 5, 151, False),
        (LINEAR, 20, 300, True),
        (LINEAR, 1000, 300, True),
        (LINEAR, 1000, 301, False),
        (STEPS, 9.9, 150, False),
        (STEPS, 10, 200, True),
        (STEPS, 29, 201, False),
        (STEPS, 30, 400, True),
        (STEPS, 1000, 401, False),
    ],
)
def test_windows_widen_on_schedule(rule: dict[str, Any], wait: float, distance: float, matched: bool) -> None:
    """The oldest ticket's wait governs: a newcomer far away joins once the old one has waited long enough."""
    pool = [ticket("old", 1500, wait=wait), ticket("new", 1500 + distance)]
    proposals = find_matches(pool, make_queue(rules=[rule]), NOW)
    assert bool(proposals) is matched


def test_spread_is_over_the_whole_match() -> None:
    """Each ticket near the seed is not enough: the match's whole spread stays within the window."""
    pool = [ticket("seed", 1500, wait=5), ticket("low", 1440), ticket("high", 1560), ticket("near", 1520)]
    (proposal,) = find_matches(pool, make_queue(count=1, max_size=3), NOW)
    assert set(proposal.ticket_ids) == {"seed", "near", "high"}  # low + high would span 120


def test_party_aggregation() -> None:
    """A party's value is its players' mean by default; ``max`` makes a smurfing party count as its best."""
    pool = [ticket("party", 1000, 2000, wait=1), ticket("a", 1500), ticket("b", 1500)]
    mean = make_queue(count=2, max_size=2)
    assert teams_of(find_matches(pool, mean, NOW)) == [T(["party"], "ab")]
    best = make_queue(count=2, max_size=2, rules=[{**SKILL, "partyAggregation": PartyAggregation.MAX.value}])
    assert find_matches(pool, best, NOW) == []


def test_several_distance_rules() -> None:
    level = {"name": "level", "type": "distance", "attribute": "level", "maxDistance": 5}
    queue = make_queue(rules=[SKILL, level])
    pool = [ticket("a", 1500, wait=2, level=10), ticket("b", 1510, wait=1, level=20), ticket("c", 1550, level=14)]
    assert teams_of(find_matches(pool, queue, NOW)) == [T("a", "c")]


# -- latency ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "lat_a", "lat_b", "wait", "region", "worst"),
    [
        pytest.param(PING, {"eu": 10}, {"eu": 80}, 0, "eu", 80, id="shared-region"),
        pytest.param(PING, {"eu": 10}, {"eu": 81}, 0, None, None, id="over-the-window"),
        pytest.param(PING, {"eu": 10}, {"us": 10}, 0, None, None, id="no-shared-region"),
        pytest.param(PING, {"eu": 10, "us": 50}, {"eu": 70, "us": 40}, 0, "us", 50, id="lowest-worst-wins"),
        pytest.param(PING, {"eu": 30, "us": 30}, {"eu": 30, "us": 30}, 0, "eu", 30, id="ties-by-name"),
        pytest.param(
            {**PING, "widen": {"perSecond": 2, "max": 200}}, {"eu": 10}, {"eu": 120}, 19, None, None, id="not-yet"
        ),
        pytest.param(
            {**PING, "widen": {"perSecond": 2, "max": 200}}, {"eu": 10}, {"eu": 120}, 20, "eu", 120, id="widened"
        ),
        pytest.param(
            {**PING, "regions": ["us"]}, {"eu": 10, "us": 60}, {"eu": 10, "us": 60}, 0, "us", 60, id="listed-only"
        ),
        pytest.param({**PING, "regions": ["us"]}, {"eu": 10}, {"eu": 10}, 0, None, None, id="unlisted-region"),
    ],
)
def test_latency(
    rule: dict[str, Any],
    lat_a: dict[str, float],
    lat_b: dict[str, float],
    wait: float,
    region: str | None,
    worst: float | None,
) -> None:
    pool = [ticket("a", lat=lat_a, wait=wait), ticket("b", lat=lat_b)]
    proposals = find_matches(pool, make_queue(rules=[SKILL, rule]), NOW)
    if region is None:
        assert proposals == []
        return
    (proposal,) = proposals
    assert (proposal.region, proposal.quality.worst_latency_ms) == (region, worst)


def test_a_party_plays_at_its_worst_players_latency() -> None:
    pool = [ticket("party", 1500, 1500, lat={"eu": 10}, wait=1), ticket("b", 1500, 1500, lat={"eu": 20})]
    queue = make_queue(max_size=2, rules=[SKILL, PING])
    assert len(find_matches(pool, queue, NOW)) == 1
    slow = Player("party-1", {"skill": 1500.0}, {"eu": 90.0})
    pool[0] = Ticket("party", "q", "x", (pool[0].players[0], slow), enqueued_at=NOW - 1)
    assert find_matches(pool, queue, NOW) == []


def test_a_first_pick_does_not_lock_out_a_better_region() -> None:
    """The nearest candidate shares only "us" with the seed, the others only "eu": the match is
    found in eu. Only the seed, which waited, has a window wide enough for x and y together."""
    pool = [
        ticket("seed", 1500, lat={"eu": 10, "us": 10}, wait=10),
        ticket("near", 1501, lat={"us": 10}),
        ticket("x", 1400, lat={"eu": 10}),
        ticket("y", 1600, lat={"eu": 10}),
    ]
    skill = {**SKILL, "widen": {"perSecond": 10, "max": 200}}
    (proposal,) = find_matches(pool, make_queue(count=1, max_size=3, rules=[skill, PING]), NOW)
    assert set(proposal.ticket_ids) == {"seed", "x", "y"} and proposal.region == "eu"


# -- order, filters, balance, quality ------------------------------------------------------------


def test_the_oldest_ticket_is_matched_first() -> None:
    """b is nearer to c than to a, but a has waited longest: a gets b."""
    pool = [ticket("c", 1520, wait=1), ticket("a", 1440, wait=9), ticket("b", 1500, wait=5)]
    assert teams_of(find_matches(pool, make_queue(), NOW)) == [T("a", "b")]


def test_an_unmatchable_oldest_ticket_does_not_block_the_others() -> None:
    pool = [ticket("lonely", 3000, wait=60), ticket("a", 1500, wait=2), ticket("b", 1510)]
    assert teams_of(find_matches(pool, make_queue(), NOW)) == [T("a", "b")]


def test_proposals_come_oldest_seed_first() -> None:
    pool = [ticket("x", 2000, wait=1), ticket("y", 2010), ticket("a", 1000, wait=5), ticket("b", 1010, wait=3)]
    assert teams_of(find_matches(pool, make_queue(), NOW)) == [T("a", "b"), T("x", "y")]


def test_nearest_first_then_older_on_ties() -> None:
    pool = [ticket("seed", 1500, wait=9), ticket("young", 1510, wait=1), ticket("old", 1490, wait=5)]
    assert teams_of(find_matches(pool, make_queue(), NOW)) == [T(["seed"], ["old"])]


def test_equal_rule_partitions() -> None:
    pool = [ticket("a", mode="ranked", wait=3), ticket("b", mode="casual", wait=2), ticket("c", mode="ranked")]
    queue = make_queue(rules=[SKILL, MODE])
    assert teams_of(find_matches(pool, queue, NOW)) == [T("a", "c")]


def test_teams_are_balanced_on_skill() -> None:
    pool = [
        ticket(x, skill, wait=w) for x, skill, w in (("a", 1500, 4), ("b", 1520, 3), ("c", 1540, 2), ("d", 1560, 1))
    ]
    (proposal,) = find_matches(pool, make_queue(max_size=2), NOW)
    assert teams_of([proposal]) == [T("ad", "bc")]
    assert proposal.quality.skill_spread == 0


def test_parties_are_spread_by_strength() -> None:
    """Two strong duos in one team against four solos cannot be repaired by swapping equal-size
    tickets: the duos must be split when teams are first filled."""
    pool = [ticket("d1", 1600, 1600, wait=6), ticket("d2", 1580, 1580, wait=5)]
    pool += [
        ticket(x, skill, wait=w) for x, skill, w in (("a", 1400, 4), ("b", 1400, 3), ("c", 1420, 2), ("d", 1420, 1))
    ]
    queue = make_queue(max_size=4, rules=[{**SKILL, "maxDistance": 200}])
    (proposal,) = find_matches(pool, queue, NOW)
    assert not any({"d1", "d2"} <= set(team) for team in proposal.teams)
    assert proposal.quality.skill_spread == 0


def test_balance_counts_every_player_of_a_party() -> None:
    """3v3 from a duo (1400 + 1600) and solos 1300, 1500, 1500, 1700: the duo weighs 3000, so it
    takes a 1500 and faces 1300 + 1500 + 1700, and the teams come out even."""
    pool = [ticket("duo", 1400, 1600, wait=5)]
    pool += [
        ticket(x, skill, wait=w) for x, skill, w in (("s1", 1300, 4), ("s2", 1500, 3), ("s3", 1500, 2), ("s4", 1700, 1))
    ]
    queue = make_queue(max_size=3, rules=[{**SKILL, "maxDistance": 400}])
    (proposal,) = find_matches(pool, queue, NOW)
    (duo_team,) = [team for team in proposal.teams if "duo" in team]
    assert len(duo_team) == 2 and set(duo_team) & {"s2", "s3"}  # one of the two 1500s
    assert proposal.quality.skill_spread == 0


def test_quality_figures() -> None:
    pool = [
        ticket("a", 1400, wait=30, lat={"eu": 20}),
        ticket("b", 1480, wait=10, lat={"eu": 60}),
        ticket("c", 1410, lat={"eu": 10}),
        ticket("d", 1470, lat={"eu": 40}),
    ]
    queue = make_queue(max_size=2, rules=[SKILL, PING])
    (proposal,) = find_matches(pool, queue, NOW)
    assert teams_of([proposal]) == [T("ab", "cd")]  # 2880 against 2880
    assert proposal.quality.skill_spread == 0
    assert proposal.quality.worst_latency_ms == 60
    assert proposal.quality.longest_wait_seconds == pytest.approx(30)
    assert proposal.region == "eu"


def test_without_rules_matches_in_arrival_order() -> None:
    pool = [ticket(x, skill, wait=w) for x, skill, w in (("a", 0, 4), ("b", 9000, 3), ("c", -50, 2), ("d", 7, 1))]
    proposals = find_matches(pool, make_queue(rules=[]), NOW)
    assert teams_of(proposals) == [T("a", "b"), T("c", "d")]
    assert all(p.quality.skill_spread == 0 and p.quality.worst_latency_ms is None and p.region == "" for p in proposals)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(ticket("bad", wait=9, skill="high"), id="word-for-number"),
        pytest.param(Ticket("bad", "q", "x", (Player("bad-0", {}),), enqueued_at=NOW - 9), id="missing-attribute"),
        pytest.param(  # Player refuses it; one read back from the store (unchecked) must not break a tick
            Ticket(
                "bad",
                "q",
                "x",
                (load_trusted(Player, {"id": "b", "attributes": {"skill": math.inf}}),),
                enqueued_at=NOW - 9,
            ),
            id="infinite",
        ),
        pytest.param(ticket("bad", 1500, 1500, wait=9), id="party-too-big"),
        pytest.param(
            Ticket("bad", "q", "x", ticket("z").players, state=TicketState.LEASED, enqueued_at=NOW - 9), id="leased"
        ),
        pytest.param(Ticket("bad", "q", "x", ticket("z").players, enqueued_at=NOW - 9, expires_at=NOW), id="expired"),
    ],
)
def test_tickets_that_cannot_play_are_skipped(bad: Ticket) -> None:
    pool = [bad, ticket("a", wait=2), ticket("b", wait=1)]
    assert teams_of(find_matches(pool, make_queue(), NOW)) == [T("a", "b")]


def test_the_same_ticket_twice_is_matched_once() -> None:
    a = ticket("a", wait=2)
    proposals = find_matches([a, a, ticket("b", wait=1), ticket("c")], make_queue(), NOW)
    ids = [t for p in proposals for t in p.ticket_ids]
    assert ids.count("a") == 1 and len(ids) == len(set(ids))


def solo(tid: str, player: str, skill: float = 1500.0, wait: float = 0.0) -> Ticket:
    return Ticket(tid, "q", player, (Player(player, {"skill": skill}),), enqueued_at=NOW - wait)


def test_a_player_in_two_tickets_never_plays_against_themselves() -> None:
    twice = [solo("a", "alice", wait=3), solo("b", "alice", wait=2)]
    assert find_matches(twice, make_queue(), NOW) == []
    assert teams_of(find_matches([*twice, solo("c", "carol", wait=1)], make_queue(), NOW)) == [T("a", "c")]


def test_a_player_in_a_party_and_alone_is_never_in_both() -> None:
    party = Ticket("p", "q", "alice", (Player("alice", {"skill": 1500}), Player("bob", {"skill": 1500})))
    pool = [solo("a", "alice", wait=3), party, solo("c", "carol", wait=2), solo("d", "dave", wait=1)]
    proposals = find_matches(pool, make_queue(max_size=2), NOW)
    assert teams_of(proposals) == [T("p", "cd")]  # the seed "a" cannot have the party: alice is in both


def test_equal_enqueue_times_are_ordered_by_id() -> None:
    pool = [ticket("b", 1500, wait=1), ticket("a", 1600, wait=1), ticket("c", 1550, wait=1)]
    for order in (pool, pool[::-1]):
        assert teams_of(find_matches(order, make_queue(), NOW)) == [T("a", "c")]


# -- invariants on random pools ---------------------------------------------------------------------

QUEUES = {
    "duel": make_queue(rules=[{**SKILL, "widen": {"perSecond": 10, "max": 400}}, PING]),
    "4v4": make_queue(
        max_size=4,
        min_size=2,
        wait_for_full=20,
        rules=[
            {**SKILL, "widen": {"steps": [{"afterSeconds": 10, "value": 200}, {"afterSeconds": 30, "value": 400}]}},
            {**PING, "widen": {"perSecond": 2, "max": 150}},
            MODE,
        ],
    ),
    "ffa": make_queue(count=1, max_size=6, min_size=3, rules=[{**SKILL, "partyAggregation": "max"}]),
    "3x2": make_queue(
        count=3,
        max_size=2,
        rules=[SKILL, {"name": "lvl", "type": "distance", "attribute": "level", "maxDistance": 10}, PING],
    ),
}
REGIONS = ("eu", "us", "ap")


def random_pool(rng: random.Random, queue: Queue, size: int, *, reuse: float = 0.0) -> list[Ticket]:
    """``reuse``: the chance that a player is one of an earlier ticket's (a player in two tickets)."""
    pool = []
    earlier: list[str] = []
    biggest = min(4, queue.spec.teams.max_size + 1)  # some parties too big, on purpose
    for i in range(size):
        party = rng.randint(1, biggest)
        mode = rng.choice(("ranked", "casual"))
        home = rng.choice(REGIONS)
        players: list[Player] = []
        for j in range(party):
            lat = {r: round(rng.uniform(5, 60) if r == home else rng.uniform(50, 200)) for r in REGIONS}
            if rng.random() < 0.1:
                del lat[rng.choice(REGIONS)]
            attributes: dict[str, float | str] = {
                "skill": round(rng.gauss(1500, 200)),
                "level": rng.randint(1, 40),
                "mode": mode,
            }
            pid = rng.choice(earlier) if earlier and rng.random() < reuse else f"t{i}-{j}"
            if any(p.id == pid for p in players):
                pid = f"t{i}-{j}"
            players.append(Player(pid, attributes, lat))
        earlier += [p.id for p in players]
        wait = rng.choice((0, 0, rng.uniform(0, 60)))
        pool.append(Ticket(f"t{i}", "q", f"t{i}-0", tuple(players), enqueued_at=NOW - wait))
    return pool


def _value(t: Ticket, attribute: str, aggregation: PartyAggregation) -> float:
    values = [float(p.attributes[attribute]) for p in t.players]
    return aggregation.of(values)


def check_invariants(queue: Queue, pool: list[Ticket], proposals: list[Proposal], now: float = NOW) -> None:
    spec = queue.spec
    by_id = {t.id: t for t in pool}
    seen: set[str] = set()
    for p in proposals:
        tickets = [by_id[t] for t in p.ticket_ids]
        ids = set(p.ticket_ids)
        assert not ids & seen, "a ticket in two proposals"
        assert len(ids) == len(p.ticket_ids), "a ticket twice in one proposal"
        players = [pl.id for t in tickets for pl in t.players]
        assert len(players) == len(set(players)), "a player twice in one proposal"
        seen |= ids
        # teams: the queue's count, all of one size within bounds; smaller only after the wait
        assert len(p.teams) == spec.teams.count
        team_sizes = {sum(by_id[t].size for t in team) for team in p.teams}
        assert len(team_sizes) == 1
        (size,) = team_sizes
        assert spec.teams.smallest <= size <= spec.teams.max_size
        waits = [now - t.enqueued_at for t in tickets]
        oldest, youngest = max(waits), min(waits)
        if size < spec.teams.max_size:
            assert oldest >= spec.teams.wait_for_full_seconds
        # every rule holds at the oldest ticket's window (the seed's is at most that)
        for rule in spec.distance_rules:
            values = [_value(t, rule.attribute, rule.party_aggregation) for t in tickets]
            assert max(values) - min(values) <= rule.window(oldest) + 1e-9
        for rule in spec.equal_rules:
            assert len({pl.attributes[rule.attribute] for t in tickets for pl in t.players}) == 1
        latency = spec.latency_rule
        if latency is not None:
            limit = latency.window(oldest)
            worst = max(pl.latencies[p.region] for t in tickets for pl in t.players)
            assert worst <= limit and p.quality.worst_latency_ms == worst
            # no region every ticket could use at the youngest's (narrowest) window is better
            for region in REGIONS:
                lats = [pl.latencies.get(region, float("inf")) for t in tickets for pl in t.players]
                if max(lats) <= latency.window(youngest):
                    assert (max(lats), region) >= (worst, p.region)
        else:
            assert p.region == "" and p.quality.worst_latency_ms is None
        assert p.quality.longest_wait_seconds == pytest.approx(oldest)
        if spec.balance_by and spec.teams.count > 1:
            means = [
                sum(float(pl.attributes["skill"]) for t in team for pl in by_id[t].players) / size for team in p.teams
            ]
            assert p.quality.skill_spread == pytest.approx(max(means) - min(means))


@pytest.mark.parametrize("name", sorted(QUEUES))
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("reuse", [pytest.param(0.0, id="distinct"), pytest.param(0.2, id="players-reused")])
def test_invariants_on_random_pools(name: str, seed: int, reuse: float) -> None:
    queue = QUEUES[name]
    rng = random.Random(seed)
    pool = random_pool(rng, queue, 300, reuse=reuse)
    proposals = find_matches(pool, queue, NOW)
    assert proposals, "a pool this dense forms matches"
    check_invariants(queue, pool, proposals)
    shuffled = pool[:]
    rng.shuffle(shuffled)
    assert find_matches(shuffled, queue, NOW) == proposals, "the same pool in another order: the same result"
    matched = {t for p in proposals for t in p.ticket_ids}
    rest = [t for t in pool if t.id not in matched]
    again = find_matches(rest, queue, NOW + 30)  # a later tick on what is left: wider windows
    check_invariants(queue, rest, again, NOW + 30)
