"""``fleetmatch dashboard`` refuses to start without a credential browsers could log in with, and a
stack file written before the dashboard existed still reads (no dashboard URL: ``status`` skips it)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from fleetmatch.stackfile import STACK_FILE, StackInfo
from tests.cli.conftest import Cli


def test_the_standalone_dashboard_needs_a_login_credential(fm: Cli) -> None:
    result = fm("dashboard", FLEETMATCH_DASHBOARD_PORT="0")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: the dashboard needs a credential") and "Traceback" not in result.stderr


def test_a_stack_file_from_before_the_dashboard_still_reads(tmp_path: Path) -> None:
    info = StackInfo("redis://x", "http://m", "http://a", "t" * 16, "http://mm", "s" * 16, "default", "local", "/d", 1)
    old = {k: v for k, v in asdict(info).items() if k != "dashboard_url"}
    (tmp_path / STACK_FILE).write_text(json.dumps(old))
    loaded = StackInfo.load(tmp_path)
    assert loaded is not None and loaded.dashboard_url == "" and loaded.allocator_url == "http://a"
