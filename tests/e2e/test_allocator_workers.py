"""``fleetmatch allocator --workers N``: N processes behind one port (SO_REUSEPORT), each with its own
watch and index, racing for one Redis. No server is handed out twice, over HTTP and gRPC at once; a
SIGKILLed worker is restarted while the others keep serving; SIGTERM stops them all. Separate
allocators (no supervisor) split the servers by slot leases."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import aiohttp
import grpc
import psutil
import pytest

from allocator.grpc_gen import allocation_pb2, allocation_pb2_grpc
from allocator.index import Share
from allocator.workers import worker_share
from fleetmatch.backends.redis.embedded import EmbeddedRedis, free_port
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.models import FLEET_LABEL, GameServer, GameServerState
from tests.e2e.harness import allocated, ready_servers, stack_env, start, stop
from tests.waiting import eventually

TOKEN = "e2e-workers-token-0123456789"
SERVERS = 60
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture
async def procs() -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    running: list[subprocess.Popen[bytes]] = []
    yield running
    await stop(running)


def listeners(supervisor: subprocess.Popen[bytes], port: int) -> set[int]:
    """Pids of the supervisor's children listening on ``port``."""
    pids = set()
    for child in psutil.Process(supervisor.pid).children():
        try:
            if any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in child.net_connections("tcp")):
                pids.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return pids


async def post(url: str, rid: str) -> tuple[int, str | None]:
    """One request on its own connection (so the kernel picks a worker for each)."""
    body = {"spec": {"selectors": [{"matchLabels": {FLEET_LABEL: "arena"}}], "metadata": {"labels": {"rid": rid}}}}
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
        http.post(f"{url}/v1/allocations", json=body, headers={"Authorization": f"Bearer {TOKEN}"}) as resp,
    ):
        doc = await resp.json()
        return resp.status, doc["status"].get("gameServerName") if resp.status == 201 else None


async def call(grpc_port: int, rid: str) -> tuple[int, str | None]:
    request = allocation_pb2.AllocationRequest(
        gameServerSelectors=[allocation_pb2.GameServerSelector(matchLabels={FLEET_LABEL: "arena"})],
        metadata=allocation_pb2.MetaPatch(labels={"rid": rid}),
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = allocation_pb2_grpc.AllocationServiceStub(channel)
        try:
            response = await stub.Allocate(request, metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=20)
        except grpc.aio.AioRpcError as exc:
            return (429 if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED else 500), None
        return 201, response.gameServerName


async def test_workers_share_one_port_and_never_hand_out_a_server_twice(
    redis_server: EmbeddedRedis, redis_client, procs: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    gameservers = RedisStore(redis_client, GameServer)
    await ready_servers(gameservers, SERVERS)
    port, grpc_port = free_port(), free_port()
    env = stack_env(redis_server.url, tmp_path, port, TOKEN)
    supervisor = start(["allocator", "--workers", "3", "--port", str(port), "--grpc-port", str(grpc_port)], env)
    procs.append(supervisor)
    url = f"http://127.0.0.1:{port}"

    async def three_listening() -> bool:
        return len(listeners(supervisor, port)) == 3 and len(listeners(supervisor, grpc_port)) == 3

    await eventually(three_listening, within=60)
    # Each worker is told its slot and the count: its share of the servers (allocator.index.Share).
    shares = {worker_share(psutil.Process(pid).environ()) for pid in listeners(supervisor, port)}
    assert shares == {Share(0, 3), Share(1, 3), Share(2, 3)}
    # Each worker answers /healthz once its index is read; new connections land on any of them.
    for _ in range(30):
        await eventually(lambda: _healthy(url), within=30)
    slots: set[str] = set()  # each says which it is on /metrics

    async def every_slot_reported() -> bool:
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
            http.get(f"{url}/metrics") as resp,
        ):
            slots.update(re.findall(r"^fleetmatch_allocator_worker_slot (\S+)$", await resp.text(), re.M))
        return slots == {"0.0", "1.0", "2.0"}

    await eventually(every_slot_reported, within=30, what=lambda: f"slots seen: {sorted(slots)}")

    jobs = [post(url, f"h{i:03d}") if i % 3 else call(grpc_port, f"g{i:03d}") for i in range(SERVERS * 2)]
    outcomes = await asyncio.gather(*jobs)
    names = [name for status, name in outcomes if status == 201 and name is not None]
    assert len(names) == len(set(names)), "a server was handed to two requests"
    assert len(names) == SERVERS
    assert {status for status, _ in outcomes} <= {201, 429, 409}
    stored = await allocated(gameservers)
    assert sorted(g.name for g in stored) == sorted(names)
    assert all(g.state is GameServerState.ALLOCATED and g.metadata.labels.get("rid") for g in stored)


async def _healthy(url: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
            http.get(f"{url}/healthz") as resp,
        ):
            return resp.status == 200
    except aiohttp.ClientError:
        return False


async def test_a_killed_worker_comes_back_and_the_others_keep_serving(
    redis_server: EmbeddedRedis, redis_client, procs: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    gameservers = RedisStore(redis_client, GameServer)
    await ready_servers(gameservers, 40)
    port = free_port()
    supervisor = start(
        ["allocator", "--workers", "2", "--port", str(port)], stack_env(redis_server.url, tmp_path, port, TOKEN)
    )
    procs.append(supervisor)
    url = f"http://127.0.0.1:{port}"
    await eventually(lambda: _count(supervisor, port, 2), within=60)
    for _ in range(20):
        await eventually(lambda: _healthy(url), within=30)
    victim, survivor = sorted(listeners(supervisor, port))
    os.kill(victim, signal.SIGKILL)
    with contextlib.suppress(psutil.NoSuchProcess):  # the supervisor may reap it first, even between two calls
        await asyncio.to_thread(psutil.Process(victim).wait, 10)
    # The other worker answers every new connection meanwhile.
    for i in range(10):
        assert (await post(url, f"during-{i}"))[0] == 201
    # The slot is refilled by a new process, which tells how often its slot was restarted.
    await eventually(lambda: _count(supervisor, port, 2), within=60)
    replacement = listeners(supervisor, port) - {survivor}
    assert replacement and victim not in replacement

    async def restart_reported() -> bool:
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
            http.get(f"{url}/metrics") as resp,
        ):
            return "fleetmatch_allocator_worker_restarts 1.0" in await resp.text()

    await eventually(restart_reported, within=30)
    # SIGTERM on the supervisor stops every worker, and the supervisor exits cleanly.
    workers = listeners(supervisor, port)
    supervisor.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(supervisor.wait, 30) == 0
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in workers)


