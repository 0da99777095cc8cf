"""Benchmark: how fast the stack recovers from the faults of the fault suite, and what it loses.

``python -m loadtest.bench_faults [--runs 3]`` prints JSON, each figure beside a baseline measured in
the same run:

- ``redis``: ``fleetmatch up`` under a steady load of ticket creates (4/s) and allocations (1/s);
  its embedded Redis is SIGKILLed. ``redis_back_seconds``: until the server answers PING again;
  ``recovery_seconds``: until a ticket create and an allocation both succeed again (the target is
  under 5 s after Redis is back); ``*_lost``: acknowledged tickets and allocations missing
  afterwards (the target is 0). Baseline: the requests' own median latency before the kill.
- ``node``: two node agents and a controller on one Redis, an allocator in this process;
  node agent ``node-a`` is SIGKILLed with its three Ready servers. ``fenced_seconds``: until the
  allocator stops handing them out; ``replaced_seconds``: until three servers are Ready on
  ``node-b``. Baseline: the node lease (``FLEETMATCH_NODE_LEASE_SECONDS``) the detection waits for.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import signal
import socket
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from loadtest.stack import start_stack, stop_stack


async def _until(check: Callable[[], Awaitable[bool] | bool], step: float, within: float = 120.0) -> float:
    """``time.monotonic()`` once ``check()`` holds (``TimeoutError`` after ``within`` seconds)."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {within:g}s")
        await asyncio.sleep(step)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


async def _redis_run(data_dir: Path) -> dict[str, Any]:
    from matchmaker.auth import mint_player_token

    proc = start_stack(data_dir, port_range="7600-7649")
    try:
        info = json.loads((data_dir / "stack.json").read_text())
        acked_tickets: dict[str, str] = {}
        acked_allocations: set[str] = set()
        ok_at: dict[str, float] = {}
        first_ok: dict[str, float] = {}
        """Per kind: the first success of a request sent after the kill."""
        latency: dict[str, list[float]] = {"ticket": [], "allocation": []}
        killed_at = float("inf")

        async def tickets(http: aiohttp.ClientSession) -> None:
            for n in itertools.count():
                player = f"p{n}"
                token = mint_player_token(info["player_token_secret"], player, 600, time.time())
                body = {"queue": "duel", "players": [{"id": player, "attributes": {"skill": 1000 + n % 50}}]}
                started = time.monotonic()
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.post(
                        f"{info['matchmaker_url']}/v1/tickets", json=body, headers={"Authorization": f"Bearer {token}"}
                    ) as resp:
                        if resp.status == 201:
                            acked_tickets[(await resp.json())["id"]] = player
                            ok_at["ticket"] = time.monotonic()
                            if started > killed_at:
                                first_ok.setdefault("ticket", ok_at["ticket"])
                            if started < killed_at:
                                latency["ticket"].append(time.monotonic() - started)
                await asyncio.sleep(0.25)

        async def allocations(http: aiohttp.ClientSession) -> None:
            body = {"spec": {"selectors": [{"matchLabels": {"agones.dev/fleet": "demo"}}]}}
            headers = {"Authorization": f"Bearer {info['allocator_token']}"}
            while True:
                started = time.monotonic()
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.post(f"{info['allocator_url']}/v1/allocations", json=body, headers=headers) as r:
                        if r.status == 201:
                            acked_allocations.add((await r.json())["status"]["gameServerName"])
                            ok_at["allocation"] = time.monotonic()
                            if started > killed_at:
                                first_ok.setdefault("allocation", ok_at["allocation"])
                            if started < killed_at:
                                latency["allocation"].append(time.monotonic() - started)
                await asyncio.sleep(1.0)

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
            load = [asyncio.create_task(job(http)) for job in (tickets, allocations)]
            await asyncio.sleep(4.0)
            (redis,) = [p for p in psutil.Process(proc.pid).children() if "server" in p.name()]
            port = int(info["redis_url"].rsplit(":", 1)[1].split("/")[0])
            servers_before = await _server_names(info)
            killed_at = time.monotonic()
            redis.send_signal(signal.SIGKILL)
            back_at = await _until(lambda: _answers(port), 0.01)
            await _until(lambda: len(first_ok) == 2, 0.02)
            recovered_at = max(first_ok.values())
            await asyncio.sleep(1.0)
            for task in load:
                task.cancel()
            await asyncio.gather(*load, return_exceptions=True)
            lost_tickets = await _missing_tickets(http, info, acked_tickets)
        lost_allocations = await _missing_servers(info, acked_allocations)
        lost_servers = await _missing_servers(info, servers_before)
        return {
            "redis_back_seconds": round(back_at - killed_at, 3),
            "recovery_seconds": round(recovered_at - killed_at, 3),
            "recovery_after_redis_back_seconds": round(recovered_at - back_at, 3),
            "ticket_recovery_seconds": round(first_ok["ticket"] - killed_at, 3),
            "allocation_recovery_seconds": round(first_ok["allocation"] - killed_at, 3),
            "load_intervals_seconds": {"ticket": 0.25, "allocation": 1.0},
            "tickets_acknowledged": len(acked_tickets),
            "tickets_lost": lost_tickets,
            "allocations_acknowledged": len(acked_allocations),
            "allocations_lost": lost_allocations,
            "gameservers_before_kill": len(servers_before),
            "gameservers_lost": lost_servers,
            "baseline_ticket_create_p50_ms": round(statistics.median(latency["ticket"]) * 1000, 2),
            "baseline_allocation_p50_ms": round(statistics.median(latency["allocation"]) * 1000, 2),
        }
    finally:
        stop_stack(proc)


