"""The ticket API (aiohttp): open, read, follow and cancel matchmaking tickets.

Routes (all but ``/healthz``, ``/metrics`` and ``/openapi.json`` need ``Authorization: Bearer``
with a player token or an API key; see ``matchmaker.auth``):

- ``POST /v1/tickets`` ``{"queue", "players": [{"id", "attributes", "latencies"}]}`` -> 201 and
  the ticket, ``Location: /v1/tickets/<id>``.
- ``GET /v1/tickets/{id}`` -> the ticket; ``?wait=N`` (0..60 s) long-polls: answers at once unless
  the ticket is queued, else at its first change or after N seconds. ``?explain=1`` adds
  ``explain``: why a queued ticket still waits (``matchmaker.explain``, against the longest-waiting
  ``matchmaker.explain.LIMIT`` tickets; candidates' ids only for API keys), null otherwise.
- Every ticket answer (and event) carries ``estimatedWaitSeconds`` while it waits: what is left of
  its wait, from the players ahead of it and the waits recent tickets like it had
  (``matchmaker.estimate``, ``matchmaker.views.WaitEstimates``), null without recent data.
- ``GET /v1/tickets/{id}/events`` -> Server-Sent Events (``event: ticket``, the ticket JSON now and
  at each change, ``: keep-alive`` comments, ending after a final state); with a WebSocket upgrade,
  the same tickets as JSON text messages, then a normal close.
- ``DELETE /v1/tickets/{id}`` -> 200 and the ticket after cancelling (a ticket already final is
  returned unchanged).
- ``POST /v1/tickets/{id}/accept`` and ``/decline`` (queues with acceptance) -> 200 and the ticket
  after: accepting the match proposed to it, or declining it (the ticket is cancelled, the match's
  other tickets go back to the pool); 409 ``NotProposed`` when no match awaits its answer. Whoever
  may cancel the ticket may answer for it; a player of a party accepts for themselves only (the
  ticket accepts once all its players have), a key for the whole ticket.
- ``GET /v1/queues`` and ``GET /v1/tickets?queue=Q`` (API keys only): the operators' views,
  ``matchmaker.views``.
- ``GET|PUT /v1/players/{id}/blocks`` ``{"players": [...]}``: a player's stored block list (the
  player themself, or an API key); attached to each ticket the player opens afterwards.

Errors (``matchmaker.errors``, mapped by ``fleetmatch.http``, as for every fleetmatch API) are
``{"error": {"code", "message", "field"?}}``: 400 malformed JSON; 401
missing, forged or expired credentials (``WWW-Authenticate: Bearer``); 404 no such ticket **or not
yours** (ids do not leak); 413 body over ``max_body_bytes``; 422 invalid ticket naming the field
(unknown queue, wrong attribute type, party larger than a team, a player token opening a ticket
without its own player); 409 ``AlreadyQueued`` when a player of the new ticket is already in an
open ticket of the queue (``MatchmakerSettings.max_open_tickets``, one by default, counted per
player whoever opened the ticket: the field names the player, the message that ticket when the
caller plays in it or is a backend); 403 ``NotInParty`` when a player token names a player its
party claim does not list, ``Forbidden`` when it asks for an operators' view; 429 ``RateLimited``
with ``Retry-After``, or ``TooManyStreams`` when the caller already follows
``max_streams_per_player`` (per API key ``max_streams_per_key``) tickets at once on this frontend
(streams and long-polls); 503 when the store is unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from typing import Any, Protocol

import orjson
from aiohttp import WSCloseCode, web

from fleetmatch import http
from fleetmatch.codec import from_wire
from fleetmatch.errors import FleetmatchError, NotFoundError, ValidationError
from fleetmatch.http import RateLimitedLog, errors_middleware, read_json
from fleetmatch.metrics import add_metrics_routes
from fleetmatch.probes import Probes, add_probe_routes
from fleetmatch.settings import MatchmakerSettings
from matchmaker.auth import RECOMMENDED_SECRET_BYTES, Authenticator, Principal, RateLimiter, TokenClaims, short_secret
from matchmaker.backfills_api import BackfillsApi, add_backfill_routes, backfill_store_for
from matchmaker.errors import (
    AlreadyQueuedError,
    MalformedCredentialsError,
    NotProposedError,
    NotYourBlocksError,
    TooManyStreamsError,
)
from matchmaker.explain import LIMIT as EXPLAIN_LIMIT
from matchmaker.explain import explain
from matchmaker.metrics import API_REQUESTS, LEGACY_PLAYER_TOKENS, MATCH_PROPOSALS, TICKETS
from matchmaker.models import (
    BlockList,
    Player,
    Ticket,
    TicketRequest,
    TicketState,
    new_ticket_id,
    player_id_error,
    queue_of,
)
from matchmaker.openapi import OPENAPI
from matchmaker.push import OPEN, Hub
from matchmaker.ratingstore import RatingStore, rating_store_for, with_stored_ratings
from matchmaker.results import ResultsApi, add_routes
from matchmaker.rules import Queue
from matchmaker.store import Answer, TicketStore
from matchmaker.views import OperatorViews, WaitEstimates, ticket_json

log = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 60.0
KEEPALIVE_SECONDS = 15.0
MAX_CLIENT_MESSAGE = 4096
"""Bytes of one WebSocket message from a client, at most: clients have nothing to say (their
messages are read and ignored), so a larger one closes the socket (1009) instead of buffering it."""
LEGACY_LOG_SECONDS = 300.0
"""At most one log line per this many seconds about accepted fmp1 tokens (counted in
``fleetmatch_legacy_player_tokens_total`` each)."""
MALFORMED_LOG_SECONDS = 60.0
"""At most one log line per this many seconds about garbage in ``Authorization`` (a broken client
retrying in a loop must not flood the log)."""


class QueueLike(Protocol):
    """What the API needs of a queue's rules (``matchmaker.rules.Queue`` is one)."""

    @property
    def ticket_ttl_seconds(self) -> float: ...

    def check_ticket(self, request: TicketRequest) -> None:
        """Raise ``ValidationError`` naming the field if the queue cannot take this ticket."""


