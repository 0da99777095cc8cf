"""One simulated party's life, as a real game client lives it, for ``fleetmatch loadtest``.

A party (one player, or several who play together) opens **one ticket** with its leader's
credentials, awaits the assignment the way its client kind does (Server-Sent Events, WebSocket, or
long-poll ``GET ?wait=``), then every member joins the assigned game server over UDP with **its own**
connection token, sends one input per ``input_interval`` for the session, and leaves. Players go
through the phases::

    queued --> matched --> connected --> playing --> done
       \\__________\\___________\\___________\\______> failed (with a FailureKind)

Every transition is timestamped (``time.monotonic`` and wall clock) and told to a
``PartyObserver`` (``loadtest.collect.Collector``). Nothing is dropped: every way a party can end is
either ``done`` or ``failed`` with one of these kinds:

===================  ===========================================================================
``auth``             the ticket API answered 401/403 (token refused, or expired)
``match-timeout``    not matched within ``match_timeout`` seconds: the ticket is cancelled (DELETE);
                     also a party still queued at the hard stop
``no-capacity``      the server cancelled or expired the ticket, or the party timed out while the
                     matchmaker was still reporting no-capacity allocation failures on its queue
                     (in the last quarter of the wait, at least the last 5 s: failures long over
                     do not explain a ticket that simply found nobody to play with)
``udp-no-answer``    the game server did not answer a join, input or leave after every resend
``rejected-token``   the game server refused the join with ``bad-token``, or still did not know the
                     player (``unknown-player``) after ``join_retry_seconds``
``server-error``     5xx, an unreachable API, a malformed answer, or an ``error`` from the game
``other``            anything else (a 4xx other than auth, a join refused for another reason, a hard
                     stop between the match and the join, a bug), always with a message
``declined``         by choice: the party declined a proposed match (scenario ``acceptance.declineRate``)
``not-accepted``     by choice: the party never answered a proposed match (``silentRate``) and the
                     server cancelled its ticket at the deadline
===================  ===========================================================================

**Ready checks.** A ticket of a queue with acceptance may be ``proposed`` a match before it is
matched: the party answers (``POST /v1/tickets/{id}/accept`` or ``/decline``, after its
``answer_delay``) or stays silent, as its spec says, and keeps following the ticket: declined or not
accepted in time, it ends; the match fell through because of someone else, it is back in the pool
and waits for the next one. ``Party.proposals`` keeps each proposal, the answer and how it ended.

Credentials: with the player-token secret every member gets a minted token; the leader's opens
the ticket and each member reads the matched ticket with its own token to learn its connection
token (a player sees only theirs). With only an API key, the key opens the ticket and sees every
member's token.

Cost: no thread and no socket per waiting player beyond its one HTTP stream (the aiohttp session is
shared); one UDP socket per party (``examples.udp_game.client.GameClient``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import aiohttp

from examples.udp_game.client import GameClient, GameServerError, NoReplyError, RejectedError
from examples.udp_game.game import BAD_TOKEN, UNKNOWN_PLAYER
from fleetmatch.tasks import cancel_and_wait
from matchmaker.auth import DEFAULT_AUDIENCE, mint_player_token

log = logging.getLogger(__name__)


class Phase(StrEnum):
    QUEUED = "queued"
    """Arrived: opening the ticket or waiting for the match."""
    MATCHED = "matched"
    """Knows its server and connection token; not joined yet."""
    CONNECTED = "connected"
    """The game server welcomed it."""
    PLAYING = "playing"
    """The game server acknowledged its first input."""
    DONE = "done"
    FAILED = "failed"


PHASES = tuple(Phase)
FINAL = frozenset({Phase.DONE, Phase.FAILED})


class FailureKind(StrEnum):
    AUTH = "auth"
    MATCH_TIMEOUT = "match-timeout"
    NO_CAPACITY = "no-capacity"
    UDP_NO_ANSWER = "udp-no-answer"
    REJECTED_TOKEN = "rejected-token"
    SERVER_ERROR = "server-error"
    OTHER = "other"
    DECLINED = "declined"
    NOT_ACCEPTED = "not-accepted"


CHOSEN_FAILURES = frozenset({FailureKind.DECLINED, FailureKind.NOT_ACCEPTED})
"""Failures the scenario asked for (players who decline or ignore a ready check), not the service's."""


