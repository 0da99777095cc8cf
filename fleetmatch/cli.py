"""The ``fleetmatch`` command: one entry point for every component and the inspection commands.

Settings come from the environment (``fleetmatch.settings``) and are overridden by options; every
command resolves them once and hands them down. Domain errors print one line and exit non-zero:
no traceback for bad input.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click

from fleetmatch import __version__
from fleetmatch.errors import FleetmatchError, ValidationError
from fleetmatch.logging import configure
from fleetmatch.manifests import load_fleets
from fleetmatch.models import Fleet, GameServer, encode
from fleetmatch.redis import connect
from fleetmatch.settings import Settings

T = TypeVar("T")


class FleetmatchGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except FleetmatchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


def run(main: Coroutine[Any, Any, T], *, service: bool = False) -> T:
    """Run ``main``; SIGTERM cancels it like Ctrl-C does, so cleanup always runs.

    For a ``service`` (up, node-agent, controller) a signal is the normal way to stop: exit 0 after
    the cleanup. Other commands interrupted by Ctrl-C exit 130, as shells expect.
    """

    async def wrapper() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await main
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    try:
        return asyncio.run(wrapper())
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit(0 if service else 130)


def settings_of(ctx: click.Context) -> Settings:
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


@click.group(cls=FleetmatchGroup)
@click.version_option(__version__, prog_name="fleetmatch")
@click.option(
    "--redis-url", envvar="REDIS_URL", help="Use this Redis (default: the embedded one / the running stack's)."
)
@click.option("--data-dir", type=click.Path(path_type=Path), help="Data directory (default ~/.local/share/fleetmatch).")
@click.option("--namespace", "-n", help="Namespace of GameServers and Fleets (default: default).")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("--log-format", type=click.Choice(["text", "json"]))
@click.pass_context
def cli(
    ctx: click.Context,
    redis_url: str | None,
    data_dir: Path | None,
    namespace: str | None,
    log_level: str | None,
    log_format: str | None,
) -> None:
    """fleetmatch: matchmaking and fleets of dedicated game servers."""
    try:
        settings = Settings.from_env(os.environ)
    except FleetmatchError as exc:
        raise click.ClickException(str(exc)) from None
    settings = replace(
        settings,
        redis=replace(settings.redis, url=redis_url or settings.redis.url),
        data_dir=data_dir.expanduser().resolve() if data_dir else settings.data_dir,
        namespace=namespace or settings.namespace,
        log_level=(log_level or settings.log_level).upper(),
        log_format=log_format or settings.log_format,
    )
    settings.check()
    configure(settings.log_level, settings.log_format)
    ctx.obj = settings


# -- running components ---------------------------------------------------------------------


@cli.command()
@click.option(
    "--fleet",
    "-f",
    "fleet_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Fleet file(s) to apply at start (default: deploy/examples/fleet.yaml, the demo fleet).",
)
@click.option("--no-demo", is_flag=True, help="Start without the demo fleet.")
@click.option("--replicas", type=click.IntRange(min=0), help="Override the first fleet's replicas.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), help="Port of /metrics (0: any free port).")
@click.option("--ready-timeout", type=float, default=120.0, show_default=True, help="Seconds to wait for Ready.")
@click.pass_context
def up(
    ctx: click.Context,
    fleet_files: Sequence[Path],
    no_demo: bool,
    replicas: int | None,
    metrics_port: int | None,
    ready_timeout: float,
) -> None:
    """Run the whole stack locally: embedded Redis, node agent, fleet controller, a demo fleet."""
    from fleetmatch.up import DEMO_FLEET, run_stack

    settings = settings_of(ctx)
    if metrics_port is not None:
        settings = replace(settings, metrics_port=metrics_port)
    files = list(fleet_files) or ([] if no_demo else [DEMO_FLEET])
    fleets: list[Fleet] = [f for path in files for f in load_fleets(path)]
    if fleets and replicas is not None:
        fleets[0] = replace(fleets[0], spec=replace(fleets[0].spec, replicas=replicas))

    def announce(text: str) -> None:
        click.echo(text)

    run(
        run_stack(settings, fleets, environ=dict(os.environ), announce=announce, ready_timeout=ready_timeout),
        service=True,
    )


@cli.command("node-agent")
@click.pass_context
def node_agent(ctx: click.Context) -> None:
    """Run a node agent: start game servers scheduled here and host their SDK endpoints."""
    from allocator.backends.redis import RedisStore
    from allocator.nodeagent import NodeAgent
    from fleetmatch.up import metrics_site, stack_or_env_redis_url
    from sdk_sidecar import SdkHost

    settings = settings_of(ctx)

    async def main() -> None:
        client = connect(stack_or_env_redis_url(settings), name=f"node-agent-{settings.node.name}")
        try:
            store = RedisStore(client, GameServer, settings.namespace)
            async with metrics_site(settings.metrics_port) as url:
                click.echo(f"node agent {settings.node.name}: metrics at {url}", err=True)
                host = SdkHost(store, settings.sdk, bind_host=settings.node.sdk_host)
                await NodeAgent(store, settings, host, environ=dict(os.environ)).run()
        finally:
            await client.aclose()

    run(main(), service=True)


@cli.command()
@click.pass_context
def controller(ctx: click.Context) -> None:
    """Run the fleet controller (run several for availability: one leads, the others stand by)."""
    from allocator.backends.redis import RedisLease, RedisStore
    from allocator.controllers.fleet import FleetController
    from fleetmatch.up import metrics_site, stack_or_env_redis_url

    settings = settings_of(ctx)

    async def main() -> None:
        client = connect(stack_or_env_redis_url(settings), name="fleet-controller")
        try:
            async with metrics_site(settings.metrics_port) as url:
                click.echo(f"fleet controller: metrics at {url}", err=True)
                gameservers = RedisStore(client, GameServer, settings.namespace)
                holder = f"{socket.gethostname()}/{os.getpid()}"
                lease = RedisLease(
                    client, "fleet-controller", holder, namespace=settings.namespace, ttl=settings.lease_seconds
                )
                fleets = RedisStore(client, Fleet, settings.namespace)
                await FleetController(gameservers, fleets, lease=lease).run()
        finally:
            await client.aclose()

    run(main(), service=True)


# -- inspection and operations --------------------------------------------------------------


def with_stores(settings: Settings, body: Callable[[Any, Any], Awaitable[T]]) -> T:
    """Run ``body(gameserver_store, fleet_store)`` against the running stack's Redis."""
    from allocator.backends.redis import RedisStore
    from fleetmatch.up import stack_or_env_redis_url

    async def main() -> T:
        client = connect(stack_or_env_redis_url(settings), name="fleetmatch-cli")
        try:
            return await body(
                RedisStore(client, GameServer, settings.namespace), RedisStore(client, Fleet, settings.namespace)
            )
        finally:
            await client.aclose()

    return run(main())


