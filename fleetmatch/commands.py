"""The CLI's operations and inspection commands: fleets, autoscalers, game servers, allocation.

They talk to the running stack's Redis (``REDIS_URL``, or the one ``fleetmatch up`` recorded in
``stack.json``) and, for ``allocate``, to its allocation API. Registered on ``fleetmatch.cli.cli``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from fleetmatch.backends.redis.client import connect
from fleetmatch.cli import cli, output_option, run, settings_of
from fleetmatch.codec import to_wire
from fleetmatch.manifests import load_autoscalers, load_fleets, load_resources
from fleetmatch.models import FLEET_LABEL, Fleet, FleetAutoscaler, GameServer, encode
from fleetmatch.settings import Settings
from fleetmatch.store import AutoscalerStore, FleetStore, GameServerStore

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Stores:
    gameservers: GameServerStore
    fleets: FleetStore
    autoscalers: AutoscalerStore


def with_stores(settings: Settings, body: Callable[[Stores], Awaitable[T]]) -> T:
    """Run ``body`` against the running stack's Redis."""
    from fleetmatch.backends.redis.store import RedisStore
    from fleetmatch.up import stack_or_env_redis_url

    async def main() -> T:
        client = connect(stack_or_env_redis_url(settings), name="fleetmatch-cli")
        ns = settings.namespace
        try:
            return await body(
                Stores(
                    RedisStore(client, GameServer, ns),
                    RedisStore(client, Fleet, ns),
                    RedisStore(client, FleetAutoscaler, ns),
                )
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


def key_values(pairs: Sequence[str], option: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        out[key] = value
    return out


filename_option = click.option(
    "--filename", "-f", "path", required=True, type=click.Path(path_type=Path), help="YAML file."
)


# -- apply (any resource file) --------------------------------------------------------------


@cli.command("apply")
@filename_option
@click.pass_context
def apply_cmd(ctx: click.Context, path: Path) -> None:
    """Create or update every Fleet and FleetAutoscaler in a YAML file."""
    from allocator.fleetops import apply_autoscaler, apply_fleet

    resources = load_resources(path)

    async def body(stores: Stores) -> list[str]:
        out = []
        for res in resources:
            if isinstance(res, Fleet):
                _, action = await apply_fleet(stores.fleets, res)
                out.append(f"fleet/{res.name} {action}")
            else:
                _, action = await apply_autoscaler(stores.autoscalers, res)
                out.append(f"fleetautoscaler/{res.name} {action}")
        return out

    for line in with_stores(settings_of(ctx), body):
        click.echo(line)


# -- fleets ---------------------------------------------------------------------------------


@cli.group()
def fleet() -> None:
    """Create, scale, inspect and delete fleets."""


@fleet.command("list")
@output_option
@click.pass_context
def fleet_list(ctx: click.Context, output: str) -> None:
    """List fleets with their replica counts."""

    async def body(stores: Stores) -> list[Fleet]:
        return (await stores.fleets.list())[0]

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
            str(f.status.updated_replicas),
            age(f.metadata.creation_timestamp, now),
        ]
        for f in items
    ]
    headers = ["NAME", "SCHEDULING", "DESIRED", "CURRENT", "READY", "ALLOCATED", "RESERVED", "UPDATED", "AGE"]
    click.echo(table(headers, rows))


@fleet.command("apply")
@filename_option
@click.pass_context
def fleet_apply(ctx: click.Context, path: Path) -> None:
    """Create or update the fleets in a YAML file (a template change rolls out per the strategy)."""
    from allocator.fleetops import apply_fleet

    fleets = load_fleets(path)

    async def body(stores: Stores) -> list[str]:
        out = []
        for f in fleets:
            _applied, action = await apply_fleet(stores.fleets, f)
            out.append(f"fleet/{f.name} {action}")
        return out

    for line in with_stores(settings_of(ctx), body):
        click.echo(line)


@fleet.command("scale")
@click.argument("name")
@click.argument("replicas", type=click.IntRange(min=0))
@click.pass_context
def fleet_scale(ctx: click.Context, name: str, replicas: int) -> None:
    """Set a fleet's replicas."""
    from allocator.fleetops import scale_fleet

    async def body(stores: Stores) -> list[str]:
        await scale_fleet(stores.fleets, name, replicas)
        autoscalers, _ = await stores.autoscalers.list()
        return [a.name for a in autoscalers if a.spec.fleet_name == name]

    managed_by = with_stores(settings_of(ctx), body)
    click.echo(f"fleet/{name} scaled to {replicas}")
    if managed_by:
        click.echo(f"note: fleetautoscaler/{managed_by[0]} manages this fleet and will set its replicas", err=True)


