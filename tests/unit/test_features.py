"""Per-feature figures of a load test (``loadtest.features``) and the verdict on them: proposals are
classed by what their tickets did and compared with the matchmaker's counts; matches are checked
against the scenario's shape and role slots; chosen declines are not failures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadtest.features import feature_html, feature_lines, features, problems
from loadtest.players import FailureKind, Phase, ProposalSeen, SimPlayer
from loadtest.scenario import Answer, Answers, MatchShape, PartySpec, QueueMix
from loadtest.verdict import judge
from matchmaker.models import Player


@dataclass
class Record:
    """A party after the run, as ``loadtest.features`` reads it."""

    spec: PartySpec
    players: Sequence[SimPlayer]
    proposals: Sequence[ProposalSeen] = ()
    assignment: Mapping[str, Any] | None = None


@dataclass
class Parties:
    items: list[Record] = field(default_factory=list)

    def add(
        self,
        queue: str,
        offers: Sequence[tuple[str, ...]] = ((),),
        *,
        answer: Answer = Answer.ACCEPT,
        proposals: Sequence[ProposalSeen] = (),
        match: str | None = None,
        team: int = 0,
        roles: Sequence[str] = (),
        failure: FailureKind | None = None,
    ) -> None:
        n = len(self.items)
        players = tuple(Player(f"p{n}-{k}", roles=offer) for k, offer in enumerate(offers))
        sims = [SimPlayer(p.id, n, Phase.FAILED if failure else Phase.DONE, failure=failure) for p in players]
        assignment = None
        if match is not None:
            assignment = {"matchId": match, "team": team}
            if roles:
                assignment["roles"] = {p.id: r for p, r in zip(players, roles, strict=True)}
        self.items.append(Record(PartySpec(queue, players, "sse", 1.0, answer), sims, proposals, assignment))


READY = {"ready": QueueMix(acceptance=Answers(decline_rate=0.2, silent_rate=0.2), match=MatchShape(2, 1))}


def ready_run() -> Parties:
    """m1: A declines, B accepted and goes back; m2: C silent, D accepted and goes back; m3: B and D
    accept and play."""
    parties = Parties()
    parties.add(
        "ready",
        answer=Answer.DECLINE,
        proposals=[ProposalSeen("m1", "declined", "cancelled")],
        failure=FailureKind.DECLINED,
    )
    parties.add(
        "ready",
        proposals=[ProposalSeen("m1", "accepted", "requeued"), ProposalSeen("m3", "accepted", "matched")],
        match="m3",
        team=0,
    )
    parties.add(
        "ready",
        answer=Answer.SILENT,
        proposals=[ProposalSeen("m2", "silent", "cancelled")],
        failure=FailureKind.NOT_ACCEPTED,
    )
    parties.add(
        "ready",
        proposals=[ProposalSeen("m2", "accepted", "requeued"), ProposalSeen("m3", "accepted", "matched")],
        match="m3",
        team=1,
    )
    return parties


AGREEING = {"proposed": 3.0, "accepted": 1.0, "declined": 1.0, "timed-out": 1.0}


def test_proposals_are_classed_by_what_their_tickets_did() -> None:
    figures = features(ready_run().items, READY, AGREEING)
    ready = figures["acceptance"]
    assert ready["proposals"] == 3
    assert ready["byOutcome"] == {"accepted": 1, "declined": 1, "timedOut": 1, "open": 0}
    assert ready["ticketsPlanned"] == {"accept": 2, "decline": 1, "silent": 1}
    assert ready["byPlan"] == {"accept": {"played": 2}, "decline": {"declined": 1}, "silent": {"not-accepted": 1}}
    assert (ready["playersToldNotToAccept"], ready["failedOfThose"]) == (2, 2)
    assert (ready["declinedPlayers"], ready["notAcceptedPlayers"]) == (1, 1)
    assert (ready["requeuedTickets"], ready["rematchedTickets"]) == (2, 2)
    assert figures["matches"]["ready"]["full"] == 1
    assert problems(figures) == []


def test_the_verdict_fails_when_the_matchmaker_counted_otherwise() -> None:
    # one decline the matchmaker did not count (it counted a time-out instead)
    counted = {**AGREEING, "declined": 0.0, "timed-out": 2.0}
    found = problems(features(ready_run().items, READY, counted))
    assert found == [
        "ready checks: the players saw 1 proposals declined, the matchmaker counted 0",
        "ready checks: the players saw 1 proposals timed-out, the matchmaker counted 2",
    ]
    assert problems(features(ready_run().items, READY, None)) == [
        "ready checks: the matchmaker's proposal counts were not scraped"
    ]


def test_a_cancel_while_proposed_is_a_decline_and_an_unfinished_one_is_open() -> None:
    parties = Parties()
    parties.add("ready", proposals=[ProposalSeen("m1", "cancelled", "cancelled")], failure=FailureKind.MATCH_TIMEOUT)
    parties.add("ready", proposals=[ProposalSeen("m1", "accepted", "requeued")])
    parties.add("ready", proposals=[ProposalSeen("m2", "none", "open")])
    ready = features(parties.items, READY, None)["acceptance"]
    assert ready["byOutcome"] == {"accepted": 0, "declined": 1, "timedOut": 0, "open": 1}
    assert (ready["requeuedTickets"], ready["rematchedTickets"]) == (1, 0)


ROYALE = {"royale": QueueMix(match=MatchShape(teams=3, team_size=2))}


def test_a_match_short_of_a_player_is_not_full() -> None:
    parties = Parties()
    for team in range(3):
        parties.add("royale", ((), ()), match="full", team=team)  # parties of 2: three full teams
    parties.add("royale", ((), ()), match="short", team=0)
    parties.add("royale", ((),), match="short", team=1)  # a team of 1
    parties.add("royale", ((), ()), match="short", team=2)
    figures = features(parties.items, ROYALE, None)
    royale = figures["matches"]["royale"]
    assert royale["playersPerMatch"] == {"5": 1, "6": 1} and royale["teamsPerMatch"] == {"3": 2}
    assert (royale["full"], royale["notFull"]) == (1, ["short"])
    assert problems(figures) == ["royale: 1 of 2 matches not full"]


def test_a_queue_the_scenario_describes_must_form_a_match() -> None:
    parties = Parties()
    parties.add("royale", ((), ()))  # never matched
    assert problems(features(parties.items, ROYALE, None)) == ["royale: no match was formed"]


DUNGEON = {"dungeon": QueueMix(match=MatchShape(teams=2, roles={"tank": 1, "dps": 2}))}


def dungeon_team(parties: Parties, match: str, team: int, roles: Sequence[str]) -> None:
    """A party of three (tank+dps offer, dps, dps) taking ``roles``."""
    parties.add("dungeon", (("tank", "dps"), ("dps",), ("dps",)), match=match, team=team, roles=roles)


def test_role_fill_and_parties_spanning_roles() -> None:
    parties = Parties()
    dungeon_team(parties, "m1", 0, ("tank", "dps", "dps"))
    dungeon_team(parties, "m1", 1, ("tank", "dps", "dps"))
    figures = features(parties.items, DUNGEON, None)
    dungeon = figures["matches"]["dungeon"]
    assert dungeon["roleFill"] == {"dps": {"filled": 4, "slots": 4}, "tank": {"filled": 2, "slots": 2}}
    assert (dungeon["roleComplete"], dungeon["playersOutOfRole"], dungeon["partiesSpanningRoles"]) == (1, 0, 2)
    assert dungeon["offers"] == {"dps": 4, "tank+dps": 2}
    assert problems(figures) == []


def test_a_player_out_of_role_and_a_team_without_its_tank_fail() -> None:
    parties = Parties()
    dungeon_team(parties, "m1", 0, ("tank", "dps", "dps"))
    dungeon_team(parties, "m1", 1, ("dps", "tank", "dps"))  # the dps-only player made tank
    parties.add("dungeon", (("dps",), ("dps",), ("dps",)), match="m2", team=0, roles=("dps", "dps", "dps"))
    dungeon_team(parties, "m2", 1, ("tank", "dps", "dps"))
    figures = features(parties.items, DUNGEON, None)
    dungeon = figures["matches"]["dungeon"]
    assert dungeon["roleIncomplete"] == ["m2"] and dungeon["playersOutOfRole"] == 1
    assert problems(figures) == [
        "dungeon: 1 matches with a role slot not filled",
        "dungeon: 1 players in a role they did not offer",
    ]


def report_of(summary: Mapping[str, Any]) -> dict[str, Any]:
    base = {"serverTickets": {"created": 4, "lost": 0, "unchecked": 0, "mismatches": 0}, "unfinished": 0}
    return {"summary": {**base, **summary}}


def test_chosen_declines_are_not_failures_but_the_features_are_judged() -> None:
    figures = features(ready_run().items, READY, AGREEING)
    failures = {"declined": 1, "not-accepted": 1, "match-timeout": 0}
    verdict = judge(report_of({"players": 4, "failed": 2, "failures": failures, "features": figures}))
    assert verdict.passed, verdict.reasons
    rate, feature = verdict.checks[2], verdict.checks[3]
    assert rate.detail.startswith("0 of 2 players failed (0.0%)") and "2 more were told to decline" in rate.detail
    assert feature.name == "features" and "ready checks as the matchmaker counted" in feature.detail

    bad = features(ready_run().items, READY, {**AGREEING, "accepted": 0.0})
    failed = judge(report_of({"players": 4, "failed": 2, "failures": failures, "features": bad}))
    assert not failed.passed
    assert failed.reasons == ["ready checks: the players saw 1 proposals accepted, the matchmaker counted 0"]

    # a real failure among the accepting players still counts
    timeouts = {**failures, "match-timeout": 1}
    one_lost = judge(report_of({"players": 4, "failed": 3, "failures": timeouts, "features": figures}))
    assert one_lost.checks[2].detail.startswith("1 of 2 players failed (50.0%)") and not one_lost.passed


def test_a_run_without_features_has_no_feature_check() -> None:
    verdict = judge(report_of({"players": 2, "failed": 0, "features": {"acceptance": None, "matches": {}}}))
    assert [c.name for c in verdict.checks] == ["tickets lost", "consistency", "failure rate"]


def test_the_figures_are_printed_and_drawn() -> None:
    figures = features(ready_run().items, READY, AGREEING)
    lines = dict(feature_lines(figures))
    assert lines["ready checks"].startswith("3 proposals (accepted 1, declined 1, timedOut 1, open 0)")
    assert lines["  matches ready"] == "1 matches (players: 1x 2), 1 full (2 teams of 1)"
    assert "<h2>Features</h2>" in feature_html(figures) and feature_html({"acceptance": None, "matches": {}}) == ""


def test_a_decliner_never_asked_is_left_out_of_the_failure_rate_but_counted() -> None:
    parties = ready_run()
    parties.add("ready", answer=Answer.DECLINE, failure=FailureKind.MATCH_TIMEOUT)  # nobody left to match it with
    figures = features(parties.items, READY, AGREEING)
    ready = figures["acceptance"]
    assert ready["byPlan"]["decline"] == {"declined": 1, "match-timeout": 1}
    assert (ready["playersToldNotToAccept"], ready["failedOfThose"]) == (3, 3)
    failures = {"declined": 1, "not-accepted": 1, "match-timeout": 1}
    verdict = judge(report_of({"players": 5, "failed": 3, "failures": failures, "features": figures}))
    assert verdict.passed and verdict.checks[2].detail.startswith("0 of 2 players failed")
