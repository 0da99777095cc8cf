"""Operations and inspection of resources: ``apply``, ``fleet``, ``autoscaler`` and ``gs``.

They talk to the running stack's Redis (``REDIS_URL``, or the one ``fleetmatch up`` recorded in
``stack.json``).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click

from fleetmatch.backends import Backend, open_backend
from fleetmatch.cli.options import age, backend_settings, filename_option, output_option, settings_of, table
from fleetmatch.errors import ConfigError
from fleetmatch.manifests import load_autoscalers, load_fleets, load_resources
from fleetmatch.models import Fleet, FleetAutoscaler, GameServer, encode
from fleetmatch.nodes import NodeRecord
from fleetmatch.running import run
from fleetmatch.settings import Settings

T = TypeVar("T")


def with_backend(settings: Settings, body: Callable[[Backend], Awaitable[T]]) -> T:
    """Run ``body`` against the configured backend (the running stack's Redis by default)."""

    async def main() -> T:
        async with open_backend(backend_settings(settings), client_name="fleetmatch-cli") as backend:
            return await body(backend)

    return run(main())


# -- apply (any resource file) --------------------------------------------------------------


@click.command("apply")
@filename_option
@click.pass_context
def apply_cmd(ctx: click.Context, path: Path) -> None:
    """Create or update every Fleet and FleetAutoscaler in a YAML file."""
    from allocator.fleetops import apply_autoscaler, apply_fleet

    resources = load_resources(path)

    async def body(backend: Backend) -> list[str]:
        out = []
        for res in resources:
            if isinstance(res, Fleet):
                _, action = await apply_fleet(backend.fleets, res)
                out.append(f"fleet/{res.name} {action}")
            else:
                _, action = await apply_autoscaler(backend.autoscalers, res)
                out.append(f"fleetautoscaler/{res.name} {action}")
        return out

    for line in with_backend(settings_of(ctx), body):
        click.echo(line)


# -- fleets ---------------------------------------------------------------------------------


@click.group()
def fleet() -> None:
    """Create, scale, inspect and delete fleets."""


@fleet.command("list")
@output_option
@click.pass_context
def fleet_list(ctx: click.Context, output: str) -> None:
    """List fleets with their replica counts."""

    async def body(backend: Backend) -> list[Fleet]:
        return (await backend.fleets.list())[0]

    items = with_backend(settings_of(ctx), body)
    if output == "json":
        click.echo(json.dumps([encode(f) for f in items], indent=2))
        return
    now = time.time()
    rows = [
        [
            f.name,
            f.spec.scheduling.value,
            str(f.spec.replicas),
            str(f.status.replicas),
            str(f.status.ready_replicas),
            str(f.status.allocated_replicas),
            str(f.status.reserved_replicas),
            str(f.status.updated_replicas),
            ",".join(c.reason or c.type for c in f.status.conditions if c.status == "True") or "-",
            age(f.metadata.creation_timestamp, now),
        ]
        for f in items
    ]
    headers = [
        "NAME", "SCHEDULING", "DESIRED", "CURRENT", "READY", "ALLOCATED", "RESERVED", "UPDATED", "CONDITIONS", "AGE"
    ]  # fmt: skip
    click.echo(table(headers, rows))


@fleet.command("apply")
@filename_option
@click.pass_context
def fleet_apply(ctx: click.Context, path: Path) -> None:
    """Create or update the fleets in a YAML file (a template change rolls out per the strategy)."""
    from allocator.fleetops import apply_fleet

    fleets = load_fleets(path)

    async def body(backend: Backend) -> list[str]:
        out = []
        for f in fleets:
            _applied, action = await apply_fleet(backend.fleets, f)
            out.append(f"fleet/{f.name} {action}")
        return out

    for line in with_backend(settings_of(ctx), body):
        click.echo(line)


@fleet.command("scale")
@click.argument("name")
@click.argument("replicas", type=click.IntRange(min=0))
@click.pass_context
def fleet_scale(ctx: click.Context, name: str, replicas: int) -> None:
    """Set a fleet's replicas."""
    from allocator.fleetops import scale_fleet

    async def body(backend: Backend) -> list[str]:
        await scale_fleet(backend.fleets, name, replicas)
        autoscalers, _ = await backend.autoscalers.list()
        return [a.name for a in autoscalers if a.spec.fleet_name == name]

    managed_by = with_backend(settings_of(ctx), body)
    click.echo(f"fleet/{name} scaled to {replicas}")
    if managed_by:
        click.echo(f"note: fleetautoscaler/{managed_by[0]} manages this fleet and will set its replicas", err=True)


@fleet.command("delete")
@click.argument("name")
@click.pass_context
def fleet_delete(ctx: click.Context, name: str) -> None:
    """Delete a fleet; its servers go too, except Allocated ones, which finish their match first."""

    async def body(backend: Backend) -> None:
        await backend.fleets.delete(name)

    with_backend(settings_of(ctx), body)
    click.echo(f"fleet/{name} deleted")


# -- autoscalers ----------------------------------------------------------------------------


@click.group()
def autoscaler() -> None:
    """Keep a buffer of Ready servers: create, inspect and delete fleet autoscalers."""


@autoscaler.command("apply")
@filename_option
@click.pass_context
def autoscaler_apply(ctx: click.Context, path: Path) -> None:
    """Create or update the FleetAutoscalers in a YAML file."""
    from allocator.fleetops import apply_autoscaler

    autoscalers = load_autoscalers(path)

    async def body(backend: Backend) -> list[str]:
        out = []
        for fas in autoscalers:
            _, action = await apply_autoscaler(backend.autoscalers, fas)
            out.append(f"fleetautoscaler/{fas.name} {action}")
        return out

    for line in with_backend(settings_of(ctx), body):
        click.echo(line)


@autoscaler.command("list")
@output_option
@click.pass_context
def autoscaler_list(ctx: click.Context, output: str) -> None:
    """List autoscalers: policy, current and desired replicas, whether they can scale."""

    async def body(backend: Backend) -> list[FleetAutoscaler]:
        return (await backend.autoscalers.list())[0]

    items = with_backend(settings_of(ctx), body)
    if output == "json":
        click.echo(json.dumps([encode(a) for a in items], indent=2))
        return
    now = time.time()
    rows = []
    for a in items:
        buffer = a.spec.policy.buffer
        rows.append(
            [
                a.name,
                a.spec.fleet_name,
                str(buffer.buffer_size) if buffer else "-",
                str(buffer.min_replicas) if buffer else "-",
                str(buffer.max_replicas) if buffer else "-",
                str(a.status.current_replicas),
                str(a.status.desired_replicas),
                str(a.status.able_to_scale).lower(),
                str(a.status.scaling_limited).lower(),
                age(a.status.last_scale_time, now) if a.status.last_scale_time else "-",
            ]
        )
    headers = ["NAME", "FLEET", "BUFFER", "MIN", "MAX", "CURRENT", "DESIRED", "ABLE", "LIMITED", "LAST SCALE"]
    click.echo(table(headers, rows))


@autoscaler.command("delete")
@click.argument("name")
@click.pass_context
def autoscaler_delete(ctx: click.Context, name: str) -> None:
    """Delete an autoscaler; its fleet keeps its current replicas."""

    async def body(backend: Backend) -> None:
        await backend.autoscalers.delete(name)

    with_backend(settings_of(ctx), body)
    click.echo(f"fleetautoscaler/{name} deleted")


# -- game servers ---------------------------------------------------------------------------


@click.group()
def gs() -> None:
    """Inspect game servers."""


@gs.command("list")
@click.option("--fleet", "fleet_name", help="Only this fleet's servers.")
@output_option
@click.pass_context
def gs_list(ctx: click.Context, fleet_name: str | None, output: str) -> None:
    """List game servers: name, state, address:port, node, age."""

    async def body(backend: Backend) -> list[GameServer]:
        items, _version = await backend.gameservers.list()
        return [g for g in items if fleet_name is None or g.fleet == fleet_name]

    items = with_backend(settings_of(ctx), body)
    if output == "json":
        click.echo(json.dumps([encode(g) for g in items], indent=2))
        return
    now = time.time()
    rows = [
        [
            g.name,
            g.state.value,
            f"{g.status.address}:{g.status.ports[0].port}" if g.status.address and g.status.ports else "-",
            g.status.node_name or "-",
            g.fleet or "-",
            age(g.metadata.creation_timestamp, now),
        ]
        for g in items
    ]
    click.echo(table(["NAME", "STATE", "ADDRESS", "NODE", "FLEET", "AGE"], rows))


# -- nodes ----------------------------------------------------------------------------------


@click.group()
def node() -> None:
    """Inspect the nodes whose agents run game servers (their heartbeats)."""


@node.command("list")
@output_option
@click.pass_context
def node_list(ctx: click.Context, output: str) -> None:
    """List nodes: Ready or NotReady (heartbeat older than FLEETMATCH_NODE_LEASE_SECONDS), heartbeat
    age, address and the game servers on each."""
    settings = settings_of(ctx)

    async def body(backend: Backend) -> tuple[list[NodeRecord], float, list[GameServer]]:
        if backend.nodes is None:
            raise ConfigError(
                f"the {backend.engine} backend keeps no node heartbeats (on Kubernetes: kubectl get nodes)"
            )
        records, now = await backend.nodes.list()
        servers, _ = await backend.gameservers.list()
        return records, now, servers

    records, now, servers = with_backend(settings, body)
    lease = settings.node.lease_seconds
    by_node: dict[str, Counter[str]] = {}
    for gs in servers:
        if gs.status.node_name:
            by_node.setdefault(gs.status.node_name, Counter())[gs.state.value] += 1
    if output == "json":
        doc = [
            {
                "name": r.name,
                "ready": now - r.renewed <= lease,
                "heartbeatAgeSeconds": round(now - r.renewed, 3),
                "address": r.address,
                "capacity": r.capacity,
                "boot": r.boot,
                "startedAt": r.started,
                "gameServers": dict(by_node.get(r.name, Counter())),
            }
            for r in records
        ]
        click.echo(json.dumps(doc, indent=2))
        return
    rows = []
    for r in records:
        counts = by_node.get(r.name, Counter())
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "-"
        rows.append(
            [
                r.name,
                "Ready" if now - r.renewed <= lease else "NotReady",
                f"{max(0.0, now - r.renewed):.1f}s",
                r.address,
                f"{sum(counts.values())}/{r.capacity}",
                summary,
                age(r.started, now),
            ]
        )
    click.echo(table(["NAME", "STATUS", "HEARTBEAT", "ADDRESS", "SERVERS", "STATES", "AGE"], rows))
