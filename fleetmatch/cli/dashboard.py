"""``fleetmatch dashboard``: the web dashboard on its own, beside a deployment (the Helm chart's
``dashboard`` component) or beside another host's stack.

It watches the backend itself (one informer per kind, as any component), reads queue statistics
from the ticket API at ``FLEETMATCH_DASHBOARD_MATCHMAKER_URL`` with ``FLEETMATCH_DASHBOARD_API_KEY``
(else the first ``FLEETMATCH_API_KEYS`` key) and allocation counters from
``FLEETMATCH_DASHBOARD_METRICS_URL``. Browsers log in with ``FLEETMATCH_ALLOCATOR_TOKEN`` or an API key.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import click

from fleetmatch.backends import open_backend
from fleetmatch.cli.options import backend_settings, settings_of
from fleetmatch.errors import ConfigError
from fleetmatch.running import run


@click.command("dashboard")
@click.option("--port", type=click.IntRange(0, 65535), help="Port of the page (FLEETMATCH_DASHBOARD_PORT, 9170).")
@click.option("--matchmaker-url", help="Ticket API whose queues to show (FLEETMATCH_DASHBOARD_MATCHMAKER_URL).")
@click.option(
    "--metrics-url", help="An allocator's /metrics to read allocations from (FLEETMATCH_DASHBOARD_METRICS_URL)."
)
@click.pass_context
def dashboard_cmd(ctx: click.Context, port: int | None, matchmaker_url: str | None, metrics_url: str | None) -> None:
    """Serve the web dashboard alone: fleets, game servers, nodes, queues, allocations, live."""
    from fleetmatch.dashboard import dashboard

    settings = backend_settings(settings_of(ctx))
    board = settings.dashboard
    if port is not None:
        board = replace(board, port=port, port_source="--port")
    keys = list(settings.matchmaker.api_keys.values())
    board = replace(
        board,
        matchmaker_url=matchmaker_url or board.matchmaker_url,
        metrics_url=metrics_url or board.metrics_url,
        api_key=board.api_key or (keys[0] if keys else None),
    )
    tokens = [t for t in (settings.allocator.token, board.api_key, *keys) if t]
    if not tokens:
        raise ConfigError(
            "the dashboard needs a credential for browsers to log in with: set FLEETMATCH_ALLOCATOR_TOKEN "
            "(or FLEETMATCH_API_KEYS)"
        )

    async def main() -> None:
        async with (
            open_backend(settings, client_name="dashboard") as backend,
            dashboard(backend, board, tokens, node_lease=settings.node.lease_seconds) as service,
        ):
            click.echo(f"dashboard: {service.url} (log in with the allocator token or an API key)", err=True)
            await asyncio.Event().wait()

    run(main(), service=True)
