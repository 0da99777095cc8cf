"""The allocator on Kubernetes: four `fleetmatch allocator` processes (FLEETMATCH_BACKEND=kubernetes)
claim GameServers held by the fake API server through the real client. No server is handed out
twice, none is half-claimed, one allocator SIGKILLed mid-run changes nothing of that, and the
allocators' watch caches survive a dropped watch and a 410 (new servers are still found)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from allocator.allocation import Allocator
from fleetmatch.allocation import AllocationState, GameServerAllocationSpec, GameServerSelector
from fleetmatch.backends.kube.store import KubeStore
from fleetmatch.backends.redis.embedded import free_port
from fleetmatch.informer import Informer
from fleetmatch.models import (
    FLEET_LABEL,
    LAST_ALLOCATED_ANNOTATION,
    GameServer,
    GameServerState,
    ObjectMeta,
    PortStatus,
)
from fleetmatch.tasks import cancel_and_wait
from tests.kube.fakekube import FakeKube
from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
TOKEN = "kube-allocators-token-0123456789"
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


async def ready_servers(store: KubeStore[GameServer], names: list[str]) -> None:
    for i, name in enumerate(names):
        gs = GameServer(metadata=ObjectMeta(name=name, labels={FLEET_LABEL: "arena"}))
        created = await store.create(gs)
        status = created.status
        ready = created.with_status(
            state=GameServerState.READY,
            address="10.0.0.1",
            ports=(PortStatus("default", 7000 + i),),
            node_name=f"node-{i % 3}",
        )
        assert ready.status != status
        await store.update(ready)


@pytest.fixture
async def store(kube_api: client.ApiClient) -> KubeStore[GameServer]:
    return KubeStore(kube_api, GameServer, "default")


Outcomes = dict[str, tuple[int, str, str | None]]
"""Request id -> (allocator index, HTTP status or "lost", server name)."""


async def start_allocators(
    fake: FakeKube, data_dir: Path, n: int
) -> tuple[list[asyncio.subprocess.Process], list[str]]:
    env = {
        **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
        "FLEETMATCH_BACKEND": "kubernetes",
        "FLEETMATCH_KUBE_SERVER": fake.url,
        "FLEETMATCH_ALLOCATOR_TOKEN": TOKEN,
        "FLEETMATCH_DATA_DIR": str(data_dir),
    }
    ports = [free_port() for _ in range(n)]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fleetmatch", "allocator", "--port", str(port),
            cwd=REPO, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        for port in ports
    ]  # fmt: skip
    return procs, [f"http://127.0.0.1:{p}" for p in ports]


async def stop_all(procs: list[asyncio.subprocess.Process]) -> None:
    for proc in procs:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def healthy(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(f"{url}/healthz") as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


async def ready_in_cache(http: aiohttp.ClientSession, url: str, count: int) -> bool:
    async with http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    return f'fleetmatch_allocator_cached_gameservers{{state="Ready"}} {count}.0' in text


async def allocate(http: aiohttp.ClientSession, urls: list[str], target: int, rid: str, outcomes: Outcomes) -> None:
    body: dict[str, Any] = {
        "spec": {"selectors": [{"matchLabels": {FLEET_LABEL: "arena"}}], "metadata": {"labels": {"request": rid}}}
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


async def test_four_allocators_on_kubernetes_never_hand_out_a_server_twice(
    fake_kube: FakeKube, store: KubeStore[GameServer], tmp_path: Path
) -> None:
    servers = [f"arena-{i:02d}" for i in range(18)]
    await ready_servers(store, servers[:12])
    procs, urls = await start_allocators(fake_kube, tmp_path, 4)
    outcomes: Outcomes = {}
    try:
        async with aiohttp.ClientSession() as http:
            for url in urls:
                await eventually(lambda url=url: healthy(http, url), within=60)
            # The caches must survive a dropped watch and a 410: drop, compact, then add servers
            # that only a recovered watch (or a re-list) can show.
            fake_kube.drop_watches()
            fake_kube.compact()
            await ready_servers(store, servers[12:])

            async def every_cache_has_all() -> bool:
                return all(await asyncio.gather(*(ready_in_cache(http, url, len(servers)) for url in urls)))

            await eventually(every_cache_has_all, within=60)
            pending = []
            targets = itertools.cycle(range(4))
            for n in range(len(servers) * 3):
                if n == len(servers) // 2:
                    procs[0].send_signal(signal.SIGKILL)  # mid-run, with requests in flight
                pending.append(asyncio.create_task(allocate(http, urls, next(targets), f"r{n:03d}", outcomes)))
                await asyncio.sleep(0.01)
            await asyncio.gather(*pending)
    finally:
        await stop_all(procs)
    await check_outcomes(store, outcomes, len(servers))
    # Claims went to the API server as conditional PUTs of the whole object (one write per claim).
    claims = [r for r in fake_kube.requests if r.method == "PUT" and "/gameservers/" in r.path]
    assert claims and all(not r.path.endswith("/status") for r in claims)


async def check_outcomes(store: KubeStore[GameServer], outcomes: Outcomes, servers: int) -> None:
    items, _ = await store.list()
    allocated = {g.name: g for g in items if g.state is GameServerState.ALLOCATED}
    won = [(rid, name) for rid, (_, result, name) in outcomes.items() if result == "201"]
    names = [name for _, name in won]
    assert len(names) == len(set(names)), "a server was handed to two requests"
    for rid, name in won:
        assert name in allocated and allocated[name].metadata.labels["request"] == rid
    assert {g.state for g in items} <= {GameServerState.READY, GameServerState.ALLOCATED}  # nothing half-claimed
    for gs in allocated.values():
        assert gs.metadata.labels.get("request") and LAST_ALLOCATED_ANNOTATION in gs.metadata.annotations
    # Allocated without an answer: only requests to the killed allocator, whose reply was lost.
    unanswered = {gs.metadata.labels["request"] for gs in allocated.values()} - {rid for rid, _ in won}
    for rid in unanswered:
        assert outcomes[rid][0] == 0 and outcomes[rid][1] == "lost"
    assert len(allocated) == servers  # drained, the late servers included
    assert any(result == "429" for _, result, _ in outcomes.values())
    assert {result for _, result, _ in outcomes.values()} <= {"201", "429", "409", "lost"}


@contextlib.asynccontextmanager
async def stale_allocator(fake: FakeKube, seed: int) -> AsyncIterator[Allocator]:
    """An allocator (own client) that read the GameServers once and then stopped watching: every
    claim it makes races the others on the API server's resourceVersion check alone."""
    async with client.ApiClient(configuration=client.Configuration(host=fake.url)) as api:
        store = KubeStore(api, GameServer, "default")
        informer = Informer(store)
        allocator = Allocator(store, informer, rng=random.Random(seed))
        task = asyncio.create_task(informer.run(), name=f"test.stale-allocator[{seed}]")
        await informer.synced.wait()
        await cancel_and_wait(task)
        yield allocator


async def test_stale_allocators_on_kubernetes_claim_each_server_once(
    fake_kube: FakeKube, store: KubeStore[GameServer]
) -> None:
    await ready_servers(store, [f"arena-{i}" for i in range(6)])
    async with contextlib.AsyncExitStack() as stack:
        allocators = [await stack.enter_async_context(stale_allocator(fake_kube, seed)) for seed in range(4)]
        spec = GameServerAllocationSpec(selectors=(GameServerSelector.for_fleet("arena"),))
        results = await asyncio.gather(*(a.allocate(spec) for _ in range(5) for a in allocators))
    won = [r.game_server_name for r in results if r.state is AllocationState.ALLOCATED]
    assert sorted(won) == [f"arena-{i}" for i in range(6)]  # each server exactly once, all taken
    assert {r.state for r in results} <= {AllocationState.ALLOCATED, AllocationState.UNALLOCATED,
                                          AllocationState.CONTENTION}  # fmt: skip
    conflicts = [r for r in fake_kube.requests if r.method == "PUT" and r.status == 409]
    assert conflicts  # the races happened and the API server settled them
