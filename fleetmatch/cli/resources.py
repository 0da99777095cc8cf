"""Operations and inspection of resources: ``apply``, ``fleet``, ``autoscaler`` and ``gs``.

They talk to the running stack's Redis (``REDIS_URL``, or the one ``fleetmatch up`` recorded in
``stack.json``).
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from fleetmatch.backends import Backend
from fleetmatch.cli import describe
from fleetmatch.cli.options import (
    filename_option,
    selector_option,
    settings_of,
    watch_options,
    with_backend,
)
from fleetmatch.cli.output import echo, output_option, render, render_one
from fleetmatch.cli.selectors import Requirement, matches
from fleetmatch.cli.shapes import AUTOSCALER, FLEET
from fleetmatch.cli.watching import Printer, watch_changes
from fleetmatch.codec import INT64_MAX
from fleetmatch.errors import NotFoundError
from fleetmatch.events import EventRecord
from fleetmatch.manifests import load_autoscalers, load_fleets, load_resources
from fleetmatch.models import Fleet, FleetAutoscaler, R
from fleetmatch.store import Store


async def get_named(store: Store[R], name: str) -> R:
    """``store.get``, its miss worded as kubectl's: ``gameserver "x" not found``."""
    try:
        return await store.get(name)
    except NotFoundError:
        raise NotFoundError(store.kind.KIND.lower(), name) from None


async def events_of(backend: Backend, kind: str, name: str) -> list[EventRecord]:
    return await backend.events.list(kind, name) if backend.events is not None else []


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
@selector_option
@watch_options
@output_option()
@click.pass_context
def fleet_list(
    ctx: click.Context, selector: tuple[Requirement, ...], watch: bool, watch_only: bool, output: str
) -> None:
    """List fleets with their replica counts."""

    def keep(f: Fleet) -> bool:
        return matches(selector, f.metadata.labels)

    async def changes(backend: Backend) -> None:
        await watch_changes(backend, Fleet, Printer(output, FLEET), keep, watch_only=watch_only)

    async def body(backend: Backend) -> list[Fleet]:
        return [f for f in (await backend.fleets.list())[0] if keep(f)]

    if watch or watch_only:
        with_backend(settings_of(ctx), changes, service=True)
    else:
        echo(render(with_backend(settings_of(ctx), body), output, FLEET))


@fleet.command("get")
@click.argument("name", required=False)
@output_option()
@click.pass_context
def fleet_get(ctx: click.Context, name: str | None, output: str) -> None:
    """One fleet (all without NAME), as ``fleet list`` prints them."""

    async def body(backend: Backend) -> list[Fleet]:
        return [await get_named(backend.fleets, name)] if name else (await backend.fleets.list())[0]

    items = with_backend(settings_of(ctx), body)
    echo(render_one(items[0], output, FLEET) if name else render(items, output, FLEET))


@fleet.command("describe")
@click.argument("name")
@click.pass_context
def fleet_describe(ctx: click.Context, name: str) -> None:
    """A fleet in full: spec, conditions, rollout progress, its autoscaler and why, its events."""

    async def body(backend: Backend) -> str:
        f = await get_named(backend.fleets, name)
        autoscalers = [a for a in (await backend.autoscalers.list())[0] if a.spec.fleet_name == name]
        return describe.fleet(f, autoscalers, await events_of(backend, Fleet.KIND, name), time.time())

    click.echo(with_backend(settings_of(ctx), body))


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


@fleet.command("scale", context_settings={"ignore_unknown_options": True})  # "-1" is a count, not an option
@click.argument("name")
@click.argument("replicas", type=click.IntRange(min=0, max=INT64_MAX))
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
@selector_option
@output_option()
@click.pass_context
def autoscaler_list(ctx: click.Context, selector: tuple[Requirement, ...], output: str) -> None:
    """List autoscalers: policy, current and desired replicas, whether they can scale."""

    async def body(backend: Backend) -> list[FleetAutoscaler]:
        return [a for a in (await backend.autoscalers.list())[0] if matches(selector, a.metadata.labels)]

    echo(render(with_backend(settings_of(ctx), body), output, AUTOSCALER))


@autoscaler.command("get")
@click.argument("name", required=False)
@output_option()
@click.pass_context
def autoscaler_get(ctx: click.Context, name: str | None, output: str) -> None:
    """One autoscaler (all without NAME), as ``autoscaler list`` prints them."""

    async def body(backend: Backend) -> list[FleetAutoscaler]:
        return [await get_named(backend.autoscalers, name)] if name else (await backend.autoscalers.list())[0]

    items = with_backend(settings_of(ctx), body)
    echo(render_one(items[0], output, AUTOSCALER) if name else render(items, output, AUTOSCALER))


@autoscaler.command("describe")
@click.argument("name")
@click.pass_context
def autoscaler_describe(ctx: click.Context, name: str) -> None:
    """An autoscaler: its policy, current and desired replicas, whether and why it is limited, its events."""

    async def body(backend: Backend) -> str:
        a = await get_named(backend.autoscalers, name)
        return describe.autoscaler(a, await events_of(backend, FleetAutoscaler.KIND, name), time.time())

    click.echo(with_backend(settings_of(ctx), body))


@autoscaler.command("delete")
@click.argument("name")
@click.pass_context
def autoscaler_delete(ctx: click.Context, name: str) -> None:
    """Delete an autoscaler; its fleet keeps its current replicas."""

    async def body(backend: Backend) -> None:
        await backend.autoscalers.delete(name)

    with_backend(settings_of(ctx), body)
    click.echo(f"fleetautoscaler/{name} deleted")
