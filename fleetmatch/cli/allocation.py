"""``fleetmatch allocate``: claim a game server through the allocation API, as a game backend would."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from fleetmatch.cli.options import key_values, settings_of
from fleetmatch.cli.output import dump, output_option
from fleetmatch.codec import to_wire
from fleetmatch.models import FLEET_LABEL
from fleetmatch.running import run

# -- allocation -----------------------------------------------------------------------------


@click.command()
@click.option("--fleet", "fleet_name", help="Take a server of this fleet (label agones.dev/fleet).")
@click.option("--label", "-l", "labels", multiple=True, help="Required label KEY=VALUE (repeatable).")
@click.option("--state", type=click.Choice(["Ready", "Allocated"]), default="Ready", show_default=True)
@click.option("--scheduling", type=click.Choice(["Packed", "Distributed"]), default="Packed", show_default=True)
@click.option("--set-label", "set_labels", multiple=True, help="Label KEY=VALUE to put on the server.")
@click.option("--set-annotation", "set_annotations", multiple=True, help="Annotation KEY=VALUE to put on it.")
@click.option(
    "--idempotency-key",
    help="Name this allocation (e.g. a match id): running the command again with it gets the same server.",
)
@click.option("--url", help="Allocator URL (default: the running stack's).")
@click.option("--token", envvar="FLEETMATCH_ALLOCATOR_TOKEN", help="Bearer token (default: the stack's).")
@output_option()
@click.pass_context
def allocate(
    ctx: click.Context,
    fleet_name: str | None,
    labels: Sequence[str],
    state: str,
    scheduling: str,
    set_labels: Sequence[str],
    set_annotations: Sequence[str],
    idempotency_key: str | None,
    url: str | None,
    token: str | None,
    output: str,
) -> None:
    """Allocate a game server: prints its name, address:port and node (-o json or yaml: the whole
    allocation status; -o name: gameserver/NAME). Exits 1 when nothing was allocated, saying why."""
    from fleetmatch.allocation import AllocationState, GameServerAllocationSpec
    from fleetmatch.allocator_client import AllocatorClient, AllocatorError
    from fleetmatch.codec import from_wire
    from fleetmatch.stackfile import stack_allocator

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

    # -n given: the allocator must serve that namespace (it answers 422 otherwise); not given: its own.
    namespace = ctx.find_root().params.get("namespace")

    async def main() -> Any:
        async with AllocatorClient(url, token) as client:
            return await client.allocate(spec, idempotency_key=idempotency_key, namespace=namespace)

    try:
        status = run(main())
    except AllocatorError as exc:
        if exc.code != "FleetNotFound":
            raise
        click.echo(f"error: {exc.message} (see `fleetmatch fleet list`)", err=True)
        sys.exit(1)
    if output in ("json", "yaml"):
        click.echo(dump(to_wire(status), output))
    elif status.state is AllocationState.ALLOCATED and output == "name":
        click.echo(f"gameserver/{status.game_server_name}")
    elif status.state is AllocationState.ALLOCATED:
        port = f"{status.address}:{status.ports[0].port}" if status.ports else status.address
        click.echo(f"{status.game_server_name}  {port}  {status.node_name}")
    if status.state is AllocationState.UNALLOCATED:
        click.echo(f"error: {_nothing_free(state, fleet_name, labels)}", err=True)
        sys.exit(1)
    if status.state is not AllocationState.ALLOCATED:
        click.echo(
            f"error: {status.state.value}: every server tried was taken by a concurrent allocation; retry", err=True
        )
        sys.exit(1)


def _nothing_free(state: str, fleet: str | None, labels: Sequence[str]) -> str:
    """Why an allocation found nothing, and what to do about it (naming only commands that exist)."""
    where = f'in fleet "{fleet}"' if fleet else "anywhere"
    with_labels = f" with labels {', '.join(labels)}" if labels else ""
    if state == "Allocated":
        return f"no Allocated game server {where}{with_labels} matches: see `fleetmatch gs list`"
    advice = (
        f"retry when one is free, or scale the fleet: fleetmatch fleet scale {fleet} <replicas>"
        if fleet
        else "see `fleetmatch gs list`"
    )
    return f"no Ready game server {where}{with_labels} is free: {advice}"
