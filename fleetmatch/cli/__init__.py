"""The ``fleetmatch`` command: one entry point for every component and the inspection commands.

Settings come from the environment (``fleetmatch.settings``) and are overridden by options; every
command resolves them once and hands them down. Domain errors print one line and exit non-zero:
no traceback for bad input. The group lives here; each command lives in the module named for what it
operates (``components``, ``resources``, ``gameservers``, ``status``, ``completion``, ``allocation``,
``tickets``, ``dashboard``; ``loadtest.command``) and is registered below with ``add_command``. ``group`` holds the
group's own behaviour: one error style, global options accepted after the subcommand.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import click

from fleetmatch import __version__
from fleetmatch.backends.redis.client import CLUSTER_SCHEME
from fleetmatch.cli import (
    allocation,
    completion,
    components,
    dashboard,
    gameservers,
    queues,
    ratings,
    resources,
    status,
    tickets,
)
from fleetmatch.cli.group import FleetmatchGroup
from fleetmatch.cli.options import REDIS_SCHEMES, check_redis_url
from fleetmatch.errors import FleetmatchError
from fleetmatch.logging import configure
from fleetmatch.settings import Settings
from loadtest.command import loadtest_cmd


@click.group(cls=FleetmatchGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    if settings.redis.url:
        # a ticket store may be a cluster (matchmaker); the resource stores check for plain Redis
        check_redis_url(settings.redis.url, "REDIS_URL/--redis-url", (*REDIS_SCHEMES, CLUSTER_SCHEME))
    configure(settings.log_level, settings.log_format)
    ctx.obj = settings


for command in (
    components.up,
    components.node_agent,
    components.controller,
    components.allocator_cmd,
    components.matchmaker_cmd,
    components.sidecar_cmd,
    dashboard.dashboard_cmd,
    resources.apply_cmd,
    resources.fleet,
    resources.autoscaler,
    gameservers.gs,
    gameservers.node,
    status.status_cmd,
    completion.completion_cmd,
    allocation.allocate,
    tickets.token_cmd,
    tickets.ticket,
    queues.queue,
    ratings.match,
    ratings.rating,
    loadtest_cmd,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="fleetmatch")


__all__ = ["cli", "main"]
