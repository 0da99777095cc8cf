"""What callers of the ticket API see: a ticket as its caller may see it, and the operators' views.

Operators' routes (API keys only; a player token gets 403):

- ``GET /v1/queues`` -> ``{"kind": "List", "items": [queue statistics]}`` for every queue served
  here (``matchmaker.stats``: waiting players by region, oldest wait, last director pass, time to
  match).
- ``GET /v1/tickets?queue=Q[&state=S][&limit=N]`` -> ``{"kind": "List", "items": [tickets],
  "truncated": bool}``: at most ``limit`` (default ``DEFAULT_LIMIT``, at most ``MAX_LIMIT``) tickets of
  queue ``Q``, queued ones oldest first, then finished ones newest first (among the most recent
  ``matchmaker.tickets.LIST_SCAN``); ``truncated`` says more were left out. Capped, not paged: a
  queue changes too fast for pages to mean much; filter by state, or raise the limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from fleetmatch.codec import to_wire
from fleetmatch.errors import ValidationError
from matchmaker.auth import Principal
from matchmaker.errors import OperatorsOnlyError
from matchmaker.models import Ticket
from matchmaker.stats import OLDEST, RECENT, queue_stats
from matchmaker.store import TicketStore

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def ticket_json(ticket: Ticket, principal: Principal) -> dict[str, Any]:
    """The ticket as a client sees it: the public state, the owner only for API keys, and of the
    connection tokens only the caller's own (an API key sees them all)."""
    doc = to_wire(ticket)
    del doc["enqueuedAt"]
    del doc["blockedPlayers"]  # whom a player blocks is theirs alone, not their party's
    for player in doc["players"]:
        if not player["roles"]:
            del player["roles"]
    owner = doc.pop("owner")
    doc["state"] = ticket.state.public
    assignment = doc["assignment"]
    if principal.trusted:
        doc["owner"] = owner
    elif assignment is not None:
        token = assignment["tokens"].get(principal.id)
        assignment["tokens"] = {} if token is None else {principal.id: token}
    if assignment is not None:
        if not assignment["teamName"]:
            del assignment["teamName"]
        if not assignment["roles"]:
            del assignment["roles"]
    return doc


class OperatorViews:
    """The operators' routes; ``principal`` authenticates a request (and charges its rate limit)."""

    def __init__(
        self,
        store: TicketStore,
        queues: Mapping[str, object],
        principal: Callable[[web.Request], Principal],
        *,
        clock: Callable[[], float],
    ) -> None:
        self.store, self.queues, self.principal, self.clock = store, queues, principal, clock

    def operator(self, request: web.Request, what: str) -> Principal:
        principal = self.principal(request)
        if not principal.trusted:
            raise OperatorsOnlyError(what)
        return principal

    async def list_queues(self, request: web.Request) -> web.Response:
        self.operator(request, "listing queues")
        names = sorted(self.queues)
        snapshots = await asyncio.gather(*(self.store.snapshot(name, oldest=OLDEST, recent=RECENT) for name in names))
        now = self.clock()
        items = [queue_stats(name, snap, now) for name, snap in zip(names, snapshots, strict=True)]
        return web.json_response({"kind": "List", "items": items})

    async def list_tickets(self, request: web.Request) -> web.Response:
        principal = self.operator(request, "listing tickets")
        queue = request.query.get("queue")
        if not queue:
            raise ValidationError("queue", "required: the queue whose tickets to list")
        if queue not in self.queues:
            known = ", ".join(sorted(self.queues)) or "none"
            raise ValidationError("queue", f"unknown queue {queue[:100]!r}; queues served here: {known}")
        state = request.query.get("state") or None  # the store names a state it does not know
        limit = _limit(request.query.get("limit"))
        tickets, truncated = await self.store.list_tickets(queue, state=state, limit=limit)
        items = [ticket_json(t, principal) for t in tickets]
        return web.json_response({"kind": "List", "items": items, "truncated": truncated})


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError("limit", f"must be a whole number within 1..{MAX_LIMIT}, got {raw[:100]!r}")
    return limit
