"""``fleetmatch status``: what runs, where, and whether it is healthy, in one look.

From ``<data dir>/stack.json`` (what ``fleetmatch up`` wrote): is its process alive, does each
component answer ``/readyz``, does its Redis answer, are its nodes Ready and its fleets at their
replicas. Exit 0 only when everything is; 1 otherwise, so scripts can wait on it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, replace

import aiohttp
import click

from fleetmatch.backends import open_backend
from fleetmatch.cli.options import settings_of
from fleetmatch.cli.output import table
from fleetmatch.cli.shapes import node_views
from fleetmatch.errors import ConfigError, FleetmatchError
from fleetmatch.running import run
from fleetmatch.settings import Settings
from fleetmatch.stackfile import STACK_FILE, StackInfo, alive

PROBE_TIMEOUT = 3.0
"""Seconds a component or Redis gets to answer; a slower one counts as not ready."""


@dataclass(frozen=True)
class Check:
    name: str
    where: str
    ok: bool
    detail: str


async def readyz(session: aiohttp.ClientSession, name: str, base: str) -> Check:
    url = base.rstrip("/") + "/readyz"
    try:
        async with session.get(url) as response:
            body = await response.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Check(name, url, False, f"no answer: {exc or type(exc).__name__}")
    if response.status == 200:
        return Check(name, url, True, "ready")
    try:
        doc = json.loads(body)
        failing = [f"{k}: {v.get('message')}" for k, v in doc.get("checks", {}).items() if not v.get("ok")]
        detail = f"{doc.get('status', response.status)}" + (f" ({'; '.join(failing)})" if failing else "")
    except (ValueError, AttributeError):
        detail = f"HTTP {response.status}"
    return Check(name, url, False, detail)


async def store_checks(settings: Settings, info: StackInfo) -> list[Check]:
    """Redis, the nodes and the fleets of the stack's namespace."""
    local = replace(
        settings, backend="redis", namespace=info.namespace, redis=replace(settings.redis, url=info.redis_url)
    )
    checks = []
    async with open_backend(local, client_name="fleetmatch-status") as backend:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await backend.ping()
        except (FleetmatchError, TimeoutError) as exc:
            return [Check("redis", info.redis_url, False, f"no answer: {exc or 'timeout'}")]
        checks.append(Check("redis", info.redis_url, True, "ok"))
        if backend.nodes is not None:
            records, now = await backend.nodes.list()
            for n in node_views(records, now, settings.node.lease_seconds, []):
                detail = f"{n.status}, heartbeat {n.heartbeat} ago"
                checks.append(Check(f"node/{n.record.name}", n.record.address, n.ready, detail))
        for f in (await backend.fleets.list())[0]:
            s = f.status
            up = s.ready_replicas + s.allocated_replicas + s.reserved_replicas
            detail = f"{s.ready_replicas}/{f.spec.replicas} ready, {s.allocated_replicas} allocated"
            checks.append(Check(f"fleet/{f.name}", info.namespace, up >= f.spec.replicas, detail))
    return checks


async def gather(settings: Settings, info: StackInfo) -> list[Check]:
    checks = [Check("stack", info.data_dir, True, f"pid {info.pid} running")]
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        probes = await asyncio.gather(
            readyz(session, "metrics", info.metrics_url.removesuffix("/metrics")),
            readyz(session, "allocator", info.allocator_url),
            readyz(session, "matchmaker", info.matchmaker_url),
            *(
                [readyz(session, "dashboard", info.dashboard_url.removesuffix("/dashboard/"))]
                if info.dashboard_url
                else []
            ),
        )
    return [*checks, *probes, *await store_checks(settings, info)]


@click.command("status")
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def status_cmd(ctx: click.Context, output: str) -> None:
    """What the local stack runs, where, and whether it is healthy (exit 1 if anything is not)."""
    settings = settings_of(ctx)
    info = StackInfo.load(settings.data_dir)
    where = settings.data_dir / STACK_FILE
    if info is None:
        raise ConfigError(
            f"no fleetmatch stack in {settings.data_dir} (no {STACK_FILE}): start one with `fleetmatch up`"
        )
    if not alive(info.pid):
        raise ConfigError(f"the stack of {where} (pid {info.pid}) is not running: start it with `fleetmatch up`")
    checks = run(gather(settings, info))
    healthy = all(c.ok for c in checks)
    if output == "json":
        click.echo(json.dumps({"healthy": healthy, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        rows = [[c.name, c.where, "ok" if c.ok else "FAIL", c.detail] for c in checks]
        click.echo(table(["COMPONENT", "WHERE", "HEALTH", "DETAIL"], rows))
    ctx.exit(0 if healthy else 1)
