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
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from fleetmatch.codec import to_wire
from fleetmatch.errors import BackendError, ValidationError
from matchmaker.auth import Principal
from matchmaker.errors import OperatorsOnlyError
from matchmaker.estimate import Summary, decode_summary, expected_remaining, keys_of, read_again_at
from matchmaker.models import Ticket, TicketState
from matchmaker.rules import Queue
from matchmaker.stats import OLDEST, RECENT, queue_stats
from matchmaker.store import TicketStore

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
SUMMARY_SECONDS = 1.0
"""How long a frontend reuses a queue's wait summary before reading it again (directors write it
at most once per pass), at most: it is read again once the next pass is due (``read_again_at``)."""
_WAITING = frozenset({TicketState.QUEUED, TicketState.LEASED})


def ticket_json(ticket: Ticket, principal: Principal, *, estimate: float | None = None) -> dict[str, Any]:
    """The ticket as a client sees it: the public state, the owner only for API keys, of the
    connection tokens only the caller's own (an API key sees them all), and ``estimatedWaitSeconds``
    (``WaitEstimates``; null when there is none)."""
    doc = to_wire(ticket)
    del doc["enqueuedAt"]
    del doc["blockedPlayers"]  # whom a player blocks is theirs alone, not their party's
    for player in doc["players"]:
        if not player["roles"]:
            del player["roles"]
    owner = doc.pop("owner")
    doc["state"] = ticket.state.public
    doc["estimatedWaitSeconds"] = estimate if ticket.state in _WAITING else None
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
        if not assignment["backfillId"]:
            del assignment["backfillId"]
        if not assignment["fillId"]:
            del assignment["fillId"]
    return doc


class WaitEstimates:
    """A frontend's estimated waits: each queue's wait summary (``matchmaker.estimate``), written by
    whichever directors run, read at most once per ``SUMMARY_SECONDS`` per queue."""

    def __init__(
        self,
        store: TicketStore,
        queues: Mapping[str, object],
        *,
        clock: Callable[[], float],
        ttl: float = SUMMARY_SECONDS,
    ) -> None:
        self.store, self.queues, self.clock, self.ttl = store, queues, clock, ttl
        self._cells: dict[str, tuple[float, Summary]] = {}
        self._reading: dict[str, asyncio.Future[Summary]] = {}
        """Per queue: the read under way, which every create of that moment awaits."""

    async def remaining(self, ticket: Ticket) -> float | None:
        """Seconds the ticket may still wait, for its queue, region and band (``expected_remaining``:
        the players ahead of it and recent times to match); None when it is not waiting or there is
        no data yet. A queue's first pass publishes depths before any wait or rate: that is enough
        for the next-pass rule."""
        if ticket.state not in _WAITING:
            return None
        summary = await self._summary(ticket.queue)
        queue = self.queues.get(ticket.queue)
        rules = queue if isinstance(queue, Queue) else None
        return expected_remaining(
            summary,
            keys_of(ticket, rules),
            size=ticket.size,
            needed=rules.players_needed if rules is not None else 0,
            enqueued_at=ticket.enqueued_at,
            now=self.clock(),
            tick=rules.tick_seconds if rules is not None else None,
        )

    async def _summary(self, queue: str) -> Summary:
        cached = self._cells.get(queue)
        if cached is not None and cached[0] > self.clock():
            return cached[1]
        # One read per queue at a time: at each expiry every create in flight (64 under the
        # benchmark's load) read the summary at once, each on a connection of its own.
        reading = self._reading.get(queue)
        if reading is None:
            reading = asyncio.create_task(self._read(queue, cached), name=f"matchmaker.wait-summary.{queue}")
            self._reading[queue] = reading
            reading.add_done_callback(lambda _: self._reading.pop(queue, None))
        return await asyncio.shield(reading)  # a create cancelled (its client left) leaves the read to the others

    async def _read(self, queue: str, cached: tuple[float, Summary] | None) -> Summary:
        now = self.clock()
        try:
            cells = decode_summary(await self.store.wait_summary(queue))
        except BackendError as exc:  # the ticket itself was just read: an estimate is not worth a 503
            log.warning("reading the wait summary of %s failed: %s", queue, exc, extra={"queue": queue})
            cells = cached[1] if cached is not None else Summary()
            self._cells[queue] = (now + self.ttl, cells)  # not again before the ttl: one warning a second
            return cells
        rules = self.queues.get(queue)
        tick = rules.tick_seconds if isinstance(rules, Queue) else None
        self._cells[queue] = (read_again_at(cells, now, ttl=self.ttl, tick=tick), cells)
        return cells


class OperatorViews:
    """The operators' routes; ``principal`` authenticates a request (and charges its rate limit)."""

    def __init__(
        self,
        store: TicketStore,
        queues: Mapping[str, object],
        principal: Callable[[web.Request], Principal],
        *,
        clock: Callable[[], float],
        waits: WaitEstimates | None = None,
    ) -> None:
        self.store, self.queues, self.principal, self.clock = store, queues, principal, clock
        self.waits = waits or WaitEstimates(store, queues, clock=clock)

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
        items = [ticket_json(t, principal, estimate=await self.waits.remaining(t)) for t in tickets]
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
