"""Ratings (pure): OpenSkill's own figures, the properties a rating must have, team balance by
predicted win probability, result bodies with the field named, and the rating rule in queues and
in the match function."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from openskill.models import PlackettLuce

from fleetmatch.errors import ValidationError
from matchmaker.matching import find_matches
from matchmaker.models import Player, TicketRequest
from matchmaker.ratings import (
    DEFAULT_MU,
    DEFAULT_SIGMA,
    NEW_PLAYER,
    Outcome,
    Rating,
    balance,
    parse_result,
    predict,
    predict_draw,
    predict_win,
    rate,
    with_ratings,
)
from matchmaker.rules import parse_queues
from tests.unit.test_matching import NOW, make_queue, ticket

RATING: dict[str, Any] = {"name": "rating", "type": "rating", "attribute": "skill", "maxDistance": 10}


def openskill(teams: list[list[Rating]], **kwargs: Any) -> list[list[tuple[float, float]]]:
    """The same call made straight on openskill, with its own defaults."""
    model = PlackettLuce()
    rated = model.rate([[model.rating(mu=r.mu, sigma=r.sigma) for r in team] for team in teams], **kwargs)
    return [[(r.mu, r.sigma) for r in team] for team in rated]


# -- rate / predict -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("teams", "kwargs"),
    [
        pytest.param([[NEW_PLAYER], [NEW_PLAYER]], {"ranks": [1, 2]}, id="1v1-new"),
        pytest.param([[Rating(30, 4)], [Rating(22, 7)], [Rating(25, 2)]], {"ranks": [3, 1, 2]}, id="ffa-3"),
        pytest.param([[Rating(28, 3)] * 5, [Rating(24, 6)] * 5], {"ranks": [2, 1]}, id="5v5-upset"),
        pytest.param([[Rating(28, 3), Rating(20, 5)], [Rating(24, 6), NEW_PLAYER]], {"scores": [12, 31]}, id="scores"),
        pytest.param([[Rating(26, 4)], [Rating(26, 4)]], {"ranks": [1, 1]}, id="draw"),
    ],
)
def test_rate_gives_openskills_own_figures(teams: list[list[Rating]], kwargs: dict[str, Any]) -> None:
    ours = rate(teams, **kwargs)
    theirs = openskill(teams, **kwargs)
    assert [[(r.mu, r.sigma) for r in team] for team in ours] == [
        [pytest.approx(pair, rel=1e-12) for pair in team] for team in theirs
    ]


def test_known_value_of_a_first_match() -> None:
    """Two new players, one wins: openskill 6.2's documented-by-running figures (mu 27.635, sigma 8.066)."""
    (winner,), (loser,) = rate([[NEW_PLAYER], [NEW_PLAYER]], ranks=[1, 2])
    assert winner.mu == pytest.approx(27.635389, abs=1e-6) and loser.mu == pytest.approx(22.364611, abs=1e-6)
    assert winner.sigma == loser.sigma == pytest.approx(8.065901, abs=1e-6)


def test_winners_rise_losers_fall_and_everyone_is_surer() -> None:
    before = [[Rating(25, 8), Rating(27, 6)], [Rating(26, 7), Rating(24, 5)]]
    after = rate(before, ranks=[1, 2])
    for old, new in zip(before[0], after[0], strict=True):
        assert new.mu > old.mu and new.sigma < old.sigma
    for old, new in zip(before[1], after[1], strict=True):
        assert new.mu < old.mu and new.sigma < old.sigma


def test_scores_rate_like_the_ranks_they_imply() -> None:
    teams = [[Rating(25, 8)], [Rating(25, 8)], [Rating(30, 3)]]
    assert rate(teams, scores=[10, 30, 20]) == rate(teams, ranks=[3, 1, 2])


def test_a_draw_between_equals_moves_no_mu() -> None:
    (a,), (b,) = rate([[Rating(25, 5)], [Rating(25, 5)]], ranks=[1, 1])
    assert a.mu == pytest.approx(25) and b.mu == pytest.approx(25) and a.sigma < 5