# Latency names, as the collector keeps them.
TICKET_CREATE = "ticketCreate"
"""``POST /v1/tickets`` round trip."""
ASSIGNMENT_PUSH = "assignmentPush"
"""From the first ticket of a match learning its assignment to this ticket learning it."""
UDP_JOIN = "udpJoin"
"""``join`` to ``welcome`` over UDP (resends, not-allocated and unknown-player retries included)."""


NO_CAPACITY_WINDOW_MIN = 5.0


class PlayerFailure(Exception):
    """Ends a player's (or a whole party's) life with a classified failure."""

    def __init__(self, kind: FailureKind, message: str, status: int | None = None) -> None:
        self.kind = kind
        self.message = message
        self.status = status
        """The HTTP status that caused it, if any."""
        super().__init__(f"{kind}: {message}")


# -- what the scenario gives ---------------------------------------------------------------------


class PlayerLike(Protocol):
    """A player of a party (``matchmaker.models.Player`` is one)."""

    @property
    def id(self) -> str: ...

    @property
    def attributes(self) -> Mapping[str, float | str]: ...

    @property
    def latencies(self) -> Mapping[str, float]: ...

    @property
    def roles(self) -> tuple[str, ...]:
        """Roles offered in a queue with role slots (none: any, or a queue without)."""


class PartyLike(Protocol):
    """One arrival of the scenario (``loadtest.scenario.PartySpec`` is one)."""

    @property
    def queue(self) -> str: ...

    @property
    def players(self) -> Sequence[PlayerLike]: ...

    @property
    def client(self) -> str:
        """``sse``, ``websocket`` or ``longpoll``."""

    @property
    def session_seconds(self) -> float: ...

    @property
    def answer(self) -> str:
        """``accept``, ``decline`` or ``silent``: what the party does when a match is proposed."""

    @property
    def answer_delay(self) -> float:
        """Seconds the party takes to answer a proposed match."""


ACCEPT, DECLINE, SILENT = "accept", "decline", "silent"
CLIENT_KINDS = ("sse", "websocket", "longpoll")


# -- what the party reports -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transition:
    phase: Phase
    monotonic: float
    wall: float


@dataclass(slots=True)
class SimPlayer:
    """One simulated player: where it is, how it got there, and why it failed."""

    id: str
    party: int
    phase: Phase = Phase.QUEUED
    transitions: list[Transition] = field(default_factory=list)
    failure: FailureKind | None = None
    message: str = ""
    connection_token: str | None = None

    @property
    def final(self) -> bool:
        return self.phase in FINAL


@dataclass(slots=True)
class ProposalSeen:
    """A match proposed to a party's ticket: what the party answered and how it ended for it."""

    match_id: str
    answer: str = "none"
    """``accepted``, ``declined`` (200), ``silent``, ``cancelled`` (the party cancelled its ticket
    meanwhile: the server counts it a decline), ``late`` (409: the match had fallen through or its
    deadline passed), ``failed`` (another error), ``none`` (not answered yet)."""
    outcome: str = "open"
    """``matched`` (into this match), ``requeued`` (back in the pool), ``cancelled`` (the ticket)."""


class PartyObserver(Protocol):
    """What a party tells the collector (``loadtest.collect.Collector``). Times are monotonic."""

    def phase_changed(self, player: SimPlayer, old: Phase | None, at: float) -> None:
        """``player.phase`` is the new phase (a failure also has ``failure`` and ``message`` set)."""

    def latency(self, name: str, seconds: float, at: float) -> None: ...

    def ticket_created(
        self, ticket_id: str, queue: str, reader: str | None, at: float, *, estimate: float | None = None
    ) -> None:
        """``reader``: the player whose token may read the ticket later (None: the API key);
        ``estimate``: the ticket's ``estimatedWaitSeconds`` as created (None: the server had none)."""

    def ticket_seen(self, ticket_id: str, state: str, match_id: str | None, at: float) -> None:
        """The latest state the client saw of its ticket (the reconciliation compares the server's)."""

    def matched(
        self, ticket_id: str, match_id: str, players: int, waited: float, at: float, *, backfill: str = ""
    ) -> None:
        """The party learned its assignment ``waited`` seconds after sending the ticket (``backfill``:
        it joined the running match through that backfill)."""

    def no_capacity_since(self, queue: str, since: float) -> int:
        """No-capacity allocation failures the matchmaker reported on ``queue`` since ``since``."""


