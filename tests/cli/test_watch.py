"""``gs list --watch`` and ``fleet list -w`` as processes on the session's Redis: the table, then a
row per change as the store reports it, and a quiet exit 0 on Ctrl-C (SIGINT)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from fleetmatch.backends.base import Backend
from fleetmatch.models import Fleet, GameServerState, ObjectMeta
from tests.cli.conftest import fleet_spec, put, server

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(60)
READY, ALLOCATED = GameServerState.READY, GameServerState.ALLOCATED


class Watcher:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def line(self) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), 20)
        assert raw, "the watch ended early"
        return raw.decode().rstrip("\n")

    async def document(self) -> dict[str, object]:
        """One pretty-printed JSON document (it ends with a closing brace at column 0)."""
        lines = [await self.line()]
        while lines[-1] != "}":
            lines.append(await self.line())
        doc: dict[str, object] = json.loads("\n".join(lines))
        return doc

    async def interrupt(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(self.proc.communicate(), 20)
        assert self.proc.returncode is not None
        return self.proc.returncode, err.decode()


Start = Callable[..., Awaitable[Watcher]]


@pytest.fixture
async def watch(redis_client: aioredis.Redis, tmp_path: Path) -> AsyncIterator[Start]:
    url = redis_client.connection_pool.connection_kwargs
    redis_url = f"redis://{url['host']}:{url['port']}"
    procs: list[asyncio.subprocess.Process] = []

    async def start(*args: str) -> Watcher:
        env = {**os.environ, "REDIS_URL": redis_url, "FLEETMATCH_DATA_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fleetmatch", *args, cwd=REPO, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        procs.append(proc)
        return Watcher(proc)

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_gs_list_watch_prints_a_row_per_change_and_exits_0_on_ctrl_c(backend: Backend, watch: Start) -> None:
    await put(backend, server("arena-a", READY, port=7001), server("arena-b", READY, port=7002))
    watcher = await watch("gs", "list", "--watch", "--fleet", "arena")
    header = await watcher.line()
    assert header.split()[:3] == ["NAME", "STATE", "ADDRESS"]
    first = [(await watcher.line()).split()[:2] for _ in range(2)]
    assert first == [["arena-a", "Ready"], ["arena-b", "Ready"]]

    current = await backend.gameservers.get("arena-a")
    await backend.gameservers.update(current.with_status(state=ALLOCATED))
    changed = await watcher.line()
    assert changed.split()[:3] == ["arena-a", "Allocated", "10.0.0.7:7001"]
    assert changed.index("Allocated") == header.index("STATE")  # aligned under the first table

    await put(backend, server("lobby-c", READY, fleet="lobby"))  # not this fleet's: no row
    await put(backend, server("arena-d", READY, port=7004))
    assert (await watcher.line()).split()[:2] == ["arena-d", "Creating"]
    assert (await watcher.line()).split()[:2] == ["arena-d", "Ready"]

    code, err = await watcher.interrupt()
    assert code == 0 and err == "", err


async def test_watch_only_as_json_prints_one_document_per_change(backend: Backend, watch: Start) -> None:
    created = await backend.fleets.create(Fleet(ObjectMeta(name="arena", labels={"team": "red"}), fleet_spec(1)))
    watcher = await watch("fleet", "list", "-w", "--watch-only", "-o", "json", "-l", "team=red")
    # --watch-only prints nothing before a change, and the process cannot tell when its watch
    # runs: scale until the first document shows up (the reader is never cancelled mid-document)
    reader = asyncio.create_task(watcher.document())
    replicas = 1
    while not reader.done():
        replicas += 1
        current = await backend.fleets.get("arena")
        await backend.fleets.update(replace(current, spec=replace(current.spec, replicas=replicas)))
        await asyncio.wait({reader}, timeout=0.5)
    doc = reader.result()
    assert doc["kind"] == "Fleet"
    assert doc["metadata"]["name"] == "arena" and doc["spec"]["replicas"] >= 2  # type: ignore[index]
    seen = doc["spec"]["replicas"]  # type: ignore[index]
    current = await backend.fleets.get("arena")
    await backend.fleets.update(replace(current, spec=replace(current.spec, replicas=99)))
    docs = [await watcher.document()]
    while docs[-1]["spec"]["replicas"] != 99:  # type: ignore[index]
        docs.append(await watcher.document())
    assert all(d["spec"]["replicas"] > seen for d in docs)  # type: ignore[index]
    assert created.name == "arena"
    code, err = await watcher.interrupt()
    assert code == 0 and err == "", err
