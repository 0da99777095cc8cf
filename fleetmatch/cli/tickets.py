"""Matchmaking by hand: ``token`` mints a player token, ``ticket`` opens, lists, shows and cancels tickets.

Every command finds the ticket API through the running stack (``stack.json``). A player's commands
use a token minted for ``--player``; without it, ``ticket get`` and ``ticket cancel`` use the
stack's operator API key, as ``ticket list`` and ``queue list`` always do. The API's refusals are
one line on stderr (``error: 404 Ticket "duel.…" not found``) and exit 1; what was read goes to
stdout.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import click

from fleetmatch.cli.options import key_values, settings_of
from fleetmatch.cli.output import Column, Shape, age, dump, output_option, render, render_one
from fleetmatch.codec import parse_timestamp
from fleetmatch.errors import ConfigError, FleetmatchError
from fleetmatch.running import run
from fleetmatch.settings import Settings

FINAL_STATES = frozenset({"matched", "cancelled", "expired"})
LONG_POLL_SECONDS = 60
"""The longest ``?wait=`` the ticket API takes: ``--watch`` asks again after each."""
ANSWER_SECONDS = 15.0
"""How long a ticket API request may take (beyond a long poll's own wait): its store silent (a
stopped Redis), the API would otherwise keep the command waiting, unsaid, for aiohttp's 5 minutes."""


class TicketApiError(FleetmatchError):
    """The ticket API refused a request, or could not be reached: its status and its own error
    fields, printed as one line."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        self.status, self.message, self.field = status, message, field
        where = f"{field}: " if field else ""
        super().__init__(f"{status} {where}{message}" if status else message)


# -- reaching the ticket API -----------------------------------------------------------------


def _player_token(settings: Settings, player: str, ttl: float = 3600.0, party: Sequence[str] = ()) -> tuple[str, str]:
    """(ticket API URL, a token for ``player`` that may queue with ``party``) from the running
    stack's secret: what a game backend does for its players."""
    from fleetmatch.stackfile import stack_matchmaker, stack_token_audience
    from matchmaker.auth import mint_player_token

    url, secret, _ = stack_matchmaker(settings)
    ttl = min(ttl, settings.matchmaker.player_token_ttl)  # the ticket API refuses longer-lived tokens
    audience = stack_token_audience(settings)
    return url, mint_player_token(secret, player, ttl, time.time(), party=party, audience=audience)


def operator_credentials(settings: Settings, *, instead: str | None = None) -> tuple[str, str]:
    """(ticket API URL, the stack's operator API key). ``instead``: the option that works without
    the key, named when the stack has none."""
    from fleetmatch.stackfile import stack_matchmaker

    url, _, key = stack_matchmaker(settings)
    if not key:
        alternative = f", or pass {instead}" if instead else ""
        raise ConfigError(
            f"the running stack has no operator API key (it was started by an older fleetmatch): "
            f"restart `fleetmatch up`{alternative}"
        )
    return url, key


def _credentials(settings: Settings, player: str | None) -> tuple[str, str]:
    if player:
        return _player_token(settings, player)
    return operator_credentials(settings, instead="--player")


async def ticket_call(method: str, url: str, token: str, body: Any = None, *, wait: float = 0.0) -> Any:
    """The JSON answer of one ticket API request; ``TicketApiError`` for a refusal, a failed
    connection, no answer within ``ANSWER_SECONDS`` (plus the ``wait`` of a long poll) or an answer
    that is not JSON."""
    import aiohttp

    api = url.split("/v1/")[0]
    limit = ANSWER_SECONDS + wait
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=limit)) as http,
            http.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"}) as resp,
        ):
            status = resp.status
            text = await resp.text()
    except TimeoutError:
        landed = " (the request may still take effect)" if method != "GET" else ""
        raise TicketApiError(
            0, f"the ticket API at {api} did not answer within {limit:g}s{landed}; its /healthz says why"
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise TicketApiError(0, f"cannot reach the ticket API at {api}: {exc}") from None
    try:
        doc = json.loads(text)
    except ValueError:
        raise TicketApiError(status, f"not a JSON answer: {text[:200]!r}") from None
    if status >= 400:
        error = doc.get("error") if isinstance(doc, dict) else None
        if not isinstance(error, dict):
            raise TicketApiError(status, str(doc)[:200])
        raise TicketApiError(status, str(error.get("message", "")), error.get("field"))
    return doc


# -- how tickets are printed -------------------------------------------------------------------


def _server(doc: dict[str, Any]) -> str:
    assignment = doc.get("assignment")
    if not assignment:
        return "-"
    return f"{assignment['gameServer']} {assignment['address']}:{assignment['port']}"


def _estimate(doc: dict[str, Any]) -> str:
    seconds = doc.get("estimatedWaitSeconds")
    return "-" if seconds is None else f"{seconds:g}s"


def _created(doc: dict[str, Any]) -> str:
    return age(parse_timestamp(doc["createdAt"]), time.time())


TICKET = Shape[dict[str, Any]](
    kind="ticket",
    columns=(
        Column("ID", lambda t: t["id"]),
        Column("STATE", lambda t: t["state"]),
        Column("PLAYERS", lambda t: ",".join(p["id"] for p in t["players"])),
        Column("AGE", _created),
        Column("SERVER", _server),
        Column("EST-WAIT", _estimate),
        Column("OWNER", lambda t: t.get("owner", "-"), wide=True),
        Column("REASON", lambda t: t.get("reason") or "-", wide=True),
    ),
    document=lambda t: t,
    name=lambda t: t["id"],
)


def _number_or_word(text: str) -> float | str:
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):  # the API takes JSON, which has no NaN or Infinity
        raise click.BadParameter(f"expected a finite number or a word, got {text!r}", param_hint="--attr")
    return number