def test_predictions() -> None:
    even = [[Rating(25, 5)] * 2, [Rating(25, 5)] * 2]
    assert predict_win(even) == pytest.approx([0.5, 0.5])
    uneven = [[Rating(30, 5)] * 2, [Rating(20, 5)] * 2]
    win = predict_win(uneven)
    assert win[0] > 0.5 and sum(win) == pytest.approx(1)
    assert predict_draw(even) > predict_draw(uneven)  # symmetric teams: the draw is likeliest
    assert predict_draw(even) > predict_draw([[Rating(26, 5)] * 2, [Rating(24, 5)] * 2]) > predict_draw(uneven)


@pytest.mark.parametrize("count", [2, 3, 4])
def test_predict_gives_openskills_floats_exactly(count: int) -> None:
    """The matcher's own prediction (no OpenSkill rating objects) is OpenSkill's to the last bit:
    teams of 1-6 players, ratings with equal ordinals (the order OpenSkill sums them in matters)."""
    rng = random.Random(count)
    model = PlackettLuce()
    for _ in range(300):
        teams = [
            [
                Rating(round(rng.gauss(25, 5), rng.choice([0, 3, 12])), rng.choice([8.333, 2.0, rng.uniform(0.5, 9)]))
                for _ in range(rng.randint(1, 6))
            ]
            for _ in range(count)
        ]
        theirs = [[model.rating(mu=r.mu, sigma=r.sigma) for r in team] for team in teams]
        got = predict(teams)
        assert got.win == tuple(model.predict_win(theirs))
        assert got.draw == model.predict_draw(theirs)


def test_rate_refuses_what_it_cannot_rate() -> None:
    with pytest.raises(ValidationError, match="rank or a score"):
        rate([[NEW_PLAYER], [NEW_PLAYER]])
    with pytest.raises(ValidationError, match="2 results for 3 teams"):
        rate([[NEW_PLAYER]] * 3, ranks=[1, 2])
    with pytest.raises(ValidationError, match="at least two teams"):
        rate([[NEW_PLAYER]], ranks=[1])


# -- balance --------------------------------------------------------------------------------------


def _even(parties: list[list[Rating]], teams: list[list[int]]) -> float:
    return abs(predict_win([[r for i in team for r in parties[i]] for team in teams])[0] - 0.5)


def test_balance_finds_the_split_closest_to_even() -> None:
    parties = [[Rating(mu, 4)] for mu in (40, 30, 20, 10)]
    teams, prediction = balance(parties, [[0, 1], [2, 3]], 2)
    assert sorted(map(sorted, teams)) == [[0, 3], [1, 2]]
    assert prediction.win == pytest.approx((0.5, 0.5))
    assert prediction.draw == pytest.approx(
        predict_draw([[parties[0][0], parties[3][0]], [parties[1][0], parties[2][0]]])
    )


def test_balance_is_the_best_of_every_split() -> None:
    """Against a brute force of its own (here with predict_win itself), parties of mixed sizes."""
    parties = [
        [Rating(31, 3), Rating(19, 8)],
        [Rating(27, 2)],
        [Rating(22, 5)],
        [Rating(35, 7), Rating(12, 1)],
        [Rating(25, 4)],
        [Rating(18, 6)],
    ]
    sizes = [len(p) for p in parties]
    size = sum(sizes) // 2
    splits = []
    for k in range(1, len(parties)):
        for team in itertools.combinations(range(len(parties)), k):
            if 0 in team and sum(sizes[i] for i in team) == size:
                splits.append([list(team), [i for i in range(len(parties)) if i not in team]])
    best = min(_even(parties, s) for s in splits)
    teams, _ = balance(parties, splits[-1], size)
    assert _even(parties, teams) == pytest.approx(best, abs=1e-12)
    assert sorted(sum(sizes[i] for i in team) for team in teams) == [size, size]