@fleet.command("delete")
@click.argument("name")
@click.pass_context
def fleet_delete(ctx: click.Context, name: str) -> None:
    """Delete a fleet; its servers go too, except Allocated ones, which finish their match first."""

    async def body(stores: Stores) -> None:
        await stores.fleets.delete(name)

    with_stores(settings_of(ctx), body)
    click.echo(f"fleet/{name} deleted")


# -- autoscalers ----------------------------------------------------------------------------


@cli.group()
def autoscaler() -> None:
    """Keep a buffer of Ready servers: create, inspect and delete fleet autoscalers."""


@autoscaler.command("apply")
@filename_option
@click.pass_context
def autoscaler_apply(ctx: click.Context, path: Path) -> None:
    """Create or update the FleetAutoscalers in a YAML file."""
    from allocator.fleetops import apply_autoscaler

    autoscalers = load_autoscalers(path)

    async def body(stores: Stores) -> list[str]:
        out = []
        for fas in autoscalers:
            _, action = await apply_autoscaler(stores.autoscalers, fas)
            out.append(f"fleetautoscaler/{fas.name} {action}")
        return out

    for line in with_stores(settings_of(ctx), body):
        click.echo(line)


@autoscaler.command("list")
@output_option
@click.pass_context
def autoscaler_list(ctx: click.Context, output: str) -> None:
    """List autoscalers: policy, current and desired replicas, whether they can scale."""

    async def body(stores: Stores) -> list[FleetAutoscaler]:
        return (await stores.autoscalers.list())[0]

    items = with_stores(settings_of(ctx), body)
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

    async def body(stores: Stores) -> None:
        await stores.autoscalers.delete(name)

    with_stores(settings_of(ctx), body)
    click.echo(f"fleetautoscaler/{name} deleted")


# -- game servers ---------------------------------------------------------------------------


@cli.group()
def gs() -> None:
    """Inspect game servers."""


@gs.command("list")
@click.option("--fleet", "fleet_name", help="Only this fleet's servers.")
@output_option
@click.pass_context
def gs_list(ctx: click.Context, fleet_name: str | None, output: str) -> None:
    """List game servers: name, state, address:port, node, age."""

    async def body(stores: Stores) -> list[GameServer]:
        items, _version = await stores.gameservers.list()
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


# -- allocation -----------------------------------------------------------------------------


@cli.command()
@click.option("--fleet", "fleet_name", help="Take a server of this fleet (label agones.dev/fleet).")
@click.option("--label", "-l", "labels", multiple=True, help="Required label KEY=VALUE (repeatable).")
@click.option("--state", type=click.Choice(["Ready", "Allocated"]), default="Ready", show_default=True)
@click.option("--scheduling", type=click.Choice(["Packed", "Distributed"]), default="Packed", show_default=True)
@click.option("--set-label", "set_labels", multiple=True, help="Label KEY=VALUE to put on the server.")
@click.option("--set-annotation", "set_annotations", multiple=True, help="Annotation KEY=VALUE to put on it.")
@click.option("--url", help="Allocator URL (default: the running stack's).")
@click.option("--token", envvar="FLEETMATCH_ALLOCATOR_TOKEN", help="Bearer token (default: the stack's).")
@output_option
@click.pass_context
def allocate(
    ctx: click.Context,
    fleet_name: str | None,
    labels: Sequence[str],
    state: str,
    scheduling: str,
    set_labels: Sequence[str],
    set_annotations: Sequence[str],
    url: str | None,
    token: str | None,
    output: str,
) -> None:
    """Allocate a game server: prints its name, address:port and node."""
    from fleetmatch.allocation import AllocationState, GameServerAllocationSpec
    from fleetmatch.allocator_client import AllocatorClient
    from fleetmatch.codec import from_wire
    from fleetmatch.up import stack_allocator

    settings = settings_of(ctx)
    if url is None or token is None:
        stack_url, stack_token = stack_allocator(settings)
        url, token = url or stack_url, token or stack_token
    match = key_values(labels, "--label")
    if fleet_name:
        match[FLEET_LABEL] = fleet_name
    spec = from_wire(
        GameServerAllocationSpec,
        {
            "selectors": [{"matchLabels": match, "gameServerState": state}],
            "scheduling": scheduling,
            "metadata": {
                "labels": key_values(set_labels, "--set-label"),
                "annotations": key_values(set_annotations, "--set-annotation"),
            },
        },
    )

    async def main() -> Any:
        async with AllocatorClient(url, token) as client:
            return await client.allocate(spec)

    status = run(main())
    if output == "json":
        click.echo(json.dumps(to_wire(status), indent=2))
    elif status.state is AllocationState.ALLOCATED:
        port = f"{status.address}:{status.ports[0].port}" if status.ports else status.address
        click.echo(f"{status.game_server_name}  {port}  {status.node_name}")
    if status.state is not AllocationState.ALLOCATED:
        click.echo(f"error: {status.state.value}: no server matches the selector and is free", err=True)
        sys.exit(1)


