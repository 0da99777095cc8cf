"""``fleetmatch match result`` posts a match's result; ``fleetmatch rating get`` reads a player's
rating. Both use the running stack's operator API key, as a game's backend uses its own
(``POST /v1/matches/{id}/result``, ``GET /v1/ratings/{player}``; docs/matchmaking.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import click

from fleetmatch.cli.options import settings_of
from fleetmatch.cli.output import Column, Shape, output_option, render, render_one
from fleetmatch.cli.tickets import operator_credentials, ticket_call
from fleetmatch.running import run


def _pair(rating: dict[str, float]) -> str:
    return f"{rating['mu']:.2f}±{rating['sigma']:.2f}"


RATED = Shape[dict[str, Any]](
    kind="rated player",
    columns=(
        Column("PLAYER", lambda p: p["id"]),
        Column("TEAM", lambda p: str(p["team"])),
        Column("BEFORE", lambda p: _pair(p["before"])),
        Column("AFTER", lambda p: _pair(p["after"])),
    ),
    document=lambda p: p,
    name=lambda p: p["id"],
)
RATING = Shape[dict[str, Any]](
    kind="rating",
    columns=(
        Column("PLAYER", lambda r: r["player"]),
        Column("QUEUE", lambda r: r["queue"]),
        Column("MU", lambda r: f"{r['mu']:.2f}"),
        Column("SIGMA", lambda r: f"{r['sigma']:.2f}"),
        Column("ORDINAL", lambda r: f"{r['ordinal']:.2f}"),
        Column("GAMES", lambda r: str(r["games"])),
    ),
    document=lambda r: r,
    name=lambda r: r["player"],
)


@click.group("match")
def match() -> None:
    """Report the results of the running stack's matches."""


@match.command("result")
@click.argument("match_id")
@click.option("--rank", "ranks", type=click.IntRange(min=1), multiple=True, help="Each team's rank, in team order.")
@click.option("--score", "scores", type=float, multiple=True, help="Each team's score, in team order (higher wins).")
@output_option()
@click.pass_context
def match_result(ctx: click.Context, match_id: str, ranks: Sequence[int], scores: Sequence[float], output: str) -> None:
    """Post MATCH_ID's result (a ticket's assignment.matchId) and print each player's rating before
    and after. Ratings move once per match: the same result again prints the first answer.

    \b
    Example: fleetmatch match result 5f0c... --rank 2 --rank 1     # team 1 won
    """
    if bool(ranks) == bool(scores):
        raise click.UsageError("give every team a --rank, or every team a --score")
    teams = [{"rank": r} for r in ranks] if ranks else [{"score": s} for s in scores]
    url, key = operator_credentials(settings_of(ctx))
    doc = run(ticket_call("POST", f"{url}/v1/matches/{quote(match_id, safe='')}/result", key, {"teams": teams}))
    if output in ("json", "yaml"):
        click.echo(render_one(doc, output, Shape[dict[str, Any]]("result", (), lambda d: d, lambda d: d["matchId"])))
        return
    click.echo(render(doc["players"], output, RATED))
    if doc.get("replayed"):
        click.echo(f"(match {match_id} was rated before: nothing changed)", err=True)


@click.group("rating")
def rating() -> None:
    """Read player ratings of the running stack's queues."""


@rating.command("get")
@click.argument("player")
@click.option("--queue", "-q", required=True, help="Queue whose rating to read (ratings are per queue).")
@output_option()
@click.pass_context
def rating_get(ctx: click.Context, player: str, queue: str, output: str) -> None:
    """Show PLAYER's rating in a queue (a new player's default until a result is posted; a note on
    stderr says so)."""
    url, key = operator_credentials(settings_of(ctx))
    doc = run(ticket_call("GET", f"{url}/v1/ratings/{quote(player, safe='')}?queue={quote(queue)}", key))
    click.echo(render_one(doc, output, RATING))
    if doc.get("games") == 0:
        click.echo(f"note: no rated match of {player} in {queue} yet: this is a new player's rating", err=True)
