"""The reconcile loop: a pass at start, on every poke (none lost while a pass runs), on resync, and
when ``next_due`` asks."""

from __future__ import annotations

import asyncio

from fleetmatch.reconcile import ReconcileLoop
from fleetmatch.tasks import cancel_and_wait
from tests.waiting import eventually


async def test_passes_on_start_on_poke_and_a_poke_during_a_pass_is_not_lost() -> None:
    gate = asyncio.Event()
    passes: list[int] = []

    async def reconcile() -> None:
        passes.append(len(passes))
        if len(passes) == 2:
            await gate.wait()  # the second pass is slow

    loop = ReconcileLoop(reconcile, resync=3600)
    task = asyncio.create_task(loop.run())
    await eventually(lambda: len(passes) == 1)
    loop.poke()
    await eventually(lambda: len(passes) == 2)
    loop.poke()  # arrives while the second pass runs
    gate.set()
    await eventually(lambda: len(passes) == 3)
    await asyncio.sleep(0.05)
    assert len(passes) == 3 and loop.passes == 3
    await cancel_and_wait(task)


async def test_next_due_asks_for_an_early_pass() -> None:
    passes = 0

    async def reconcile() -> None:
        nonlocal passes
        passes += 1

    loop = ReconcileLoop(reconcile, resync=3600, next_due=lambda: 0.0 if passes < 3 else None)
    task = asyncio.create_task(loop.run())
    await eventually(lambda: passes == 3)
    await asyncio.sleep(0.05)
    assert passes == 3
    await cancel_and_wait(task)
