"""``fleetmatch up`` and busy ports: a port the user chose (an environment variable, a flag) that is
busy is one clear error naming the setting and the port; a busy default port is replaced by a free
one, and the banner says so. The ports are held by real listening sockets."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.test_up import fleetmatch, wait_for_line
from tests.faults.world import launch_up

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

DEFAULT_ALLOCATOR_PORT = 9180
DEFAULT_DASHBOARD_PORT = 9170


@contextlib.contextmanager
def busy_port(port: int = 0) -> Iterator[int]:
    """Hold ``port`` (0: a free one) with a listening socket. A port another program holds is retried
    until this test holds it: the other (a stack of a parallel test) may let it go at any moment."""
    deadline = time.monotonic() + 60
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        while True:
            try:
                sock.bind(("127.0.0.1", port))
                sock.listen()
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield port or sock.getsockname()[1]


@pytest.mark.parametrize(
    ("setting", "flag"),
    [
        ("FLEETMATCH_ALLOCATOR_PORT", None),
        ("FLEETMATCH_MATCHMAKER_PORT", None),
        ("FLEETMATCH_METRICS_PORT", None),
        ("FLEETMATCH_DASHBOARD_PORT", None),
        ("--metrics-port", "--metrics-port"),
    ],
)
def test_a_busy_port_the_user_chose_is_an_error_naming_it(tmp_path: Path, setting: str, flag: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update({"FLEETMATCH_PORT_RANGE": "7620-7649", "FLEETMATCH_METRICS_PORT": "0"})
    env.update({"FLEETMATCH_ALLOCATOR_PORT": "0", "FLEETMATCH_MATCHMAKER_PORT": "0", "FLEETMATCH_DASHBOARD_PORT": "0"})
    with busy_port() as port:
        args = ["up", flag, str(port)] if flag else ["up"]
        if not flag:
            env[setting] = str(port)
        result = fleetmatch(*args, data_dir=tmp_path / "data", env=env)
    assert result.returncode == 1
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    assert f"{setting}={port}" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "stack.json").exists()


def test_a_busy_default_port_is_replaced_and_the_banner_says_so(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with busy_port(DEFAULT_ALLOCATOR_PORT), busy_port(DEFAULT_DASHBOARD_PORT):
        # Unset (empty): the allocator's and dashboard's default ports; the others anywhere, as always in tests.
        proc = launch_up(data_dir, "7620-7649", FLEETMATCH_ALLOCATOR_PORT="", FLEETMATCH_DASHBOARD_PORT="")
        try:
            banner = wait_for_line(proc, "Ctrl-C", timeout=120)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    [line] = [line for line in banner if line.startswith("  allocator ")]
    url = line.split()[1]
    took = urlsplit(url).port
    assert took is not None and took != DEFAULT_ALLOCATOR_PORT
    assert line.endswith(f"(port {DEFAULT_ALLOCATOR_PORT} was busy: took {took})")
    [matchmaker] = [line for line in banner if line.startswith("  matchmaker ")]
    assert "was busy" not in matchmaker  # port 0: any port was asked for, nothing was replaced
    [dashboard] = [line for line in banner if line.startswith("  dashboard ")]
    took = urlsplit(dashboard.split()[1]).port
    assert took is not None and dashboard.endswith(f"(port {DEFAULT_DASHBOARD_PORT} was busy: took {took})")
    assert proc.returncode == 0
    assert not (data_dir / "stack.json").exists()
