"""Benchmark: allocations per second and latency through the HTTP allocation API.

``python -m loadtest.bench_allocate`` from the repository root (or ``make bench``) prints one JSON document:

1. 10,000 synthetic Ready GameServers (records only, no processes) in a private embedded Redis
   (or ``REDIS_URL``, in a throw-away namespace), spread over 100 nodes;
2. **baseline**: a trivial aiohttp JSON handler in its own process, driven by the same load
   generator: the ceiling of this harness on this machine;
3. **one allocator process** (``fleetmatch allocator``): closed-loop load for the maximum rate
   (and the same with ``FLEETMATCH_ALLOCATOR_FAST_PATH=false``, every request on aiohttp:
   ``aiohttp_path_*``, the same-run baseline of ``fleetmatch.fastpath``),
   then open-loop load at half that rate for p50/p99 latency (five runs: the median p99, the
   worst, and how many went over 10 ms), and the same half-rate runs against an allocator that
   freezes its heap only once (``FLEETMATCH_ALLOCATOR_HEAP_FREEZE_SECONDS=0``, ``no_heap_freeze_*``:
   the same-run baseline of ``fleetmatch.gctune.keep_heap_frozen``);
4. **gRPC**: the same allocator's Agones ``allocation.AllocationService/Allocate``, closed loop
   from a grpcio client process;
5. **``fleetmatch allocator --workers 2``**: two worker processes behind one port (SO_REUSEPORT),
   driven by two load generators; from the CPU seconds the workers used, the allocations per second
   one more core would add (``projected_allocations_per_second_per_added_core``);
6. **two separate allocators** (a Deployment's replicas: their own ports, one load generator each),
   splitting the servers by slot leases (``replicas_2_*``), then the same without slot leases
   (``replicas_2_no_slot_leases_*``): claims lost to each other per allocation, throughput, CPU.

The baseline's and the one allocator's maximum-rate phases run ``--repeat`` times (3) and the
median run is reported, each run's figures beside it: the host's noise moves one phase by 10 % or
more. The fleet is reset to Ready between phases, so every figure is measured against a full pool. Load
generators are separate processes (``--load``), as a real client would be; on a two-core machine
they compete with the allocator for CPU, and so does the baseline, so compare the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiohttp import web

from loadtest.httpload import load, percentile, post

REPO = Path(__file__).resolve().parents[1]
SERVERS = 10_000
NODES = 100
FLEET = "bench"
BODY = json.dumps({"spec": {"selectors": [{"matchLabels": {"agones.dev/fleet": FLEET}}]}}).encode()
HALF_RATE_RUNS = 5
"""Open-loop runs at half the maximum rate per allocator: one run's p99 rests on its ~30 slowest
answers, and a single pause (a garbage collection, the host) decides it."""
P99_GOAL_MS = 10.0


# -- load generator (runs in its own process) -----------------------------------------------


async def grpc_load(target: str, token: str, seconds: float, concurrency: int) -> dict[str, Any]:
    """Closed loop on Agones' allocation service: ``concurrency`` calls in flight on one channel."""
    import grpc

    from allocator.grpc_gen import allocation_pb2, allocation_pb2_grpc

    request = allocation_pb2.AllocationRequest(
        gameServerSelectors=[allocation_pb2.GameServerSelector(matchLabels={"agones.dev/fleet": FLEET})]
    )
    metadata = (("authorization", f"Bearer {token}"),)
    codes: dict[str, int] = {}
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = allocation_pb2_grpc.AllocationServiceStub(channel)
        end = time.perf_counter() + seconds

        async def worker() -> None:
            while (now := time.perf_counter()) < end:
                try:
                    await stub.Allocate(request, metadata=metadata, timeout=10)
                    code = "OK"
                except grpc.aio.AioRpcError as exc:
                    code = exc.code().name
                codes[code] = codes.get(code, 0) + 1
                if code == "OK":
                    latencies.append(time.perf_counter() - now)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ok = codes.get("OK", 0)
    return {
        "requests": sum(codes.values()),
        "ok": ok,
        "codes": codes,
        "seconds": round(elapsed, 3),
        "ok_per_second": round(ok / elapsed, 1),
        "p50_ms": round(percentile(sorted(latencies), 0.50) * 1000, 3),
        "p99_ms": round(percentile(sorted(latencies), 0.99) * 1000, 3),
    }


