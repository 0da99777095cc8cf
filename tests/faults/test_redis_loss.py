"""``fleetmatch up``'s embedded Redis SIGKILLed under a steady load of ticket creates and allocations:
the probes say so while it is down, it comes back on its data, every component reconnects by itself,
and nothing that was acknowledged is lost (tickets, allocations, GameServers)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from fleetmatch.backends.redis.client import connect
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.models import GameServer, GameServerState
from matchmaker.auth import mint_player_token
from tests.e2e.test_up import wait_for_line
from tests.faults.world import launch_up, stack_file_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
STATES_AFTER_ALLOCATION = {GameServerState.ALLOCATED, GameServerState.SHUTDOWN}


@dataclass
class Load:
    """What the load got acknowledged, and when each kind last succeeded and failed."""

    tickets: dict[str, str] = field(default_factory=dict)  # ticket id -> its player
    allocations: set[str] = field(default_factory=set)
    ok_at: dict[str, float] = field(default_factory=dict)
    failed_at: dict[str, float] = field(default_factory=dict)
    readiness: list[tuple[float, str, int]] = field(default_factory=list)
    answers: list[tuple[float, str, str]] = field(default_factory=list)
    """(when, kind, HTTP status or exception) of every request: what the failure message shows."""


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    data_dir = tmp_path / "data"
    proc = launch_up(data_dir, "7750-7799")
    try:
        wait_for_line(proc, "Ctrl-C", timeout=120)
        yield proc, await stack_file_of(proc, data_dir)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.to_thread(proc.wait, 60)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()


async def tickets(http: aiohttp.ClientSession, info: dict[str, Any], load: Load) -> None:
    for n in itertools.count():
        player = f"p{n}"
        token = mint_player_token(info["player_token_secret"], player, 600, time.time())
        body = {"queue": "duel", "players": [{"id": player, "attributes": {"skill": 1000 + n % 50}}]}
        try:
            async with http.post(
                f"{info['matchmaker_url']}/v1/tickets", json=body, headers={"Authorization": f"Bearer {token}"}
            ) as resp:
                load.answers.append((time.monotonic(), "ticket", str(resp.status)))
                if resp.status == 201:
                    load.tickets[(await resp.json())["id"]] = player
                    load.ok_at["ticket"] = time.monotonic()
                else:
                    load.failed_at["ticket"] = time.monotonic()
        except (aiohttp.ClientError, TimeoutError) as exc:
            load.answers.append((time.monotonic(), "ticket", repr(exc)))
        await asyncio.sleep(0.25)


async def allocations(http: aiohttp.ClientSession, info: dict[str, Any], load: Load) -> None:
    body = {"spec": {"selectors": [{"matchLabels": {"agones.dev/fleet": "demo"}}]}}
    headers = {"Authorization": f"Bearer {info['allocator_token']}"}
    while True:
        try:
            async with http.post(f"{info['allocator_url']}/v1/allocations", json=body, headers=headers) as resp:
                load.answers.append((time.monotonic(), "allocation", str(resp.status)))
                if resp.status == 201:
                    load.allocations.add((await resp.json())["status"]["gameServerName"])
                    load.ok_at["allocation"] = time.monotonic()
                elif resp.status == 503:
                    assert resp.headers.get("Retry-After"), "a 503 says when to retry"
                    load.failed_at["allocation"] = time.monotonic()
        except (aiohttp.ClientError, TimeoutError) as exc:
            load.answers.append((time.monotonic(), "allocation", repr(exc)))
        await asyncio.sleep(1.0)


async def readiness(http: aiohttp.ClientSession, info: dict[str, Any], load: Load) -> None:
    while True:
        for name, url in (("allocator", info["allocator_url"]), ("matchmaker", info["matchmaker_url"])):
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(f"{url}/readyz") as resp:
                    load.readiness.append((time.monotonic(), name, resp.status))
        await asyncio.sleep(0.1)


async def until_both_succeed_after(load: Load, killed_at: float, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not all(load.ok_at.get(kind, 0) > killed_at for kind in ("ticket", "allocation")):
        now = time.monotonic()
        answers = [(round(at - killed_at, 2), kind, what) for at, kind, what in load.answers]
        assert now < deadline, f"not recovered within {within}s after the kill: {answers}"
        await asyncio.sleep(0.1)


async def test_a_killed_embedded_redis_comes_back_and_nothing_acknowledged_is_lost(
    stack: tuple[subprocess.Popen[str], dict[str, Any]],
) -> None:
    proc, info = stack
    load = Load()
    timeout = aiohttp.ClientTimeout(total=3)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        tasks = [asyncio.create_task(job(http, info, load)) for job in (tickets, allocations, readiness)]
        try:
            await asyncio.sleep(3.0)
            (redis,) = [p for p in psutil.Process(proc.pid).children() if "server" in p.name()]
            # Unreachable (frozen, it answers nothing) for longer than a probe may wait.
            redis.suspend()
            frozen_at = time.monotonic()
            await asyncio.sleep(4.0)
            redis.resume()
            await until_both_succeed_after(load, time.monotonic())
            killed_at = time.monotonic()
            redis.send_signal(signal.SIGKILL)
            await until_both_succeed_after(load, killed_at)
            await asyncio.sleep(2.0)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        recovered = max(load.ok_at.values()) - killed_at
        assert recovered < 20, f"recovery took {recovered:.1f}s"
        for name in ("allocator", "matchmaker"):  # the probes told the truth while it was frozen
            seen = [status for at, who, status in load.readiness if who == name and at > frozen_at]
            assert 503 in seen and seen[-1] == 200, (name, seen)
        assert not psutil.pid_exists(redis.pid)  # reaped: no zombie left behind

        # Every acknowledged ticket is still there (queued, matched, whatever its state now).
        for ticket_id, player in load.tickets.items():
            token = mint_player_token(info["player_token_secret"], player, 600, time.time())
            async with http.get(
                f"{info['matchmaker_url']}/v1/tickets/{ticket_id}", headers={"Authorization": f"Bearer {token}"}
            ) as resp:
                assert resp.status == 200, (ticket_id, resp.status)

    # Every acknowledged allocation holds its server; every server is accounted for.
    client = connect(info["redis_url"], name="test")
    try:
        servers = {g.name: g for g in (await RedisStore(client, GameServer).list())[0]}
    finally:
        await client.aclose()
    assert load.allocations and load.tickets
    for name in load.allocations:
        assert name in servers and servers[name].state in STATES_AFTER_ALLOCATION, name
