"""Starting and stopping `fleetmatch up` as a subprocess, for benchmarks and end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def start_stack(data_dir: Path, *up_args: str, port_range: str) -> subprocess.Popen[str]:
    """``fleetmatch up`` in ``data_dir`` with game ports from ``port_range`` and every API on a free
    port (several stacks may run at once); returns once it printed its summary."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        {
            "FLEETMATCH_PORT_RANGE": port_range,
            "FLEETMATCH_METRICS_PORT": "0",
            "FLEETMATCH_ALLOCATOR_PORT": "0",
            "FLEETMATCH_MATCHMAKER_PORT": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetmatch", "--data-dir", str(data_dir), "up", *up_args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if "Ctrl-C" in line:
            return proc
        if time.monotonic() > deadline:
            break
    stop_stack(proc)
    raise RuntimeError("fleetmatch up did not come up")


def stop_stack(proc: subprocess.Popen[str]) -> None:
    """SIGINT, as Ctrl-C would; SIGKILL if it does not stop within a minute."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
