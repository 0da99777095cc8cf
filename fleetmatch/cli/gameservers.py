"""Inspection of what runs: ``gs list|get|describe`` and ``node list|describe``.

Like the rest of the resource commands they talk to the running stack's Redis (``REDIS_URL``, or the
one ``fleetmatch up`` recorded in ``stack.json``), or to the configured backend.
"""

from __future__ import annotations

import time

import click

from fleetmatch.backends import Backend
from fleetmatch.cli import describe
from fleetmatch.cli.options import selector_option, settings_of, state_option, watch_options, with_backend
from fleetmatch.cli.output import echo, output_option, render, render_one
from fleetmatch.cli.resources import events_of, get_named
from fleetmatch.cli.selectors import Requirement, matches
from fleetmatch.cli.shapes import GAMESERVER, NODE, NodeView, node_views
from fleetmatch.cli.watching import Printer, watch_changes
from fleetmatch.errors import ConfigError, NotFoundError
from fleetmatch.models import GameServer, GameServerState
from fleetmatch.nodes import NodeRegistry


@click.group()
def gs() -> None:
    """Inspect game servers."""


@gs.command("list")
@click.option("--fleet", "fleet_name", help="Only this fleet's servers.")
@selector_option
@state_option
@watch_options
@output_option()
@click.pass_context
def gs_list(
    ctx: click.Context,
    fleet_name: str | None,
    selector: tuple[Requirement, ...],
    states: frozenset[GameServerState],
    watch: bool,
    watch_only: bool,
    output: str,
) -> None:
    """List game servers: name, state, address:port, node, fleet, age (-o wide: ports, labels, uid)."""

    def keep(g: GameServer) -> bool:
        return (
            (fleet_name is None or g.fleet == fleet_name)
            and (not states or g.state in states)
            and matches(selector, g.metadata.labels)
        )

    async def changes(backend: Backend) -> None:
        await watch_changes(backend, GameServer, Printer(output, GAMESERVER), keep, watch_only=watch_only)

    async def body(backend: Backend) -> tuple[list[GameServer], bool]:
        """The servers listed, and whether --fleet names a fleet that does not exist."""
        listed = [g for g in (await backend.gameservers.list())[0] if keep(g)]
        missing = False
        if fleet_name is not None and not listed:
            try:
                await backend.fleets.get(fleet_name)
            except NotFoundError:
                missing = True
        return listed, missing

    if watch or watch_only:
        with_backend(settings_of(ctx), changes, service=True)
        return
    listed, missing = with_backend(settings_of(ctx), body)
    echo(render(listed, output, GAMESERVER))
    if missing:  # an empty list could be a typo: say so, as `allocate --fleet` does (still exit 0, as kubectl)
        click.echo(f'note: fleet "{fleet_name}" does not exist (see `fleetmatch fleet list`)', err=True)


@gs.command("get")
@click.argument("name")
@output_option()
@click.pass_context
def gs_get(ctx: click.Context, name: str, output: str) -> None:
    """One game server, as ``gs list`` prints it (-o yaml: the whole document)."""

    async def body(backend: Backend) -> GameServer:
        return await get_named(backend.gameservers, name)

    echo(render_one(with_backend(settings_of(ctx), body), output, GAMESERVER))


@gs.command("describe")
@click.argument("name")
@click.pass_context
def gs_describe(ctx: click.Context, name: str) -> None:
    """A game server in full: spec, status, counters and lists, and its events (why it went
    Unhealthy, restarts, allocations), also kept after the server is gone."""

    async def body(backend: Backend) -> str:
        records = await events_of(backend, GameServer.KIND, name)
        try:
            g = await get_named(backend.gameservers, name)
        except NotFoundError as exc:
            if not records:
                raise
            # gone, but its record says why: what kubectl cannot show, and what one asks after a crash
            return "\n".join([f"{exc} (its events are kept for an hour)", *describe.events(records, time.time())])
        return describe.gameserver(g, records, time.time())

    click.echo(with_backend(settings_of(ctx), body))


@click.group()
def node() -> None:
    """Inspect the nodes whose agents run game servers (their heartbeats)."""


def _registry(backend: Backend) -> NodeRegistry:
    if backend.nodes is None:
        raise ConfigError(f"the {backend.engine} backend keeps no node heartbeats (on Kubernetes: kubectl get nodes)")
    return backend.nodes


@node.command("list")
@output_option()
@click.pass_context
def node_list(ctx: click.Context, output: str) -> None:
    """List nodes: Ready or NotReady (heartbeat older than FLEETMATCH_NODE_LEASE_SECONDS), heartbeat
    age, address and the game servers on each."""
    lease = settings_of(ctx).node.lease_seconds

    async def body(backend: Backend) -> list[NodeView]:
        records, now = await _registry(backend).list()
        return node_views(records, now, lease, (await backend.gameservers.list())[0])

    echo(render(with_backend(settings_of(ctx), body), output, NODE))


@node.command("describe")
@click.argument("name")
@click.pass_context
def node_describe(ctx: click.Context, name: str) -> None:
    """A node: its heartbeat, the game servers on it and its events (NotReady, Ready again)."""
    lease = settings_of(ctx).node.lease_seconds

    async def body(backend: Backend) -> str:
        records, now = await _registry(backend).list()
        servers = (await backend.gameservers.list())[0]
        views = [v for v in node_views(records, now, lease, servers) if v.record.name == name]
        if not views:
            raise NotFoundError("node", name)
        mine = [g for g in servers if g.status.node_name == name]
        return describe.node(views[0], mine, await events_of(backend, "Node", name))

    click.echo(with_backend(settings_of(ctx), body))
