"""The ticket-store port: what the matchmaker's API and directors need from storage.

``matchmaker.tickets.RedisTicketStore`` implements it on Redis (every key of a queue in one hash
slot, so it runs unchanged on Redis Cluster; every multi-ticket step one Lua script). The rules:

- ``create`` keeps a player in at most ``max_open_per_player`` open tickets of a queue, counting
  every player of a party and whoever opened the ticket.
- ``claim`` is all-or-nothing: every ticket moves from the pool to a lease held by ``match_id``
  with a deadline, or none does (then the proposal is dropped); a proposal with one player in two
  of its tickets is refused whatever made it.
- ``release`` (allocation failed) and lease expiry (``reap``, a director died) put tickets back
  in the pool **with their original enqueue time**: nobody loses their place. A match whose
  server may have been allocated for nobody (its lease ran out; its director released it after an
  allocation of unknown outcome or a failed assignment) is listed as an **orphan** in the same
  step, until a director has released that server (``take_orphans`` / ``forget_orphan``).
- ``renew`` keeps a held lease alive while its director works on the match (a slow allocation),
  so the lease bounds how long a *dead* director holds tickets, not how long an allocation may take.
- ``assign`` succeeds only if ``match_id`` still holds every ticket's lease; it stores the
  assignments, marks the tickets matched and publishes them.
- ``cancel`` is safe at any time: a leased ticket that is cancelled makes the lease holder's
  ``assign`` fail, and the holder releases the others.
- ``blocks`` / ``set_blocks``: each player's stored block list (players they must never be matched
  with), read once per ticket create and attached to the ticket.
- ``wait_summary`` / ``record_waits``: the queue's recent times to match, as directors summarise
  them for the estimated wait (``matchmaker.estimate``): one small hash, written once per pass.
- ``snapshot`` and ``list_tickets`` are the operators' views (``matchmaker.stats``): bounded reads,
  however long the queue.
- **Acceptance** (queues with ``acceptance``): ``propose`` is ``claim``'s all-or-nothing twin
  that moves the tickets to ``proposed`` until the acceptance deadline instead of leasing them.
  ``accept`` by every ticket (a party's: by each of its players, or by an API key for all)
  leases them all and lists the match as ready, which exactly one
  director takes (``take_ready``) and then allocates and assigns as any claimed match. ``decline``
  (or ``cancel``) cancels the ticket and puts the others back in the pool at their place; past the
  deadline ``reap`` does the same to every ticket that did not accept. No server is allocated
  before everyone accepted, and the deadline lives in the store: any director resolves it.
- Changes a waiting client cares about (matched, cancelled, expired) are published per queue;
  ``updates(queue)`` is one subscription a frontend shares between all its waiting requests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from matchmaker.models import Assignment, Proposal, Ticket


@dataclass(frozen=True, slots=True)
class Reaped:
    leases_returned: tuple[str, ...] = ()
    """Tickets whose lease ran out: back in the pool at their original place."""
    tickets_expired: tuple[str, ...] = ()
    """Tickets that waited past their TTL: now expired (published)."""
    matches_abandoned: tuple[str, ...] = ()
    """Matches whose leases ran out (their director died or stalled): listed as orphans, since a
    server may be allocated for them."""
    proposals_timed_out: tuple[str, ...] = ()
    """Proposed matches whose acceptance deadline passed before everyone accepted: dropped (their
    tickets that accepted are among ``leases_returned``)."""
    tickets_not_accepted: tuple[str, ...] = ()
    """Tickets of those matches that had not accepted: cancelled (published)."""


@dataclass(frozen=True, slots=True)
class StoredProposal:
    """A proposed match as the store keeps it until it is matched or falls through."""

    match_id: str
    proposal: Proposal
    team_sizes: tuple[int, ...]
    """Players per team (what its tickets' players are shown)."""


class Answer(StrEnum):
    """What ``accept`` and ``decline`` did."""

    OK = "ok"
    """Accepted (or declined); also when repeated."""
    READY = "ready"
    """This acceptance was the last one missing: the match goes to allocation."""
    NOT_PROPOSED = "not-proposed"
    """Nothing changed: no match awaits this ticket's answer."""
    LATE = "late"
    """Nothing changed: the acceptance deadline passed (the ticket is cancelled at the next reap)."""


@dataclass(frozen=True, slots=True)
class Tick:
    """One director pass, as the operators' view shows the last one."""

    at: float
    """When it ended (epoch seconds)."""
    seconds: float
    matches: int


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """What the queue statistics are computed from (``matchmaker.stats``), read with bounded work."""

    waiting_tickets: int
    """Queued tickets (not leased): exact."""
    oldest: tuple[Ticket, ...]
    """The longest-waiting queued tickets, oldest first: all of them up to the read's cap."""
    matched_waits: tuple[float, ...]
    """Seconds from enqueue to match of the most recently finished tickets that were matched."""
    last_tick: Tick | None
    """The last director pass on the queue (any director's), None if none ran."""


OPERATOR_STATES = ("queued", "matched", "cancelled", "expired")
"""The states ``list_tickets`` filters by: what clients see (a leased ticket is ``queued``)."""


class TicketStore(Protocol):
    async def blocks(self, players: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """The stored block list of each of ``players`` that has one (one read, whatever the count)."""

    async def set_blocks(self, player: str, blocked: Sequence[str]) -> None:
        """Replace ``player``'s stored block list (empty: none). Open tickets keep the list they
        were opened with."""

    async def create(self, ticket: Ticket, *, max_open_per_player: int) -> Ticket:
        """Store a new queued ticket; ``AlreadyQueuedError`` (naming the player and their oldest
        open ticket) if any of its players is already in ``max_open_per_player`` open (queued or
        leased) tickets of the queue, whoever opened them."""

    async def get(self, ticket_id: str) -> Ticket:
        """The ticket; ``NotFoundError`` if there is none."""

    async def cancel(self, ticket_id: str, *, reason: str = "cancelled by the player") -> Ticket:
        """Cancel a queued or leased ticket; a ticket already matched, cancelled or expired is
        returned unchanged. ``NotFoundError`` if there is none."""

    async def accept(self, ticket_id: str, *, lease_seconds: float, player: str | None = None) -> tuple[Answer, Ticket]:
        """The ticket accepts its proposed match, or only ``player`` of it (a party's members each
        answer for themselves: the ticket accepts once all of them have). The last acceptance
        leases every ticket of the match for ``lease_seconds`` and makes it ready for a director.
        The ticket after."""

    async def decline(self, ticket_id: str, *, reason: str) -> tuple[Answer, Ticket]:
        """The ticket declines its proposed match: cancelled with ``reason``, the match's other
        tickets back to the pool at their original place. The ticket after."""

    async def pool(self, queue: str) -> list[Ticket]:
        """Queued tickets (not leased), oldest enqueue time first: the snapshot a director matches."""

    async def claim(self, queue: str, match_id: str, ticket_ids: Sequence[str], *, lease_seconds: float) -> bool:
        """All tickets queued -> leased by ``match_id`` until now + ``lease_seconds``; or nothing (False).
        ``ValidationError`` (and nothing changed) if one player is in two of the tickets."""

    async def renew(self, queue: str, match_id: str, ticket_ids: Sequence[str], *, lease_seconds: float) -> bool:
        """While ``match_id`` holds every ticket's lease and none has run out: every deadline to now +
        ``lease_seconds`` (True). Otherwise nothing changes (False): a lapsed lease is never revived."""

    async def propose(self, queue: str, match_id: str, proposal: StoredProposal, *, timeout_seconds: float) -> bool:
        """As ``claim``, but the tickets await acceptance (``proposed``) until now + ``timeout_seconds``."""

    async def take_ready(self, queue: str, *, limit: int, lease_seconds: float) -> list[tuple[str, StoredProposal]]:
        """Up to ``limit`` matches every ticket of which accepted, each given to this caller only, with
        its leases renewed for ``lease_seconds``; a match that lost a ticket meanwhile is dropped
        (the others back in the pool)."""

    async def release(self, queue: str, match_id: str, ticket_ids: Sequence[str], *, orphaned: bool = False) -> int:
        """Tickets leased by ``match_id`` back to the pool at their original place; how many.
        ``orphaned``: a server may be allocated for the match (the allocation's outcome is unknown,
        or the assignment failed): list the match as an orphan too, in the same step."""

    async def assign(self, queue: str, match_id: str, assignments: Mapping[str, Assignment]) -> bool:
        """If ``match_id`` holds every ticket's lease: store the assignments, mark them matched,
        publish; True. Otherwise change nothing and return False."""

    async def reap(self, queue: str, *, now: float | None = None) -> Reaped:
        """Return expired leases to the pool (listing their matches as orphans) and expire tickets
        past their TTL."""

    async def take_orphans(self, queue: str, *, limit: int, now: float | None = None) -> list[str]:
        """Up to ``limit`` orphaned matches due for a release attempt. Each stays listed, due again
        after a back-off, until ``forget_orphan``: a director that dies mid-release leaves it to
        another; one that keeps failing is given up after a bounded number of attempts."""

    async def forget_orphan(self, queue: str, match_id: str) -> None:
        """The match's server was released (or is gone): off the orphan list."""

    async def record_tick(self, queue: str, tick: Tick) -> None:
        """Remember ``tick`` as the queue's last director pass."""

    async def wait_summary(self, queue: str) -> dict[str, str]:
        """The queue's wait summary (``matchmaker.estimate``): key -> encoded cell; empty if none yet."""

    async def record_waits(self, queue: str, cells: Mapping[str, str]) -> None:
        """Store these cells of the queue's wait summary (the others stay as they are)."""

    async def snapshot(self, queue: str, *, oldest: int, recent: int) -> QueueSnapshot:
        """The queue's statistics inputs: the ``oldest`` longest-waiting tickets and the match waits
        among the ``recent`` most recently finished ones."""

    async def list_tickets(self, queue: str, *, state: str | None, limit: int) -> tuple[list[Ticket], bool]:
        """Up to ``limit`` tickets of the queue in ``state`` (one of ``OPERATOR_STATES``; None: any),
        queued oldest first, then finished newest first; and whether more were left out. Finished
        tickets are looked for among a bounded number of the most recent ones."""

    async def ping(self) -> None:
        """Reach the store once (a probe); ``BackendError`` if it does not answer."""

    def updates(self, queue: str) -> AsyncIterator[str]:
        """Ids of the queue's tickets as they become matched, cancelled or expired, or are proposed a
        match, accept it or go back to the pool from one (until cancelled).

        The first item is ``""``, once the subscription is in place: every change after it is
        reported (a reader re-reads what may have changed before)."""
