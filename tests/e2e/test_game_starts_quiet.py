"""Starting game servers logs no gRPC fork noise: the node agent hosts every game's gRPC SDK and
forks each game; with gRPC's fork handlers on, each start printed "skipping fork() handlers" (and
now and then a child died of SIGABRT in them). Run with the variable a user's shell may export
(``GRPC_ENABLE_FORK_SUPPORT=1``): fleetmatch's own executable turns the handlers off anyway."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from allocator.fleetops import apply_fleet
from fleetmatch.backends.base import Backend
from fleetmatch.backends.redis.embedded import EmbeddedRedis
from tests.faults.world import REPO, World, ready_on, udp_fleet, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
SERVERS = 8


def start_agent(world: World, stderr_path: Path) -> None:
    """A node agent whose stderr (its log, and whatever gRPC's core prints) goes to ``stderr_path``."""
    with stderr_path.open("wb") as stderr:
        world.procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "fleetmatch", "node-agent"],
                cwd=REPO,
                env={**world.env, "FLEETMATCH_NODE_NAME": "quiet", "FLEETMATCH_PORT_RANGE": "7850-7899"},
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        )


async def test_several_game_starts_log_no_grpc_fork_line(
    redis_server: EmbeddedRedis, backend: Backend, tmp_path: Path
) -> None:
    world = World(redis_server.url, tmp_path, GRPC_ENABLE_FORK_SUPPORT="1", FLEETMATCH_LOG_LEVEL="INFO")
    world.start("controller")
    stderr_path = tmp_path / "agent.stderr"
    start_agent(world, stderr_path)
    try:
        await apply_fleet(backend.fleets, udp_fleet("chorus", SERVERS))
        await wait_for(backend.gameservers, lambda gs: len(ready_on(gs, "quiet")) == SERVERS)
    finally:
        await asyncio.to_thread(world.stop_all)
    logged = stderr_path.read_text(errors="replace")
    assert "started chorus-" in logged  # the agent's log was captured: the absence below means something
    assert "fork()" not in logged and "fork_posix" not in logged, logged
    games = list((tmp_path / "logs" / "quiet").glob("*.log*"))
    assert games and not [p for p in games if "fork()" in p.read_text(errors="replace")]