# -- credentials ----------------------------------------------------------------------------------


class Credentials:
    """How simulated players authenticate: player tokens minted with the secret (preferred: it is
    what real clients do), or a trusted backend's API key."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        api_key: str | None = None,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
        audience: str = DEFAULT_AUDIENCE,
    ) -> None:
        if secret is None and api_key is None:
            raise ValueError("simulated players need the player-token secret or an API key")
        self.secret, self.api_key, self.ttl, self._clock = secret, api_key, ttl, clock
        self.audience = audience
        self._tokens: dict[tuple[str, tuple[str, ...]], str] = {}

    @property
    def per_player(self) -> bool:
        return self.secret is not None

    def bearer(self, player_id: str | None, party: tuple[str, ...] = ()) -> str:
        """The bearer for ``player_id`` (minted once, cached), or the API key for ``None``.
        ``party``: the players its token may open a ticket with (what a game backend vouches for)."""
        if self.secret is None or player_id is None:
            if self.api_key is None:
                raise ValueError("no API key: every request must name a player")
            return self.api_key
        token = self._tokens.get((player_id, party))
        if token is None:
            token = mint_player_token(
                self.secret, player_id, self.ttl, self._clock(), party=party, audience=self.audience
            )
            self._tokens[player_id, party] = token
        return token

    def reader(self, leader: str) -> str | None:
        """Whose credentials open (and later read) a party's ticket."""
        return leader if self.per_player else None


# -- settings -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartySettings:
    """How simulated clients behave; the defaults are what a patient real client does."""

    match_timeout: float = 120.0
    """Seconds from sending the ticket to giving up (the ticket is then cancelled)."""
    input_interval: float = 1.0
    """Seconds between two inputs of one player."""
    udp_reply_timeout: float = 1.0
    udp_retries: int = 4
    """Resends of one UDP request before ``udp-no-answer`` (every request is idempotent)."""
    join_retry_seconds: float = 5.0
    """How long a join refused with ``not-allocated`` or ``unknown-player`` is retried: the game
    learns of its allocation, and of players backfilled into its match, through the SDK watch, a
    moment after the matchmaker told the players."""
    longpoll_wait: float = 25.0
    request_timeout: float = 30.0
    """Total seconds of one plain HTTP request (streams are bounded by ``match_timeout`` instead)."""
    cleanup_seconds: float = 3.0
    """Bound on what a stopped party still does (cancel its ticket, leave its game)."""
    max_stream_restarts: int = 20
    connection_token: Callable[[str, str], str] | None = None
    """Test hook: ``(player, token) -> token`` presented on join (e.g. a wrong one)."""


REFUSALS = {BAD_TOKEN: FailureKind.REJECTED_TOKEN, UNKNOWN_PLAYER: FailureKind.REJECTED_TOKEN}
"""The failure a join refused for good is (``other`` for any reason not named, ``not-allocated`` too)."""


async def join_game(game: GameClient, player: str, token: str, retry_seconds: float) -> None:
    """Join ``player`` to the match (``not-allocated`` and ``unknown-player`` retried for up to
    ``retry_seconds``, see ``GameClient.join``); ``PlayerFailure`` when refused."""
    try:
        await game.join(player, token, patience=retry_seconds)
    except RejectedError as exc:
        kind = REFUSALS.get(exc.reason, FailureKind.OTHER)
        raise PlayerFailure(kind, f"join refused: {exc.reason}") from None


# -- one party -----------------------------------------------------------------------------------


def capacity_window(sent: float, now: float, wait: float) -> float:
    """Since when no-capacity failures explain a timed-out ticket: the last quarter of its wait
    (at least 5 s), and never before it was sent."""
    return max(sent, now - max(NO_CAPACITY_WINDOW_MIN, wait / 4))


def classify_status(status: int) -> FailureKind:
    if status in (401, 403):
        return FailureKind.AUTH
    if status >= 500:
        return FailureKind.SERVER_ERROR
    return FailureKind.OTHER


def _assignment(doc: Mapping[str, Any], what: str) -> Mapping[str, Any]:
    assignment = doc.get("assignment")
    if (
        not isinstance(assignment, dict)
        or not isinstance(assignment.get("matchId"), str)
        or not isinstance(assignment.get("address"), str)
        or not isinstance(assignment.get("port"), int)
        or not isinstance(assignment.get("tokens"), dict)
    ):
        raise PlayerFailure(FailureKind.SERVER_ERROR, f"{what}: a matched ticket without a valid assignment")
    return assignment


