"""Probes: starting until every check ran once, unavailable while a dependency fails (with what and
since when), ok otherwise; a check that hangs is bounded by the timeout; gates are the component's own."""

from __future__ import annotations

import asyncio

from fleetmatch.probes import Probes


async def test_starting_then_ok_then_unavailable_with_the_reason_then_ok_again() -> None:
    up = True

    async def store() -> None:
        if not up:
            raise ConnectionError("connection refused")

    times = iter([100.0, 101.0, 102.0])
    probes = Probes(clock=lambda: next(times))
    probes.add("store", store)
    synced = False
    probes.gate("index", lambda: synced)
    starting = {"store": {"ok": False, "message": "not checked yet"}, "index": {"ok": False, "message": "not yet"}}
    assert probes.report() == (503, {"status": "starting", "checks": starting})
    await probes.check_now()
    synced = True
    assert probes.report()[0] == 200
    up = False
    await probes.check_now()
    status, body = probes.report()
    assert status == 503 and body["status"] == "unavailable"
    assert body["checks"]["store"] == {"ok": False, "message": "ConnectionError: connection refused", "since": 101.0}
    up = True
    await probes.check_now()
    assert probes.report()[0] == 200


async def test_a_hanging_check_is_a_failure_not_a_hang() -> None:
    async def hangs() -> None:
        await asyncio.Event().wait()

    probes = Probes(timeout=0.05)
    probes.add("store", hangs)
    await probes.check_now()
    status, body = probes.report()
    assert status == 503 and "no answer within 0.05s" in body["checks"]["store"]["message"]
