"""A fleet whose game crashes at start: replacements back off instead of churning, the fleet says
CrashLoopBackOff and why, the reason outlives the deleted servers, and a fixed template recovers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from allocator.fleetops import apply_fleet
from fleetmatch.backends.redis.events import RedisEventLog
from fleetmatch.models import GameServer, ProcessTemplate
from fleetmatch.store import EventType
from tests.integration.fleetenv import REPO, Stack, make_fleet, running_stack
from tests.waiting import eventually

pytestmark = [pytest.mark.timeout(120)]

CRASH = ProcessTemplate(
    ("python", "-c", "import sys; print('boom: no config file', flush=True); sys.exit(2)"), working_dir=str(REPO)
)
GOOD = ProcessTemplate(("python", "-m", "examples.udp_game.server"), working_dir=str(REPO))


@pytest.fixture
async def stack(redis_client: aioredis.Redis, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(redis_client, tmp_path, first_port=7950) as s:
        yield s


def created(stack: Stack, fleet: str) -> set[str]:
    return {e.object.name for e in stack.events if e.type is EventType.ADDED and e.object.name.startswith(f"{fleet}-")}


async def test_a_crash_looping_fleet_backs_off_reports_why_and_recovers(
    stack: Stack, redis_client: aioredis.Redis
) -> None:
    await apply_fleet(stack.fleets, make_fleet("crashy", 3, CRASH))
    fleet = None

    async def crash_looping() -> bool:
        nonlocal fleet
        fleet = await stack.fleets.get("crashy")
        return any(c.type == "CrashLoopBackOff" for c in fleet.status.conditions)

    await eventually(crash_looping, within=30, what=lambda: str(fleet and fleet.status))
    await asyncio.sleep(6.0)  # the back-off is at 4 s and more: a handful of servers, not dozens
    assert len(created(stack, "crashy")) <= 10, len(created(stack, "crashy"))
    assert fleet is not None
    (looping,) = fleet.status.conditions
    assert "boom: no config file" in looping.message

    events = RedisEventLog(redis_client)
    (record,) = [r for r in await events.list("Fleet", "crashy") if r.reason != "Scaling"]
    assert record.reason == "CrashLoopBackOff" and "boom" in record.message
    crashed = await events.list(GameServer.KIND)
    assert crashed and all("exited with code 2; last output: boom: no config file" in e.message for e in crashed)

    await apply_fleet(stack.fleets, make_fleet("crashy", 3, GOOD))  # the fix: a new template
    await stack.ready("crashy", 3)
    await eventually(lambda: crash_looping_cleared(stack), within=20)


async def crash_looping_cleared(stack: Stack) -> bool:
    return not (await stack.fleets.get("crashy")).status.conditions