def _state(doc: Any, what: str) -> str:
    state = doc.get("state") if isinstance(doc, dict) else None
    if not isinstance(state, str):
        raise PlayerFailure(FailureKind.SERVER_ERROR, f"{what}: not a ticket document")
    return state


OPEN_STATES = frozenset({"queued"})
WAITING_STATES = frozenset({"queued", "proposed"})
"""States of a ticket not matched yet (its party still waits, and may cancel it)."""


class Party:
    """One party from arrival to the end of its session (``await party.run()``, cancel to stop)."""

    def __init__(
        self,
        index: int,
        spec: PartyLike,
        *,
        http: aiohttp.ClientSession,
        base_url: str,
        credentials: Credentials,
        observer: PartyObserver,
        settings: PartySettings,
    ) -> None:
        if spec.client not in CLIENT_KINDS:
            raise ValueError(f"party {index}: client must be one of {', '.join(CLIENT_KINDS)}, got {spec.client!r}")
        if not spec.players:
            raise ValueError(f"party {index}: no players")
        self.index = index
        self.spec = spec
        self.http = http
        self.base = base_url.rstrip("/")
        self.credentials = credentials
        self.observer = observer
        self.settings = settings
        self.players = [SimPlayer(p.id, index) for p in spec.players]
        self.leader = spec.players[0].id
        self.ticket_id: str | None = None
        self.ticket_open = False
        self.assignment: Mapping[str, Any] | None = None
        self.proposals: list[ProposalSeen] = []
        self._answers: set[asyncio.Task[None]] = set()
        self._sent = 0.0
        """When the ticket was sent (monotonic): time-to-match counts from here, as a player feels it."""
        self._game: GameClient | None = None

    # -- phases ---------------------------------------------------------------------------------

    def _move(self, player: SimPlayer, phase: Phase, kind: FailureKind | None = None, message: str = "") -> None:
        if player.final:
            return
        now = time.monotonic()
        old = player.phase if player.transitions else None
        player.phase = phase
        if kind is not None:
            player.failure, player.message = kind, message
        player.transitions.append(Transition(phase, now, time.time()))
        self.observer.phase_changed(player, old, now)

    def _fail_all(self, kind: FailureKind, message: str) -> None:
        for player in self.players:
            self._move(player, Phase.FAILED, kind, message)

    # -- the life -------------------------------------------------------------------------------

    def arrive(self) -> None:
        """Count the party's players in (``queued``); ``run`` does it if the runner did not."""
        for player in self.players:
            if not player.transitions:
                self._move(player, Phase.QUEUED)

    def settle_stopped(self) -> None:
        """A hard stop's verdict on every player not final yet: still queued fails
        ``match-timeout``, matched but not joined fails ``other``, joined counts as ``done``."""
        self.arrive()
        for player in self.players:
            if player.phase is Phase.QUEUED:
                self._move(player, Phase.FAILED, FailureKind.MATCH_TIMEOUT, "still queued at the hard stop")
            elif player.phase is Phase.MATCHED:
                self._move(player, Phase.FAILED, FailureKind.OTHER, "matched but not joined at the hard stop")
            elif player.phase in (Phase.CONNECTED, Phase.PLAYING):
                self._move(player, Phase.DONE)

    async def run(self) -> None:
        """The whole life; returns when every player is done or failed. Cancelled (hard stop):
        ``settle_stopped``, then the ticket is cancelled and the game left, within
        ``cleanup_seconds``, and the cancellation goes on."""
        self.arrive()
        try:
            await self._life()
        except asyncio.CancelledError:
            await self._stopped()
            raise
        except PlayerFailure as exc:
            self._fail_all(exc.kind, exc.message)
        except Exception as exc:  # a bug here must still end as a classified failure
            log.exception("party %d failed unexpectedly", self.index)
            self._fail_all(FailureKind.OTHER, f"unexpected {type(exc).__name__}: {exc}")
        finally:
            await cancel_and_wait(*self._answers)
            if self._game is not None:
                await self._game.close()
                self._game = None

    async def _life(self) -> None:
        doc = await self._open_ticket()
        doc = await self._await_match(doc)
        state = _state(doc, "ticket")
        if state != "matched":
            await self._answered()
            reason = doc.get("reason") or "no reason given"
            self._fail_all(*self._ended_without_match(state, reason))
            return
        await self._play(doc)

    def _ended_without_match(self, state: str, reason: str) -> tuple[FailureKind, str]:
        """Why a ticket ended unmatched: as the party chose (declined, silent), or the server's doing."""
        what = f"ticket {self.ticket_id} {state} by the server: {reason}"
        last = self.proposals[-1] if self.proposals else None
        if last is not None and last.answer == "declined":
            return FailureKind.DECLINED, f"declined match {last.match_id} as the scenario asked"
        if last is not None and last.outcome == "cancelled":
            if self.spec.answer == SILENT:
                return FailureKind.NOT_ACCEPTED, f"did not answer match {last.match_id} as the scenario asked"
            return FailureKind.OTHER, f"{what} (its answer to match {last.match_id}: {last.answer})"
        return FailureKind.NO_CAPACITY, what

    async def _open_ticket(self) -> dict[str, Any]:
        body = {
            "queue": self.spec.queue,
            "players": [
                {
                    "id": p.id,
                    "attributes": dict(p.attributes),
                    "latencies": dict(p.latencies),
                    **({"roles": list(p.roles)} if p.roles else {}),
                }
                for p in self.spec.players
            ],
        }
        reader = self.credentials.reader(self.leader)
        self._sent = time.monotonic()
        party = tuple(p.id for p in self.spec.players if p.id != reader)
        doc = await self._request(
            "POST", "/v1/tickets", reader, json_body=body, expect=201, idempotent=False, party=party
        )
        now = time.monotonic()
        ticket_id = doc.get("id")
        if not isinstance(ticket_id, str):
            raise PlayerFailure(FailureKind.SERVER_ERROR, "POST /v1/tickets: answer without a ticket id")
        self.ticket_id, self.ticket_open = ticket_id, True
        self.observer.latency(TICKET_CREATE, now - self._sent, now)
        estimate = doc.get("estimatedWaitSeconds")
        if not isinstance(estimate, int | float) or isinstance(estimate, bool) or not estimate >= 0:
            estimate = None
        self.observer.ticket_created(ticket_id, self.spec.queue, reader, now, estimate=estimate)
        self._seen(doc)
        return doc

    def _seen(self, doc: Mapping[str, Any]) -> str:
        state = _state(doc, f"ticket {self.ticket_id}")
        assignment = doc.get("assignment")
        match_id = assignment.get("matchId") if isinstance(assignment, dict) else None
        assert self.ticket_id is not None
        self.ticket_open = state in WAITING_STATES
        self.observer.ticket_seen(
            self.ticket_id, state, match_id if isinstance(match_id, str) else None, time.monotonic()
        )
        return state

    async def _await_match(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The ticket once final: matched, or cancelled/expired by the server; ``match-timeout``
        (after cancelling it) if that takes longer than ``match_timeout``."""
        if not self.ticket_open:
            return doc
        deadline = self._sent + self.settings.match_timeout
        restarts = 0
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                async with asyncio.timeout(remaining):
                    final = await self._follow()
            except TimeoutError:
                return await self._give_up()
            if final is not None and not self._waiting(final, "ticket"):
                self._matched_at(final)
                return final
            if final is not None:
                continue  # a long-poll answered with a proposal (or a return to the pool): not a restart
            restarts += 1
            if restarts > self.settings.max_stream_restarts:
                raise PlayerFailure(
                    FailureKind.SERVER_ERROR, f"ticket {self.ticket_id}: updates ended {restarts} times before a result"
                )
            await asyncio.sleep(min(1.0, 0.1 * restarts))

    def _matched_at(self, doc: dict[str, Any]) -> None:
        state = self._seen(doc)
        if state == "matched":
            now = time.monotonic()
            assignment = _assignment(doc, f"ticket {self.ticket_id}")
            assert self.ticket_id is not None
            self.assignment = assignment
            self._settle_proposal("matched" if self._proposal(assignment["matchId"]) else "requeued")
            backfill = str(assignment.get("fillId") or assignment.get("backfillId", ""))
            self.observer.matched(
                self.ticket_id, assignment["matchId"], len(self.players), now - self._sent, now, backfill=backfill
            )
        else:
            self._settle_proposal("cancelled")

    # -- ready checks ---------------------------------------------------------------------------

    def _proposal(self, match_id: str) -> ProposalSeen | None:
        return next((p for p in self.proposals if p.match_id == match_id), None)

    def _settle_proposal(self, outcome: str) -> None:
        """How the last proposal ended for this ticket (once: later changes are not about it)."""
        if self.proposals and self.proposals[-1].outcome == "open":
            self.proposals[-1].outcome = outcome

    def _waiting(self, doc: dict[str, Any], what: str) -> bool:
        """Whether the ticket still waits for its match. A proposal is answered as the spec says
        (once per match); back in the pool after one, the proposal is settled ``requeued``."""
        state = _state(doc, what)
        if state == "queued":
            if self.proposals and self.proposals[-1].outcome == "open":
                self._seen(doc)
                self._settle_proposal("requeued")
            return True
        if state != "proposed":
            return False
        self._seen(doc)
        proposal = doc.get("proposal")
        match_id = proposal.get("matchId") if isinstance(proposal, dict) else None
        if not isinstance(match_id, str) or self._proposal(match_id) is not None:
            return True
        self._settle_proposal("requeued")  # an earlier one we did not see end
        seen = ProposalSeen(match_id)
        self.proposals.append(seen)
        if self.spec.answer == SILENT:
            seen.answer = "silent"
        else:
            task = asyncio.create_task(self._answer(seen), name=f"loadtest.party[{self.index}].answer")
            self._answers.add(task)
            task.add_done_callback(self._answers.discard)
        return True

    async def _answer(self, seen: ProposalSeen) -> None:
        """Accept or decline ``seen`` after the party's delay; never raises (the stream goes on)."""
        await asyncio.sleep(self.spec.answer_delay)
        verb = "decline" if self.spec.answer == DECLINE else "accept"
        path = f"/v1/tickets/{self.ticket_id}/{verb}"
        # With player tokens each member of a party accepts for themselves (the ticket accepts once
        # all have); one declining is enough. With an API key, one answer stands for the ticket.
        answering: list[str | None]
        if verb == "accept" and self.credentials.per_player:
            answering = [p.id for p in self.spec.players]
        else:
            answering = [self.credentials.reader(self.leader)]
        try:
            docs = await asyncio.gather(*(self._request("POST", path, who, idempotent=True) for who in answering))
            doc = docs[-1]
        except PlayerFailure as exc:
            seen.answer = "late" if exc.status == 409 else "failed"
            if seen.answer == "failed":
                log.warning("party %d: %s match %s: %s", self.index, verb, seen.match_id, exc.message)
            return
        seen.answer = "declined" if verb == "decline" else "accepted"
        if self._seen(doc) == "cancelled":
            self._settle_proposal("cancelled")

    async def _answered(self) -> None:
        """Let answers in flight land (bounded) before the party's end is judged on them."""
        if self._answers:
            await asyncio.wait(set(self._answers), timeout=self.settings.cleanup_seconds)

    def _cancelling(self) -> None:
        """The party cancels its ticket: a proposal still open counts as declined on the server."""
        if self.proposals and self.proposals[-1].outcome == "open" and self.proposals[-1].answer != "declined":
            self.proposals[-1].answer = "cancelled"

    async def _give_up(self) -> dict[str, Any]:
        """Cancel the ticket; a ticket matched meanwhile is still played (DELETE returns it as is)."""
        wait = self.settings.match_timeout
        try:
            doc = await self._cancel_ticket()
        except PlayerFailure as exc:
            raise PlayerFailure(
                FailureKind.MATCH_TIMEOUT, f"not matched within {wait:g}s; cancelling failed: {exc.message}"
            ) from None
        if _state(doc, "DELETE") == "matched":
            self._matched_at(doc)
            return doc
        lacking = self.observer.no_capacity_since(self.spec.queue, capacity_window(self._sent, time.monotonic(), wait))
        if lacking:
            raise PlayerFailure(
                FailureKind.NO_CAPACITY,
                f"not matched within {wait:g}s while the matchmaker reported {lacking} no-capacity allocation "
                f"failures on {self.spec.queue}",
            )
        raise PlayerFailure(FailureKind.MATCH_TIMEOUT, f"not matched within {wait:g}s (ticket cancelled)")

    async def _cancel_ticket(self) -> dict[str, Any]:
        self._cancelling()
        doc = await self._request("DELETE", f"/v1/tickets/{self.ticket_id}", self.credentials.reader(self.leader))
        if self._seen(doc) == "cancelled":
            self._settle_proposal("cancelled")
        return doc

    # -- following the ticket -------------------------------------------------------------------

    async def _follow(self) -> dict[str, Any] | None:
        """One connection of the party's client kind: the final ticket, or None if it ended first."""
        reader = self.credentials.reader(self.leader)
        if self.spec.client == "longpoll":
            wait = max(1.0, min(self.settings.longpoll_wait, 60.0))
            return await self._request("GET", f"/v1/tickets/{self.ticket_id}?wait={wait:g}", reader, total=wait + 30)
        url = f"{self.base}/v1/tickets/{self.ticket_id}/events"
        headers = {"Authorization": f"Bearer {self.credentials.bearer(reader)}"}
        try:
            if self.spec.client == "websocket":
                return await self._websocket(url, headers)
            return await self._sse(url, headers)
        except (aiohttp.ClientError, ConnectionError) as exc:
            status = getattr(exc, "status", None)
            if isinstance(status, int) and status >= 400:
                raise PlayerFailure(classify_status(status), f"{self.spec.client} updates: HTTP {status}") from None
            log.debug("party %d: %s updates broke: %s", self.index, self.spec.client, exc)
            return None

    async def _sse(self, url: str, headers: dict[str, str]) -> dict[str, Any] | None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.settings.request_timeout)
        async with self.http.get(url, headers={**headers, "Accept": "text/event-stream"}, timeout=timeout) as resp:
            if resp.status != 200:
                raise PlayerFailure(classify_status(resp.status), f"SSE: HTTP {resp.status} {await _text(resp)}")
            event, data = "", []
            async for raw in resp.content:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith(":"):
                    continue  # keep-alive comment
                if line:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "event":
                        event = value
                    elif name == "data":
                        data.append(value)
                    continue
                if data and event in ("", "ticket"):
                    doc = _parse("SSE", "\n".join(data))
                    if not self._waiting(doc, "SSE"):
                        return doc
                event, data = "", []
        return None

    async def _websocket(self, url: str, headers: dict[str, str]) -> dict[str, Any] | None:
        async with self.http.ws_connect(url, headers=headers, autoping=True) as ws:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    doc = _parse("WebSocket", message.data)
                    if not self._waiting(doc, "WebSocket"):
                        return doc
                elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                    break
        return None

    # -- plain requests -------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        player: str | None,
        *,
        json_body: Any = None,
        expect: int = 200,
        idempotent: bool = True,
        total: float | None = None,
        party: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """One API call as ``player`` (None: the API key; ``party``: its token's party claim): the
        JSON object answered, or a classified ``PlayerFailure``. Rate limits are waited out;
        idempotent calls are retried on 503 and broken connections (a POST is not: it could open a
        second ticket)."""
        what = f"{method} {path.split('?')[0]}"
        headers = {"Authorization": f"Bearer {self.credentials.bearer(player, party)}"}
        limit = aiohttp.ClientTimeout(total=total or self.settings.request_timeout)
        for attempt in range(4):
            retry_in = 0.25 * 2**attempt
            try:
                async with self.http.request(
                    method, self.base + path, headers=headers, json=json_body, timeout=limit
                ) as resp:
                    if resp.status == expect:
                        return _parse(what, await resp.text())
                    body = await _text(resp)
                    if resp.status == 429 and '"RateLimited"' in body:
                        retry_in = min(5.0, float(resp.headers.get("Retry-After", "1") or 1))
                    elif resp.status != 503 or not idempotent:
                        raise PlayerFailure(
                            classify_status(resp.status), f"{what}: HTTP {resp.status} {body}", resp.status
                        )
            except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
                if not idempotent or attempt == 3:
                    raise PlayerFailure(FailureKind.SERVER_ERROR, f"{what}: {type(exc).__name__}: {exc}") from None
            if attempt == 3:
                break
            await asyncio.sleep(retry_in)
        raise PlayerFailure(FailureKind.SERVER_ERROR, f"{what}: still refused after 4 attempts")

    # -- the game -------------------------------------------------------------------------------

    async def _play(self, doc: dict[str, Any]) -> None:
        assignment = _assignment(doc, f"ticket {self.ticket_id}")
        self.assignment = assignment
        tokens = dict(assignment["tokens"])
        await asyncio.gather(*(self._learn_token(player, tokens) for player in self.players))
        ready = [p for p in self.players if not p.final]
        if not ready:
            return
        try:
            self._game = await GameClient.open(
                assignment["address"],
                assignment["port"],
                reply_timeout=self.settings.udp_reply_timeout,
                retries=self.settings.udp_retries,
            )
        except OSError as exc:
            raise PlayerFailure(FailureKind.UDP_NO_ANSWER, f"cannot open UDP to the game server: {exc}") from None
        await asyncio.gather(*(self._member(self._game, player) for player in ready))

    async def _learn_token(self, player: SimPlayer, tokens: dict[str, str]) -> None:
        """The member's own connection token: from the leader's view (API key), else by reading
        the ticket with the member's own token (a player sees only theirs)."""
        token = tokens.get(player.id)
        if token is None and self.credentials.per_player and player.id != self.leader:
            try:
                doc = await self._request("GET", f"/v1/tickets/{self.ticket_id}", player.id)
                if _state(doc, "ticket") == "matched":
                    token = _assignment(doc, "ticket").get("tokens", {}).get(player.id)
            except PlayerFailure as exc:
                self._move(player, Phase.FAILED, exc.kind, f"reading the matched ticket: {exc.message}")
                return
        if not isinstance(token, str) or not token:
            self._move(player, Phase.FAILED, FailureKind.SERVER_ERROR, "the assignment holds no connection token")
            return
        player.connection_token = token
        self._move(player, Phase.MATCHED)

    async def _member(self, game: GameClient, player: SimPlayer) -> None:
        try:
            await self._join(game, player)
            self._move(player, Phase.CONNECTED)
            rounds = max(1, round(self.spec.session_seconds / self.settings.input_interval))
            start = time.monotonic()
            for seq in range(1, rounds + 1):
                await game.input(player.id, seq, {"move": seq % 4})
                if seq == 1:
                    self._move(player, Phase.PLAYING)
                await asyncio.sleep(max(0.0, start + seq * self.settings.input_interval - time.monotonic()))
            await game.leave(player.id)
            self._move(player, Phase.DONE)
        except NoReplyError as exc:
            self._move(player, Phase.FAILED, FailureKind.UDP_NO_ANSWER, f"{player.phase}: {exc}")
        except GameServerError as exc:
            self._move(
                player, Phase.FAILED, FailureKind.SERVER_ERROR, f"{player.phase}: game replied error {exc.reason}"
            )
        except PlayerFailure as exc:
            self._move(player, Phase.FAILED, exc.kind, exc.message)

    async def _join(self, game: GameClient, player: SimPlayer) -> None:
        token = player.connection_token or ""
        if self.settings.connection_token is not None:
            token = self.settings.connection_token(player.id, token)
        started = time.monotonic()
        await join_game(game, player.id, token, self.settings.join_retry_seconds)
        now = time.monotonic()
        self.observer.latency(UDP_JOIN, now - started, now)

    # -- a hard stop ----------------------------------------------------------------------------

    async def _stopped(self) -> None:
        """Settle every player's phase at once, then tidy up (bounded): cancel an open ticket so it
        does not wait in the pool, and leave the game so the server ends the match."""
        joined = [p for p in self.players if p.phase in (Phase.CONNECTED, Phase.PLAYING)]
        self.settle_stopped()
        with contextlib.suppress(Exception):  # best effort: a stopped run must not hang on it
            await asyncio.wait_for(self._tidy(joined), self.settings.cleanup_seconds)

    async def _tidy(self, joined: Sequence[SimPlayer]) -> None:
        game = self._game
        if self.ticket_id is not None and self.ticket_open:
            with contextlib.suppress(PlayerFailure):
                await self._cancel_ticket()
        if game is not None and joined:
            game.retries = 0
            await asyncio.gather(*(game.leave(p.id) for p in joined), return_exceptions=True)


def _parse(what: str, text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError:
        raise PlayerFailure(FailureKind.SERVER_ERROR, f"{what}: malformed JSON answer") from None
    if not isinstance(doc, dict):
        raise PlayerFailure(FailureKind.SERVER_ERROR, f"{what}: the answer is not a JSON object")
    return doc


async def _text(resp: aiohttp.ClientResponse) -> str:
    with contextlib.suppress(Exception):
        return (await resp.text())[:300]
    return ""