def _dumps(doc: Any) -> bytes:
    """Compact JSON (UTF-8, not ASCII escapes) by orjson: a ticket's answer in a tenth of
    ``json.dumps``' time. Answers hold only what passed validation: finite numbers, text keys."""
    return orjson.dumps(doc)


def _json(doc: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=_dumps(doc), status=status, headers=headers, content_type="application/json")


class _Counters:
    """Prometheus children cached by label values: ``labels()`` costs more than ``inc()``."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, int], Any] = {}
        self._tickets: dict[tuple[str, str], Any] = {}

    def answered(self, request: web.Request, status: int) -> None:
        """Count an answer by route and status (``fleetmatch.http.errors_middleware`` calls it)."""
        route = _route(request)
        child = self._requests.get((route, status))
        if child is None:
            child = self._requests[route, status] = API_REQUESTS.labels(route, str(status))
        child.inc()

    def ticket(self, queue: str, event: str) -> None:
        child = self._tickets.get((queue, event))
        if child is None:
            child = self._tickets[queue, event] = TICKETS.labels(queue, event)
        child.inc()


class TicketApi:
    """The route handlers, holding what they share (no per-request lookups in app state)."""

    def __init__(
        self,
        store: TicketStore,
        queues: Mapping[str, QueueLike],
        settings: MatchmakerSettings,
        hub: Hub,
        *,
        clock: Callable[[], float] = time.time,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
        ratings: RatingStore | None = None,
    ) -> None:
        self.store, self.queues, self.settings, self.hub = store, queues, settings, hub
        self.ratings = ratings
        self.auth = Authenticator(
            settings.token_secret,
            settings.api_keys,
            clock=clock,
            max_token_ttl=settings.player_token_ttl,
            audience=settings.player_token_audience,
            on_legacy_token=self._legacy_token,
        )
        if settings.token_secret is not None and short_secret(settings.token_secret):
            log.warning(
                "FLEETMATCH_PLAYER_TOKEN_SECRET is %d bytes: HS256 asks for at least %d (RFC 7518), and some "
                "JWT libraries (.NET's) refuse shorter keys; use a longer secret",
                len(settings.token_secret.encode()),
                RECOMMENDED_SECRET_BYTES,
            )
        self.legacy_log = RateLimitedLog(log, LEGACY_LOG_SECONDS)
        self.limiter = RateLimiter(settings.rate_per_second, settings.rate_burst, clock=clock)
        self.key_limiter = RateLimiter(settings.key_rate_per_second, settings.key_rate_burst, clock=clock)
        self.clock = clock
        self.keepalive = keepalive_seconds
        self.counters = _Counters()
        self.malformed = RateLimitedLog(log, MALFORMED_LOG_SECONDS)
        self.following: dict[str, int] = {}
        """Principal -> tickets it follows right now (streams and long-polls) on this frontend."""
        self.waits = WaitEstimates(store, queues, clock=clock)

    def _legacy_token(self, claims: TokenClaims) -> None:
        LEGACY_PLAYER_TOKENS.inc()
        self.legacy_log.warning(
            "accepted a player token of the deprecated fmp1 format (player %r): mint JWTs instead "
            "(docs/matchmaking.md); the next release refuses fmp1 tokens",
            claims.player,
        )

    # -- shared steps ----------------------------------------------------------------------

    def principal(self, request: web.Request) -> Principal:
        """Authenticate, then charge the caller's rate limit."""
        try:
            principal = self.auth.authenticate(request.headers.get("Authorization"))
        except MalformedCredentialsError:
            self.malformed.warning("refused an Authorization header not printable ASCII, from %s", request.remote)
            raise
        (self.key_limiter if principal.trusted else self.limiter).check(principal.id)
        return principal

    def ticket_id(self, request: web.Request) -> str:
        """The path's ticket id; 404 at once if it is malformed or names a queue not served here."""
        ticket_id = request.match_info["id"]
        if queue_of(ticket_id) not in self.queues:
            raise NotFoundError("Ticket", ticket_id[:100])
        return ticket_id

    @contextlib.contextmanager
    def follow_slot(self, principal: Principal) -> Iterator[None]:
        """Hold one of the principal's stream places for the block; ``TooManyStreamsError`` if none
        is free (a client that leaks streams holds at most its limit, not the frontend's memory)."""
        settings = self.settings
        limit = settings.max_streams_per_key if principal.trusted else settings.max_streams_per_player
        held = self.following.get(principal.id, 0)
        if held >= limit:
            raise TooManyStreamsError(principal.id, limit)
        self.following[principal.id] = held + 1
        try:
            yield
        finally:
            left = self.following[principal.id] - 1
            if left:
                self.following[principal.id] = left
            else:
                del self.following[principal.id]

    @staticmethod
    def visible(ticket: Ticket, principal: Principal) -> Ticket:
        if not principal.can_see(ticket):
            raise NotFoundError("Ticket", ticket.id)  # exactly as if it did not exist
        return ticket

    async def doc(self, ticket: Ticket, principal: Principal) -> dict[str, Any]:
        """``ticket_json`` with the ticket's estimated wait."""
        return ticket_json(ticket, principal, estimate=await self.waits.remaining(ticket))

    async def explanation(self, ticket: Ticket, principal: Principal) -> dict[str, Any] | None:
        """Why the (queued) ticket waits, against the longest-waiting tickets of its queue; None
        for a ticket not queued or a queue without rules as data."""
        queue = self.queues.get(ticket.queue)
        if ticket.state is not TicketState.QUEUED or not isinstance(queue, Queue):
            return None
        snapshot = await self.store.snapshot(ticket.queue, oldest=EXPLAIN_LIMIT, recent=0)
        found = explain(ticket, snapshot.oldest, queue, self.clock())
        return {"waitingTickets": snapshot.waiting_tickets, **found.as_json(ids=principal.trusted)}

    # -- routes ----------------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        principal = self.principal(request)
        doc = await _read_json(request)
        _check_numbers(doc)
        ticket_request = from_wire(TicketRequest, doc)
        name = ticket_request.queue
        queue = self.queues.get(name)
        if queue is None:
            known = ", ".join(sorted(self.queues)) or "none"
            raise ValidationError("queue", f"unknown queue {name!r}; queues served here: {known}")
        principal.check_may_open(ticket_request.players)
        ticket_request = await with_stored_ratings(self.ratings, ticket_request, queue, principal)
        queue.check_ticket(ticket_request)
        blocked = await self._blocked(ticket_request)
        now = self.clock()
        ticket = Ticket(
            id=new_ticket_id(name, now),
            queue=name,
            owner=principal.id,
            players=ticket_request.players,
            state=TicketState.QUEUED,
            created_at=now,
            enqueued_at=now,
            expires_at=now + queue.ticket_ttl_seconds,
            blocked_players=blocked,
        )
        try:
            ticket = await self.store.create(ticket, max_open_per_player=self.settings.max_open_tickets)
        except AlreadyQueuedError as exc:
            if principal.trusted or exc.player == principal.id:
                raise  # the caller may see that ticket (it plays in it): named
            raise exc.without_ticket_id() from None
        self.counters.ticket(name, "created")
        return _json(await self.doc(ticket, principal), 201, {"Location": f"/v1/tickets/{ticket.id}"})

    async def _blocked(self, ticket_request: TicketRequest) -> tuple[str, ...]:
        """The ticket's block list: the request's, then its players' stored lists (one read). A
        party two of whose players block one another is refused, naming the blocked player."""
        players = ticket_request.players
        stored = await self.store.blocks([p.id for p in players])
        if not stored:
            return ticket_request.blocked_players
        _check_party_blocks(players, stored)
        merged = dict.fromkeys(ticket_request.blocked_players)
        for player in players:
            merged.update(dict.fromkeys(stored.get(player.id, ())))
        return tuple(merged)

    def _blocks_player(self, request: web.Request) -> tuple[Principal, str]:
        principal = self.principal(request)
        player = request.match_info["id"]
        err = player_id_error(player)
        if err:
            raise ValidationError("id", f"{player[:100]!r} {err}")
        if not principal.trusted and principal.id != player:
            raise NotYourBlocksError(player)
        return principal, player

    async def get_blocks(self, request: web.Request) -> web.Response:
        _, player = self._blocks_player(request)
        stored = await self.store.blocks([player])
        return _json({"player": player, "players": list(stored.get(player, ()))})

    async def put_blocks(self, request: web.Request) -> web.Response:
        _, player = self._blocks_player(request)
        doc = await _read_json(request)
        _check_numbers(doc)
        blocks = from_wire(BlockList, doc)
        if player in blocks.players:
            i = blocks.players.index(player)
            raise ValidationError(f"players[{i}]", f"player {player!r} cannot block themselves")
        await self.store.set_blocks(player, blocks.players)
        return _json({"player": player, "players": list(blocks.players)})

    async def get(self, request: web.Request) -> web.Response:
        principal = self.principal(request)
        ticket_id = self.ticket_id(request)
        wait = _wait_seconds(request)
        explaining = _explain_flag(request)
        if explaining and wait > 0:
            raise ValidationError("explain", "cannot be combined with wait: ask for the explanation now")
        if wait <= 0:
            ticket = self.visible(await self.store.get(ticket_id), principal)
            doc = await self.doc(ticket, principal)
            if explaining:
                doc["explain"] = await self.explanation(ticket, principal)
            return _json(doc)
        with self.follow_slot(principal):
            return await self._long_poll(ticket_id, wait, principal)

    async def _long_poll(self, ticket_id: str, wait: float, principal: Principal) -> web.Response:
        async with contextlib.aclosing(self.hub.follow(ticket_id, keepalive=wait)) as updates:
            ticket = self.visible(_first(await anext(updates)), principal)
            if ticket.state in OPEN:
                change = await anext(updates, None)  # a change, or None at the deadline or shutdown
                ticket = change or ticket
        return _json(await self.doc(ticket, principal))

    async def cancel(self, request: web.Request) -> web.Response:
        principal = self.principal(request)
        ticket_id = self.ticket_id(request)
        before = self.visible(await self.store.get(ticket_id), principal)
        after = await self.store.cancel(ticket_id, reason=f"cancelled by {principal.id}")
        if before.state in OPEN and after.state is TicketState.CANCELLED:
            self.counters.ticket(after.queue, "cancelled")
            if _awaiting(before):  # cancelling a proposed ticket declines its match
                MATCH_PROPOSALS.labels(after.queue, "declined").inc()
        return _json(await self.doc(after, principal))

    async def accept(self, request: web.Request) -> web.Response:
        principal = self.principal(request)
        ticket_id = self.ticket_id(request)
        ticket = self.visible(await self.store.get(ticket_id), principal)
        # A player of the ticket answers for themselves (a party proceeds once all its players
        # accepted); a key, or whoever opened it without playing in it, answers for the whole ticket.
        player = None if principal.trusted or all(p.id != principal.id for p in ticket.players) else principal.id
        answer, after = await self.store.accept(ticket_id, lease_seconds=self.settings.lease_seconds, player=player)
        if answer is Answer.NOT_PROPOSED:
            raise NotProposedError(ticket_id, "accept", f"no match awaits its answer (it is {after.state.public})")
        if answer is Answer.LATE:
            raise NotProposedError(ticket_id, "accept", "the time to accept its match has passed")
        if answer is Answer.READY:
            MATCH_PROPOSALS.labels(after.queue, "accepted").inc()
        return _json(await self.doc(after, principal))

    async def decline(self, request: web.Request) -> web.Response:
        principal = self.principal(request)
        ticket_id = self.ticket_id(request)
        before = self.visible(await self.store.get(ticket_id), principal)
        answer, after = await self.store.decline(ticket_id, reason=f"declined the proposed match ({principal.id})")
        if answer is Answer.NOT_PROPOSED:
            why = (
                "everyone accepted its match already"
                if after.state is TicketState.PROPOSED
                else "no match awaits its answer"
            )
            raise NotProposedError(ticket_id, "decline", f"{why} (it is {after.state.public})")
        if _awaiting(before) and after.state is TicketState.CANCELLED:
            MATCH_PROPOSALS.labels(after.queue, "declined").inc()
            self.counters.ticket(after.queue, "cancelled")
        return _json(await self.doc(after, principal))

    async def events(self, request: web.Request) -> web.StreamResponse:
        principal = self.principal(request)
        ticket_id = self.ticket_id(request)
        ws = web.WebSocketResponse(heartbeat=self.keepalive, max_msg_size=MAX_CLIENT_MESSAGE)
        upgrade = ws.can_prepare(request).ok
        with self.follow_slot(principal):
            return await self._stream(request, ws if upgrade else None, ticket_id, principal)

    async def _stream(
        self, request: web.Request, ws: web.WebSocketResponse | None, ticket_id: str, principal: Principal
    ) -> web.StreamResponse:
        async with contextlib.aclosing(self.hub.follow(ticket_id, keepalive=self.keepalive)) as updates:
            # Registered and read before anything is sent: a 404 is still a plain JSON error.
            first = self.visible(_first(await anext(updates)), principal)
            if ws is not None:
                return await self._websocket(request, ws, first, updates, principal)
            return await self._sse(request, first, updates, principal)

    # -- streams ---------------------------------------------------------------------------

    async def _sse(
        self, request: web.Request, first: Ticket, updates: AsyncGenerator[Ticket | None, None], principal: Principal
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        try:
            await response.write(_sse_event(await self.doc(first, principal)))
            async for ticket in updates:
                await response.write(
                    b": keep-alive\n\n" if ticket is None else _sse_event(await self.doc(ticket, principal))
                )
            await response.write_eof()
        except ConnectionError:
            pass  # the client left
        except Exception as exc:  # the response has started: end the stream, do not answer again
            _log_stream_end(first.id, exc)
        return response

    async def _websocket(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        first: Ticket,
        updates: AsyncGenerator[Ticket | None, None],
        principal: Principal,
    ) -> web.WebSocketResponse:
        await ws.prepare(request)
        reader = asyncio.create_task(_drain(ws), name=f"matchmaker.ws.{first.id}")
        code: int = WSCloseCode.OK
        step: asyncio.Future[Ticket | None] | None = None
        try:
            await ws.send_str(json.dumps(await self.doc(first, principal), separators=(",", ":")))
            while True:
                step = asyncio.ensure_future(anext(updates))
                await asyncio.wait({step, reader}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():  # the client closed first (or sent more than it may)
                    code = ws.close_code or WSCloseCode.OK
                    break
                try:
                    ticket = step.result()
                except StopAsyncIteration:
                    code = WSCloseCode.GOING_AWAY if self.hub.closed else WSCloseCode.OK
                    break
                if ticket is not None:
                    await ws.send_str(json.dumps(await self.doc(ticket, principal), separators=(",", ":")))
        except ConnectionError:
            pass
        except Exception as exc:
            _log_stream_end(first.id, exc)
            code = WSCloseCode.INTERNAL_ERROR
        finally:
            # The step may still run the updates generator (the client left, or this handler was
            # cancelled because it did): it must end before the caller closes the generator.
            if step is not None and not step.done():
                step.cancel()
            await asyncio.gather(*(t for t in (step,) if t is not None), return_exceptions=True)
            await ws.close(code=code)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        return ws


def _check_party_blocks(players: tuple[Player, ...], stored: Mapping[str, tuple[str, ...]]) -> None:
    """Refuse a party two of whose players block one another (stored lists), naming the blocked one
    (without saying who blocks whom)."""
    index = {p.id: i for i, p in enumerate(players)}
    for player in players:
        for other in stored.get(player.id, ()):
            if other in index:
                raise ValidationError(
                    f"players[{index[other]}].id",
                    f"players {player.id!r} and {other!r} cannot be in one party: one of them blocks the other",
                )


def _awaiting(ticket: Ticket) -> bool:
    """Whether the ticket's proposed match still waits for acceptances."""
    proposal = ticket.proposal
    return proposal is not None and proposal.accepted_tickets < proposal.tickets


def _first(ticket: Ticket | None) -> Ticket:
    assert ticket is not None, "Hub.follow yields the ticket first"
    return ticket


async def _read_json(request: web.Request) -> Any:
    return await read_json(request)


INT64 = 2**63


def _check_numbers(doc: Any) -> None:
    """Every number of a request within what the rest of the path handles: integers within 64 bits
    (a longer one cannot become a float), floats finite (Python's JSON reads ``NaN``, ``Infinity``
    and ``1e400`` as such). A ``ValidationError`` names the first field that is not."""
    if _numbers_fit(doc):
        return  # the common case, without building every value's path
    todo: list[tuple[str, Any]] = [("", doc)]  # a loop, not recursion: the JSON may be deeply nested
    while todo:
        path, value = todo.pop()
        if isinstance(value, dict):
            todo.extend((f"{path}.{key}" if path else str(key), item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            todo.extend((f"{path}[{i}]", item) for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int) and not -INT64 <= value < INT64:
            raise ValidationError(path or "<document>", "must be a number within 64 bits")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValidationError(path or "<document>", f"must be a finite number, got {value}")


def _numbers_fit(doc: Any) -> bool:
    """``_check_numbers`` without paths: whether every number of the parsed JSON fits. JSON
    parses to exact dicts, lists, ints, floats and bools (a bool is not an int here)."""
    todo = [doc]
    while todo:
        value = todo.pop()
        kind = type(value)
        if kind is dict:
            todo.extend(value.values())
        elif kind is list:
            todo.extend(value)
        elif kind is float:
            if not math.isfinite(value):
                return False
        elif kind is int and not -INT64 <= value < INT64:
            return False
    return True


def _wait_seconds(request: web.Request) -> float:
    raw = request.query.get("wait")
    if raw is None:
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        wait = math.nan
    if not 0 <= wait <= MAX_WAIT_SECONDS:
        raise ValidationError("wait", f"must be a number of seconds within 0..{MAX_WAIT_SECONDS:g}, got {raw!r}")
    return wait


def _explain_flag(request: web.Request) -> bool:
    raw = request.query.get("explain")
    if raw is None:
        return False
    if raw in ("1", "true"):
        return True
    if raw in ("0", "false"):
        return False
    raise ValidationError("explain", f"must be 1, true, 0 or false, got {raw[:100]!r}")


def _sse_event(doc: Mapping[str, Any]) -> bytes:
    return b"event: ticket\ndata: " + _dumps(doc) + b"\n\n"


async def _drain(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the client sends: this is what notices its close and answers pings."""
    async for _ in ws:
        pass


def _log_stream_end(ticket_id: str, exc: Exception) -> None:
    if isinstance(exc, FleetmatchError):
        log.warning("stream of ticket %s ended: %s", ticket_id, exc, extra={"ticket_id": ticket_id})
    else:
        log.exception("stream of ticket %s failed", ticket_id, extra={"ticket_id": ticket_id})


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return f"{request.method} {resource.canonical}" if resource is not None else "other"


TICKET_API = web.AppKey("matchmaker.ticket_api", TicketApi)


def app_runner(app: web.Application) -> web.AppRunner:
    """The runner the ticket API needs: ``fleetmatch.http``'s (header deadlines), and a handler is
    cancelled when its client goes away, so a stream or long-poll whose client left frees its place
    and its waiter at once, not at the next write."""
    return http.app_runner(app, access_log=None, shutdown_timeout=2.0, handler_cancellation=True)


def build_app(
    store: TicketStore,
    queues: Mapping[str, QueueLike],
    settings: MatchmakerSettings,
    *,
    hub: Hub,
    clock: Callable[[], float] = time.time,
    keepalive_seconds: float = KEEPALIVE_SECONDS,
    probes: Probes | None = None,
    metrics: bool = True,
    ratings: RatingStore | None = None,
) -> web.Application:
    """The ticket API over ``store`` for ``queues``. Shutting the app down closes ``hub``, which
    ends every stream and long-poll at once (clients reconnect to another frontend). ``probes``:
    what ``/readyz`` and ``/healthz`` report (default: nothing checked, always ready). ``metrics``:
    serve ``/metrics`` (not where another site of the process already serves the registry).
    ``ratings``: where match results and ratings live (default: beside the tickets, on Redis)."""
    ratings = ratings if ratings is not None else rating_store_for(store)
    api = TicketApi(store, queues, settings, hub, clock=clock, keepalive_seconds=keepalive_seconds, ratings=ratings)
    app = web.Application(
        middlewares=[errors_middleware(observe=api.counters.answered)], client_max_size=settings.max_body_bytes
    )
    app[TICKET_API] = api

    async def openapi(_: web.Request) -> web.Response:
        return _json(OPENAPI)

    async def close_hub(_: web.Application) -> None:
        await hub.close()

    app.router.add_post("/v1/tickets", api.create)
    app.router.add_get("/v1/tickets/{id}", api.get)
    app.router.add_delete("/v1/tickets/{id}", api.cancel)
    app.router.add_get("/v1/tickets/{id}/events", api.events)
    app.router.add_get("/v1/players/{id}/blocks", api.get_blocks)
    app.router.add_put("/v1/players/{id}/blocks", api.put_blocks)
    app.router.add_post("/v1/tickets/{id}/accept", api.accept)
    app.router.add_post("/v1/tickets/{id}/decline", api.decline)
    views = OperatorViews(store, queues, api.principal, clock=clock, waits=api.waits)
    app.router.add_get("/v1/tickets", views.list_tickets)
    app.router.add_get("/v1/queues", views.list_queues)
    add_routes(app, ResultsApi(ratings, queues, api.principal))
    add_backfill_routes(app, BackfillsApi(backfill_store_for(store), queues, api.principal, clock=clock))
    add_probe_routes(app, probes or Probes())
    if metrics:
        add_metrics_routes(app)
    app.router.add_get("/openapi.json", openapi)
    app.on_shutdown.append(close_hub)
    return app
