"""A real ``fleetmatch up`` and Debian's chromium driven by Playwright, shared by the browser tests
and the script that redraws docs/images/dashboard.png (``python -m tests.dashboard.screenshot``).

Playwright comes from PyPI (the ``dev`` extra); its own browser download is never used: chromium is
the distribution's (``make chromium`` installs it), launched by path.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, sync_playwright

REPO = Path(__file__).resolve().parents[2]
STACK_ENV = {
    "FLEETMATCH_METRICS_PORT": "0",
    "FLEETMATCH_ALLOCATOR_PORT": "0",
    "FLEETMATCH_MATCHMAKER_PORT": "0",
    "FLEETMATCH_DASHBOARD_PORT": "0",
    "FLEETMATCH_PORT_RANGE": "7700-7799",
    "PYTHONUNBUFFERED": "1",
}


def chromium_path() -> str | None:
    """Debian's chromium (``chromium``; ``chromium-browser`` elsewhere), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass(frozen=True, slots=True)
class Stack:
    info: dict[str, Any]
    data_dir: Path
    env: dict[str, str]
    log: Path
    """What ``fleetmatch up`` printed and logged."""

    @property
    def login_url(self) -> str:
        return f"{self.info['dashboard_url']}?token={self.info['allocator_token']}"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fleetmatch", "--data-dir", str(self.data_dir), *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=REPO,
            timeout=60,
            check=False,
        )

    def allocate(self, fleet: str = "demo") -> dict[str, Any]:
        """POST /v1/allocations with the stack's token: the allocator's own API, as a game backend calls it."""
        return self.allocate_by({"matchLabels": {"agones.dev/fleet": fleet}})

    def allocate_by(self, selector: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"spec": {"selectors": [selector]}}).encode()
        request = urllib.request.Request(
            f"{self.info['allocator_url']}/v1/allocations",
            data=body,
            headers={"Authorization": f"Bearer {self.info['allocator_token']}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            doc: dict[str, Any] = json.loads(response.read())
        return doc


@contextmanager
def running_stack(tmp: Path) -> Iterator[Stack]:
    """``fleetmatch up`` until the block ends; yields once its banner is printed (the demo fleet is Ready)."""
    data_dir = tmp / "data"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("FLEETMATCH_")}
    env.update(STACK_ENV)
    log_path = tmp / "up.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetmatch", "--data-dir", str(data_dir), "up"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while "Ctrl-C" not in log_path.read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"fleetmatch up did not start:\n{log_path.read_text()[-4000:]}")
                time.sleep(0.2)
            info = json.loads((data_dir / "stack.json").read_text())
            yield Stack(info, data_dir, env, log_path)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def chromium() -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        raise RuntimeError("no chromium on PATH: `make chromium` installs Debian's")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