# -- the baseline server (its own process) ---------------------------------------------------


def serve_baseline(port: int) -> None:
    """A trivial aiohttp handler: parse the JSON body, answer a small JSON document."""

    async def handle(request: web.Request) -> web.Response:
        doc = await request.json()
        return web.json_response({"status": {"state": "Allocated", "echo": len(doc)}}, status=201)

    app = web.Application()
    app.router.add_post("/v1/allocations", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# -- orchestration --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its children (the workers of ``--workers N``)."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


async def run_load(
    url: str,
    token: str,
    seconds: float,
    concurrency: int,
    rate: float | None = None,
    *,
    server_pid: int | None = None,
    generators: int = 1,
    grpc_target: bool = False,
) -> dict[str, Any]:
    """``generators`` load-generator processes against ``url`` (or, ``grpc_target``, the gRPC
    ``host:port``), ``concurrency`` in flight each; with ``server_pid``, also the server's CPU time
    (its workers' included) per successful request: steadier than throughput on a shared machine."""
    argv = [sys.executable, "-m", "loadtest.bench_allocate", "--grpc-load" if grpc_target else "--load", url]
    argv += [f"--token={token}", "--seconds", str(seconds), "--concurrency", str(concurrency)]
    argv += ["--rate", str(rate)] if rate else []
    before = cpu_seconds(server_pid) if server_pid else 0.0
    procs = [
        await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, cwd=REPO) for _ in range(generators)
    ]
    outs = [json.loads((await proc.communicate())[0]) for proc in procs]
    result: dict[str, Any] = outs[0]
    if generators > 1:
        result = {
            "ok": sum(o["ok"] for o in outs),
            "ok_per_second": round(sum(o["ok_per_second"] for o in outs), 1),
            "p50_ms": max(o["p50_ms"] for o in outs),
            "p99_ms": max(o["p99_ms"] for o in outs),
            "per_generator": outs,
        }
    if server_pid and result["ok"]:
        cpu = cpu_seconds(server_pid) - before
        result["server_cpu_seconds"] = round(cpu, 3)
        result["server_cpu_us_per_request"] = round(cpu / result["ok"] * 1e6, 1)
    return result


async def wait_http(url: str, within: float = 30.0) -> None:
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + within
        while True:
            try:
                async with http.get(url) as resp:
                    if resp.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not come up")
            await asyncio.sleep(0.1)


