"""Four allocator processes race for a fleet of real Ready game servers until it is empty; one is
SIGKILLed mid-run. No server is handed out twice, none is left half-claimed, and the store agrees
with what the clients were told."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from allocator.fleetops import apply_fleet
from fleetmatch.backends.redis.embedded import EmbeddedRedis, free_port
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.models import (
    FLEET_LABEL,
    LAST_ALLOCATED_ANNOTATION,
    Fleet,
    FleetSpec,
    GameServer,
    GameServerSpec,
    GameServerState,
    GameServerTemplate,
    ObjectMeta,
    ProcessTemplate,
)
from tests.e2e.harness import start as fleetmatch_process
from tests.e2e.harness import stop
from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
TOKEN = "e2e-allocators-token-0123456789"
SERVERS = 24
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.fixture
async def processes(redis_server: EmbeddedRedis, tmp_path: Path) -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    await stop(procs)


def start(procs: list[subprocess.Popen[bytes]], env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    proc = fleetmatch_process(list(args), env)
    procs.append(proc)
    return proc


async def test_four_allocators_one_killed_never_hand_out_a_server_twice(
    redis_server: EmbeddedRedis, redis_client, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "FLEETMATCH_DATA_DIR": str(tmp_path),
        "FLEETMATCH_PORT_RANGE": "7950-7999",
        "FLEETMATCH_METRICS_PORT": "0",
        "FLEETMATCH_ALLOCATOR_TOKEN": TOKEN,
    }
    gameservers = RedisStore(redis_client, GameServer)
    process = ProcessTemplate(("python", "-m", "examples.udp_game.server"), working_dir=str(REPO))
    template = GameServerTemplate(spec=GameServerSpec(process=process))
    await apply_fleet(
        RedisStore(redis_client, Fleet), Fleet(ObjectMeta(name="arena"), FleetSpec(SERVERS, template=template))
    )
    start(processes, env, "controller")
    start(processes, env, "node-agent")

    async def all_ready() -> bool:
        items, _ = await gameservers.list()
        return sum(g.state is GameServerState.READY for g in items) == SERVERS

    await eventually(all_ready, within=120)

    ports = [free_port() for _ in range(4)]
    allocators = [start(processes, env, "allocator", "--port", str(p)) for p in ports]
    urls = [f"http://127.0.0.1:{p}" for p in ports]

    async with aiohttp.ClientSession() as http:

        async def healthy(url: str) -> bool:
            try:
                async with http.get(f"{url}/healthz") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        for url in urls:
            await eventually(lambda url=url: healthy(url), within=30)

        outcomes: dict[str, tuple[int, str, str | None]] = {}  # request id -> (allocator, result, server)

        async def request(n: int, target: int) -> None:
            rid = f"r{n:03d}"
            body = {
                "spec": {
                    "selectors": [{"matchLabels": {FLEET_LABEL: "arena"}}],
                    "metadata": {"labels": {"request": rid}},
                }
            }
            try:
                async with http.post(
                    f"{urls[target]}/v1/allocations", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
                ) as resp:
                    doc = await resp.json()
                    name = doc["status"]["gameServerName"] if resp.status == 201 else None
                    outcomes[rid] = (target, str(resp.status), name)
            except (TimeoutError, aiohttp.ClientError):
                outcomes[rid] = (target, "lost", None)

        pending = []
        targets = itertools.cycle(range(4))
        for n in range(SERVERS * 3):
            if n == SERVERS // 2:
                allocators[0].send_signal(signal.SIGKILL)  # mid-run, with requests in flight
            pending.append(asyncio.create_task(request(n, next(targets))))
            await asyncio.sleep(0.02)
        await asyncio.gather(*pending)

    items, _ = await gameservers.list()
    allocated = {g.name: g for g in items if g.state is GameServerState.ALLOCATED}
    won = [(rid, name) for rid, (_, result, name) in outcomes.items() if result == "201"]
    names = [name for _, name in won]
    assert len(names) == len(set(names)), "a server was handed to two requests"
    # Every success is Allocated in the store, carrying the label of the request that won it.
    for rid, name in won:
        assert name in allocated and allocated[name].metadata.labels["request"] == rid
    # Nothing half-claimed: every server is Ready or fully Allocated (state, labels, annotation).
    assert {g.state for g in items} <= {GameServerState.READY, GameServerState.ALLOCATED}
    for gs in allocated.values():
        assert gs.metadata.labels.get("request") and LAST_ALLOCATED_ANNOTATION in gs.metadata.annotations
    # Allocated without an answer: only requests to the killed allocator, whose reply was lost.
    unanswered = {gs.metadata.labels["request"] for gs in allocated.values()} - {rid for rid, _ in won}
    for rid in unanswered:
        assert outcomes[rid][0] == 0 and outcomes[rid][1] == "lost"
    assert len(allocated) == SERVERS  # the fleet was drained
    refused = [rid for rid, (_, result, _) in outcomes.items() if result == "429"]
    assert len(won) + len(unanswered) == SERVERS and refused
    assert {result for _, result, _ in outcomes.values()} <= {"201", "429", "409", "lost"}
