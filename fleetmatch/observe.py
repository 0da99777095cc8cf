"""A local Prometheus for ``fleetmatch up --observability``: the stack's metrics over time, with
PromQL and graphs, without a monitoring install of one's own.

It runs the ``prometheus`` binary found on ``PATH`` (Debian/Ubuntu: ``apt-get install prometheus``)
with its configuration and its data under ``<data dir>/prometheus/``, scraping the one metrics
endpoint of the stack. Observability is a convenience, never a reason for ``up`` to fail: without
the binary, or when it does not start, one line says why and the stack runs on without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import aiohttp

from fleetmatch.procs import die_with_parent

log = logging.getLogger(__name__)

JOB = "fleetmatch"
"""The scrape job (``up{job="fleetmatch"}``)."""
SCRAPE_INTERVAL = "5s"
DEFAULT_PORT = 9090
INSTALL_HINT = (
    "no prometheus binary on PATH: install it (Debian/Ubuntu: sudo apt-get install prometheus; "
    "elsewhere https://prometheus.io/download/) and run `fleetmatch up --observability` again"
)


@dataclass(frozen=True, slots=True)
class Observability:
    """What ``--observability`` got: Prometheus' URL, or why there is none."""

    url: str | None
    problem: str | None = None

    def banner(self) -> str:
        if self.url is None:
            return f"not running: {self.problem}"
        return f"{self.url}   (scrapes the metrics port every {SCRAPE_INTERVAL}; job {JOB})"


def config(metrics_url: str) -> str:
    """The Prometheus configuration scraping ``metrics_url`` (JSON is YAML: no YAML writer needed)."""
    parts = urlsplit(metrics_url)
    job = {
        "job_name": JOB,
        "scheme": parts.scheme or "http",
        "metrics_path": parts.path or "/metrics",
        "static_configs": [{"targets": [parts.netloc]}],
    }
    interval = {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL}
    return json.dumps({"global": interval, "scrape_configs": [job]}, indent=2) + "\n"


def listen_port(host: str, port: int) -> int:
    """``port`` if it is free on ``host``, else any free port (a laptop often runs a Prometheus already)."""
    for candidate in (port, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, candidate))
            except OSError:
                continue
            bound: int = sock.getsockname()[1]
            return bound
    raise OSError(f"no free port on {host}")


@contextlib.asynccontextmanager
async def local_prometheus(
    metrics_url: str,
    directory: Path,
    *,
    binary: str | None = None,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    ready_within: float = 60.0,
) -> AsyncIterator[Observability]:
    """Run Prometheus on ``host:port`` (any free port if taken) while the block runs, its config,
    data and log in ``directory``; stopped (SIGTERM, then SIGKILL) when the block ends."""
    found = binary or shutil.which("prometheus")
    if found is None:
        log.warning("observability: %s", INSTALL_HINT)
        yield Observability(None, INSTALL_HINT)
        return
    bound = listen_port(host, port)
    proc: asyncio.subprocess.Process | None = None
    try:
        with _prepare(directory, metrics_url) as output:
            proc = await asyncio.create_subprocess_exec(
                found,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address={host}:{bound}",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                preexec_fn=die_with_parent,
            )
    except OSError as exc:
        refused = f"cannot start {found}: {exc.strerror or exc}"
    if proc is None:
        log.warning("observability: %s", refused)
        yield Observability(None, refused)
        return
    url = f"http://{host}:{bound}"
    try:
        problem = await _wait_ready(proc, url, ready_within)
        if problem is None:
            log.info("observability: prometheus at %s scrapes %s", url, metrics_url)
            yield Observability(url)
        else:
            await _stop(proc)
            problem = f"prometheus {problem}; see {directory / 'prometheus.log'}"
            log.warning("observability: %s", problem)
            yield Observability(None, problem)
    finally:
        await _stop(proc)


def _prepare(directory: Path, metrics_url: str) -> BinaryIO:
    """Write the configuration; open the log (appended: one file over restarts)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "prometheus.yml").write_text(config(metrics_url))
    return (directory / "prometheus.log").open("ab")


async def _wait_ready(proc: asyncio.subprocess.Process, url: str, within: float) -> str | None:
    """None once ``/-/ready`` answers 200, else what went wrong."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while proc.returncode is None and loop.time() < deadline:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(f"{url}/-/ready") as response:
                    if response.status == 200:
                        return None
            await asyncio.sleep(0.2)
    if proc.returncode is not None:
        return f"exited with code {proc.returncode} at start"
    return f"not ready within {within:.0f}s"


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):  # exited, not reaped yet
            proc.terminate()
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