async def start(argv: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv, cwd=REPO, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            async with asyncio.timeout(20):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def populate(redis_url: str, namespace: str, n: int) -> None:
    from fleetmatch.backends.redis.client import connect
    from fleetmatch.backends.redis.store import RedisStore
    from fleetmatch.models import FLEET_LABEL, GameServer, GameServerState, ObjectMeta, PortStatus

    client = connect(redis_url, name="bench-populate")
    store = RedisStore(client, GameServer, namespace)
    limit = asyncio.Semaphore(256)

    async def one(i: int) -> None:
        gs = GameServer(metadata=ObjectMeta(name=f"{FLEET}-{i:05d}", labels={FLEET_LABEL: FLEET}))
        gs = gs.with_status(
            state=GameServerState.READY,
            address=f"10.0.{i % NODES}.1",
            ports=(PortStatus("default", 7000 + i % 1000),),
            node_name=f"node-{i % NODES:03d}",
        )
        async with limit:
            await store.create(gs)

    await asyncio.gather(*(one(i) for i in range(n)))
    await client.aclose()


async def reset(redis_url: str, namespace: str) -> int:
    """Every Allocated server back to Ready (the next phase starts from a full pool)."""
    from fleetmatch.backends.redis.client import connect
    from fleetmatch.backends.redis.store import RedisStore
    from fleetmatch.codec import evolve
    from fleetmatch.models import GameServer, GameServerState

    client = connect(redis_url, name="bench-reset")
    store = RedisStore(client, GameServer, namespace)
    items, _ = await store.list()
    limit = asyncio.Semaphore(256)

    async def one(gs: GameServer) -> None:
        async with limit:
            await store.update(evolve(gs, status=evolve(gs.status, state=GameServerState.READY)))

    allocated = [g for g in items if g.state is GameServerState.ALLOCATED]
    await asyncio.gather(*(one(g) for g in allocated))
    await client.aclose()
    return len(allocated)


async def caught_up(base_urls: list[str], ready: int, within: float = 60.0) -> None:
    """Wait until every allocator's index shows ``ready`` Ready servers: after a reset, thousands of
    watch events are still on their way, and measuring before they land would time them too."""
    needle = f'fleetmatch_allocator_cached_gameservers{{state="Ready"}} {float(ready)}'
    # Workers of one port answer whichever a new connection reaches: caught up once 20 fresh
    # connections in a row say so (a lagging one of two workers escapes that with odds 2^-20).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        deadline = time.monotonic() + within
        for base in base_urls:
            confirmed = 0
            while confirmed < 20:
                async with http.get(f"{base}/metrics") as resp:
                    confirmed = confirmed + 1 if needle in await resp.text() else 0
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{base} did not catch up with the reset")
                if not confirmed:
                    await asyncio.sleep(0.05)


async def claim_conflicts(base: str, workers: int, tries: int = 400) -> float:
    """``fleetmatch_allocation_claim_conflicts_total`` summed over the ``workers`` processes behind
    ``base``: fresh connections until each slot (``fleetmatch_allocator_worker_slot``) has answered."""
    seen: dict[float, float] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        for _ in range(tries):
            async with http.get(f"{base}/metrics") as resp:
                values = _samples(await resp.text())
            seen[values.get("fleetmatch_allocator_worker_slot", 0.0)] = values.get(
                "fleetmatch_allocation_claim_conflicts_total", 0.0
            )
            if len(seen) == workers:
                return sum(seen.values())
    raise TimeoutError(f"{tries} scrapes of {base} reached {len(seen)} of {workers} workers")


async def sharing(bases: list[str], n: int, within: float = 30.0) -> None:
    """Wait until each allocator says it splits the servers ``n`` ways (its slot lease, its share)."""
    needle = f"fleetmatch_allocator_share_of {float(n)}"
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        for base in bases:
            while True:
                async with http.get(f"{base}/metrics") as resp:
                    if needle in await resp.text():
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{base} did not take its share of {n}")
                await asyncio.sleep(0.2)


def _samples(text: str) -> dict[str, float]:
    """Unlabelled samples of a Prometheus text page."""
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name and not line.startswith("#") and "{" not in name:
            out[name] = float(value)
    return out


def free_port() -> int:
    from fleetmatch.backends.redis.embedded import free_port as pick

    return pick()


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput (its CPU and latency figures with it): one slow phase,
    when the host steals the CPU, moves the median less than the mean."""
    return sorted(runs, key=lambda run: run["ok_per_second"])[len(runs) // 2]


async def closed_loop_runs(
    url: str,
    token: str,
    seconds: float,
    concurrency: int,
    repeat: int,
    pid: int,
    fresh_pool: Callable[[], Awaitable[None]],
) -> list[dict[str, Any]]:
    """``repeat`` closed-loop runs at the maximum rate, each against a full pool."""
    runs = []
    for _ in range(repeat):
        await fresh_pool()
        runs.append(await run_load(url, token, seconds, concurrency, server_pid=pid))
    return runs


def drained(runs: list[dict[str, Any]]) -> int:
    """Closed-loop runs that ran the pool dry: they timed cheap 429s too, so their figures are not an
    allocation rate (a longer ``--seconds`` than the pool lasts at the rate reached)."""
    return sum(1 for run in runs if run.get("statuses", {}).get("429"))


def summary(runs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Every run's throughput and CPU per request, in the order run."""
    return {
        "ok_per_second": [run["ok_per_second"] for run in runs],
        "server_cpu_us_per_request": [run.get("server_cpu_us_per_request") for run in runs],
    }


async def at_half_rate(
    url: str,
    token: str,
    seconds: float,
    concurrency: int,
    rate: float,
    pid: int,
    fresh_pool: Callable[[], Awaitable[None]],
) -> dict[str, Any]:
    """``HALF_RATE_RUNS`` open-loop runs at ``rate``, each against a full pool: the median run by
    p99, the worst p99, how many runs missed the goal, and every run's figures."""
    runs = []
    for _ in range(HALF_RATE_RUNS):
        await fresh_pool()
        runs.append(await run_load(url, token, seconds, concurrency, rate=rate, server_pid=pid))
    p99s = sorted(r["p99_ms"] for r in runs)
    return {
        **sorted(runs, key=lambda r: r["p99_ms"])[len(runs) // 2],
        "p99_ms_max": p99s[-1],
        "runs_over_p99_goal": sum(p > P99_GOAL_MS for p in p99s),
        "runs": {**summary(runs), "p99_ms": [r["p99_ms"] for r in runs]},
    }


async def bench(
    redis_url: str, seconds: float, concurrency: int, profile: str | None = None, repeat: int = 3
) -> dict[str, Any]:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    token = secrets.token_urlsafe(24)
    await populate(redis_url, namespace, SERVERS)
    report: dict[str, Any] = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
        "servers": SERVERS,
        "nodes": NODES,
        "seconds_per_phase": seconds,
        "concurrency": concurrency,
        "repeat": repeat,
    }

    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "FLEETMATCH_NAMESPACE": namespace,
        "FLEETMATCH_ALLOCATOR_TOKEN": token,
        "FLEETMATCH_LOG_LEVEL": "WARNING",
    }
    ports = [free_port()]
    procs = [
        await start([sys.executable, "-m", "loadtest.bench_allocate", "--serve-baseline", str(port)], dict(os.environ))
    ]
    try:
        baseline_pid = procs[0].pid
        baseline_url = f"http://127.0.0.1:{port}/v1/allocations"
        await wait_http(baseline_url)
        await run_load(baseline_url, token, 0.5, concurrency)  # warm-up
        runs = [
            await run_load(baseline_url, token, seconds, concurrency, server_pid=baseline_pid) for _ in range(repeat)
        ]
        report["baseline"] = median_run(runs)
        report["baseline_runs"] = summary(runs)
        report["baseline_requests_per_second"] = report["baseline"]["ok_per_second"]

        url = f"http://127.0.0.1:{ports[0]}/v1/allocations"
        base = f"http://127.0.0.1:{ports[0]}"
        grpc_port = free_port()

        async def start_allocator(*extra: str, **more_env: str) -> int:
            profiled = ["-m", "cProfile", "-o", profile, "-m"] if profile and "--workers" not in extra else ["-m"]
            argv = [sys.executable, *profiled, "fleetmatch", "allocator", "--port", str(ports[0]), *extra]
            proc = await start(argv, {**env, **more_env})
            procs.append(proc)
            await wait_http(f"{base}/healthz")
            return proc.pid

        async def fresh_pool() -> None:
            await reset(redis_url, namespace)
            await caught_up([base], SERVERS)

        allocator_pid = await start_allocator("--grpc-port", str(grpc_port))
        await run_load(url, token, 0.3, concurrency)  # warm-up

        async def max_rate(pid: int) -> list[dict[str, Any]]:
            return await closed_loop_runs(url, token, seconds, concurrency, repeat, pid, fresh_pool)

        conflicts = await claim_conflicts(base, 1)
        runs = await max_rate(allocator_pid)
        conflicts = await claim_conflicts(base, 1) - conflicts
        one = report["one_allocator_max"] = median_run(runs)
        report["one_allocator_max_runs"] = summary(runs)
        # Latency at half that rate, open loop, beside the trivial handler at the very same rate:
        # the generator, the kernel and the other core's load add the same to both.
        half = one["ok_per_second"] / 2

        at_half = await at_half_rate(url, token, seconds, concurrency, half, allocator_pid, fresh_pool)
        report["one_allocator_at_half_rate"] = at_half
        report["baseline_at_half_rate"] = await run_load(
            baseline_url, token, seconds, concurrency, rate=half, server_pid=baseline_pid
        )
        await fresh_pool()
        target = f"127.0.0.1:{grpc_port}"
        await run_load(target, token, 0.3, concurrency, grpc_target=True)  # warm-up (channel, stubs)
        await fresh_pool()
        report["grpc_one_allocator_max"] = await run_load(
            target, token, seconds, concurrency, server_pid=allocator_pid, grpc_target=True
        )
        await stop(procs.pop())

        # The same maximum-rate runs with every request on aiohttp (no fast path): its same-run baseline.
        slow_pid = await start_allocator(FLEETMATCH_ALLOCATOR_FAST_PATH="false")
        await run_load(url, token, 0.3, concurrency)  # warm-up
        slow_runs = await max_rate(slow_pid)
        report["aiohttp_path_max"] = median_run(slow_runs)
        report["aiohttp_path_max_runs"] = summary(slow_runs)
        await stop(procs.pop())

        # The same half-rate runs against an allocator that freezes its heap once, at start: the
        # collections then walk the servers each claim puts into the index (fleetmatch.gctune).
        unfrozen_pid = await start_allocator(FLEETMATCH_ALLOCATOR_HEAP_FREEZE_SECONDS="0")
        await run_load(url, token, 0.3, concurrency)  # warm-up
        report["no_heap_freeze_at_half_rate"] = await at_half_rate(
            url, token, seconds, concurrency, half, unfrozen_pid, fresh_pool
        )
        await stop(procs.pop())

        # The same port served by `fleetmatch allocator --workers 2` (each worker follows every
        # claim of the other through its own watch), driven by two load generators.
        supervisor_pid = await start_allocator("--workers", "2")
        await run_load(url, token, 0.3, concurrency)  # warm-up
        await fresh_pool()
        conflicts_2 = await claim_conflicts(base, 2)
        two = await run_load(url, token, seconds, concurrency // 2, server_pid=supervisor_pid, generators=2)
        conflicts_2 = await claim_conflicts(base, 2) - conflicts_2
        report["workers_2_max"] = two
        await stop(procs.pop())

        # Two separate allocators (a Deployment's replicas), each on its own port with its own load
        # generator: with slot leases (docs/allocation.md) and, as the same-run baseline, without.
        async def replicas(slot_leases: bool) -> dict[str, Any]:
            rports = [free_port(), free_port()]
            renv = {**env, "FLEETMATCH_ALLOCATOR_SLOT_LEASES": "true" if slot_leases else "false"}
            argv = [sys.executable, "-m", "fleetmatch", "allocator", "--port"]
            started = [await start([*argv, str(p)], renv) for p in rports]
            procs.extend(started)
            bases = [f"http://127.0.0.1:{p}" for p in rports]
            try:
                for b in bases:
                    await wait_http(f"{b}/healthz")
                if slot_leases:
                    await sharing(bases, len(bases))
                for b in bases:
                    await run_load(f"{b}/v1/allocations", token, 0.3, concurrency // 2)  # warm-up
                await reset(redis_url, namespace)
                await caught_up(bases, SERVERS)
                before = [await claim_conflicts(b, 1) for b in bases]
                loads = await asyncio.gather(
                    *(
                        run_load(f"{b}/v1/allocations", token, seconds, concurrency // 2, server_pid=proc.pid)
                        for b, proc in zip(bases, started, strict=True)
                    )
                )
                lost = sum([await claim_conflicts(b, 1) for b in bases]) - sum(before)
            finally:
                for proc in started:
                    procs.remove(proc)
                    await stop(proc)
            ok = sum(load["ok"] for load in loads)
            cpu = sum(load.get("server_cpu_seconds", 0.0) for load in loads)
            return {
                "ok": ok,
                "ok_per_second": round(sum(load["ok_per_second"] for load in loads), 1),
                "server_cpu_us_per_request": round(cpu / ok * 1e6, 1) if ok else None,
                "claim_conflicts_per_allocation": round(lost / max(1, ok), 3),
                "per_allocator": loads,
            }

        replica_phases = {
            name: await replicas(slot_leases)
            for slot_leases, name in ((True, "replicas_2"), (False, "replicas_2_no_slot_leases"))
        }
        report.update({f"{name}_max": phase for name, phase in replica_phases.items()})

        cpu_us = one.get("server_cpu_us_per_request")
        report["allocations_per_second"] = one["ok_per_second"]
        report["ratio_to_baseline"] = round(one["ok_per_second"] / report["baseline_requests_per_second"], 3)
        report["p50_ms"] = at_half["p50_ms"]
        report["p99_ms"] = at_half["p99_ms"]
        report["p99_ms_max"] = at_half["p99_ms_max"]
        report["half_rate_runs_over_10ms"] = at_half["runs_over_p99_goal"]
        unfrozen = report["no_heap_freeze_at_half_rate"]
        report["no_heap_freeze_p99_ms"] = unfrozen["p99_ms"]
        report["no_heap_freeze_p99_ms_max"] = unfrozen["p99_ms_max"]
        report["no_heap_freeze_half_rate_runs_over_10ms"] = unfrozen["runs_over_p99_goal"]
        report["cpu_us_per_allocation_at_half_rate"] = at_half.get("server_cpu_us_per_request")
        report["no_heap_freeze_cpu_us_per_allocation_at_half_rate"] = unfrozen.get("server_cpu_us_per_request")
        report["baseline_p50_ms_at_half_rate"] = report["baseline_at_half_rate"]["p50_ms"]
        report["baseline_p99_ms_at_half_rate"] = report["baseline_at_half_rate"]["p99_ms"]
        report["cpu_us_per_allocation"] = cpu_us
        report["aiohttp_path_allocations_per_second"] = report["aiohttp_path_max"]["ok_per_second"]
        report["aiohttp_path_cpu_us_per_allocation"] = report["aiohttp_path_max"].get("server_cpu_us_per_request")
        replica_loads = [load for phase in replica_phases.values() for load in phase["per_allocator"]]
        report["phases_that_drained_the_pool"] = drained([*runs, *slow_runs, *two["per_generator"], *replica_loads])
        report["baseline_cpu_us_per_request"] = report["baseline"].get("server_cpu_us_per_request")
        report["grpc_allocations_per_second"] = report["grpc_one_allocator_max"]["ok_per_second"]
        report["grpc_cpu_us_per_allocation"] = report["grpc_one_allocator_max"].get("server_cpu_us_per_request")
        report["workers_2_allocations_per_second"] = two["ok_per_second"]
        report["workers_2_ratio_to_one_worker"] = round(two["ok_per_second"] / one["ok_per_second"], 3)
        report["workers_2_cpu_us_per_allocation"] = two.get("server_cpu_us_per_request")
        # Claims that lost a race (a wasted write and another choice each), per allocation: the
        # workers' shares keep them apart (docs/allocation.md); one worker races nobody.
        report["claim_conflicts_per_allocation"] = round(conflicts / max(1, sum(r["ok"] for r in runs)), 3)
        report["workers_2_claim_conflicts_per_allocation"] = round(conflicts_2 / max(1, two["ok"]), 3)
        # What one more core running one more worker would add: a worker allocates as many per
        # second as one CPU-second buys at the CPU cost per allocation measured with two workers
        # (which includes following the other worker's claims through the watch).
        if two.get("server_cpu_us_per_request"):
            report["projected_allocations_per_second_per_added_core"] = round(1e6 / two["server_cpu_us_per_request"], 1)
        if cpu_us:
            report["projected_allocations_per_second_one_full_core"] = round(1e6 / cpu_us, 1)
        # Separate allocators (replicas) split the servers by slot leases; without them, the same
        # two race as the workers did before their shares (the same-run baseline).
        for name, phase in replica_phases.items():
            report[f"{name}_allocations_per_second"] = phase["ok_per_second"]
            report[f"{name}_cpu_us_per_allocation"] = phase["server_cpu_us_per_request"]
            report[f"{name}_claim_conflicts_per_allocation"] = phase["claim_conflicts_per_allocation"]
    finally:
        for proc in procs:
            await stop(proc)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    # 1 s: at 6,700+ allocations/s a 1.5 s phase drains the 10,000-server pool and times 429s
    # (``phases_that_drained_the_pool`` counts those).
    parser.add_argument("--seconds", type=float, default=1.0, help="duration of each measured phase")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight per load generator")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of the maximum-rate phases (baseline, one allocator); median kept"
    )
    parser.add_argument(
        "--profile", metavar="FILE", help="run the one-worker allocator under cProfile, stats written to FILE"
    )
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--serve-baseline", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--grpc-load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline)
        return
    if args.grpc_load:
        print(json.dumps(asyncio.run(grpc_load(args.grpc_load, args.token, args.seconds, args.concurrency))))
        return
    if args.load:
        payloads = [post(args.load, args.token, BODY)]
        print(json.dumps(asyncio.run(load(args.load, payloads, args.seconds, args.concurrency, args.rate))))
        return
    from fleetmatch.backends.redis.embedded import EmbeddedRedis

    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        report = asyncio.run(bench(redis_url, args.seconds, args.concurrency, args.profile, args.repeat))
    else:
        with (
            tempfile.TemporaryDirectory(prefix="fleetmatch-bench-") as tmp,
            EmbeddedRedis(Path(tmp), persist=False) as r,
        ):
            report = asyncio.run(bench(r.url, args.seconds, args.concurrency, args.profile, args.repeat))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