def age(created: float | None, now: float) -> str:
    if created is None:
        return "-"
    seconds = max(0, int(now - created))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


output_option = click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table")


@cli.group()
def fleet() -> None:
    """Create, inspect and delete fleets."""


@fleet.command("list")
@output_option
@click.pass_context
def fleet_list(ctx: click.Context, output: str) -> None:
    """List fleets with their replica counts."""

    async def body(_: Any, fleets: Any) -> list[Fleet]:
        items, _version = await fleets.list()
        return list(items)

    items = with_stores(settings_of(ctx), body)
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
            age(f.metadata.creation_timestamp, now),
        ]
        for f in items
    ]
    click.echo(table(["NAME", "SCHEDULING", "DESIRED", "CURRENT", "READY", "ALLOCATED", "RESERVED", "AGE"], rows))


@fleet.command("apply")
@click.option("--filename", "-f", "path", required=True, type=click.Path(path_type=Path), help="Fleet YAML.")
@click.pass_context
def fleet_apply(ctx: click.Context, path: Path) -> None:
    """Create or update the fleets in a YAML file."""
    from allocator.fleetops import apply_fleet

    fleets = load_fleets(path)

    async def body(_: Any, store: Any) -> list[str]:
        out = []
        for f in fleets:
            _applied, action = await apply_fleet(store, f)
            out.append(f"fleet/{f.name} {action}")
        return out

    for line in with_stores(settings_of(ctx), body):
        click.echo(line)


@fleet.command("delete")
@click.argument("name")
@click.pass_context
def fleet_delete(ctx: click.Context, name: str) -> None:
    """Delete a fleet; its servers go too, except Allocated ones, which finish their match first."""

    async def body(_: Any, store: Any) -> None:
        await store.delete(name)

    with_stores(settings_of(ctx), body)
    click.echo(f"fleet/{name} deleted")


@cli.group()
def gs() -> None:
    """Inspect game servers."""


@gs.command("list")
@click.option("--fleet", "fleet_name", help="Only this fleet's servers.")
@output_option
@click.pass_context
def gs_list(ctx: click.Context, fleet_name: str | None, output: str) -> None:
    """List game servers: name, state, address:port, node, age."""

    async def body(store: Any, _: Any) -> list[GameServer]:
        items, _version = await store.list()
        return [g for g in items if fleet_name is None or g.fleet == fleet_name]

    items = with_stores(settings_of(ctx), body)
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


def main() -> None:
    cli(prog_name="fleetmatch")
