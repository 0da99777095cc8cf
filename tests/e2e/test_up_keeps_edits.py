"""``fleetmatch up`` stopped and started again on the same data directory keeps what the user did
to the demo (scaled to 7, a changed template, its autoscaler deleted), and says so; a fleet file
given with ``--fleet`` is applied as given on every start."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetmatch.demo import DEMO_FLEET
from tests.e2e.test_up import wait_for_line
from tests.faults.world import REPO, launch_up

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def cli(data_dir: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "fleetmatch", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def demo_fleet(data_dir: Path) -> dict[str, Any]:
    listed = json.loads(cli(data_dir, "fleet", "list", "-o", "json"))
    items = listed["items"] if isinstance(listed, dict) else listed
    found: dict[str, Any] = next(f for f in items if f["metadata"]["name"] == "demo")
    return found


@contextlib.contextmanager
def running_up(data_dir: Path, log: Path, *args: str) -> Iterator[list[str]]:
    """``up`` until the block ends (then SIGINT), its log appended to ``log``; yields the banner."""
    with log.open("ab") as stderr:
        proc = launch_up(data_dir, "7650-7699", args=args, stderr=stderr)
    try:
        yield wait_for_line(proc, "Ctrl-C", timeout=120)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def edited_demo(tmp_path: Path, replicas: int, time_limit: str) -> Path:
    text = DEMO_FLEET.read_text()
    assert "replicas: 4" in text and 'MATCH_TIME_LIMIT: "600"' in text
    text = text.replace("replicas: 4", f"replicas: {replicas}").replace('"600"', f'"{time_limit}"')
    text = text.replace("workingDir: ../..", f"workingDir: {REPO}")
    path = tmp_path / "edited.yaml"
    path.write_text(text)
    return path


def test_a_restart_keeps_the_users_edits_of_the_demo_and_applies_a_given_file(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "up.log"
    with running_up(data_dir, log):
        assert "Fleet demo created (demo)" in log.read_text()
        cli(data_dir, "autoscaler", "delete", "demo-autoscaler")  # or it would scale the fleet back
        cli(data_dir, "apply", "-f", str(edited_demo(tmp_path, 7, "900")))

    with running_up(data_dir, log) as banner:
        assert "demo: 7 Ready game servers" in "\n".join(banner)
        kept = demo_fleet(data_dir)
        assert kept["spec"]["replicas"] == 7
        assert kept["spec"]["template"]["spec"]["process"]["env"]["MATCH_TIME_LIMIT"] == "900"
        assert "demo-autoscaler" not in cli(data_dir, "autoscaler", "list")
    assert "Fleet demo exists: kept as it is (7 replicas" in log.read_text()

    with running_up(data_dir, log, "--fleet", str(edited_demo(tmp_path, 2, "300"))) as banner:
        assert "demo: 2 Ready game servers" in "\n".join(banner)
        given = demo_fleet(data_dir)
        assert given["spec"]["replicas"] == 2
        assert given["spec"]["template"]["spec"]["process"]["env"]["MATCH_TIME_LIMIT"] == "300"
    assert "Fleet demo configured\n" in log.read_text()


def test_replicas_the_demo_autoscaler_overrides_still_bring_the_banner(tmp_path: Path) -> None:
    """``--replicas 6`` with the demo's Buffer autoscaler (4 beyond the Allocated): the autoscaler
    wins, as in Agones, and ``up`` waits for the replicas the fleet has, not for 6 forever."""
    with running_up(tmp_path / "data", tmp_path / "up.log", "--replicas", "6", "--ready-timeout", "60") as banner:
        assert any(line.startswith("  fleet       demo: ") for line in banner)  # not a StartupError
