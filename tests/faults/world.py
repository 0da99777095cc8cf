"""The fault suite's world: fleetmatch components as real processes on one Redis, killed on purpose."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import psutil

from fleetmatch.models import (
    Fleet,
    FleetSpec,
    GameServer,
    GameServerSpec,
    GameServerState,
    GameServerTemplate,
    Health,
    ObjectMeta,
    ProcessTemplate,
)
from fleetmatch.store import GameServerStore

REPO = Path(__file__).resolve().parents[2]


class World:
    """Processes started with ``python -m fleetmatch COMMAND`` and a shared environment."""

    def __init__(self, redis_url: str, data_dir: Path, **env: str) -> None:
        self.env = {**os.environ, "REDIS_URL": redis_url, "FLEETMATCH_METRICS_PORT": "0"}
        self.env.update({"FLEETMATCH_DATA_DIR": str(data_dir), "FLEETMATCH_LOG_LEVEL": "WARNING", **env})
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        """``python -m fleetmatch *args``, its output in ``<data dir>/<command>-<n>.log`` (``logs``)."""
        log = Path(self.env["FLEETMATCH_DATA_DIR"]) / f"{args[0]}-{len(self.procs)}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "fleetmatch", *args],
                cwd=REPO,
                env={**self.env, **env},
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
        self.procs.append(proc)
        return proc

    def logs(self, lines: int = 30) -> str:
        """The last ``lines`` of each process's log: for an assertion's message."""
        out = []
        for log in sorted(Path(self.env["FLEETMATCH_DATA_DIR"]).glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name}\n" + "\n".join(tail))
        return "\n".join(out)

    def node_agent(self, name: str, ports: str, **env: str) -> subprocess.Popen[bytes]:
        return self.start("node-agent", FLEETMATCH_NODE_NAME=name, FLEETMATCH_PORT_RANGE=ports, **env)

    @staticmethod
    def kill_with_games(proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL ``proc``; its game processes die with it (they ask for SIGKILL when it goes)."""
        games = psutil.Process(proc.pid).children(recursive=True)
        proc.kill()
        proc.wait()
        _gone, alive = psutil.wait_procs(games, timeout=10)
        assert alive == [], f"game processes outlived their agent: {alive}"

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def udp_fleet(name: str, replicas: int) -> Fleet:
    """A fleet of the example UDP game, with short health periods."""
    process = ProcessTemplate(("python", "-m", "examples.udp_game.server"), working_dir=str(REPO))
    health = Health(period_seconds=2, failure_threshold=3, initial_delay_seconds=2)
    spec = FleetSpec(
        replicas=replicas, template=GameServerTemplate(spec=GameServerSpec(process=process, health=health))
    )
    return Fleet(metadata=ObjectMeta(name=name), spec=spec)


async def wait_for(
    store: GameServerStore, predicate: Callable[[list[GameServer]], bool], within: float = 60
) -> list[GameServer]:
    """The GameServers once ``predicate`` holds (a deadline only turns a hang into a failure)."""
    async with asyncio.timeout(within):
        while True:
            items, _ = await store.list()
            if predicate(items):
                return items
            await asyncio.sleep(0.1)


def ready_on(items: list[GameServer], node: str) -> list[GameServer]:
    return [g for g in items if g.state is GameServerState.READY and g.status.node_name == node]


def launch_up(
    data_dir: Path,
    ports: str = "7700-7749",
    *,
    args: Sequence[str] = (),
    stderr: IO[bytes] | int = subprocess.DEVNULL,
    **env: str,
) -> subprocess.Popen[str]:
    """``fleetmatch up [args]`` on its own data directory, every API on a free port, game ports from
    ``ports``; its log goes to ``stderr``."""
    environ = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    environ.update(
        {
            "FLEETMATCH_PORT_RANGE": ports,
            "FLEETMATCH_METRICS_PORT": "0",
            "FLEETMATCH_ALLOCATOR_PORT": "0",
            "FLEETMATCH_MATCHMAKER_PORT": "0",
            "FLEETMATCH_DASHBOARD_PORT": "0",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "fleetmatch", "--data-dir", str(data_dir), "up", *args],
        cwd=REPO,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


async def stack_file_of(proc: subprocess.Popen[str], data_dir: Path) -> dict[str, Any]:
    """``stack.json`` once ``proc`` wrote it: written as soon as the APIs serve, before the banner."""
    async with asyncio.timeout(120):
        while True:
            with contextlib.suppress(OSError, ValueError):
                info: dict[str, Any] = json.loads((data_dir / "stack.json").read_text())
                if info["pid"] == proc.pid:
                    return info
            assert proc.poll() is None, "fleetmatch up exited"
            await asyncio.sleep(0.02)
