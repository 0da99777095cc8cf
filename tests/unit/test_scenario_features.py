"""The scenario fields for feature load tests (ready-check answers, role offers, match shapes): bad
values name field and line; answers spread over the tickets as asked; the shipped feature
scenarios fit the queues and fleet they are run against."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from random import Random

import pytest

from fleetmatch.errors import ValidationError
from fleetmatch.manifests import load_resources
from fleetmatch.models import Fleet
from loadtest.scenario import SCENARIOS, Answer, load_scenario, parse_scenario
from matchmaker.models import TicketRequest
from matchmaker.rules import load_queues
from tests.unit.test_scenario import line_of

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
apiVersion: fleetmatch.dev/v1
kind: LoadTest
metadata: {name: features}
spec:
  players: 100
  hardStopSeconds: 60
  arrival: {phases: [{type: constant, rate: 10}]}
  parties: {1: 0.5, 2: 0.5}
  queues:
    dungeon:
      acceptance: {declineRate: 0.2, silentRate: 0.1, delaySeconds: 0.5}
      roles:
        - {roles: [tank], weight: 1}
        - {roles: [healer, dps], weight: 2}
      match: {teams: 2, roles: {tank: 1, healer: 1, dps: 3}}
  regions: {local: {distribution: constant, value: 5}}
"""

BAD = [
    # (replace this, with this, error field, a word of the message, the line holding ...)
    pytest.param(
        "declineRate: 0.2", "declineRate: 1.2", "spec.queues.dungeon.acceptance.declineRate", "0..1", "1.2", id="rate"
    ),
    pytest.param(
        "silentRate: 0.1", "silentRate: 0.9", "spec.queues.dungeon.acceptance.silentRate", "at most 1", "0.9", id="sum"
    ),
    pytest.param(
        "delaySeconds: 0.5",
        "delaySeconds: 99",
        "spec.queues.dungeon.acceptance.delaySeconds",
        "0..60",
        "99",
        id="delay",
    ),
    pytest.param(
        "[healer, dps]", "[healer, mage]", "spec.queues.dungeon.roles[1].roles[1]", "not a role", "mage", id="role"
    ),
    pytest.param(
        "[healer, dps]", "[dps, dps]", "spec.queues.dungeon.roles[1].roles[1]", "twice", "[dps, dps]", id="dup"
    ),
    pytest.param("weight: 2}", "weight: 0}", "spec.queues.dungeon.roles[1].weight", "positive", "weight: 0", id="w"),
    pytest.param(
        "{teams: 2, roles:", "{teams: 0, roles:", "spec.queues.dungeon.match.teams", "1..64", "teams: 0", id="t"
    ),
    pytest.param(
        "{teams: 2, roles:",
        "{teams: 2, teamSize: 4, roles:",
        "spec.queues.dungeon.match.teamSize",
        "sum",
        "teams:",
        id="s",
    ),
    pytest.param(
        "match: {teams: 2, roles: {tank: 1, healer: 1, dps: 3}}",
        "match: {teams: 2}",
        "spec.queues.dungeon.match.teamSize",
        "give teamSize",
        "match:",
        id="no-size",
    ),
    pytest.param(
        "match: {teams: 2, roles: {tank: 1, healer: 1, dps: 3}}",
        "match: {teams: 50, teamSize: 5}",
        "spec.queues.dungeon.match.teamSize",
        "200 players",
        "match:",
        id="too-big",
    ),
    pytest.param(
        "  roles:\n        - {roles: [tank], weight: 1}\n        - {roles: [healer, dps], weight: 2}\n"
        "      match: {teams: 2, roles: {tank: 1, healer: 1, dps: 3}}",
        "  match: {teams: 2, teamSize: 1}",
        "spec.queues.dungeon.match.teamSize",
        "parties of 2",
        "match:",
        id="party>team",
    ),
]


@pytest.mark.parametrize(("old", "new", "field", "words", "marker"), BAD)
def test_bad_feature_fields_name_field_and_line(old: str, new: str, field: str, words: str, marker: str) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    with pytest.raises(ValidationError) as info:
        parse_scenario(text, "bad.yaml")
    error = info.value
    assert error.field == field, str(error)
    assert words in error.message, str(error)
    assert error.line == line_of(text, marker), str(error)


