"""Benchmark: conditional updates per second through the Redis store, next to plain Redis round trips.

Run ``python -m loadtest.bench_store`` (or ``make bench``); it prints one JSON document. It starts a
private embedded Redis unless ``REDIS_URL`` is set (then it writes only to a throw-away namespace and
deletes its keys afterwards). Every figure comes with its count and duration, and the baselines
(``PING`` and ``EVALSHA`` of ``return 1``) are measured in the same run, on the same client settings,
because the machines are shared and noisy: compare ratios, not absolute numbers across runs.

Each measurement is a function returning a dict; ``main()`` merges them into the report, so another
measurement (e.g. the node agent's memory per extra server) is one more function and one more line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import redis.asyncio as aioredis

from fleetmatch.backends.redis.client import connect
from fleetmatch.backends.redis.embedded import EmbeddedRedis
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.models import GameServer, GameServerSpec, GameServerState, ObjectMeta, ProcessTemplate, with_meta
from fleetmatch.settings import Settings
from fleetmatch.store import modify

CONCURRENCY = 8
"""Concurrent writers in the second store figure, each on its own GameServer."""


async def _run_for(seconds: float, step: Callable[[], Awaitable[object]]) -> tuple[int, float]:
    """Call ``step`` back to back for about ``seconds``; return (calls, elapsed)."""
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        await step()
        count += 1
        if count % 64 == 0 and time.perf_counter() >= deadline:
            break
    return count, time.perf_counter() - start


def _figure(count: int, elapsed: float) -> dict[str, float]:
    return {"count": count, "seconds": round(elapsed, 3), "per_second": round(count / elapsed, 1)}


async def _concurrently(seconds: float, step: Callable[[], Awaitable[object]]) -> tuple[int, float]:
    """``CONCURRENCY`` loops of ``step`` for about ``seconds``; return (total calls, elapsed)."""
    start = time.perf_counter()
    counts = await asyncio.gather(*(_run_for(seconds, step) for _ in range(CONCURRENCY)))
    return sum(c for c, _ in counts), time.perf_counter() - start


async def bench_roundtrips(client: aioredis.Redis, seconds: float) -> dict[str, Any]:
    """The floor any store operation stands on: one request, one reply (alone and concurrently)."""
    trivial = client.register_script("return 1")
    await trivial()  # load it, so the timed loop is EVALSHA only
    await _run_for(0.2, client.ping)  # warm-up
    ping = _figure(*await _run_for(seconds, client.ping))
    evalsha = _figure(*await _run_for(seconds, trivial))
    ping_concurrent = _figure(*await _concurrently(seconds, client.ping))
    return {
        "redis_roundtrips_per_second": ping["per_second"],
        "redis_ping": ping,
        "redis_evalsha_trivial": evalsha,
        f"redis_ping_concurrent_{CONCURRENCY}": ping_concurrent,
    }


def _bump(gs: GameServer) -> GameServer:
    n = int(gs.metadata.labels.get("n", "0")) + 1
    return with_meta(gs, labels={**gs.metadata.labels, "n": str(n)})


async def bench_store_updates(client: aioredis.Redis, namespace: str, seconds: float) -> dict[str, Any]:
    """Conditional updates: chained (read once, each write uses the version the last one returned),
    via ``modify`` (read + write per change), and chained from several concurrent writers."""
    store: RedisStore[GameServer] = RedisStore(client, GameServer, namespace)
    current = await store.create(GameServer(metadata=ObjectMeta(name="bench-0")))

    async def chained() -> None:
        nonlocal current
        current = await store.update(_bump(current))

    await _run_for(0.2, chained)  # warm-up (scripts loaded, pool connection open)
    sequential = _figure(*await _run_for(seconds, chained))
    via_modify = _figure(*await _run_for(seconds, lambda: modify(store, "bench-0", _bump)))

    servers = [await store.create(GameServer(metadata=ObjectMeta(name=f"bench-{i + 1}"))) for i in range(CONCURRENCY)]

    async def writer(gs: GameServer, deadline: float) -> int:
        count = 0
        while time.perf_counter() < deadline:
            gs = await store.update(_bump(gs))
            count += 1
        return count

    start = time.perf_counter()
    counts = await asyncio.gather(*(writer(gs, start + seconds) for gs in servers))
    concurrent = _figure(sum(counts), time.perf_counter() - start)
    return {
        "store_updates_per_second": sequential["per_second"],
        "store_updates_sequential": sequential,
        "store_modify_sequential": via_modify,
        f"store_updates_concurrent_{CONCURRENCY}": concurrent,
        "store_updates_concurrent_per_second": concurrent["per_second"],
    }


async def server_info(client: aioredis.Redis, binary: str | None) -> dict[str, Any]:
    info = await client.info("server")
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "redis_binary": binary or "REDIS_URL",
        "redis_version": info.get("redis_version"),
        "server_name": info.get("server_name", "redis"),
        "valkey_version": info.get("valkey_version"),
    }


REPO = Path(__file__).resolve().parents[1]
AGENT_SERVERS = 50


async def _wait_ready(store: RedisStore[GameServer], count: int, within: float = 120.0) -> None:
    async with asyncio.timeout(within):
        while True:
            items, _ = await store.list()
            if sum(g.state is GameServerState.READY for g in items) >= count:
                return
            await asyncio.sleep(0.2)


def _rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


async def _settled_rss_mb(pid: int, seconds: float = 2.0) -> float:
    """RSS after a pause, so start-up garbage and in-flight work do not count."""
    await asyncio.sleep(seconds)
    return _rss_mb(pid)


async def bench_agent_memory(client: aioredis.Redis, url: str, namespace: str) -> dict[str, Any]:
    """RSS of a ``fleetmatch node-agent`` process hosting 1 vs ``AGENT_SERVERS`` game servers.

    The baseline beside it is the RSS of one game-server process (a small Python program): what a
    design with one Python sidecar process per game server would pay per server at the very least.
    """
    store = RedisStore(client, GameServer, namespace)
    process = ProcessTemplate(("python", "-m", "examples.udp_game.server"), working_dir=str(REPO))

    def server(i: int) -> GameServer:
        return GameServer(metadata=ObjectMeta(name=f"mem-{i:03d}"), spec=GameServerSpec(process=process))

    with tempfile.TemporaryDirectory(prefix="fleetmatch-agent-") as data_dir:
        env = {
            **os.environ,
            "REDIS_URL": url,
            "FLEETMATCH_NAMESPACE": namespace,
            "FLEETMATCH_DATA_DIR": data_dir,
            "FLEETMATCH_PORT_RANGE": "7900-7999",
            "FLEETMATCH_METRICS_PORT": "0",
            "FLEETMATCH_MAX_SERVERS": str(AGENT_SERVERS + 10),
            "FLEETMATCH_LOG_LEVEL": "WARNING",
        }
        agent = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fleetmatch",
            "node-agent",
            cwd=REPO,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            rss_idle = await _settled_rss_mb(agent.pid)
            await store.create(server(0))
            await _wait_ready(store, 1)
            rss_one = await _settled_rss_mb(agent.pid)
            await asyncio.gather(*(store.create(server(i)) for i in range(1, AGENT_SERVERS)))
            await _wait_ready(store, AGENT_SERVERS)
            rss_many = await _settled_rss_mb(agent.pid, 3.0)
            games = psutil.Process(agent.pid).children()
            game_mb = sum(_rss_mb(g.pid) for g in games) / max(1, len(games))
        finally:
            agent.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(60):
                    await agent.wait()
            except TimeoutError:
                agent.kill()
                await agent.wait()
    return {
        "agent_mb_per_extra_server": round((rss_many - rss_one) / (AGENT_SERVERS - 1), 3),
        "agent_memory": {
            "servers": AGENT_SERVERS,
            "rss_mb_idle": round(rss_idle, 1),
            "rss_mb_with_1": round(rss_one, 1),
            f"rss_mb_with_{AGENT_SERVERS}": round(rss_many, 1),
            "baseline_python_process_mb": round(game_mb, 1),
        },
    }


async def _cleanup(client: aioredis.Redis, namespace: str) -> None:
    keys = RedisStore(client, GameServer, namespace).keys
    await client.delete(keys.objs, keys.vers, keys.meta, keys.events, keys.floor)


async def run(url: str, binary: str | None, seconds: float, *, agent: bool = True) -> dict[str, Any]:
    client = connect(url, name="bench")
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        report: dict[str, Any] = {"machine": await server_info(client, binary), "seconds_per_figure": seconds}
        report.update(await bench_roundtrips(client, seconds))
        report.update(await bench_store_updates(client, namespace, seconds))
        report["store_update_cost_in_roundtrips"] = round(
            report["redis_roundtrips_per_second"] / report["store_updates_per_second"], 2
        )
        if agent:
            report.update(await bench_agent_memory(client, url, f"{namespace}-agent"))
        return report
    finally:
        await _cleanup(client, namespace)
        await _cleanup(client, f"{namespace}-agent")
        await client.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each timed figure (default 2)")
    parser.add_argument("--no-agent", action="store_true", help="skip the node agent memory figure (~30 s)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if settings.redis.url:
        report = asyncio.run(run(settings.redis.url, None, args.seconds, agent=not args.no_agent))
    else:
        with tempfile.TemporaryDirectory(prefix="fleetmatch-bench-") as tmp:
            server = EmbeddedRedis(Path(tmp), binary=settings.redis.server_binary, persist=False)
            with server:
                report = asyncio.run(run(server.url, server.binary, args.seconds, agent=not args.no_agent))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
