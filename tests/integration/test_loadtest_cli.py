"""``fleetmatch loadtest`` refuses what it must before a single player is sent: a remote target it
was not explicitly given, a target without credentials, a bad scenario, a scale beyond the
scenario's limits, no stack to aim at. Each is one line naming what is wrong, never a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fleetmatch.cli import cli


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