def _finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """A float option that must be a real number: click's ranges let "nan" through (it compares false)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"expected a finite number, got {value!r}", ctx, param)
    return value


# -- commands -----------------------------------------------------------------------------------


@click.command("token")
@click.option("--player", required=True, help="Player id the token names.")
@click.option("--party", multiple=True, help="Another player it may open a ticket with (repeat for each).")
@click.option(
    "--ttl",
    type=click.FloatRange(min=1),
    default=3600.0,
    show_default=True,
    callback=_finite,
    help="Seconds it is valid: at most 86400 (a day); the ticket API refuses longer-lived tokens.",
)
@click.pass_context
def token_cmd(ctx: click.Context, player: str, party: Sequence[str], ttl: float) -> None:
    """Mint a player token (an HS256 JWT) with the running stack's secret (for trying the ticket API by hand).
    With --party, the token may open one ticket for its player together with those players."""
    settings = settings_of(ctx)
    longest = settings.matchmaker.player_token_ttl
    if ttl > longest:
        raise click.BadParameter(
            f"at most {longest:g} seconds: the ticket API refuses longer-lived tokens", param_hint="--ttl"
        )
    _, token = _player_token(settings, player, ttl, party)
    click.echo(token)


@click.group()
def ticket() -> None:
    """Open, list, show and cancel matchmaking tickets of the running stack.

    A player's commands use a token minted for --player from the stack's secret; without --player,
    get and cancel use the stack's operator API key, as list does."""


@ticket.command("create")
@click.option("--queue", "-q", required=True, help="Queue to join (see `fleetmatch queue list`).")
@click.option(
    "--player", "-p", "players", multiple=True, required=True, help="Player id; repeat it for a party (all one team)."
)
@click.option("--skill", type=float, callback=_finite, help="Same as --attr skill=N, for every player.")
@click.option(
    "--attr", "attrs", multiple=True, metavar="KEY=VALUE", help="Attribute of every player (a number or a word)."
)
@click.option("--latency", "latencies", multiple=True, metavar="REGION=MS", help="Latency of every player to a region.")
@click.option(
    "--wait",
    type=click.FloatRange(0, 600),
    default=0.0,
    callback=_finite,
    metavar="SECONDS",
    help="Wait this long for a match; if none comes, cancel the ticket and exit 1 (as when it expires first).",
)
@click.option("--token", help="Bearer token to use (default: one minted for the first player, vouching for the rest).")
@output_option(default="json")
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
    output: str,
) -> None:
    """Open a ticket and print it.

    With --wait, print it once matched instead; if no match comes in time, cancel it (so the
    players can queue again), print it and exit 1.

    \b
    Example: fleetmatch ticket create -q duel -p alice --skill 1500 --latency eu=20 --wait 30
    """
    url, minted = _player_token(settings_of(ctx), players[0], party=players[1:])
    attributes: dict[str, float | str] = {k: _number_or_word(v) for k, v in key_values(attrs, "--attr").items()}
    if skill is not None:
        attributes["skill"] = skill
    lat = {k: _latency(v) for k, v in key_values(latencies, "--latency").items()}
    body = {"queue": queue, "players": [{"id": p, "attributes": attributes, "latencies": lat} for p in players]}
    doc, timed_out = run(_create_and_wait(url, token or minted, body, wait))
    click.echo(render_one(doc, output, TICKET))
    if timed_out:
        click.echo(f"error: no match within {wait:g} s: ticket {doc.get('id')} was cancelled", err=True)
        sys.exit(1)
    state = doc.get("state")
    if wait and state == "proposed":
        click.echo(f"ticket {doc.get('id')} is proposed a match: `fleetmatch ticket accept {doc.get('id')}`", err=True)
    if wait and state not in ("matched", "proposed"):
        why = f" ({doc['reason']})" if doc.get("reason") else ""
        click.echo(f"error: ticket {doc.get('id')} ended {state} without a match{why}", err=True)
        sys.exit(1)


