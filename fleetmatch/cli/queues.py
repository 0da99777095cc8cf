"""``fleetmatch queue list``: how each matchmaking queue of the running stack is doing, read from
the ticket API's ``GET /v1/queues`` with the stack's operator API key."""

from __future__ import annotations

import time
from typing import Any

import click

from fleetmatch.cli.options import settings_of
from fleetmatch.cli.output import Column, Shape, age, output_option, render
from fleetmatch.cli.tickets import operator_credentials, ticket_call
from fleetmatch.codec import parse_timestamp
from fleetmatch.running import run


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}s" if value < 60 else age(0.0, value)


def _last_tick(queue: dict[str, Any]) -> str:
    tick = queue["lastTick"]
    if tick is None:
        return "never"
    return f"{age(parse_timestamp(tick['at']), time.time())} ago"


def _percentile(name: str) -> Any:
    def cell(queue: dict[str, Any]) -> str:
        times = queue["timeToMatchSeconds"]
        return _seconds(None if times is None else times[name])

    return cell


def _regions(queue: dict[str, Any]) -> str:
    return ",".join(f"{region}={players}" for region, players in queue["byRegion"].items()) or "-"


QUEUE = Shape[dict[str, Any]](
    kind="queue",
    columns=(
        Column("QUEUE", lambda q: q["name"]),
        Column("WAITING", lambda q: str(q["waitingPlayers"])),
        Column("BY REGION", _regions),
        Column("OLDEST", lambda q: _seconds(q["oldestWaitSeconds"]) if q["waitingTickets"] else "-"),
        Column("LAST TICK", _last_tick),
        Column("P50 MATCH", _percentile("p50")),
        Column("P95 MATCH", _percentile("p95")),
        Column("TICKETS", lambda q: str(q["waitingTickets"]), wide=True),
        Column("TICK TOOK", lambda q: _seconds(q["lastTick"]["seconds"]) if q["lastTick"] else "-", wide=True),
        Column("MATCHES", lambda q: str(q["lastTick"]["matches"]) if q["lastTick"] else "-", wide=True),
    ),
    document=lambda q: q,
    name=lambda q: q["name"],
)


@click.group()
def queue() -> None:
    """Inspect the running stack's matchmaking queues."""


@queue.command("list")
@output_option()
@click.pass_context
def queue_list(ctx: click.Context, output: str) -> None:
    """Every queue: players waiting (by region: where their latency is best), the oldest wait, the
    last director pass, and the median and 95th percentile time to match of recent matches."""
    url, key = operator_credentials(settings_of(ctx))
    doc = run(ticket_call("GET", f"{url}/v1/queues", key))
    click.echo(render(doc["items"], output, QUEUE))