# -- matchmaking by hand --------------------------------------------------------------------


def _player_token(settings: Settings, player: str, ttl: float = 3600.0) -> tuple[str, str]:
    """(ticket API URL, a token for ``player``) from the running stack's secret."""
    from fleetmatch.up import stack_matchmaker
    from matchmaker.auth import mint_player_token

    url, secret = stack_matchmaker(settings)
    return url, mint_player_token(secret, player, ttl, time.time())


@cli.command("token")
@click.option("--player", required=True, help="Player id the token names.")
@click.option("--ttl", type=click.FloatRange(min=1), default=3600.0, show_default=True, help="Seconds it is valid.")
@click.pass_context
def token_cmd(ctx: click.Context, player: str, ttl: float) -> None:
    """Mint a player token with the running stack's secret (for trying the ticket API by hand)."""
    _, token = _player_token(settings_of(ctx), player, ttl)
    click.echo(token)


def _number_or_word(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


async def _ticket_call(method: str, url: str, token: str, body: Any = None) -> tuple[int, Any]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


def _show(status: int, doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2))
    if status >= 400:
        sys.exit(1)


@cli.group()
def ticket() -> None:
    """Open, inspect and cancel tickets by hand, as a player (tokens minted from the stack's secret)."""


@ticket.command("create")
@click.option("--queue", "-q", required=True, help="Queue name (see deploy/examples/queues.yaml).")
@click.option("--player", "-p", "players", multiple=True, required=True, help="Player id (repeat for a party).")
@click.option("--skill", type=float, help="Shorthand for --attr skill=N on every player.")
@click.option("--attr", "attrs", multiple=True, help="Attribute KEY=VALUE on every player (numbers or words).")
@click.option("--latency", "latencies", multiple=True, help="REGION=MS on every player.")
@click.option("--wait", type=click.FloatRange(0, 600), default=0.0, help="Wait up to this many seconds for a match.")
@click.option("--token", help="Bearer token (default: one minted for the first player).")
@click.pass_context
def ticket_create(
    ctx: click.Context,
    queue: str,
    players: Sequence[str],
    skill: float | None,
    attrs: Sequence[str],
    latencies: Sequence[str],
    wait: float,
    token: str | None,
) -> None:
    """Open a ticket (prints it; with --wait, prints it again once matched)."""
    url, minted = _player_token(settings_of(ctx), players[0])
    token = token or minted
    attributes: dict[str, float | str] = {k: _number_or_word(v) for k, v in key_values(attrs, "--attr").items()}
    if skill is not None:
        attributes["skill"] = skill
    lat = {k: float(v) for k, v in key_values(latencies, "--latency").items()}
    body = {"queue": queue, "players": [{"id": p, "attributes": attributes, "latencies": lat} for p in players]}

    async def main() -> tuple[int, Any]:
        status, doc = await _ticket_call("POST", f"{url}/v1/tickets", token, body)
        deadline = time.monotonic() + wait
        while status == 201 and wait and doc.get("state") == "queued" and time.monotonic() < deadline:
            left = max(1, min(60, int(deadline - time.monotonic())))
            status, doc = await _ticket_call("GET", f"{url}/v1/tickets/{doc['id']}?wait={left}", token)
        return status, doc

    _show(*run(main()))


@ticket.command("get")
@click.argument("ticket_id")
@click.option("--player", "-p", required=True, help="A player of the ticket (whose token is minted).")
@click.option("--wait", type=click.IntRange(0, 60), default=0, help="Long-poll up to this many seconds.")
@click.pass_context
def ticket_get(ctx: click.Context, ticket_id: str, player: str, wait: int) -> None:
    """Show a ticket (state, and the assignment once matched)."""
    url, token = _player_token(settings_of(ctx), player)
    suffix = f"?wait={wait}" if wait else ""
    _show(*run(_ticket_call("GET", f"{url}/v1/tickets/{ticket_id}{suffix}", token)))


@ticket.command("cancel")
@click.argument("ticket_id")
@click.option("--player", "-p", required=True, help="A player of the ticket (whose token is minted).")
@click.pass_context
def ticket_cancel(ctx: click.Context, ticket_id: str, player: str) -> None:
    """Cancel a ticket that is still queued."""
    url, token = _player_token(settings_of(ctx), player)
    _show(*run(_ticket_call("DELETE", f"{url}/v1/tickets/{ticket_id}", token)))


# -- load testing (the command lives with the tool; registered here, with the other commands) ------

from loadtest.command import loadtest_cmd  # noqa: E402

cli.add_command(loadtest_cmd)
