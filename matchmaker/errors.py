"""Errors of the matchmaker; each says its HTTP answer, which ``fleetmatch.http`` gives (once, for every API).

FleetmatchError
├── ValidationError (fleetmatch)   bad ticket, unknown queue, party too big   -> 422, names the field
├── NotFoundError (fleetmatch)     no such ticket, or not yours               -> 404 (ids do not leak)
├── BackendError (fleetmatch)      the ticket store is unreachable            -> 503
└── MatchmakerError
    ├── AuthError                  missing, forged or expired token/key       -> 401
    ├── TooManyTicketsError        the player has too many open tickets       -> 429 TooManyTickets
    └── RateLimitedError           the client sends too fast                  -> 429 RateLimited, Retry-After
"""

from __future__ import annotations

from fleetmatch.errors import FleetmatchError


class MatchmakerError(FleetmatchError):
    """Base of the matchmaker's own errors."""


class AuthError(MatchmakerError):
    """The request is not authenticated (the message says why, without leaking secrets)."""

    http_status = 401


class TooManyTicketsError(MatchmakerError):
    http_status = 429
    http_code = "TooManyTickets"

    def __init__(self, owner: str, limit: int) -> None:
        self.owner, self.limit = owner, limit
        super().__init__(f"{owner} already has {limit} open tickets in this queue; cancel one or wait for a match")


class RateLimitedError(MatchmakerError):
    http_status = 429
    http_code = "RateLimited"

    def __init__(self, retry_after: float) -> None:
        self.retry_after: float = retry_after
        super().__init__(f"too many requests; retry in {retry_after:.1f}s")