def _latency(text: str) -> float:
    try:
        ms = float(text)
    except ValueError:
        ms = math.nan
    if not math.isfinite(ms):
        raise click.BadParameter(f"expected REGION=MS with MS a finite number, got {text!r}", param_hint="--latency")
    return ms


async def _create_and_wait(url: str, token: str, body: Any, wait: float) -> tuple[Any, bool]:
    """(ticket, whether the wait ran out): open the ticket, then long-poll while it is queued, at
    most ``wait`` seconds; when they run out, cancel it (a ticket matched meanwhile is returned as
    matched: then the wait did not run out). Interrupted (Ctrl-C, SIGTERM), it cancels the ticket
    too: one left queued would still be matched, and a server allocated for a player who left."""
    if not wait:
        return await ticket_call("POST", f"{url}/v1/tickets", token, body), False
    opening = asyncio.ensure_future(ticket_call("POST", f"{url}/v1/tickets", token, body))
    try:
        doc = await asyncio.shield(opening)
    except asyncio.CancelledError:
        # Interrupted while the ticket was being opened: it may exist already. Wait for the answer
        # (bounded by the call's own time limit) to learn its id, then cancel it too.
        try:
            opened = await opening
        except TicketApiError:
            raise asyncio.CancelledError() from None
        await _cancel_interrupted(url, token, opened["id"])
        raise
    ticket_id = doc["id"]
    deadline = time.monotonic() + wait
    try:
        while doc.get("state") == "queued":
            left = deadline - time.monotonic()
            if left <= 0:
                doc = await ticket_call("DELETE", f"{url}/v1/tickets/{ticket_id}", token)
                return doc, doc.get("state") == "cancelled"
            poll = min(LONG_POLL_SECONDS, left)
            doc = await ticket_call("GET", f"{url}/v1/tickets/{ticket_id}?wait={poll:.3f}", token, wait=poll)
    except asyncio.CancelledError:
        await _cancel_interrupted(url, token, ticket_id)
        raise
    return doc, False


async def _cancel_interrupted(url: str, token: str, ticket_id: str) -> None:
    """Cancel the ticket of an interrupted ``--wait`` and say what became of it, on stderr."""
    try:
        doc = await ticket_call("DELETE", f"{url}/v1/tickets/{ticket_id}", token)
    except TicketApiError as exc:
        click.echo(f"interrupted: ticket {ticket_id} may still be queued; cancelling it failed: {exc}", err=True)
        return
    state = doc.get("state")
    if state == "cancelled":
        click.echo(f"interrupted: ticket {ticket_id} was cancelled", err=True)
    else:
        click.echo(f"interrupted: ticket {ticket_id} is {state}, not cancelled", err=True)


@ticket.command("list")
@click.option("--queue", "-q", required=True, help="Queue whose tickets to list.")
@click.option(
    "--state", type=click.Choice(["queued", "matched", "cancelled", "expired"]), help="Only tickets in this state."
)
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="At most this many tickets."
)
@output_option()
@click.pass_context
def ticket_list(ctx: click.Context, queue: str, state: str | None, limit: int, output: str) -> None:
    """List a queue's tickets: queued ones oldest first, then finished ones newest first
    (finished tickets are kept for a few minutes)."""
    url, key = operator_credentials(settings_of(ctx))
    query = f"queue={queue}&limit={limit}" + (f"&state={state}" if state else "")
    doc = run(ticket_call("GET", f"{url}/v1/tickets?{query}", key))
    items = doc["items"]
    if items or output in ("json", "yaml"):
        click.echo(render(items, output, TICKET))
    elif output != "name":
        click.echo(f"no {state + ' ' if state else ''}tickets in queue {queue}", err=True)
    if doc.get("truncated"):
        click.echo(f"(only the first {limit}: pass --limit or --state to see others)", err=True)


