"""Errors of the matchmaker; each says its HTTP answer, which ``fleetmatch.http`` gives (once, for every API).

FleetmatchError
├── ValidationError (fleetmatch)   bad ticket, unknown queue, party too big   -> 422, names the field
├── NotFoundError (fleetmatch)     no such ticket, or not yours               -> 404 (ids do not leak)
├── BackendError (fleetmatch)      the ticket store is unreachable            -> 503
└── MatchmakerError
    ├── AuthError                  missing, forged or expired token/key       -> 401
    │   └── MalformedCredentialsError  not printable ASCII (logged, rate-limited)
    ├── PartyConsentError          a player token names a player its party    -> 403 NotInParty, names the field
    │   (also a ValidationError)   claim does not list
    ├── AlreadyQueuedError         a player is already in an open ticket of   -> 409 AlreadyQueued, names the
    │   (also a ValidationError)   the queue (as many as allowed)                field and that ticket
    ├── NotProposedError           accept/decline of a ticket no match awaits  -> 409 NotProposed
    │                              (queued, matched, ended, or past the deadline)
    ├── OperatorsOnlyError         a player token asked for an operator's     -> 403 Forbidden
    │                              view (queue statistics, ticket lists)
    ├── ResultConflictError        a different result was already applied to  -> 409 ResultConflict
    │                              the match (the same one is answered again)
    ├── RateLimitedError           the client sends too fast                  -> 429 RateLimited, Retry-After
    └── TooManyStreamsError        the client follows too many tickets at     -> 429 TooManyStreams, Retry-After
                                   once (SSE, WebSocket, long-poll)
"""

from __future__ import annotations

from fleetmatch.errors import FleetmatchError, ValidationError


class MatchmakerError(FleetmatchError):
    """Base of the matchmaker's own errors."""


class AuthError(MatchmakerError):
    """The request is not authenticated (the message says why, without leaking secrets)."""

    http_status = 401


class MalformedCredentialsError(AuthError):
    """The ``Authorization`` header is not even text a token could be (undecodable bytes, control
    characters): a broken or hostile client, which the API logs (rate-limited) as well as refuses."""


class PartyConsentError(MatchmakerError, ValidationError):
    """A player token tried to open a ticket with a player its ``party`` claim does not list:
    parties need proof (the game backend mints the claim, or opens the ticket with an API key)."""

    http_status = 403
    http_code = "NotInParty"

    def __init__(self, field: str, player: str) -> None:
        self.player = player
        super().__init__(
            field,
            f"this token may not put player {player!r} in a ticket: a party ticket needs a player token "
            "whose party claim lists every other player (minted by the game backend), or an API key",
        )


class AlreadyQueuedError(MatchmakerError, ValidationError):
    """A player of a new ticket is already in as many open tickets of the queue as allowed (one by
    default): a second ticket would let them be matched twice, or against themselves. ``field``
    names the player in the request (``players[1].id``); ``ticket_id`` is their oldest open ticket,
    or ``""`` when the caller may not know it (another player's ticket, to a player token)."""

    http_status = 409
    http_code = "AlreadyQueued"

    def __init__(self, field: str, player: str, queue: str, ticket_id: str, limit: int) -> None:
        self.player, self.queue, self.ticket_id, self.limit = player, queue, ticket_id, limit
        if limit > 1:
            held = f"{limit} open tickets of queue {queue!r} (the most allowed)"
            held += f", the oldest {ticket_id}" if ticket_id else ""
            then = "cancel one or wait for a match"
        else:
            held = f"open ticket {ticket_id} of queue {queue!r}" if ticket_id else f"an open ticket of queue {queue!r}"
            then = "cancel it or wait for its match"
        super().__init__(field, f"player {player!r} is already in {held}; {then}")

    def without_ticket_id(self) -> AlreadyQueuedError:
        """The same refusal for a caller who may not learn the ticket's id."""
        return AlreadyQueuedError(self.field, self.player, self.queue, "", self.limit)


class ResultConflictError(MatchmakerError):
    """A match's result was applied already, and this one differs: ratings move once per match
    (posting the same result again is answered with the first answer, not this)."""

    http_status = 409
    http_code = "ResultConflict"

    def __init__(self, match_id: str) -> None:
        self.match_id = match_id
        super().__init__(f"match {match_id} already has a different result; ratings move once per match")


class RateLimitedError(MatchmakerError):
    http_status = 429
    http_code = "RateLimited"

    def __init__(self, retry_after: float) -> None:
        self.retry_after: float = retry_after
        super().__init__(f"too many requests; retry in {retry_after:.1f}s")


class TooManyStreamsError(MatchmakerError):
    """The client already follows as many tickets at once (event streams and long-polls, on this
    frontend) as it may: most likely streams it left open; a reconnect after closing them works."""

    http_status = 429
    http_code = "TooManyStreams"
    retry_after = 1.0

    def __init__(self, who: str, limit: int) -> None:
        self.who, self.limit = who, limit
        super().__init__(f"{who} already follows {limit} tickets at once on this server; close one first")


class NotProposedError(MatchmakerError):
    """An accept or decline of a ticket that no proposed match awaits an answer from: it is queued,
    already matched or ended, its match everyone accepted (a decline comes too late), or the
    acceptance deadline passed."""

    http_status = 409
    http_code = "NotProposed"

    def __init__(self, ticket_id: str, what: str, why: str) -> None:
        self.ticket_id = ticket_id
        super().__init__(f"cannot {what} for ticket {ticket_id}: {why}")


class OperatorsOnlyError(MatchmakerError):
    """A player token asked for an operator's view (every queue's statistics, lists of tickets):
    those need an API key."""

    http_status = 403
    http_code = "Forbidden"

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} needs an API key (FLEETMATCH_API_KEYS); a player token sees its own tickets only")


class NotYourBlocksError(MatchmakerError):
    """A player token asked for another player's block list: only that player (or an API key) may
    read or change it."""

    http_status = 403
    http_code = "Forbidden"

    def __init__(self, player: str) -> None:
        super().__init__(f"only player {player!r} (or an API key) may read or change their block list")
