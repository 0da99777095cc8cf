"""``fleetmatch loadtest`` refuses what it must before a single player is sent: a remote target it
was not explicitly given, a target without credentials, a bad scenario, a scale beyond the
scenario's limits, no stack to aim at, a ``--compare`` file that is not a report. Each is one line
naming what is wrong, never a traceback. Against a real ``fleetmatch up``: the verdict decides the
exit status (FAIL: 1, with the reasons), the thresholds are the options', and ``--compare`` puts
the previous run's figures beside this one's."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fleetmatch.cli import cli
from loadtest.stack import REPO, start_stack, stop_stack
from tests.integration.test_loadtest_players import LONELY  # one 4v4 player: never matched


def invoke(tmp_path: Path, *args: str) -> Result:
    runner = CliRunner()
    return runner.invoke(cli, ["--data-dir", str(tmp_path), "loadtest", *args], catch_exceptions=False)


def write_stack(data_dir: Path, matchmaker_url: str) -> None:
    """A ``stack.json`` as ``fleetmatch up`` writes it, owned by this (live) process."""
    doc = {
        "redis_url": "redis://127.0.0.1:1",
        "metrics_url": "http://127.0.0.1:1",
        "allocator_url": "http://127.0.0.1:2",
        "allocator_token": "t",
        "matchmaker_url": matchmaker_url,
        "player_token_secret": "s" * 32,
        "namespace": "default",
        "node": "local",
        "data_dir": str(data_dir),
        "pid": os.getpid(),
    }
    (data_dir / "stack.json").write_text(json.dumps(doc))


def test_no_running_stack_says_how_to_start_one(tmp_path: Path) -> None:
    result = invoke(tmp_path, "--scenario", "smoke")
    assert result.exit_code == 1
    assert "no running fleetmatch stack" in result.output and "fleetmatch up" in result.output
    assert "Traceback" not in result.output


def test_a_remote_url_from_stack_json_is_refused(tmp_path: Path) -> None:
    write_stack(tmp_path, "http://10.20.30.40:9190")
    result = invoke(tmp_path, "--scenario", "smoke", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert "refusing to load-test 10.20.30.40" in result.output and "--target" in result.output
    assert not (tmp_path / "out").exists()


def test_an_explicit_target_needs_credentials(tmp_path: Path) -> None:
    result = invoke(tmp_path, "--scenario", "smoke", "--target", "https://mm.example.test")
    assert result.exit_code == 2
    assert "--token-file" in result.output


def test_an_empty_token_file_is_named(tmp_path: Path) -> None:
    token = tmp_path / "t.txt"
    token.write_text("\n")
    result = invoke(tmp_path, "--scenario", "smoke", "--target", "https://mm.example.test", "--token-file", str(token))
    assert result.exit_code == 2
    assert "--token-file" in result.output and "empty" in result.output


@pytest.mark.parametrize(
    ("target", "message"),
    [("ftp://mm.example.test", "not an http(s) URL"), ("https://user:pw@mm.example.test", "no credentials")],
)
def test_a_malformed_target_is_refused(tmp_path: Path, target: str, message: str) -> None:
    token = tmp_path / "t.txt"
    token.write_text("key\n")
    result = invoke(tmp_path, "--scenario", "smoke", "--target", target, "--token-file", str(token))
    assert result.exit_code == 2
    assert message in result.output


def test_a_bad_scenario_names_the_field_and_line(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(
        "apiVersion: fleetmatch.dev/v1\nkind: LoadTest\nmetadata: {name: bad}\n"
        "spec:\n  players: 10\n  hardStopSeconds: 30\n  regions: {local: {distribution: constant, value: 5}}\n"
        "  arrival: {phases: [{type: constant, rate: -3}]}\n"
    )
    write_stack(tmp_path, "http://127.0.0.1:1")
    result = invoke(tmp_path, "--scenario", str(scenario))
    assert result.exit_code == 2
    assert "rate" in result.output and "line 8" in result.output, result.output


def test_an_unknown_scenario_lists_the_shipped_ones(tmp_path: Path) -> None:
    result = invoke(tmp_path, "--scenario", "no-such-scenario")
    assert result.exit_code == 2
    assert "launch-day.yaml" in result.output and "smoke.yaml" in result.output
    assert "launch-day-fleet.yaml" not in result.output  # a Fleet file, not a scenario


def test_players_beyond_the_scenarios_limit_are_refused(tmp_path: Path) -> None:
    write_stack(tmp_path, "http://127.0.0.1:1")
    result = invoke(tmp_path, "--scenario", "smoke", "--players", "100000")
    assert result.exit_code == 2
    assert "spec.players" in result.output and "100000" in result.output


def test_compare_refuses_a_file_that_is_not_a_report(tmp_path: Path) -> None:
    not_a_report = tmp_path / "stack.json"
    write_stack(tmp_path, "http://127.0.0.1:1")
    result = invoke(tmp_path, "--scenario", "smoke", "--compare", str(not_a_report), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"error: --compare: {not_a_report} is not a load test report (report.json of `fleetmatch loadtest`)"
    ]
    assert not (tmp_path / "out").exists()  # refused before a single player


# -- against a real `fleetmatch up` -----------------------------------------------------------------

TWO_DUELLISTS = """
apiVersion: fleetmatch.dev/v1
kind: LoadTest
metadata: {name: two-duellists}
spec:
  players: 2
  durationSeconds: 1
  hardStopSeconds: 30
  matchTimeoutSeconds: 20
  arrival: {process: even, phases: [{type: constant, rate: 4}]}
  queues: {duel: {weight: 1}}
  attributes: {skill: {distribution: constant, value: 1500}}
  regions: {local: {distribution: constant, value: 5}}
  sessionSeconds: {distribution: constant, value: 1}
  clients: {sse: 1}
  limits: {maxPlayers: 2, maxRate: 4}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One `fleetmatch up` (the demo fleet and queues) for the runs below; game ports 7250-7299."""
    data_dir = tmp_path_factory.mktemp("loadtest-cli") / "data"
    proc = start_stack(data_dir, port_range="7250-7299")
    try:
        yield data_dir
    finally:
        stop_stack(proc)


def loadtest(data_dir: Path, scenario: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    command = [sys.executable, "-m", "fleetmatch", "--data-dir", str(data_dir), "loadtest", "--no-view"]
    return subprocess.run(
        [*command, "--scenario", str(scenario), "--out", str(out), "--seed", "3", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_the_verdict_decides_the_exit_status_and_compare_shows_the_change(stack: Path, tmp_path: Path) -> None:
    duels, lonely = tmp_path / "duels.yaml", tmp_path / "lonely.yaml"
    duels.write_text(TWO_DUELLISTS)
    lonely.write_text(LONELY)

    # Both duellists play, nothing is lost, but a time-to-match p95 of 1 ms is out of reach: FAIL.
    first = loadtest(stack, duels, tmp_path / "first", "--max-ttm-p95", "0.001")
    assert first.returncode == 1, first.stdout + first.stderr[-3000:]
    assert first.stdout.splitlines()[0] == "FAIL"
    assert "  FAIL  time to match p95" in first.stdout and "  ok    tickets lost" in first.stdout
    (error,) = [line for line in first.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith("error: load test FAILED: time to match p95 ") and error.endswith("at most 0.001 s allowed")
    report = json.loads((tmp_path / "first" / "report.json").read_text())
    summary = report["summary"]
    assert summary["played"] == 2 and summary["serverTickets"]["lost"] == 0
    assert list(summary["timeToMatchByQueueMs"]) == ["duel"] and summary["timeToMatchByQueueMs"]["duel"]["count"] == 2
    for name in ("ticketCreate", "assignmentPush", "udpJoin"):
        figures = summary["latenciesMs"][name]
        assert figures["count"] >= 1 and figures["p50"] <= figures["p95"] <= figures["p99"] <= figures["max"], name
    assert any(row["udpJoinP95Ms"] is not None for row in report["timeline"])
    assert report["verdict"]["pass"] is False and report["verdict"]["thresholds"]["maxTimeToMatchP95Ms"] == 1.0
    assert '<div class="verdict fail"' in (tmp_path / "first" / "report.html").read_text()

    # The lonely 4v4 player is never matched (100% failed), allowed by the threshold: PASS, compared.
    previous = tmp_path / "first" / "report.json"
    second = loadtest(stack, lonely, tmp_path / "second", "--max-failure-rate", "100", "--compare", str(previous))
    assert second.returncode == 0, second.stdout + second.stderr[-3000:]
    lines = second.stdout.splitlines()
    assert lines[0] == "PASS" and "  ok    failure rate  1 of 1 players failed (100.0%), at most 100% allowed" in lines
    assert f"Previous run: two-duellists started {report['scenario']['startedAt']} (FAIL), from {previous}:" in lines
    assert any(re.fullmatch(r"  players arrived +1  was +2  -1 \(-50%\)", line) for line in lines), lines
    page = (tmp_path / "second" / "report.html").read_text()
    assert '<div class="verdict pass"' in page and "Compared with the previous run" in page
    assert json.loads((tmp_path / "second" / "report.json").read_text())["previous"]["figures"]["played"] == 2