@ticket.command("get")
@click.argument("ticket_id")
@click.option("--player", "-p", help="Read it as this player of the ticket (default: with the stack's API key).")
@click.option("--wait", type=click.IntRange(0, 60), default=0, metavar="SECONDS", help="Long-poll up to this long.")
@click.option("--watch", "-w", is_flag=True, help="Print it again at each change until it is matched or ends.")
@click.option(
    "--explain", is_flag=True, help="Also say why it still waits: each rule against the other waiting tickets."
)
@output_option()
@click.pass_context
def ticket_get(
    ctx: click.Context, ticket_id: str, player: str | None, wait: int, watch: bool, explain: bool, output: str
) -> None:
    """Show a ticket (its state, its estimated wait, and where to play once matched)."""
    if explain and (wait or watch):
        raise click.UsageError("--explain cannot be combined with --wait or --watch")
    url, token = _credentials(settings_of(ctx), player)
    if watch:
        run(_watch(f"{url}/v1/tickets/{ticket_id}", token, output))
        return
    suffix = f"?wait={wait}" if wait else "?explain=1" if explain else ""
    doc = run(ticket_call("GET", f"{url}/v1/tickets/{ticket_id}{suffix}", token))
    click.echo(render_one(doc, output, TICKET))
    if explain and output in ("table", "wide"):
        click.echo("\n".join(explain_lines(doc.get("explain"))))


def explain_lines(found: Any) -> list[str]:
    """``?explain=1``'s answer for a person: the verdict, each rule's passes, the nearest tickets."""
    if not isinstance(found, dict):
        return ["why: it is not waiting (only a queued ticket is explained)"]
    lines = [
        f"why: {found['reason']}",
        f"  waited {found['waitSeconds']:g} s; {found['sampled']} of {found['waitingTickets']} waiting tickets "
        f"looked at; {found['compatiblePlayers']} of {found['playersNeeded']} players fit every rule",
    ]
    if found.get("byRegion"):
        lines.append("  by region: " + ", ".join(f"{r} {n}" for r, n in found["byRegion"].items()))
    for rule in found.get("rules", ()):
        window = "" if rule["window"] is None else f" (window {rule['window']:g}, widest {rule['widest']:g})"
        lines.append(f"  rule {rule['name']}{window}: {rule['passed']} pass, {rule['failed']} fail")
    for best in found.get("best", ()):
        name = best.get("ticket", "a ticket")
        lines.append(f"  nearest: {name} ({best['players']} players): {best['detail']}")
    return lines


async def _watch(url: str, token: str, output: str) -> None:
    """Print the ticket now and at each change of its state until it is final, woken by the API's
    long-poll (no polling loop: each request waits for a change, up to the API's limit)."""
    first = True
    async for doc in _changes(url, token):
        if output in ("json", "yaml"):
            click.echo(("" if first else "---\n" if output == "yaml" else "") + dump(doc, output))
        else:
            lines = render_one(doc, output, TICKET).splitlines()
            click.echo("\n".join(lines if first or output == "name" else lines[1:]))  # the header once
        first = False


async def _changes(url: str, token: str) -> AsyncIterator[dict[str, Any]]:
    doc = await ticket_call("GET", url, token)
    yield doc
    while doc["state"] not in FINAL_STATES:
        state = doc["state"]
        doc = await ticket_call("GET", f"{url}?wait={LONG_POLL_SECONDS}", token, wait=LONG_POLL_SECONDS)
        if doc["state"] != state:
            yield doc


def _act(ctx: click.Context, player: str | None, output: str, method: str, path: str) -> None:
    """One call on one ticket, as ``player`` or with the stack's API key, and the ticket it answers."""
    url, token = _credentials(settings_of(ctx), player)
    click.echo(render_one(run(ticket_call(method, f"{url}{path}", token)), output, TICKET))


@ticket.command("cancel")
@click.argument("ticket_id")
@click.option("--player", "-p", help="Cancel it as this player of the ticket (default: with the stack's API key).")
@output_option()
@click.pass_context
def ticket_cancel(ctx: click.Context, ticket_id: str, player: str | None, output: str) -> None:
    """Cancel a queued ticket (one already matched, cancelled or expired is shown unchanged)."""
    _act(ctx, player, output, "DELETE", f"/v1/tickets/{ticket_id}")


@ticket.command("accept")
@click.argument("ticket_id")
@click.option("--player", "-p", help="Accept as this player of the ticket (default: with the stack's API key).")
@output_option()
@click.pass_context
def ticket_accept(ctx: click.Context, ticket_id: str, player: str | None, output: str) -> None:
    """Accept the match proposed to a ticket (queues with acceptance); 409 if none awaits its answer."""
    _act(ctx, player, output, "POST", f"/v1/tickets/{ticket_id}/accept")


@ticket.command("decline")
@click.argument("ticket_id")
@click.option("--player", "-p", help="Decline as this player of the ticket (default: with the stack's API key).")
@output_option()
@click.pass_context
def ticket_decline(ctx: click.Context, ticket_id: str, player: str | None, output: str) -> None:
    """Decline the match proposed to a ticket: it is cancelled, the match's other tickets go back."""
    _act(ctx, player, output, "POST", f"/v1/tickets/{ticket_id}/decline")
