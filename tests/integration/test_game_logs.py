"""A chatty game under a real node agent: its log is rotated into a bounded number of generations of
bounded size, in order; once its servers are gone, only the newest ``max_log_files`` servers' logs stay."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from allocator.controllers.fleet import FleetController
from allocator.fleetops import apply_fleet, scale_fleet
from allocator.gamelogs import generation
from allocator.nodeagent import NodeAgent
from fleetmatch.backends.base import Backend
from fleetmatch.models import Health, ProcessTemplate
from fleetmatch.settings import NodeSettings, SdkSettings, Settings
from fleetmatch.tasks import cancel_and_wait
from sdk_sidecar import SdkHost
from tests.integration.fleetenv import make_fleet
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(90)
MAX_BYTES = 20_000
GENERATIONS = 2
CHATTY = (
    "import itertools, sys, time\n"
    "for i in itertools.count():\n"
    "    sys.stdout.write(f'line {i:08d} ' + 'x' * 80 + '\\n')\n"
    "    if i % 50 == 0: sys.stdout.flush(); time.sleep(0.01)\n"
)


@pytest.fixture
async def agent(backend: Backend, tmp_path: Path) -> AsyncIterator[NodeAgent]:
    settings = Settings(
        data_dir=tmp_path,
        node=NodeSettings(
            name="chatter",
            port_min=7460,
            port_max=7479,
            grace_seconds=2,
            max_log_bytes=MAX_BYTES,
            log_generations=GENERATIONS,
            max_log_files=1,
        ),
        sdk=SdkSettings(write_interval=0.05, health_tick=0.1),
    )
    agent = NodeAgent(
        backend,
        settings,
        SdkHost(backend.gameservers, settings.sdk),
        environ=dict(os.environ),
        resync_seconds=0.5,
        log_check_seconds=0.2,
    )
    tasks = [asyncio.create_task(agent.run()), asyncio.create_task(FleetController(backend, resync_seconds=0.5).run())]
    try:
        yield agent
    finally:
        await cancel_and_wait(*tasks)


def numbers(path: Path) -> list[int]:
    return [int(n) for n in re.findall(rb"line (\d{8}) x{80}\n", path.read_bytes())]


def oldest_kept(live: Path) -> int | None:
    """The first line number in the oldest generation, if it exists with whole lines."""
    oldest = generation(live, GENERATIONS)
    found = numbers(oldest) if oldest.exists() else []
    return found[0] if found else None


async def test_a_chatty_games_log_is_rotated_and_capped(backend: Backend, agent: NodeAgent, tmp_path: Path) -> None:
    fleet = make_fleet("chatty", 2, ProcessTemplate(("python", "-c", CHATTY)), health=Health(disabled=True))
    await apply_fleet(backend.fleets, fleet)
    logs = tmp_path / "logs" / "chatter"
    await eventually(lambda: len(list(logs.glob("*.log"))) == 2, within=30)
    live = sorted(logs.glob("*.log"))[0]
    await eventually(lambda: oldest_kept(live) is not None, within=60)
    first = oldest_kept(live)
    assert first is not None
    # One more rotation: what was the oldest generation is dropped.
    await eventually(lambda: oldest_kept(live) not in (None, first), within=60)

    assert not generation(live, GENERATIONS + 1).exists()
    parts = [generation(live, n) for n in range(GENERATIONS, 0, -1)]
    assert all(0 < p.stat().st_size <= MAX_BYTES for p in parts)
    flat = [n for part in [*parts, live] for n in numbers(part)]
    assert flat == sorted(flat) and len(set(flat)) == len(flat)  # oldest to newest, nothing twice
    assert flat[0] > first  # what the dropped generation held is gone

    await scale_fleet(backend.fleets, "chatty", 0)
    # Both servers deleted: their processes stopped, their logs pruned to the newest server's.
    await eventually(
        lambda: not agent.local and len(servers_with_logs(logs)) == 1,
        within=30,
        what=lambda: str(sorted(p.name for p in logs.iterdir())),
    )


def servers_with_logs(logs: Path) -> set[str]:
    return {p.name.split(".log")[0] for p in logs.iterdir()}
