"""The Buffer autoscaler end to end: `fleetmatch up` with a fleet of real game servers and a
buffer of 5; allocate 5 at once; the Ready count is back to 5 within the game servers' own start
time plus a couple of seconds (asserted with a generous bound; loadtest/bench_refill.py reports
the exact figures)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from loadtest.bench_refill import FLEET
from loadtest.refill import measure_refill
from loadtest.stack import REPO, start_stack, stop_stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

GENEROUS = 10.0
"""Slack on top of the issue's "start time + 2 s": shared CI machines stall; the benchmark reports
the real margin."""


async def test_burst_of_allocations_is_refilled_quickly(tmp_path: Path) -> None:
    from fleetmatch.backends.redis.client import connect
    from fleetmatch.backends.redis.store import RedisStore
    from fleetmatch.models import GameServer

    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(FLEET % json.dumps(str(REPO)))
    data_dir = tmp_path / "data"
    proc = await asyncio.to_thread(start_stack, data_dir, "--fleet", str(fleet_file), port_range="7400-7449")
    try:
        stack = json.loads((data_dir / "stack.json").read_text())
        client = connect(stack["redis_url"], name="test-refill")
        try:
            store = RedisStore(client, GameServer, stack["namespace"])
            figures = await measure_refill(
                store, stack["allocator_url"], stack["allocator_token"], fleet="refill", count=5, buffer=5
            )
        finally:
            await client.aclose()
    finally:
        await asyncio.to_thread(stop_stack, proc)
    assert figures.allocated == 5
    assert figures.refill_seconds <= figures.server_start_seconds_max + 2.0 + GENEROUS, figures