def test_balance_keeps_the_greedy_split_for_large_matches() -> None:
    parties = [[Rating(20 + i, 4)] for i in range(12)]
    greedy = [[0, 3, 4, 7, 8, 11], [1, 2, 5, 6, 9, 10]]
    teams, prediction = balance(parties, greedy, 6)
    assert teams == greedy and len(prediction.win) == 2


# -- tickets --------------------------------------------------------------------------------------


def request(*players: Player) -> TicketRequest:
    return TicketRequest("ranked", players)


def test_with_ratings_fills_the_stored_rating_or_a_new_players() -> None:
    filled = with_ratings(request(Player("a"), Player("b")), "skill", {"a": Rating(31.5, 2.5)}, trusted=False)
    assert [dict(p.attributes) for p in filled.players] == [
        {"skill": 31.5, "skill.sigma": 2.5},
        {"skill": DEFAULT_MU, "skill.sigma": DEFAULT_SIGMA},
    ]


def test_a_player_token_may_not_bring_its_own_rating_an_api_key_may() -> None:
    with pytest.raises(ValidationError) as info:
        with_ratings(request(Player("a"), Player("b", {"skill": 99})), "skill", {}, trusted=False)
    assert info.value.field == "players[1].attributes.skill"
    kept = with_ratings(request(Player("a", {"skill": 40, "mode": "ctf"})), "skill", {"a": Rating()}, trusted=True)
    assert dict(kept.players[0].attributes) == {"skill": 40, "mode": "ctf"}


# -- results --------------------------------------------------------------------------------------

TEAMS = (("a", "b"), ("c", "d"))


def test_results_by_team_rank_score_or_player() -> None:
    assert parse_result({"teams": [{"rank": 2}, {"rank": 1}]}, TEAMS) == Outcome(TEAMS, ranks=(2.0, 1.0))
    assert parse_result({"teams": [{"score": 3}, {"score": 7.5}]}, TEAMS) == Outcome(TEAMS, scores=(3.0, 7.5))
    ffa = parse_result({"players": [{"id": p, "rank": r} for p, r in zip("dcba", (1, 2, 3, 3), strict=True)]}, TEAMS)
    assert ffa == Outcome((("a",), ("b",), ("c",), ("d",)), ranks=(3.0, 3.0, 2.0, 1.0))


