"""The director: one loop per queue that turns waiting tickets into matches on game servers.

Each pass: return expired leases and expire old tickets (``reap``); release the servers of
abandoned matches (below); snapshot the pool; run the queue's match function; for each proposal,
**claim** its tickets (all or nothing: a ticket another director took, or that was cancelled,
drops the proposal), **allocate** a server through the allocation API (the request carries the
match id, as its ``Idempotency-Key`` and in the ``fleetmatch.dev/match-id`` annotation, and per
player the SHA-256 of a fresh connection token, so the game server can check who may join), then
**assign** (only while the lease is held) which publishes the assignment to the waiting clients.

**Acceptance.** On a queue with ``acceptance`` a proposal is *proposed* instead of claimed (all
or nothing as well): its tickets await their players' answers until the deadline, which the store
keeps, not the director. The acceptance that completes a match leases its tickets and lists it as
ready; each pass, a director first takes the ready matches (each goes to one director only) and
allocates and assigns them as above. A decline puts the others back at once (the ticket API does
it); a deadline that passes is resolved by any director's ``reap``. So no server is allocated
before everyone accepted, and a director that dies mid-acceptance leaves nothing unresolved.

When nothing is free (429) the tickets go back to the pool at their original place and the queue
backs off; every failure is counted by reason. Any number of directors may run on one queue: the
claim is the only coordination they need. A director that dies mid-match leaves leases that run
out and return the tickets, still in their place.

**Abandoned matches give their servers back.** A match whose tickets went back to the pool after
a server may have been allocated for it (its director died or stalled past the lease, the
allocation's outcome is unknown, or the assignment failed because a ticket was cancelled or the
lease ran out) is listed as an *orphan* by the same store step that returned the tickets. Every
pass, a director takes the orphans that are due and asks its ``Releasing`` to return that match's
servers: every GameServer annotated with the match id that is still Allocated with no player
connected goes to Shutdown, and its fleet replaces it. An orphan stays listed (retried with
back-off, by any director) until a release succeeded, so a director that dies mid-release loses
nothing. ``StoreReleaser`` does this on the GameServer store; ``AllocatorClient.release_match``
asks the allocation API (``DELETE /v1/allocations/{match id}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from fleetmatch.allocation import AllocationState, GameServerAllocationSpec, GameServerAllocationStatus
from fleetmatch.allocator_client import AllocatorError
from fleetmatch.codec import evolve
from fleetmatch.errors import ConflictError, NotFoundError, StoreError, ValidationError
from fleetmatch.gctune import collector_paused
from fleetmatch.models import GameServer, GameServerState, TemplateMeta
from fleetmatch.store import Store
from fleetmatch.tasks import raise_if_cancelling
from matchmaker import metrics
from matchmaker.backfill import allocation_extras
from matchmaker.explain import blocked_counts
from matchmaker.functions import Matcher as Matcher  # where callers have always found it
from matchmaker.models import Assignment, Proposal, Ticket
from matchmaker.rules import Queue
from matchmaker.shadowrun import ShadowRunner
from matchmaker.stats import players_by_region
from matchmaker.store import StoredProposal, Tick, TicketStore
from matchmaker.waits import WaitRecorder

log = logging.getLogger(__name__)

MATCH_ID_ANNOTATION = "fleetmatch.dev/match-id"
QUEUE_ANNOTATION = "fleetmatch.dev/queue"
PLAYER_TOKENS_ANNOTATION = "fleetmatch.dev/player-tokens"
"""JSON ``{player id: sha256 hex of the player's connection token}`` on the allocated server: the
game server accepts a player whose token hashes to their entry (it never sees the tokens)."""
PLAYER_ROLES_ANNOTATION = "fleetmatch.dev/player-roles"
"""JSON ``{player id: role}``, in a queue whose teams have role slots: who plays what."""

MAX_BACKOFF = 5.0
THREAD_POOL_SIZE = 5_000
"""Pools larger than this are matched in a worker thread (about 0.1 s of work per 10,000 tickets)."""
READY_BATCH = 64
"""Accepted matches one pass takes to allocate, at most (the rest next pass)."""
ORPHAN_BATCH = 16
"""Abandoned matches one pass releases servers for, at most (the rest next pass)."""
BLOCKED_EVERY = 2.0
"""Seconds between two samples of ``fleetmatch_tickets_blocked`` (``matchmaker.explain.blocked_counts``)."""
GIVE_BACK_SECONDS = 2.0
"""How long a director that is stopped mid-match waits for its tickets to go back to the pool."""
MIN_HOLD_SECONDS = 30.0
"""A match's leases are renewed for at most ``max(MIN_HOLD_SECONDS, 2 * lease)`` by default: a
director alive but stuck mid-allocation (a hung call) must not hold its tickets forever."""
ORPHANING = frozenset({"error", "lost-lease"})
"""Failures after which a server may be allocated for the match: an allocation of unknown outcome
(the request may have reached the allocator), or one the assignment could not use."""


class Allocating(Protocol):
    """What a director needs from the allocation API client."""

    async def allocate(self, spec: GameServerAllocationSpec, *, idempotency_key: str) -> GameServerAllocationStatus: ...


class Releasing(Protocol):
    """How a director returns the servers of a match nobody got."""

    async def release_match(self, match_id: str) -> tuple[str, ...]:
        """Every server allocated for ``match_id`` that is still Allocated with no player connected:
        to Shutdown (its fleet replaces it). Their names; ``()`` if there are none (released
        already, never allocated, or players joined). Raises ``StoreError`` or ``AllocatorError``
        when it could not tell: the director tries again later (an ``AllocatorError`` of status 404
        or 405 says the allocator cannot release at all: not retried)."""
        ...


def abandoned_by(gs: GameServer, match_id: str) -> bool:
    """Whether ``gs`` was allocated for ``match_id`` and is still Allocated with nobody on it."""
    players = gs.status.players
    return (
        gs.status.state is GameServerState.ALLOCATED
        and gs.metadata.annotations.get(MATCH_ID_ANNOTATION) == match_id
        and (players is None or (players.count == 0 and not players.ids))
    )


class StoreReleaser:
    """``Releasing`` straight on the GameServer store, for a process that embeds the matchmaker next
    to the store: what the allocation API's release does, without the API (and without refusing the
    key afterwards: the allocation API does that). Each write is conditional on
    the version it read, so a player who connects (or an allocator that reallocates the server)
    meanwhile wins: the server is then re-read and kept."""

    def __init__(self, gameservers: Store[GameServer], *, attempts: int = 5) -> None:
        self._store = gameservers
        self._attempts = attempts

    async def release_match(self, match_id: str) -> tuple[str, ...]:
        items, _ = await self._store.list()
        released = [gs.name for gs in items if abandoned_by(gs, match_id) and await self._shut_down(gs, match_id)]
        return tuple(released)

    async def _shut_down(self, gs: GameServer, match_id: str) -> bool:
        for _ in range(self._attempts):
            try:
                await self._store.update(gs.with_status(state=GameServerState.SHUTDOWN))
                return True
            except ConflictError:
                try:
                    gs = await self._store.get(gs.name)
                except NotFoundError:
                    return False
                if not abandoned_by(gs, match_id):
                    return False
        raise ConflictError(GameServer.KIND, gs.name, gs.metadata.resource_version, None)


class QueueLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def tick_seconds(self) -> float: ...

    @property
    def acceptance_seconds(self) -> float | None:
        """Seconds players have to accept a proposed match; None: no ready check."""
        ...

    def allocation_spec(self, region: str) -> GameServerAllocationSpec: ...


class Backfilling(Protocol):
    """Running matches that want players (``matchmaker.backfiller``): filled before new matches."""

    async def scan(self) -> None:
        """Open or update backfills from the game servers' ``players`` Lists."""

    async def fill(self, pool: Sequence[Ticket]) -> list[Ticket]:
        """Fill the open backfills from ``pool``; the tickets left for new matches."""
        ...


