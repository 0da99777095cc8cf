"""Leadership: loops run only while the lease is held; a failed renewal keeps them until the lease
would expire, never longer; a lost lease stops them, and they start afresh when it is taken again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from fleetmatch.errors import BackendError
from fleetmatch.lease import Leadership
from fleetmatch.tasks import cancel_and_wait
from tests.waiting import eventually


class ScriptedLease:
    """Answers ``acquire`` from a script: True/False, or an exception to raise; the last repeats."""

    def __init__(self, *answers: bool | Exception, ttl: float = 0.3) -> None:
        self.ttl = ttl
        self._answers: Iterator[bool | Exception] = iter(answers)
        self._last: bool | Exception = False
        self.calls = 0
        self.released = False

    async def acquire(self) -> bool:
        self.calls += 1
        self._last = next(self._answers, self._last)
        if isinstance(self._last, Exception):
            raise self._last
        return self._last

    async def release(self) -> None:
        self.released = True

    async def taken(self) -> bool:
        return not self.released


class Body:
    """A loop body that counts its starts and whether it is running."""

    def __init__(self) -> None:
        self.starts = 0
        self.running = False

    async def __call__(self) -> None:
        self.starts += 1
        self.running = True
        try:
            await asyncio.Event().wait()
        finally:
            self.running = False


async def test_without_a_lease_the_loops_just_run() -> None:
    body = Body()
    task = asyncio.create_task(Leadership(None, "t").run([("body", body)]))
    await eventually(lambda: body.running)
    await cancel_and_wait(task)
    assert not body.running and body.starts == 1


async def test_a_standby_never_runs_the_loops() -> None:
    lease, body = ScriptedLease(False), Body()
    task = asyncio.create_task(Leadership(lease, "t").run([("body", body)]))
    await eventually(lambda: lease.calls >= 4)
    await cancel_and_wait(task)
    assert body.starts == 0 and not lease.released


async def test_losing_the_lease_stops_the_loops_and_taking_it_again_restarts_them() -> None:
    lease, body = ScriptedLease(True, True, False, False, True), Body()
    leadership = Leadership(lease, "t")
    task = asyncio.create_task(leadership.run([("body", body)]))
    await eventually(lambda: body.starts == 2 and body.running)
    await cancel_and_wait(task)
    assert not body.running and lease.released and not leadership.leading


async def test_a_failed_renewal_keeps_leading_only_while_the_lease_is_still_valid() -> None:
    """ttl 0.6 s, renewed every 0.2 s (the clock advances 0.2 s per renewal): taken at 0.0, so valid
    until 0.6; the renewal at 0.2 fails but 0.4 < 0.6, so the loops go on; the one at 0.4 fails and
    the next renewal would be too late: the loops stop then, before the lease can expire."""
    lease = ScriptedLease(True, BackendError("redis: connection refused"), ttl=0.6)
    ticks = iter(0.2 * i for i in range(1000))
    leadership = Leadership(lease, "t", clock=lambda: next(ticks))
    stopped_at: list[int] = []

    async def body() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped_at.append(lease.calls)

    task = asyncio.create_task(leadership.run([("body", body)]))
    await eventually(lambda: bool(stopped_at))
    await cancel_and_wait(task)
    assert stopped_at == [3]
