"""Benchmark: the SDK sidecar's footprint and throughput, each figure beside a same-run baseline.

``python -m loadtest.bench_sidecar`` from the repository root prints one JSON document. It starts a
private embedded Redis unless ``REDIS_URL`` is set (then it works in a throw-away namespace and
deletes its keys afterwards), one GameServer record, and one standalone sidecar process
(``python -m sdk_sidecar --gameserver NAME``, as Agones runs one sidecar per game server):

- ``sidecar_rss_mb``: its resident memory once serving, beside a bare ``python -c`` process and an
  idle process that only imports what the sidecar imports (``baseline_*``);
- ``http_health_pings_per_second``: ``POST /health`` with ``{}``, one keep-alive client, back to back
  (and 8 concurrent), beside a bare aiohttp handler answering ``{}`` in its own process (same loop
  policy: uvloop when installed);
- ``grpc_health_pings_per_second``: Empty messages on one ``Health`` client stream, counted once the
  server has acknowledged the half-close, beside a bare ``grpc.aio`` server counting them;
- ``store_writes_per_1000_calls``: 1,000 SDK calls (``SetLabel`` over 10 keys and ``UpdateCounter``
  +1, alternately, 8 in flight) and the store writes they caused (resource versions of the GameServer),
  beside 1,000 (one write per call) and Agones' 500 ms rate limit over the same burst;
- ``agent_mb_per_extra_server``: the node agent's marginal RSS per hosted game server, measured as
  ``loadtest.bench_store`` does (``--no-agent`` skips it: about a minute).

Clients run in this process; servers in their own. Machines are shared and noisy: compare ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import signal
import sys
import tempfile
import time
import uuid
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import redis.asyncio as aioredis

from fleetmatch.backends.redis.client import connect
from fleetmatch.backends.redis.embedded import EmbeddedRedis, free_port
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.models import (
    CounterStatus,
    GameServer,
    GameServerSpec,
    GameServerState,
    GameServerStatus,
    ObjectMeta,
    initial_status,
)
from fleetmatch.settings import Settings
from loadtest.bench_store import bench_agent_memory
from sdk_sidecar.client import SDK, Transport, grpc_available

REPO = Path(__file__).resolve().parents[1]
CONCURRENCY = 8
BURST_CALLS = 1000
AGONES_WRITE_INTERVAL = 0.5
"""Agones' sidecar writes to the API server at most every 500 ms (``--request-rate-limit``)."""

IMPORTS_ONLY = (
    "import asyncio, aiohttp, grpc, redis.asyncio, uvloop; import sdk_sidecar.host, fleetmatch.backends.redis.store; "
    "import time; time.sleep(600)"
)


def _rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def _figure(count: int, elapsed: float) -> dict[str, float]:
    return {"count": count, "seconds": round(elapsed, 3), "per_second": round(count / elapsed, 1)}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


