"""One `fleetmatch up` for the docs' commands, found the way a user's shell finds it: HOME points at a
temporary home, whose ~/.local/share/fleetmatch holds the stack's data and stack.json."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.docs.markdown import REPO

# Fixed ports are the documented defaults; the stack takes free ones and the commands are pointed at them.
STACK_ENV = {
    "FLEETMATCH_METRICS_PORT": "0",
    "FLEETMATCH_ALLOCATOR_PORT": "0",
    "FLEETMATCH_MATCHMAKER_PORT": "0",
    "FLEETMATCH_DASHBOARD_PORT": "0",
    "FLEETMATCH_PORT_RANGE": "7300-7399",
    # The docs' example fleets ask for up to 20 servers: the rest wait in Creating, as documented.
    "FLEETMATCH_MAX_SERVERS": "16",
    "PYTHONUNBUFFERED": "1",
}


@dataclass(frozen=True, slots=True)
class DocStack:
    """A running stack and the environment a reader's shell would have beside it."""

    info: dict[str, str]
    env: dict[str, str]
    workdir: Path
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        """The stack's last log lines: what it did while a documented command failed."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fleetmatch", *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.workdir,
            timeout=60,
            check=False,
        )

    def ready(self, fleet: str = "demo") -> list[dict[str, Any]]:
        """The fleet's Ready GameServers, as ``gs list -o json`` prints them."""
        listed = self.cli("gs", "list", "--fleet", fleet, "-o", "json")
        assert listed.returncode == 0, listed.stderr
        items = json.loads(listed.stdout)
        items = items.get("items", []) if isinstance(items, dict) else items
        return [gs for gs in items if gs["status"]["state"] == "Ready"]

    def ready_servers(self, fleet: str = "demo") -> list[tuple[str, int]]:
        """``(address, port)`` of the fleet's Ready servers."""
        return [(gs["status"]["address"], gs["status"]["ports"][0]["port"]) for gs in self.ready(fleet)]

    def ready_names(self, fleet: str = "demo") -> list[str]:
        return [gs["metadata"]["name"] for gs in self.ready(fleet)]

    def wait_ready(self, count: int, fleet: str = "demo", within: float = 90.0) -> None:
        """Until the fleet has ``count`` Ready servers (the deadline only turns a hang into a failure)."""
        deadline = time.monotonic() + within
        while len(self.ready_servers(fleet)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"fleet {fleet}: fewer than {count} Ready servers after {within}s")
            time.sleep(0.5)


def mirror(repo: Path, into: Path, venv: Path) -> None:
    """``into`` looks like a checkout (symlinks to the repository's top-level entries, ``.venv`` to
    the running venv), so commands run as written without writing into the real one."""
    into.mkdir(parents=True, exist_ok=True)
    for entry in repo.iterdir():
        if entry.name not in (".venv", ".git"):
            (into / entry.name).symlink_to(entry)
    (into / ".venv").symlink_to(venv)


@contextmanager
def doc_stack(tmp: Path) -> Iterator[DocStack]:
    """Start ``fleetmatch up``, yield once it serves, stop it with Ctrl-C (SIGINT) afterwards."""
    home = tmp / "home"
    data = home / ".local" / "share" / "fleetmatch"
    venv = Path(sys.prefix)
    # Documented fleet files run their game from `workingDir: ../..`, relative to themselves: the
    # commands' directory sits two levels below a checkout-like directory, and looks like one too.
    mirror(REPO, tmp / "checkout", venv)
    workdir = tmp / "checkout" / "docs-run" / "here"
    mirror(REPO, workdir, venv)
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("FLEETMATCH_")}
    env.update(STACK_ENV, HOME=str(home), FLEETMATCH_DATA_DIR=str(data))
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"  # "with the venv activated"
    log = (tmp / "up.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetmatch", "up"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 150
        while not (data / "stack.json").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"fleetmatch up did not start:\n{(tmp / 'up.log').read_text()[-4000:]}")
            time.sleep(0.2)
        info = json.loads((data / "stack.json").read_text())
        yield DocStack(info, {**env, "TOKEN": info["allocator_token"]}, workdir, tmp / "up.log")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
