"""The local Prometheus of ``up --observability`` when it cannot run: one line says why and the stack
goes on (the working case, with the real binary, is tests/e2e/test_observability.py)."""

from __future__ import annotations

import logging
import socket
import stat
from pathlib import Path

import pytest
import yaml

from fleetmatch.observe import INSTALL_HINT, JOB, config, listen_port, local_prometheus

METRICS = "http://127.0.0.1:9100/metrics"


async def test_without_the_binary_one_line_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with caplog.at_level(logging.WARNING, logger="fleetmatch.observe"):
        async with local_prometheus(METRICS, tmp_path / "prometheus") as got:
            assert got.url is None and got.problem == INSTALL_HINT
            assert got.banner() == f"not running: {INSTALL_HINT}"
    assert [r.getMessage() for r in caplog.records] == [f"observability: {INSTALL_HINT}"]
    assert "apt-get install prometheus" in INSTALL_HINT


async def test_a_binary_that_exits_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "prometheus"
    fake.write_text("#!/bin/sh\necho 'err: bad flag' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    async with local_prometheus(METRICS, tmp_path / "p", binary=str(fake), port=0) as got:
        assert got.url is None
        assert got.problem == f"prometheus exited with code 3 at start; see {tmp_path / 'p' / 'prometheus.log'}"
    assert "err: bad flag" in (tmp_path / "p" / "prometheus.log").read_text()


async def test_a_binary_that_cannot_run_is_reported(tmp_path: Path) -> None:
    fake = tmp_path / "prometheus"
    fake.write_text("not a program")  # no execute permission
    async with local_prometheus(METRICS, tmp_path / "p", binary=str(fake), port=0) as got:
        assert got.url is None and got.problem is not None
        assert got.problem.startswith(f"cannot start {fake}: ")


def test_the_config_scrapes_the_metrics_endpoint_as_job_fleetmatch() -> None:
    doc = yaml.safe_load(config("http://0.0.0.0:9555/stats"))
    (job,) = doc["scrape_configs"]
    assert (job["job_name"], job["scheme"], job["metrics_path"]) == (JOB, "http", "/stats")
    assert job["static_configs"] == [{"targets": ["0.0.0.0:9555"]}]
    assert doc["global"]["scrape_interval"] == "5s"


def test_a_taken_port_falls_back_to_a_free_one() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        other = listen_port("127.0.0.1", taken)
    assert other not in (taken, 0)