async def _stop(proc: Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(20):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


@contextlib.asynccontextmanager
async def _process(
    *argv: str, env: dict[str, str] | None = None, announce: str | None = None
) -> AsyncIterator[Process]:
    """A child process (SIGTERM on the way out); with ``announce``, once that line came on stderr."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE if announce else asyncio.subprocess.DEVNULL,
    )
    drain: asyncio.Task[None] | None = None
    try:
        if announce is not None:
            assert proc.stderr is not None
            stderr = proc.stderr
            async with asyncio.timeout(30):
                while not (line := (await stderr.readline()).decode()).startswith(announce):
                    if not line:
                        raise RuntimeError(f"{argv[:4]} exited ({await proc.wait()}) before announcing itself")

            async def discard() -> None:
                while await stderr.readline():
                    pass

            drain = asyncio.create_task(discard())
        yield proc
    finally:
        await _stop(proc)
        if drain is not None:
            await drain


async def _settled_rss_mb(pid: int, seconds: float = 2.0) -> float:
    await asyncio.sleep(seconds)
    return _rss_mb(pid)


async def _run_for(seconds: float, step: Callable[[], Awaitable[object]]) -> tuple[int, float]:
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        await step()
        count += 1
        if count % 64 == 0 and time.perf_counter() >= deadline:
            return count, time.perf_counter() - start


async def _http_pings(url: str, seconds: float) -> dict[str, Any]:
    """``POST url`` with ``{}``: one client back to back, then ``CONCURRENCY`` clients."""
    body = b"{}"
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:

        async def ping() -> None:
            async with http.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"POST {url}: HTTP {resp.status}")

        await _run_for(0.3, ping)  # warm-up: connection open, code paths hot
        one = _figure(*await _run_for(seconds, ping))
        start = time.perf_counter()
        counts = await asyncio.gather(*(_run_for(seconds, ping) for _ in range(CONCURRENCY)))
        many = _figure(sum(c for c, _ in counts), time.perf_counter() - start)
    return {"one_client": one, f"concurrent_{CONCURRENCY}": many}


async def _grpc_pings(port: int, seconds: float) -> dict[str, Any]:
    """Empty messages on one Health client stream for ``seconds``; counted once the server has
    answered the half-close (so it has read every one)."""
    import grpc.aio

    import sdk_sidecar.grpc_gen.sdk_pb2 as sdk_pb2
    import sdk_sidecar.grpc_gen.sdk_pb2_grpc as sdk_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = sdk_pb2_grpc.SDKStub(channel)
        await channel.channel_ready()
        sent = 0

        async def pings(until: float) -> AsyncIterator[sdk_pb2.Empty]:
            nonlocal sent
            empty = sdk_pb2.Empty()
            while True:
                for _ in range(256):
                    sent += 1
                    yield empty
                if time.perf_counter() >= until:
                    return

        await stub.Health(pings(time.perf_counter() + 0.3))  # warm-up
        sent = 0
        start = time.perf_counter()
        await stub.Health(pings(start + seconds))
        return _figure(sent, time.perf_counter() - start)


# -- the baseline servers (``--baseline-server``: run in their own process) -------------------------


async def _baseline_server(http_port: int, grpc_port: int) -> None:
    """A bare aiohttp ``POST /health`` answering ``{}`` and a bare gRPC Health stream that counts."""
    import grpc
    import grpc.aio
    from aiohttp import web

    import sdk_sidecar.grpc_gen.sdk_pb2 as sdk_pb2

    async def health(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"{}", content_type="application/json")

    app = web.Application()
    app.router.add_post("/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", http_port).start()

    async def stream(requests: AsyncIterator[sdk_pb2.Empty], context: Any) -> sdk_pb2.Empty:
        async for _ in requests:
            pass
        return sdk_pb2.Empty()

    handler = grpc.stream_unary_rpc_method_handler(
        stream, request_deserializer=sdk_pb2.Empty.FromString, response_serializer=sdk_pb2.Empty.SerializeToString
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("agones.dev.sdk.SDK", {"Health": handler}),))
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    await server.start()
    print("baseline listening", file=sys.stderr, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop(None)
        await runner.cleanup()


def _run_baseline_server(http_port: int, grpc_port: int) -> None:
    from fleetmatch.running import loop_factory

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await _baseline_server(http_port, grpc_port)

    with (
        contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt),
        asyncio.Runner(loop_factory=loop_factory()) as runner,
    ):
        runner.run(main())


# -- the measurements ------------------------------------------------------------------------------


async def bench_rss(sidecar: Process) -> dict[str, Any]:
    rss = await _settled_rss_mb(sidecar.pid)
    async with _process(sys.executable, "-c", "import time; time.sleep(600)") as bare:
        bare_mb = await _settled_rss_mb(bare.pid, 1.0)
    async with _process(sys.executable, "-c", IMPORTS_ONLY) as imports:
        imports_mb = await _settled_rss_mb(imports.pid, 1.0)
    memory = psutil.Process(sidecar.pid).memory_full_info()
    return {
        "sidecar_rss_mb": round(rss, 1),
        # RSS counts shared libraries (libpython, grpc's core) that every Python process maps;
        # USS is what this process alone holds, i.e. what one more sidecar costs the machine.
        "sidecar_uss_mb": round(memory.uss / 2**20, 1),
        "sidecar_shared_mb": round(memory.shared / 2**20, 1),
        "baseline_python_process_mb": round(bare_mb, 1),
        "baseline_python_with_sidecar_imports_mb": round(imports_mb, 1),
    }


async def bench_pings(http_port: int, grpc_port: int, seconds: float) -> dict[str, Any]:
    http = await _http_pings(f"http://127.0.0.1:{http_port}/health", seconds)
    base_http_port, base_grpc_port = free_port(), free_port()
    argv = (sys.executable, "-m", "loadtest.bench_sidecar", "--baseline-server", str(base_http_port))
    async with _process(*argv, str(base_grpc_port), announce="baseline listening"):
        base_http = await _http_pings(f"http://127.0.0.1:{base_http_port}/health", seconds)
        base_grpc = await _grpc_pings(base_grpc_port, seconds) if grpc_available() else None
    report: dict[str, Any] = {
        "http_health_pings_per_second": http["one_client"]["per_second"],
        "http_health": http,
        "baseline_bare_aiohttp_health": base_http,
        "http_health_vs_baseline": _ratio(http["one_client"]["per_second"], base_http["one_client"]["per_second"]),
    }
    if not grpc_available():
        report["grpc_health_pings_per_second"] = None
        report["grpc_health_skipped"] = "grpcio or sdk_sidecar.grpc_gen does not import"
        return report
    grpc_figure = await _grpc_pings(grpc_port, seconds)
    assert base_grpc is not None
    report.update(
        {
            "grpc_health_pings_per_second": grpc_figure["per_second"],
            "grpc_health": grpc_figure,
            "baseline_bare_grpc_health": base_grpc,
            "grpc_health_vs_baseline": _ratio(grpc_figure["per_second"], base_grpc["per_second"]),
        }
    )
    return report


async def bench_store_writes(
    store: RedisStore[GameServer], name: str, http_port: int, grpc_port: int
) -> dict[str, Any]:
    """1,000 SDK calls in a burst; the store writes they caused, counted from the store's own events."""
    _, since = await store.list()
    versions: set[str] = set()
    target: int | None = None
    landed = asyncio.Event()

    async def watch() -> None:
        async for event in store.watch(since):
            gs = event.object
            if gs.name == name:
                versions.add(gs.metadata.resource_version)
                if gs.status.counters["rooms"].count == target:
                    landed.set()

    watching = asyncio.create_task(watch())
    transport: Transport = "grpc" if grpc_available() else "http"
    try:
        async with SDK(port=http_port, grpc_port=grpc_port, transport=transport) as sdk:
            await sdk.connect(timeout=10)
            target = (await sdk.get_counter("rooms")).count + BURST_CALLS // 2
            calls = iter(range(BURST_CALLS))

            async def caller() -> None:
                for i in calls:
                    if i % 2:
                        await sdk.increment_counter("rooms")
                    else:
                        await sdk.set_label(f"k{i % 20 // 2}", str(i))

            start = time.perf_counter()
            await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
            burst = time.perf_counter() - start
            async with asyncio.timeout(30):
                await landed.wait()
            await asyncio.sleep(1.0)  # anything still coming would be counted too
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    return {
        "store_writes_per_1000_calls": round(len(versions) * 1000 / BURST_CALLS, 1),
        "store_writes_burst": {
            "calls": BURST_CALLS,
            "transport": transport,
            "in_flight": CONCURRENCY,
            "burst_seconds": round(burst, 3),
            "calls_per_second": round(BURST_CALLS / burst, 1),
            "store_writes": len(versions),
            "write_interval_seconds": Settings.from_env().sdk.write_interval,
            "baseline_one_write_per_call": BURST_CALLS,
            "baseline_agones_500ms_rate_limit_estimate": math.ceil(burst / AGONES_WRITE_INTERVAL) + 1,
        },
    }


async def run(url: str, seconds: float, *, agent: bool) -> dict[str, Any]:
    client: aioredis.Redis = connect(url, name="bench-sidecar")
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    store = RedisStore(client, GameServer, namespace)
    name = "bench-sidecar"
    spec = GameServerSpec(counters={"rooms": CounterStatus(count=0, capacity=1_000_000)})
    status = initial_status(spec, GameServerStatus(state=GameServerState.READY))
    await store.create(GameServer(metadata=ObjectMeta(name=name), spec=spec, status=status))
    http_port, grpc_port = free_port(), free_port()
    env = {**os.environ, "REDIS_URL": url, "FLEETMATCH_NAMESPACE": namespace, "FLEETMATCH_LOG_LEVEL": "WARNING"}
    report: dict[str, Any] = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
        "seconds_per_figure": seconds,
    }
    try:
        argv = ("--gameserver", name, "--http-port", str(http_port), "--grpc-port", str(grpc_port))
        async with _process(sys.executable, "-m", "sdk_sidecar", *argv, env=env, announce="sdk sidecar ") as sidecar:
            report.update(await bench_rss(sidecar))
            report.update(await bench_pings(http_port, grpc_port, seconds))
            report.update(await bench_store_writes(store, name, http_port, grpc_port))
            report["sidecar_rss_mb_after_load"] = round(_rss_mb(sidecar.pid), 1)
        if agent:
            report.update(await bench_agent_memory(client, url, f"{namespace}-agent"))
        return report
    finally:
        for ns in (namespace, f"{namespace}-agent"):
            keys = RedisStore(client, GameServer, ns).keys
            await client.delete(keys.objs, keys.vers, keys.meta, keys.events, keys.floor)
        await client.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each timed figure (default 2)")
    parser.add_argument("--no-agent", action="store_true", help="skip the node agent memory figure (~1 min)")
    parser.add_argument(
        "--baseline-server", nargs=2, type=int, metavar=("HTTP_PORT", "GRPC_PORT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.baseline_server:
        _run_baseline_server(*args.baseline_server)
        return
    settings = Settings.from_env()
    if settings.redis.url:
        report = asyncio.run(run(settings.redis.url, args.seconds, agent=not args.no_agent))
    else:
        with tempfile.TemporaryDirectory(prefix="fleetmatch-bench-") as tmp:
            server = EmbeddedRedis(Path(tmp), binary=settings.redis.server_binary, persist=False)
            with server:
                report = asyncio.run(run(server.url, args.seconds, agent=not args.no_agent))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
