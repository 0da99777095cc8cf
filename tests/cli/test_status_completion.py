"""``fleetmatch status`` as a process against a stack.json whose components are real HTTP servers
and whose Redis is the session's; ``fleetmatch completion`` as bash reads it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from fleetmatch.backends.redis.backend import redis_backend_on
from fleetmatch.backends.redis.client import connect
from fleetmatch.backends.redis.embedded import EmbeddedRedis
from fleetmatch.models import Fleet, FleetStatus, ObjectMeta
from fleetmatch.stackfile import StackInfo
from tests.cli.conftest import Cli, fleet_spec

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(60)


class Component:
    """A web server answering /readyz with whatever ``ready`` says."""

    def __init__(self) -> None:
        self.ready = True
        self.url = ""

    async def readyz(self, _: web.Request) -> web.Response:
        if self.ready:
            return web.json_response({"status": "ok", "checks": {}})
        body = {"status": "unavailable", "checks": {"store": {"ok": False, "message": "redis: connection refused"}}}
        return web.json_response(body, status=503)


@pytest.fixture
async def components() -> AsyncIterator[dict[str, Component]]:
    out: dict[str, Component] = {}
    runners: list[web.AppRunner] = []
    for name in ("metrics", "allocator", "matchmaker"):
        component = Component()
        app = web.Application()
        app.router.add_get("/readyz", component.readyz)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        component.url = f"http://127.0.0.1:{port}" + ("/metrics" if name == "metrics" else "")
        out[name], runners = component, [*runners, runner]
    yield out
    for runner in runners:
        await runner.cleanup()


def write_stack(data_dir: Path, redis_url: str, components: dict[str, Component], pid: int) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    StackInfo(
        redis_url=redis_url,
        metrics_url=components["metrics"].url,
        allocator_url=components["allocator"].url,
        allocator_token="t" * 32,
        matchmaker_url=components["matchmaker"].url,
        player_token_secret="s" * 32,
        namespace="default",
        node="node-a",
        data_dir=str(data_dir),
        pid=pid,
    ).write(data_dir)


async def status(data_dir: Path, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | {"FLEETMATCH_DATA_DIR": str(data_dir)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetmatch", "status", *args, cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 50)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_status_checks_every_component_redis_nodes_and_fleets(
    redis_server: EmbeddedRedis, components: dict[str, Component], tmp_path: Path
) -> None:
    client = connect(redis_server.url, name="tests")
    await client.flushall()
    backend = redis_backend_on(client)
    try:
        assert backend.nodes is not None
        await backend.nodes.heartbeat("node-a", boot="b1", address="10.0.0.7", capacity=8)
        fleet = await backend.fleets.create(Fleet(ObjectMeta(name="arena"), fleet_spec(2)))
        await backend.fleets.update(Fleet(fleet.metadata, fleet.spec, FleetStatus(replicas=2, ready_replicas=2)))
        data_dir = tmp_path / "data"
        write_stack(data_dir, redis_server.url, components, os.getpid())

        code, out, err = await status(data_dir)
        assert code == 0, (out, err)
        table = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
        assert set(table) == {"stack", "metrics", "allocator", "matchmaker", "redis", "node/node-a", "fleet/arena"}
        assert all(row[2] == "ok" for row in table.values()), out
        assert table["allocator"][1] == components["allocator"].url + "/readyz"
        assert "2/2 ready" in out

        components["matchmaker"].ready = False
        current = await backend.fleets.get("arena")
        await backend.fleets.update(Fleet(current.metadata, current.spec, FleetStatus(replicas=1, ready_replicas=1)))
        code, out, _ = await status(data_dir, "-o", "json")
        assert code == 1
        doc = json.loads(out)
        failing = {c["name"]: c["detail"] for c in doc["checks"] if not c["ok"]}
        assert doc["healthy"] is False and set(failing) == {"matchmaker", "fleet/arena"}
        assert "redis: connection refused" in failing["matchmaker"] and "1/2 ready" in failing["fleet/arena"]
    finally:
        await backend.aclose()
        await client.aclose()


async def test_status_without_a_running_stack_says_how_to_start_one(
    components: dict[str, Component], tmp_path: Path
) -> None:
    code, out, err = await status(tmp_path / "nothing")
    assert code == 1 and out == "" and err.count("\n") == 1 and "`fleetmatch up`" in err and err.startswith("error: ")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await proc.wait()  # a pid that is no longer running
    write_stack(tmp_path / "stale", "redis://127.0.0.1:1", components, proc.pid)
    code, _, err = await status(tmp_path / "stale")
    assert code == 1 and f"pid {proc.pid}" in err and "is not running" in err and "fleetmatch up" in err


def test_completion_scripts(fm: Cli, tmp_path: Path) -> None:
    result = fm("completion", "bash")
    assert result.exit_code == 0 and "_FLEETMATCH_COMPLETE" in result.output and "fleetmatch" in result.output
    script = tmp_path / "fleetmatch.bash"
    script.write_text(result.output)
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    for shell in ("zsh", "fish"):
        other = fm("completion", shell)
        assert other.exit_code == 0 and "_FLEETMATCH_COMPLETE" in other.output, shell
    unknown = fm("completion", "tcsh")
    assert unknown.exit_code == 2 and unknown.stderr.startswith("error: ") and "tcsh" in unknown.stderr


def test_completion_completes_subcommands(fm: Cli) -> None:
    env = {"_FLEETMATCH_COMPLETE": "bash_complete", "COMP_WORDS": "fleetmatch gs de", "COMP_CWORD": "2"}
    result = fm(**env)
    assert result.exit_code == 0 and "plain,describe" in result.output.split()
