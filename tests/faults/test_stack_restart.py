"""``fleetmatch up`` SIGKILLed and started again on the same data directory: its game processes died
with it, so the servers its state still lists as Ready are dead. The new run's banner lists only
servers it runs, and the very first allocations never hand out a dead one."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from fleetmatch.allocation import (
    AllocationState,
    GameServerAllocationSpec,
    GameServerAllocationStatus,
    GameServerSelector,
)
from fleetmatch.allocator_client import AllocatorClient
from tests.e2e.test_up import udp_ping, wait_for_line
from tests.faults.world import launch_up, stack_file_of

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def banner_servers(lines: list[str]) -> set[str]:
    """The server names the banner lists under the fleet (``    demo-xxxxx   127.0.0.1:7000``)."""
    return {line.split()[0] for line in lines if line.startswith("    ") and ":" in line}


async def test_a_crashed_stack_restarts_without_handing_out_its_dead_servers(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = launch_up(data_dir)
    old = banner_servers(wait_for_line(first, "Ctrl-C", timeout=120))
    assert len(old) == 4
    games = psutil.Process(first.pid).children(recursive=True)
    first.kill()  # SIGKILL: no cleanup; games and the embedded Redis die with it
    first.wait()
    psutil.wait_procs(games, timeout=10)
    if first.stdout is not None:
        first.stdout.close()

    second = launch_up(data_dir)
    try:
        info = await stack_file_of(second, data_dir)
        spec = GameServerAllocationSpec(selectors=(GameServerSelector.for_fleet("demo"),))
        claims: list[GameServerAllocationStatus] = []
        async with AllocatorClient(info["allocator_url"], info["allocator_token"]) as client:
            while len(claims) < 2:  # as early as the allocator answers, while the new servers start
                claim = await client.allocate(spec)
                if claim.state is AllocationState.ALLOCATED:
                    claims.append(claim)
                else:
                    await asyncio.sleep(0.02)
        assert not {c.game_server_name for c in claims} & old
        for claim in claims:  # every one of them is a game that answers
            udp_ping(claim.address, claim.ports[0].port)
        listed = banner_servers(wait_for_line(second, "Ctrl-C", timeout=120))
        assert len(listed) >= 2 and not listed & old  # the banner lists live servers only
    finally:
        second.send_signal(signal.SIGINT)
        try:
            second.wait(60)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait()
        if second.stdout is not None:
            second.stdout.close()