def test_answers_spread_over_the_tickets_as_asked_whatever_the_seed() -> None:
    sc = parse_scenario(GOOD)
    for seed in (1, 2):
        rng = Random(seed)
        answers = [sc.party(rng, index).answer for index in range(1000)]
        counts = Counter(answers)
        assert abs(counts[Answer.DECLINE] - 200) <= 5 and abs(counts[Answer.SILENT] - 100) <= 5, counts
        # and in every stretch of 100 tickets, not only over the run
        for start in range(0, 1000, 100):
            stretch = Counter(answers[start : start + 100])
            assert 15 <= stretch[Answer.DECLINE] <= 25 and 5 <= stretch[Answer.SILENT] <= 15, stretch
    assert {sc.party(Random(1), i).answer_delay for i in range(10)} == {0.5}


def test_players_offer_the_roles_drawn_and_parties_span_roles() -> None:
    sc = parse_scenario(GOOD)
    rng = Random(7)
    parties = [sc.party(rng, index) for index in range(400)]
    offers = Counter(p.roles for party in parties for p in party.players)
    assert set(offers) == {("tank",), ("healer", "dps")}
    assert 0.25 < offers[("tank",)] / offers.total() < 0.42  # weight 1 of 3
    assert any(len({p.roles for p in party.players}) > 1 for party in parties)


def test_a_queue_without_answers_or_roles_draws_as_before() -> None:
    """Existing scenarios keep their random stream: the new fields draw nothing when absent."""
    plain = GOOD.replace(
        "      acceptance: {declineRate: 0.2, silentRate: 0.1, delaySeconds: 0.5}\n"
        "      roles:\n        - {roles: [tank], weight: 1}\n        - {roles: [healer, dps], weight: 2}\n"
        "      match: {teams: 2, roles: {tank: 1, healer: 1, dps: 3}}\n",
        "      weight: 1\n",
    )
    sc = parse_scenario(plain)
    party = sc.party(Random(3), 0)
    assert party.answer is Answer.ACCEPT and all(p.roles == () for p in party.players)
    assert Random(3).random() != party.session_seconds  # sanity: the stream was used for the party itself


FEATURE_SCENARIOS = ["ready-check.yaml", "roles.yaml", "battle-royale.yaml"]


@pytest.mark.parametrize("name", FEATURE_SCENARIOS)
def test_feature_scenarios_fit_their_queues(name: str) -> None:
    """Every party is a ticket the feature queues accept, and each queue's ``match`` is its teams."""
    queues = load_queues(SCENARIOS / "features-queues.yaml")
    sc = load_scenario(SCENARIOS / name)
    assert set(sc.spec.queues) <= set(queues)
    for queue_name, mix in sc.spec.queues.items():
        teams = queues[queue_name].spec.teams
        assert mix.match is not None
        assert (mix.match.teams, mix.match.size, dict(mix.match.roles)) == (teams.count, teams.max_size, teams.roles)
        assert teams.min_size in (0, teams.max_size) or teams.max_size == 1  # never smaller: every match full
        assert (mix.acceptance is not None) == (queues[queue_name].acceptance_seconds is not None)
    rng = Random(1)
    for index in range(200):
        party = sc.party(rng, index, "check")
        queues[party.queue].check_ticket(TicketRequest(party.queue, party.players))


def test_the_battle_royale_sends_exactly_one_full_match() -> None:
    assert load_scenario(SCENARIOS / "battle-royale.yaml").planned_players() == 100


def test_the_features_fleet_hosts_a_battle_royale() -> None:
    resources = load_resources(SCENARIOS / "features-fleet.yaml")
    (fleet,) = [r for r in resources if isinstance(r, Fleet)]
    process = fleet.spec.template.spec.process
    assert process is not None and Path(process.working_dir or "") == REPO
    assert int(process.env["MAX_PLAYERS"]) >= 100
    queues = load_queues(SCENARIOS / "features-queues.yaml")
    for queue in queues.values():
        labels = [s.get("matchLabels") for s in queue.spec.allocation["selectors"]]
        assert {"agones.dev/fleet": fleet.name} in labels