@pytest.mark.parametrize(
    ("doc", "field", "message"),
    [
        ({"teams": [{"rank": 1}]}, "teams", "2 teams"),
        ({"teams": [{"rank": 1}, {"score": 2}]}, "teams[1].score", "every team needs a rank"),
        ({"teams": [{"rank": 1}, {"rank": 0}]}, "teams[1].rank", "1..1000000"),
        ({"teams": [{"rank": 1}, {"rank": 1.5}]}, "teams[1].rank", "whole number"),
        ({"teams": [{"rank": 1}, {"rank": True}]}, "teams[1].rank", "must be a number"),
        ({"teams": [{"rank": 1}, {"rank": 2, "score": 3}]}, "teams[1]", "rank or a score"),
        ({"teams": [{"rank": 1}, {"place": 2}]}, "teams[1].place", "unknown field"),
        ({"teams": [{"rank": 1}, {"rank": 2}], "players": []}, "teams", "either"),
        ({}, "teams", "either"),
        ({"players": [{"id": "x", "rank": 1}]}, "players[0].id", "not a player of this match"),
        ({"players": [{"id": "a", "rank": 1}, {"id": "a", "rank": 2}]}, "players[1].id", "twice"),
        ({"players": [{"id": "a", "rank": 1}]}, "players", "missing b, c, d"),
        ({"winner": 1}, "winner", "unknown field"),
        ([1, 2], "", "an object"),
    ],
)
def test_result_errors_name_the_field(doc: Any, field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_result(doc, TEAMS)
    assert info.value.field == field and message in info.value.message, str(info.value)


def test_the_same_result_reads_the_same_a_different_one_does_not() -> None:
    one = parse_result({"teams": [{"rank": 1}, {"rank": 2}]}, TEAMS)
    assert one.canonical() == parse_result({"teams": [{"rank": 1.0}, {"rank": 2}]}, TEAMS).canonical()
    assert one.canonical() != parse_result({"teams": [{"rank": 2}, {"rank": 1}]}, TEAMS).canonical()


# -- the rule -------------------------------------------------------------------------------------

QUEUE = """\
kind: Queue
metadata: {name: ranked}
spec:
  teams: {count: 2, maxSize: 2}
  rules:
    - {name: rating, type: rating, attribute: skill, maxDistance: 5, widen: {perSecond: 1, max: 20}}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
"""


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ("attribute: skill, maxDistance: 5,", "attribute: skill,", "spec.rules[0].maxDistance", "required"),
        ("type: rating, attribute: skill,", "type: rating,", "spec.rules[0].attribute", "required"),
        ("maxDistance: 5,", "maxDistance: 5, partyAggregation: max,", "spec.rules[0].partyAggregation", "not apply"),
        ("maxDistance: 5,", "maxDistance: 5, regions: [eu],", "spec.rules[0].regions", "does not apply"),
        ("{perSecond: 1, max: 20}", "{perSecond: 1, max: 2}", "spec.rules[0].widen.max", "not be below"),
    ],
)
def test_rating_rule_errors_name_field_and_line(old: str, new: str, field: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_queues(QUEUE.replace(old, new), "queues.yaml")
    assert (info.value.field, info.value.line) == (field, 6), str(info.value)
    assert message in info.value.message


def test_one_rating_rule_per_queue() -> None:
    rule = "    - {name: rating, type: rating, attribute: skill, maxDistance: 5, widen: {perSecond: 1, max: 20}}\n"
    text = QUEUE.replace(rule, rule + rule.replace("name: rating", "name: again"))
    with pytest.raises(ValidationError, match="at most one rating rule"):
        parse_queues(text, "queues.yaml")


def test_the_rating_rule_needs_mu_and_balances_on_it() -> None:
    (queue,) = parse_queues(QUEUE).values()
    assert queue.spec.rating_rule is not None and queue.spec.balance_by == "skill"
    with pytest.raises(ValidationError) as info:
        queue.check_ticket(request(Player("a")))
    assert info.value.field == "players[0].attributes.skill"
    with pytest.raises(ValidationError) as info:
        queue.check_ticket(request(Player("a", {"skill": 25, "skill.sigma": -1})))
    assert info.value.field == "players[0].attributes.skill.sigma"
    queue.check_ticket(request(Player("a", {"skill": 25, "skill.sigma": 3})))


def test_matches_of_a_rating_queue_are_even_and_carry_their_draw_probability() -> None:
    queue = make_queue(max_size=2, rules=[{**RATING, "maxDistance": 20}])
    sigma: dict[str, Any] = {"skill.sigma": 3.0}
    pool = [
        ticket(name, mu, wait=4 - i, **sigma)
        for i, (name, mu) in enumerate([("a", 34.0), ("b", 30.0), ("c", 22.0), ("d", 18.0)])
    ]
    (proposal,) = find_matches(pool, queue, NOW)
    assert sorted(map(sorted, proposal.teams)) == [["a", "d"], ["b", "c"]]
    quality = proposal.quality
    assert quality.win_probabilities == pytest.approx((0.5, 0.5))
    even = [[Rating(34, 3), Rating(18, 3)], [Rating(30, 3), Rating(22, 3)]]
    assert quality.draw_probability == pytest.approx(predict_draw(even))


def test_the_rating_window_keeps_far_apart_players_apart() -> None:
    queue = make_queue(rules=[RATING])
    pool = [ticket("a", 40.0, wait=2), ticket("b", 15.0, wait=1)]
    assert find_matches(pool, queue, NOW) == []
    assert find_matches([*pool, ticket("c", 35.0)], queue, NOW)[0].teams == (("a",), ("c",))


def test_queues_without_a_rating_rule_report_no_draw_probability() -> None:
    (proposal,) = find_matches([ticket("a", 1500.0), ticket("b", 1510.0)], make_queue(), NOW)
    assert proposal.quality.draw_probability is None and proposal.quality.win_probabilities == ()
