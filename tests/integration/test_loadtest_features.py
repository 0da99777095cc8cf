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

    # What the players were told to do, from the scenario itself.
    sc = load_scenario(scenario)
    tickets = summary["ticketsCreated"]
    told = [sc.party(Random(0), index).answer for index in range(tickets)]
    decliners, silent = told.count(Answer.DECLINE), told.count(Answer.SILENT)
    assert decliners >= 3 and silent >= 3
    assert ready["ticketsPlanned"] == {"accept": tickets - decliners - silent, "decline": decliners, "silent": silent}

    # Each decliner declined once and its ticket was cancelled; each silent one was cancelled at a deadline.
    assert summary["failures"]["declined"] == ready["declinedPlayers"] == decliners
    assert summary["failures"]["not-accepted"] == ready["notAcceptedPlayers"] == silent
    outcome, server = ready["byOutcome"], ready["server"]
    assert outcome["declined"] == decliners  # a second decline of the same proposal is too late (409)
    assert 1 <= outcome["timedOut"] <= silent
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

    # Every accepted proposal became a full duel; the server cancelled exactly the tickets it should.
    duels = summary["features"]["matches"]["ready"]
    assert duels["matches"] == duels["full"] == outcome["accepted"] and summary["played"] == 2 * duels["matches"]
    timeouts = summary["failures"]["match-timeout"]
    assert summary["serverTickets"]["cancelled"] == decliners + silent + timeouts
    assert summary["serverTickets"]["matched"] == summary["played"]
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
