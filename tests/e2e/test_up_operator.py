"""End to end: the operator commands against a real `fleetmatch up` (its own ticket API key from
stack.json, its directors, its allocator): queue list, ticket list/get/cancel without --player, a
match seen by ``ticket get --watch``, and allocating from a fleet that does not exist."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_up import REPO, fleetmatch, stack_env, wait_for_line

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
__all__ = ["stack_env"]  # fixture


def test_operator_commands_on_a_running_stack(tmp_path: Path, stack_env: dict[str, str]) -> None:
    data_dir = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetmatch", "--data-dir", str(data_dir), "up"],
        cwd=REPO,
        env=stack_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return fleetmatch(*args, data_dir=data_dir, env=stack_env)

    try:
        wait_for_line(proc, "Ctrl-C", timeout=120)
        assert json.loads((data_dir / "stack.json").read_text())["operator_api_key"]

        opened = cli("ticket", "create", "-q", "duel", "-p", "solo", "--skill", "1500")
        assert opened.returncode == 0, opened.stderr
        ticket_id = json.loads(opened.stdout)["id"]
        listed = cli("ticket", "list", "-q", "duel", "-o", "name")
        assert listed.stdout.splitlines() == [f"ticket/{ticket_id}"], listed.stderr
        shown = cli("ticket", "get", ticket_id)  # no --player: the stack's key
        assert shown.returncode == 0 and shown.stdout.splitlines()[1].split()[1] == "queued", shown.stderr

        deadline = time.monotonic() + 30  # the duel director ticks every 0.5 s
        while True:
            queues = cli("queue", "list", "-o", "json")
            assert queues.returncode == 0, queues.stderr
            (duel,) = [q for q in json.loads(queues.stdout)["items"] if q["name"] == "duel"]
            if duel["lastTick"] is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert duel["lastTick"] is not None and duel["waitingPlayers"] == 1 and duel["byRegion"] == {"-": 1}

        watch = subprocess.Popen(
            [sys.executable, "-m", "fleetmatch", "--data-dir", str(data_dir), "ticket", "get", ticket_id, "-w"],
            cwd=REPO,
            env=stack_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        rival = cli("ticket", "create", "-q", "duel", "-p", "rival", "--skill", "1510")
        assert rival.returncode == 0, rival.stderr
        out, err = watch.communicate(timeout=60)
        assert watch.returncode == 0, err
        assert out.splitlines()[-1].split()[1] == "matched"  # then the watch ends by itself

        table = cli("queue", "list")
        assert table.stdout.splitlines()[0].split()[:3] == ["QUEUE", "WAITING", "BY"], table.stderr

        gone = cli("ticket", "cancel", "duel.0000000000000000000000000z")
        assert gone.returncode == 1 and gone.stdout == "" and gone.stderr.startswith("error: 404 "), gone.stderr

        missing = cli("allocate", "--fleet", "nope")
        assert missing.returncode == 1 and missing.stderr.startswith('error: fleet "nope" does not exist')
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
