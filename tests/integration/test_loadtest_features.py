"""The feature scenarios end to end, each against a real ``fleetmatch up`` with the feature fleet and
queues (real Redis, matchmaker, allocator, UDP game servers): the players decline, stay silent,
offer roles and fill a battle royale through the real API, and the report's figures are checked
against what the scenario told the players to do and against the server's own counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from random import Random
from typing import Any

import pytest

from loadtest.scenario import SCENARIOS, Answer, load_scenario
from loadtest.stack import REPO, start_stack, stop_stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One `fleetmatch up` with the feature fleet and queues; game ports 7800-7849."""
    data_dir = tmp_path_factory.mktemp("loadtest-features") / "data"
    proc = start_stack(
        data_dir,
        "-f",
        str(SCENARIOS / "features-fleet.yaml"),
        "--queues",
        str(SCENARIOS / "features-queues.yaml"),
        port_range="7800-7849",
    )
    try:
        yield data_dir
    finally:
        stop_stack(proc)


def run(data_dir: Path, scenario: Path, out: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    command = [sys.executable, "-m", "fleetmatch", "--data-dir", str(data_dir), "loadtest", "--no-view"]
    result = subprocess.run(
        [*command, "--scenario", str(scenario), "--out", str(out), "--seed", "3"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    return result, json.loads((out / "report.json").read_text())


def test_ready_checks_declines_and_silence_are_counted_and_the_others_rematched(stack: Path, tmp_path: Path) -> None:
    scenario = SCENARIOS / "ready-check.yaml"
    result, report = run(stack, scenario, tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    summary = report["summary"]
    ready = summary["features"]["acceptance"]

    # What the players were told to do, from the scenario itself (answers are per ticket, i.e. party).
    sc = load_scenario(scenario)
    tickets = summary["ticketsCreated"]
    parties = [sc.party(Random(0), index) for index in range(tickets)]
    decliners = [p for p in parties if p.answer is Answer.DECLINE]
    silent = [p for p in parties if p.answer is Answer.SILENT]
    assert len(decliners) >= 2 and len(silent) >= 2 and any(len(p.players) > 1 for p in decliners + silent)
    assert ready["ticketsPlanned"] == {
        "accept": tickets - len(decliners) - len(silent),
        "decline": len(decliners),
        "silent": len(silent),
    }

    # Each ticket did as told: a decliner declined (its ticket cancelled) or, when nobody was left
    # to match it with, timed out; a silent one was cancelled at a deadline, or timed out unasked.
    by_plan = ready["byPlan"]
    assert set(by_plan["decline"]) <= {"declined", "match-timeout"} and by_plan["decline"].get("declined", 0) >= 1
    assert set(by_plan["silent"]) <= {"not-accepted", "match-timeout"} and by_plan["silent"].get("not-accepted", 0) >= 1
    assert set(by_plan["accept"]) <= {"played", "match-timeout"}
    assert [sum(by_plan[k].values()) for k in ("decline", "silent")] == [len(decliners), len(silent)]
    assert summary["failures"]["declined"] == ready["declinedPlayers"] >= by_plan["decline"]["declined"]
    assert summary["failures"]["not-accepted"] == ready["notAcceptedPlayers"] >= by_plan["silent"]["not-accepted"]
    assert ready["playersToldNotToAccept"] == sum(len(p.players) for p in decliners + silent)
    outcome, server = ready["byOutcome"], ready["server"]
    assert outcome["declined"] >= by_plan["decline"]["declined"]  # each declined one proposal: a second is 409
    assert 1 <= outcome["timedOut"] <= by_plan["silent"]["not-accepted"]
    # The matchmaker counted the same proposals, outcome by outcome.
    assert server == {
        "accepted": outcome["accepted"],
        "declined": outcome["declined"],
        "proposed": ready["proposals"],
        "timed-out": outcome["timedOut"],
    }
    assert outcome["open"] == 0

    # Those whose match fell through because of someone else went back and were matched again.
    assert ready["requeuedTickets"] >= 2 and ready["rematchedTickets"] >= ready["requeuedTickets"] - 1

    # Every accepted proposal (each player of a party accepted for themselves) became a full 2v2;
    # the server cancelled exactly the tickets it should.
    matches = summary["features"]["matches"]["ready"]
    assert matches["matches"] == matches["full"] == outcome["accepted"] and summary["played"] == 4 * matches["matches"]
    assert summary["failures"]["other"] == 0  # no accepting party cancelled for not accepting
    gave_up = sum(by_plan[k].get("match-timeout", 0) for k in by_plan)  # tickets cancelled by their players
    cancelled = by_plan["decline"].get("declined", 0) + by_plan["silent"].get("not-accepted", 0) + gave_up
    assert summary["serverTickets"]["cancelled"] == cancelled
    assert summary["serverTickets"]["matched"] == summary["ticketsMatched"]
    assert "  ok    features" in result.stdout and "ready checks" in result.stdout


def test_roles_every_match_is_role_complete_and_nobody_plays_a_role_they_did_not_offer(
    stack: Path, tmp_path: Path
) -> None:
    result, report = run(stack, SCENARIOS / "roles.yaml", tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    summary = report["summary"]
    dungeon = summary["features"]["matches"]["dungeon"]
    assert dungeon["matches"] >= 3 and summary["played"] == 10 * dungeon["matches"]
    assert dungeon["full"] == dungeon["roleComplete"] == dungeon["matches"]
    per_match = {"tank": 2, "healer": 2, "dps": 6}
    assert dungeon["roleFill"] == {
        role: {"filled": n * dungeon["matches"], "slots": n * dungeon["matches"]}
        for role, n in sorted(per_match.items())
    }
    assert dungeon["playersOutOfRole"] == 0
    assert dungeon["partiesSpanningRoles"] >= 1
    assert sum(dungeon["offers"].values()) == summary["players"]
    assert dungeon["offers"].get("any", 0) == 0  # every player offered roles, and the ticket carried them


def test_battle_royale_one_full_match_of_25_teams(stack: Path, tmp_path: Path) -> None:
    result, report = run(stack, SCENARIOS / "battle-royale.yaml", tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    summary = report["summary"]
    royale = summary["features"]["matches"]["royale"]
    assert royale["playersPerMatch"] == {"100": 1} and royale["teamsPerMatch"] == {"25": 1} and royale["full"] == 1
    assert summary["played"] == 100 and summary["serverTickets"]["playersInTwoMatches"] == 0
    assert summary["timeToMatchByQueueMs"]["royale"]["count"] == 100
    assert "matches royale 1 matches (players: 1x 100), 1 full (25 teams of 4)" in result.stdout


def test_a_match_that_is_not_the_shape_the_scenario_says_fails_the_verdict(stack: Path, tmp_path: Path) -> None:
    """The same battle royale, described as 20 teams of 5: the queue's 25 teams of 4 are not that."""
    wrong = tmp_path / "wrong.yaml"
    text = (SCENARIOS / "battle-royale.yaml").read_text()
    assert "match: {teams: 25, teamSize: 4}" in text
    wrong.write_text(text.replace("match: {teams: 25, teamSize: 4}", "match: {teams: 20, teamSize: 5}"))
    result, report = run(stack, wrong, tmp_path / "out")
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    assert "  FAIL  features      royale: 1 of 1 matches not full" in result.stdout
    assert report["summary"]["played"] == 100  # everything else went well