async def _missing_tickets(http: aiohttp.ClientSession, info: dict[str, Any], tickets: dict[str, str]) -> int:
    from matchmaker.auth import mint_player_token

    lost = 0
    for ticket_id, player in tickets.items():
        token = mint_player_token(info["player_token_secret"], player, 600, time.time())
        async with http.get(
            f"{info['matchmaker_url']}/v1/tickets/{ticket_id}", headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            lost += resp.status == 404
    return lost


async def _server_names(info: dict[str, Any]) -> set[str]:
    from fleetmatch.backends.redis.client import connect
    from fleetmatch.backends.redis.store import RedisStore
    from fleetmatch.models import GameServer

    client = connect(info["redis_url"], name="bench-faults")
    try:
        return {g.name for g in (await RedisStore(client, GameServer).list())[0]}
    finally:
        await client.aclose()


async def _missing_servers(info: dict[str, Any], names: set[str]) -> int:
    """How many of ``names`` the store no longer has (the servers here live past the run: none
    is shut down by its game within it)."""
    return len(names - await _server_names(info))


async def _node_run(tmp: Path, lease: float) -> dict[str, Any]:
    import os
    import subprocess
    import sys

    from allocator.app import serve_allocator
    from allocator.fleetops import apply_fleet
    from fleetmatch.backends.redis.backend import redis_backend_on
    from fleetmatch.backends.redis.client import connect
    from fleetmatch.backends.redis.embedded import EmbeddedRedis
    from fleetmatch.models import GameServerState
    from fleetmatch.settings import AllocatorSettings
    from loadtest.stack import REPO

    def fleet_doc() -> Any:
        from fleetmatch.models import Fleet, FleetSpec, GameServerSpec, GameServerTemplate, ObjectMeta, ProcessTemplate

        process = ProcessTemplate(("python", "-m", "examples.udp_game.server"), working_dir=str(REPO))
        spec = FleetSpec(replicas=3, template=GameServerTemplate(spec=GameServerSpec(process=process)))
        return Fleet(metadata=ObjectMeta(name="arena"), spec=spec)

    with EmbeddedRedis(tmp / "redis", persist=False) as redis:
        env = {**os.environ, "REDIS_URL": redis.url, "FLEETMATCH_METRICS_PORT": "0", "FLEETMATCH_DATA_DIR": str(tmp)}
        env.update({"FLEETMATCH_NODE_LEASE_SECONDS": str(lease), "FLEETMATCH_LOG_LEVEL": "WARNING"})

        def start(*args: str, **extra: str) -> subprocess.Popen[bytes]:
            return subprocess.Popen([sys.executable, "-m", "fleetmatch", *args], cwd=REPO, env={**env, **extra},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

        client = connect(redis.url, name="bench-node")
        backend = redis_backend_on(client)
        procs = [start("controller")]
        try:
            await apply_fleet(backend.fleets, fleet_doc())
            node_a = start("node-agent", FLEETMATCH_NODE_NAME="node-a", FLEETMATCH_PORT_RANGE="7650-7669")
            procs.append(node_a)

            async def ready_on(node: str) -> list[str]:
                items, _ = await backend.gameservers.list()
                return [g.name for g in items if g.state is GameServerState.READY and g.status.node_name == node]

            async def three_ready(node: str) -> bool:
                return len(await ready_on(node)) >= 3

            await _until(lambda: three_ready("node-a"), 0.1)
            doomed = set(await ready_on("node-a"))
            procs.append(start("node-agent", FLEETMATCH_NODE_NAME="node-b", FLEETMATCH_PORT_RANGE="7670-7689"))
            async with serve_allocator(backend, AllocatorSettings(port=0), "b" * 16, node_lease=lease) as service:
                games = psutil.Process(node_a.pid).children(recursive=True)
                killed_at = time.monotonic()
                node_a.kill()
                for game in games:
                    with contextlib.suppress(psutil.Error):
                        game.kill()
                index = service.allocator.index
                fenced_at = await _until(lambda: not doomed & set(index.servers), 0.02)
                replaced_at = await _until(lambda: three_ready("node-b"), 0.05)
            return {
                "fenced_seconds": round(fenced_at - killed_at, 3),
                "replaced_seconds": round(replaced_at - killed_at, 3),
                "baseline_node_lease_seconds": lease,
            }
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
            await backend.aclose()
            await client.aclose()


async def main_async(runs: int, lease: float) -> dict[str, Any]:
    out: dict[str, Any] = {"redis": [], "node": []}
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="fleetmatch-faults-") as tmp:
            out["redis"].append(await _redis_run(Path(tmp) / "data"))
        with tempfile.TemporaryDirectory(prefix="fleetmatch-faults-") as tmp:
            out["node"].append(await _node_run(Path(tmp), lease))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_faults", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--node-lease", type=float, default=10.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args.runs, args.node_lease)), indent=2))


if __name__ == "__main__":
    main()
