"""Redraw docs/images/dashboard.png from a real stack with some traffic: allocations spread over
half a minute, one that finds nothing (a failure by reason), a duel matched and players waiting.

    .venv/bin/python -m tests.dashboard.screenshot [OUT.png]

Starts its own ``fleetmatch up`` (free ports, a temporary data dir) and Debian's chromium; about a
minute. Look at the result before committing it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
from pathlib import Path

from tests.dashboard.stack import REPO, Stack, chromium, running_stack

OUT = REPO / "docs" / "images" / "dashboard.png"


def traffic(stack: Stack) -> None:
    """What an operator would see on a lightly used stack."""
    waiting = [
        stack.cli(
            "ticket", "create", "-q", "4v4", "-p", f"squad-{i}", "--skill", str(1400 + 25 * i), "--latency", "local=30"
        )
        for i in range(5)
    ]
    assert all(t.returncode == 0 for t in waiting), [t.stderr for t in waiting]
    duel = subprocess.Popen(
        [sys.executable, "-m", "fleetmatch", "--data-dir", str(stack.data_dir), "ticket", "create", "-q", "duel",
         "-p", "alice", "--skill", "1500", "--wait", "30"],
        cwd=REPO, env=stack.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    stack.cli("ticket", "create", "-q", "duel", "-p", "bob", "--skill", "1510", "--wait", "30")
    duel.wait(timeout=60)
    for _ in range(6):
        stack.allocate()
        time.sleep(4)
    try:  # a selector no server matches: an UnAllocated in the failures panel
        stack.allocate_by({"matchLabels": {"mode": "ranked"}})
    except urllib.error.HTTPError:
        pass
    # a game that crashes: Unhealthy, an event record, a replacement
    *_, (name, pid) = re.findall(r"started (\S+) \(pid (\d+)", stack.log.read_text())
    os.kill(int(pid), signal.SIGKILL)
    print(f"killed {name} (pid {pid})")
    time.sleep(4)


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp)) as stack, chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(stack.login_url)
        page.wait_for_selector('[data-fleet="demo"]')
        traffic(stack)
        page.wait_for_function("() => document.querySelectorAll('tr[data-reason]').length > 0", timeout=15_000)
        page.wait_for_function("() => document.querySelectorAll('#events li.Warning').length > 0", timeout=15_000)
        page.screenshot(path=str(out), full_page=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
