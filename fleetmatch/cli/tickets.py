"""Matchmaking by hand: ``token`` mints a player token, ``ticket`` opens, shows and cancels tickets."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import click

from fleetmatch.cli.options import key_values, settings_of
from fleetmatch.running import run
from fleetmatch.settings import Settings

# -- matchmaking by hand --------------------------------------------------------------------


def _player_token(settings: Settings, player: str, ttl: float = 3600.0, party: Sequence[str] = ()) -> tuple[str, str]:
    """(ticket API URL, a token for ``player`` that may queue with ``party``) from the running
    stack's secret: what a game backend does for its players."""
    from fleetmatch.stackfile import stack_matchmaker
    from matchmaker.auth import mint_player_token

    longest = settings.matchmaker.player_token_ttl
    if ttl > longest:
        raise click.BadParameter(
            f"at most {longest:g} seconds: the ticket API refuses longer-lived tokens", param_hint="--ttl"
        )
    url, secret = stack_matchmaker(settings)
    return url, mint_player_token(secret, player, ttl, time.time(), party=party)


@click.command("token")
@click.option("--player", required=True, help="Player id the token names.")
@click.option("--party", multiple=True, help="Another player it may open a ticket with (repeat for each).")
@click.option("--ttl", type=click.FloatRange(min=1), default=3600.0, show_default=True, help="Seconds it is valid.")
@click.pass_context
def token_cmd(ctx: click.Context, player: str, party: Sequence[str], ttl: float) -> None:
    """Mint a player token with the running stack's secret (for trying the ticket API by hand).
    With --party, the token may open one ticket for its player together with those players."""
    _, token = _player_token(settings_of(ctx), player, ttl, party)
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


@click.group()
def ticket() -> None:
    """Open, inspect and cancel tickets by hand, as a player (tokens minted from the stack's secret)."""


@ticket.command("create")
@click.option("--queue", "-q", required=True, help="Queue name (see fleetmatch/demo/queues.yaml).")
@click.option("--player", "-p", "players", multiple=True, required=True, help="Player id (repeat for a party).")
@click.option("--skill", type=float, help="Shorthand for --attr skill=N on every player.")
@click.option("--attr", "attrs", multiple=True, help="Attribute KEY=VALUE on every player (numbers or words).")
@click.option("--latency", "latencies", multiple=True, help="REGION=MS on every player.")
@click.option(
    "--wait",
    type=click.FloatRange(0, 600),
    default=0.0,
    help="Wait up to this many seconds for a match; if none comes, cancel the ticket and exit 1.",
)
@click.option("--token", help="Bearer token (default: one minted for the first player, vouching for the others).")
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
    """Open a ticket and print it. With --wait, print it once matched instead; if no match comes in
    time, cancel it (so the player can queue again), print it and exit 1."""
    url, minted = _player_token(settings_of(ctx), players[0], party=players[1:])
    token = token or minted
    attributes: dict[str, float | str] = {k: _number_or_word(v) for k, v in key_values(attrs, "--attr").items()}
    if skill is not None:
        attributes["skill"] = skill
    lat = {k: float(v) for k, v in key_values(latencies, "--latency").items()}
    body = {"queue": queue, "players": [{"id": p, "attributes": attributes, "latencies": lat} for p in players]}
    status, doc, timed_out = run(_create_and_wait(url, token, body, wait))
    _show(status, doc)
    if timed_out:
        click.echo(f"no match within {wait:g} s: ticket {doc.get('id')} was cancelled", err=True)
        sys.exit(1)


async def _create_and_wait(url: str, token: str, body: Any, wait: float) -> tuple[int, Any, bool]:
    """(status, ticket, whether the wait ran out): open the ticket, then long-poll while it is
    queued, at most ``wait`` seconds; when they run out, cancel it (a ticket matched meanwhile is
    returned as matched: then the wait did not run out)."""
    status, doc = await _ticket_call("POST", f"{url}/v1/tickets", token, body)
    if status != 201 or not wait:
        return status, doc, False
    ticket_id = doc["id"]
    deadline = time.monotonic() + wait
    while doc.get("state") == "queued":
        left = deadline - time.monotonic()
        if left <= 0:
            status, doc = await _ticket_call("DELETE", f"{url}/v1/tickets/{ticket_id}", token)
            return status, doc, status == 200 and doc.get("state") == "cancelled"
        status, doc = await _ticket_call("GET", f"{url}/v1/tickets/{ticket_id}?wait={min(60.0, left):.3f}", token)
        if status != 200:
            break
    return status, doc, False


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