class MatchRecorder(Protocol):
    """Where assigned matches are remembered, so their results can be posted (``matchmaker.ratingstore``)."""

    async def record_match(self, queue: str, match_id: str, teams: Sequence[Sequence[str]]) -> None: ...


def run_match(match: Matcher, pool: Sequence[Ticket], now: float) -> list[Proposal]:
    """One call of the match function as a tick makes it: with the cyclic garbage collector paused.

    A tick allocates hundreds of thousands of short-lived, acyclic objects; with a large pool alive,
    the collections they trigger walk the whole pool again and again (at 100,000 tickets 10-20 % of
    a tick, half of the proposal building; docs/benchmarks.md). ``loadtest.bench_match`` times this.
    """
    with collector_paused():
        return match(pool, now)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(slots=True)
class TickReport:
    pool: int = 0
    proposals: int = 0
    matched: int = 0
    conflicts: int = 0
    failed: int = 0
    proposed: int = 0
    """Matches put to their players (queues with acceptance)."""


class Director:
    def __init__(
        self,
        store: TicketStore,
        queue: QueueLike,
        match: Matcher,
        allocator: Allocating,
        *,
        lease_seconds: float = 15.0,
        max_hold_seconds: float | None = None,
        concurrency: int = 32,
        clock: Callable[[], float] = time.time,
        releaser: Releasing | None = None,
        matches: MatchRecorder | None = None,
        shadow: ShadowRunner | None = None,
        backfiller: Backfilling | None = None,
    ) -> None:
        """``releaser``: how servers of abandoned matches go back (None: they are left to their
        game's own join timeout, and no orphan is listed). ``matches``: where assigned matches are
        recorded for their results (a queue with a rating rule). ``shadow``: the queue's shadow
        match function, given each pass's snapshot and proposals (``matchmaker.shadowrun``).
        ``backfiller``: running matches' open slots are filled first each pass, and new matches
        carry what backfill needs. ``max_hold_seconds``: how long a match's leases are renewed
        while it is allocated (default ``max(MIN_HOLD_SECONDS, 2 * lease_seconds)``); past it they
        run out and other directors take the tickets (its late assignment then fails)."""
        self.matches = matches
        self.shadow = shadow
        self.backfiller = backfiller
        self.store = store
        self.queue = queue
        self.match = match
        self.allocator = allocator
        self.releaser = releaser
        self._cannot_release = False
        self.lease_seconds = lease_seconds
        if max_hold_seconds is None:
            max_hold_seconds = max(MIN_HOLD_SECONDS, 2 * lease_seconds)
        self.max_hold_seconds = max_hold_seconds
        self._limit = asyncio.Semaphore(concurrency)
        self._clock = clock
        self._backoff = 0.0
        self._gauged_regions: set[str] = set()
        self._waits = WaitRecorder(store, queue.name, queue if isinstance(queue, Queue) else None, clock)
        """Times to match seen this pass and the pool's depth: published once at its end."""
        self._next_blocked = 0.0
        self._ids = {"queue": queue.name}
        """Log identity (``fleetmatch.logging.IDENTITY_KEYS``); a match's lines add its ``match_id``."""

    async def run(self) -> None:
        """Tick every ``queue.tick_seconds`` (longer while the fleet has no room) until cancelled."""
        try:
            while True:
                started = time.perf_counter()
                try:
                    await self.tick()
                except StoreError as exc:
                    raise_if_cancelling()
                    log.warning("director pass on %s failed: %s", self.queue.name, exc, extra=self._ids)
                elapsed = time.perf_counter() - started
                await asyncio.sleep(max(0.0, self.queue.tick_seconds + self._backoff - elapsed))
        finally:
            if self.shadow is not None:
                await self.shadow.close()

    async def tick(self) -> TickReport:
        """One pass; then it is recorded as the queue's last (``fleetmatch queue list`` shows it)."""
        started = time.perf_counter()
        report = await self._pass()
        seconds = time.perf_counter() - started
        await self.store.record_tick(self.queue.name, Tick(self._clock(), seconds, report.matched))
        return report

    async def _pass(self) -> TickReport:
        name = self.queue.name
        report = TickReport()
        with metrics.DIRECTOR_TICK_SECONDS.labels(queue=name).time():
            reaped = await self.store.reap(name)
            if reaped.tickets_expired:
                metrics.TICKETS.labels(queue=name, event="expired").inc(len(reaped.tickets_expired))
            if reaped.leases_returned:
                metrics.TICKETS.labels(queue=name, event="released").inc(len(reaped.leases_returned))
            if reaped.matches_abandoned:
                log.info(
                    "leases of %d match(es) ran out (their director died or stalled): %s",
                    len(reaped.matches_abandoned),
                    ", ".join(reaped.matches_abandoned),
                    extra=self._ids,
                )
            self._count_timeouts(reaped.proposals_timed_out, reaped.tickets_not_accepted)
            if self.releaser is not None:
                await self._release_orphans(self.releaser)
            accepted = await self._play_accepted()
            pool = await self.store.pool(name)
            if self.backfiller is not None:
                pool = await self._backfill(self.backfiller, pool)
            report.pool = len(pool)
            self._gauge_waiting(pool)
            if not pool:
                self._gauge_blocked(pool, ())
                await self._waits.publish(pool)  # accepted matches were timed too
                self._tally(report, accepted)
                return report
            now = self._clock()
            with metrics.MATCH_SECONDS.labels(queue=name).time():
                if len(pool) > THREAD_POOL_SIZE:  # a big pool takes a while: keep the loop answering
                    proposals = await asyncio.to_thread(run_match, self.match, pool, now)
                else:
                    proposals = run_match(self.match, pool, now)
            report.proposals = len(proposals)
            if self.shadow is not None:
                self.shadow.observe(pool, proposals, now)  # never awaited: the live path goes on
            by_id = {t.id: t for t in pool}
            results = await asyncio.gather(*(self._play_safely(p, by_id) for p in proposals))
            self._gauge_blocked(pool, proposals)
            await self._waits.publish(pool)
        self._tally(report, [*accepted, *results])
        return report

    async def _backfill(self, backfiller: Backfilling, pool: list[Ticket]) -> list[Ticket]:
        """Running matches first: their open slots take what fits from the pool."""
        try:
            await backfiller.scan()
            return await backfiller.fill(pool)
        except StoreError as exc:
            raise_if_cancelling()
            log.warning("backfill on %s failed this pass: %s", self.queue.name, exc, extra=self._ids)
            return pool

    def _tally(self, report: TickReport, outcomes: Sequence[str]) -> None:
        for outcome in outcomes:
            if outcome == "matched":
                report.matched += 1
            elif outcome == "proposed":
                report.proposed += 1
            elif outcome == "conflict":
                report.conflicts += 1
            else:
                report.failed += 1
        if report.matched:
            self._backoff = 0.0

    def _count_timeouts(self, matches: Sequence[str], tickets: Sequence[str]) -> None:
        name = self.queue.name
        if matches:
            metrics.MATCH_PROPOSALS.labels(queue=name, outcome="timed-out").inc(len(matches))
            log.info(
                "%d proposed match(es) not accepted in time; %d ticket(s) that did not accept cancelled",
                len(matches),
                len(tickets),
                extra=self._ids,
            )
        if tickets:
            metrics.TICKETS.labels(queue=name, event="cancelled").inc(len(tickets))

    async def _play_accepted(self) -> list[str]:
        """Allocate and assign the matches every ticket of which accepted (queues with acceptance)."""
        if self.queue.acceptance_seconds is None:
            return []
        ready = await self.store.take_ready(self.queue.name, limit=READY_BATCH, lease_seconds=self.lease_seconds)
        return list(await asyncio.gather(*(self._play_ready_safely(m, s) for m, s in ready)))

    async def _play_ready_safely(self, match_id: str, stored: StoredProposal) -> str:
        try:
            ids = stored.proposal.ticket_ids
            tickets = {t.id: t for t in await asyncio.gather(*(self.store.get(tid) for tid in ids))}
            async with self._limit:
                return await self._allocate_or_release(match_id, stored.proposal, tickets)
        except (StoreError, ValidationError) as exc:
            raise_if_cancelling()
            log.warning("accepted match %s failed: %s", match_id, exc, extra={**self._ids, "match_id": match_id})
            metrics.ALLOCATION_FAILURES.labels(queue=self.queue.name, reason="error").inc()
            return "error"

    def _gauge_blocked(self, pool: Sequence[Ticket], proposals: Sequence[Proposal]) -> None:
        """``fleetmatch_tickets_blocked``: why the longest-waiting tickets left unmatched wait, by
        rule; sampled at most every ``BLOCKED_EVERY`` seconds (bounded work: ``blocked_counts``)."""
        queue = self.queue
        now = self._clock()
        if not isinstance(queue, Queue) or now < self._next_blocked:
            return
        self._next_blocked = now + BLOCKED_EVERY
        taken = {tid for p in proposals for tid in p.ticket_ids}
        unmatched = [t for t in pool if t.id not in taken]
        gauge = metrics.TICKETS_BLOCKED
        for rule, count in blocked_counts(unmatched, queue, now).items():
            gauge.labels(queue=queue.name, rule=rule).set(count)

    async def _release_orphans(self, releaser: Releasing) -> None:
        """Return the servers of the abandoned matches that are due (see the module docstring)."""
        name = self.queue.name
        due = await self.store.take_orphans(name, limit=ORPHAN_BATCH)
        await asyncio.gather(*(self._release_orphan(releaser, match_id) for match_id in due))

    async def _release_orphan(self, releaser: Releasing, match_id: str) -> None:
        name = self.queue.name
        ids = {**self._ids, "match_id": match_id}
        try:
            released = await releaser.release_match(match_id)
        except AllocatorError as exc:
            if exc.status not in (404, 405):
                log.warning(
                    "releasing the server of abandoned match %s failed, retried later: %s", match_id, exc, extra=ids
                )
                return
            if not self._cannot_release:
                self._cannot_release = True
                log.warning(
                    "the allocator cannot release servers (%s): those of abandoned matches stay Allocated until "
                    "their game ends them",
                    exc,
                    extra=ids,
                )
            released = ()
        except StoreError as exc:
            raise_if_cancelling()
            log.warning(
                "releasing the server of abandoned match %s failed, retried later: %s", match_id, exc, extra=ids
            )
            return
        await self.store.forget_orphan(name, match_id)
        if released:
            metrics.SERVERS_RELEASED.labels(queue=name).inc(len(released))
            log.info("returned %s, allocated for abandoned match %s", ", ".join(released), match_id, extra=ids)

    def _gauge_waiting(self, pool: Sequence[Ticket]) -> None:
        per_region = players_by_region(pool)
        gauge = metrics.PLAYERS_WAITING
        for region, players in per_region.items():
            gauge.labels(queue=self.queue.name, region=region).set(players)
        for region in self._gauged_regions - set(per_region):
            gauge.labels(queue=self.queue.name, region=region).set(0)
        self._gauged_regions = set(per_region)

    async def _play_safely(self, proposal: Proposal, tickets: Mapping[str, Ticket]) -> str:
        """``_play``, but one bad proposal (a match-function bug, a store hiccup) costs only itself."""
        try:
            return await self._play(proposal, tickets)
        except (StoreError, ValidationError) as exc:
            raise_if_cancelling()
            log.warning("proposal %s failed: %s", proposal.ticket_ids, exc, extra=self._ids)
            metrics.ALLOCATION_FAILURES.labels(queue=self.queue.name, reason="error").inc()
            return "error"

    async def _play(self, proposal: Proposal, tickets: Mapping[str, Ticket]) -> str:
        """One proposal to its end: 'matched', 'conflict' or a failure reason."""
        name = self.queue.name
        async with self._limit:
            match_id = uuid.uuid4().hex
            ids = proposal.ticket_ids
            window = self.queue.acceptance_seconds
            if window is not None:
                return await self._propose(match_id, proposal, tickets, window)
            if not await self.store.claim(name, match_id, ids, lease_seconds=self.lease_seconds):
                metrics.CLAIM_CONFLICTS.labels(queue=name).inc()
                return "conflict"
            return await self._allocate_or_release(match_id, proposal, tickets)

    async def _propose(self, match_id: str, proposal: Proposal, tickets: Mapping[str, Ticket], window: float) -> str:
        """Put the match to its players (nothing is allocated until every ticket accepted)."""
        name = self.queue.name
        sizes = tuple(sum(tickets[tid].size for tid in team) for team in proposal.teams)
        stored = StoredProposal(match_id, proposal, sizes)
        if not await self.store.propose(name, match_id, stored, timeout_seconds=window):
            metrics.CLAIM_CONFLICTS.labels(queue=name).inc()
            return "conflict"
        metrics.MATCH_PROPOSALS.labels(queue=name, outcome="proposed").inc()
        return "proposed"

    async def _allocate_or_release(self, match_id: str, proposal: Proposal, tickets: Mapping[str, Ticket]) -> str:
        """A match whose tickets this director holds (leased): allocate and assign, or put them back."""
        name = self.queue.name
        ids = proposal.ticket_ids
        tokens = {p.id: secrets.token_urlsafe(18) for tid in ids for p in tickets[tid].players}
        try:
            async with self._lease_kept(match_id, ids):
                reason = await self._allocate_and_assign(match_id, proposal, tickets, tokens)
        except asyncio.CancelledError:
            await self._give_back(match_id, ids)
            raise
        if reason != "matched":
            orphaned = reason in ORPHANING and self.releaser is not None
            released = await self.store.release(name, match_id, ids, orphaned=orphaned)
            metrics.TICKETS.labels(queue=name, event="released").inc(released)
            metrics.ALLOCATION_FAILURES.labels(queue=name, reason=reason).inc()
        return reason

    @contextlib.asynccontextmanager
    async def _lease_kept(self, match_id: str, ids: Sequence[str]) -> AsyncIterator[None]:
        """Renew the match's leases every third of their length while the body runs: the lease
        says how long a *dead* director holds tickets, not how long an allocation may take (on a
        starved machine, leases lapsing mid-allocation undid every match: nothing was matched)."""
        keeper = asyncio.create_task(self._keep_lease(match_id, ids), name=f"lease of match {match_id}")
        try:
            yield
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)

    async def _keep_lease(self, match_id: str, ids: Sequence[str]) -> None:
        name = self.queue.name
        loop = asyncio.get_running_loop()
        until = loop.time() + self.max_hold_seconds
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            if loop.time() + self.lease_seconds > until:
                log.warning(
                    "match %s is still being allocated after %.0f s; its leases run out now",
                    match_id,
                    self.max_hold_seconds,
                    extra={**self._ids, "match_id": match_id},
                )
                return
            try:
                if not await self.store.renew(name, match_id, ids, lease_seconds=self.lease_seconds):
                    return  # a ticket was cancelled or the lease lapsed: the assignment says so
            except StoreError as exc:
                raise_if_cancelling()
                log.warning("renewing the leases of match %s failed: %s", match_id, exc, extra=self._ids)
            metrics.LEASE_RENEWALS.labels(queue=name).inc()

    async def _give_back(self, match_id: str, ids: Sequence[str]) -> None:
        """Stopped mid-match (shutdown): the tickets go back to the pool now, not when their lease
        runs out, and the match is listed as an orphan (its allocation may have gone through) unless
        it was assigned already (``release`` checks that in the same step)."""
        release = self.store.release(self.queue.name, match_id, ids, orphaned=self.releaser is not None)
        try:
            await asyncio.wait_for(asyncio.shield(release), GIVE_BACK_SECONDS)
        except (StoreError, TimeoutError) as exc:
            log.warning(
                "match %s stopped mid-way; its tickets go back when their lease runs out (%r)",
                match_id,
                exc,
                extra={**self._ids, "match_id": match_id},
            )

    async def _allocate_and_assign(
        self, match_id: str, proposal: Proposal, tickets: Mapping[str, Ticket], tokens: Mapping[str, str]
    ) -> str:
        name = self.queue.name
        spec = self.queue.allocation_spec(proposal.region)
        annotations = {
            **spec.metadata.annotations,
            MATCH_ID_ANNOTATION: match_id,
            QUEUE_ANNOTATION: name,
            PLAYER_TOKENS_ANNOTATION: json.dumps({p: token_hash(t) for p, t in tokens.items()}, sort_keys=True),
        }
        if proposal.roles:
            annotations[PLAYER_ROLES_ANNOTATION] = json.dumps(dict(proposal.roles), sort_keys=True)
        if self.backfiller is not None and isinstance(self.queue, Queue):
            extra, spec = allocation_extras(spec, proposal, tickets, self.queue)
            annotations.update(extra)
        spec = evolve(spec, metadata=TemplateMeta(labels=spec.metadata.labels, annotations=annotations))
        try:
            status = await self.allocator.allocate(spec, idempotency_key=match_id)
        except AllocatorError as exc:
            log.warning("allocation for match %s failed: %s", match_id, exc, extra={**self._ids, "match_id": match_id})
            self._back_off()
            return "no-fleet" if exc.code == "FleetNotFound" else "error"  # a 404 allocated nothing
        if status.state is not AllocationState.ALLOCATED:
            self._back_off()
            return "no-capacity" if status.state is AllocationState.UNALLOCATED else "contention"
        port = status.ports[0].port if status.ports else 0
        assignments = {
            tid: Assignment(
                match_id=match_id,
                game_server=status.game_server_name,
                address=status.address,
                port=port,
                ports=status.ports,
                team=team,
                region=proposal.region,
                tokens={p.id: tokens[p.id] for p in tickets[tid].players},
                team_name=proposal.team_names[team] if proposal.team_names else "",
                roles={p.id: proposal.roles[p.id] for p in tickets[tid].players if p.id in proposal.roles},
            )
            for team, members in enumerate(proposal.teams)
            for tid in members
        }
        if not await self.store.assign(name, match_id, assignments):
            # A ticket was cancelled (or the lease ran out) after the claim: the others go back,
            # and the server, allocated for nobody, is released as the match's orphan.
            log.info(
                "match %s lost a ticket before assignment; its server %s goes back",
                match_id,
                status.game_server_name,
                extra={**self._ids, "match_id": match_id},
            )
            return "lost-lease"
        now = self._clock()
        for tid in proposal.ticket_ids:
            waited = max(0.0, now - tickets[tid].enqueued_at)
            metrics.TIME_TO_MATCH.labels(queue=name).observe(waited)
            self._waits.matched(tickets[tid], waited)
        metrics.TICKETS.labels(queue=name, event="matched").inc(len(proposal.ticket_ids))
        quality = proposal.quality
        metrics.MATCH_SKILL_SPREAD.labels(queue=name).observe(quality.skill_spread)
        metrics.MATCH_LONGEST_WAIT.labels(queue=name).observe(quality.longest_wait_seconds)
        if quality.worst_latency_ms is not None:
            metrics.MATCH_WORST_LATENCY.labels(queue=name).observe(quality.worst_latency_ms / 1000)
        if quality.draw_probability is not None:
            metrics.MATCH_DRAW_PROBABILITY.labels(queue=name).observe(quality.draw_probability)
        if self.matches is not None:
            await self._record(match_id, proposal, tickets)
        return "matched"

    async def _record(self, match_id: str, proposal: Proposal, tickets: Mapping[str, Ticket]) -> None:
        """Remember the match for its result; a failure costs only the ratings of this match."""
        assert self.matches is not None
        teams = [[p.id for tid in team for p in tickets[tid].players] for team in proposal.teams]
        try:
            await self.matches.record_match(self.queue.name, match_id, teams)
        except StoreError as exc:
            raise_if_cancelling()
            log.warning(
                "match %s is played, but its result cannot be posted: recording it failed: %s",
                match_id,
                exc,
                extra={**self._ids, "match_id": match_id},
            )

    def _back_off(self) -> None:
        """No room (or the allocator failed): the next passes wait longer, doubling up to ``MAX_BACKOFF``."""
        self._backoff = min(MAX_BACKOFF, max(self.queue.tick_seconds, self._backoff * 2))