async def _count(supervisor: subprocess.Popen[bytes], port: int, n: int) -> bool:
    return len(listeners(supervisor, port)) == n


async def _metric(url: str, name: str) -> str | None:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
            found = re.search(rf"^{name} (\S+)$", await resp.text(), re.M)
    except aiohttp.ClientError:
        return None
    return found.group(1) if found else None


async def test_separate_allocators_split_the_servers_by_slot_leases(
    redis_server: EmbeddedRedis, redis_client, procs: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """Two ``fleetmatch allocator`` processes on their own ports (a Deployment's replicas): each
    takes a slot lease in Redis and reports its share; together they never hand out a server twice;
    when one stops, the other is alone again and says so."""
    gameservers = RedisStore(redis_client, GameServer)
    await ready_servers(gameservers, SERVERS)
    ports = [free_port(), free_port()]
    for port in ports:
        procs.append(start(["allocator", "--port", str(port)], stack_env(redis_server.url, tmp_path, port, TOKEN)))
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    for url in urls:
        await eventually(lambda url=url: _healthy(url), within=60)

    async def split() -> bool:
        shares = [await _metric(url, "fleetmatch_allocator_share_of") for url in urls]
        slots = {await _metric(url, "fleetmatch_allocator_worker_slot") for url in urls}
        return shares == ["2.0", "2.0"] and slots == {"0.0", "1.0"}

    await eventually(split, within=30)
    outcomes = await asyncio.gather(*(post(urls[i % 2], f"r{i:03d}") for i in range(SERVERS + 20)))
    names = [name for status, name in outcomes if status == 201 and name is not None]
    assert len(names) == len(set(names)) == SERVERS, "a server was handed to two requests, or one was left"
    assert sorted(g.name for g in await allocated(gameservers)) == sorted(names)
    procs[0].send_signal(signal.SIGTERM)  # its slot is released on the way out
    assert await asyncio.to_thread(procs[0].wait, 30) == 0
    await eventually(lambda: _equals(_metric(urls[1], "fleetmatch_allocator_share_of"), "1.0"), within=20)


async def _equals(value: Awaitable[str | None], expected: str) -> bool:
    return await value == expected


async def test_workers_of_two_hosts_split_the_servers_all_together(
    redis_server: EmbeddedRedis, redis_client, procs: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """Two ``--workers 2`` supervisors on one Redis (two hosts, or two replicas): each worker starts
    with its supervisor's slot of 2, then takes a slot lease, and all four split the servers four
    ways (without the leases, each host's worker 0 would share one half with the other's)."""
    gameservers = RedisStore(redis_client, GameServer)
    await ready_servers(gameservers, SERVERS)
    ports = [free_port(), free_port()]
    for port in ports:
        env = stack_env(redis_server.url, tmp_path, port, TOKEN)
        procs.append(start(["allocator", "--workers", "2", "--port", str(port)], env))
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    for url in urls:
        await eventually(lambda url=url: _healthy(url), within=60)
    seen: dict[str, str] = {}  # slot -> share_of, from whichever worker each fresh connection reached

    async def four_ways() -> bool:
        for url in urls:
            async with (
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
                http.get(f"{url}/metrics") as resp,
            ):
                text = await resp.text()
            slot = re.search(r"^fleetmatch_allocator_worker_slot (\S+)$", text, re.M)
            of = re.search(r"^fleetmatch_allocator_share_of (\S+)$", text, re.M)
            if slot and of:
                seen[slot.group(1)] = of.group(1)
        return set(seen) == {"0.0", "1.0", "2.0", "3.0"} and set(seen.values()) == {"4.0"}

    await eventually(four_ways, within=30, what=lambda: f"slot -> share_of seen: {seen}")
    outcomes = await asyncio.gather(*(post(urls[i % 2], f"r{i:03d}") for i in range(SERVERS + 20)))
    names = [name for status, name in outcomes if status == 201 and name is not None]
    assert len(names) == len(set(names)) == SERVERS, "a server was handed to two requests, or one was left"
