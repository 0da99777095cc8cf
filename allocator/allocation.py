"""Allocation: choose a server from the watch-fed index, claim it with one conditional write.

Correct with any number of allocator processes: a claim is ``store.update`` on the version this
process saw, so when two allocators pick the same server exactly one write lands; the other gets
``ConflictError`` and retries on a *different* server (the loser excludes it). Within one process,
servers being claimed are excluded from concurrent requests. There is no batching wait: an idle
allocator answers at once. The claim writes state Allocated, the request's labels and annotations
and ``agones.dev/last-allocated`` in the same write, so a server is never half-claimed.

Idempotency: a request may carry a key (``Idempotency-Key``). The claim records it on the server
(``fleetmatch.dev/allocation-key``, with a digest of the request), in the same write, so a retry
answers with that server, from any allocator whose index has seen the write. Two requests with
one key racing in two allocators before either write is seen would both claim; so a keyed request
first *reserves* its key (``KeyReservations``: a Redis key set if absent, with a TTL), across
processes, and within this one waits on the key's lock. A request that cannot reserve waits a
little for the holder's claim to show up, then answers ``KeyInUseError`` (retry). The reservation
outlives a claim by its TTL, covering the time other allocators need to see the write; it is
released at once when nothing was claimed.

A request whose client has hung up is not claimed for (``abandoned``, asked just before the
write); what vanishes between that check and the write is left to allocation leases
(``allocator.allocation_lease``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from allocator import metrics
from allocator.choose import choose_server
from allocator.errors import ClientGoneError, KeyInUseError, KeyReleasedError
from allocator.index import AllocationIndex, Share
from fleetmatch.allocation import (
    ALLOCATABLE_STATES,
    ALLOCATION_KEY_ANNOTATION,
    ALLOCATION_LEASE_ANNOTATION,
    ALLOCATION_REQUEST_ANNOTATION,
    IDEMPOTENCY_HEADER,
    AllocationKey,
    AllocationState,
    GameServerAllocationSpec,
    GameServerAllocationStatus,
    allocation_keys,
    lease_annotation,
    with_allocation_key,
)
from fleetmatch.codec import evolve, format_timestamp
from fleetmatch.errors import ConflictError, NotFoundError, StoreError, ValidationError
from fleetmatch.informer import Informer
from fleetmatch.lease import Lease
from fleetmatch.models import (
    FLEET_LABEL,
    LAST_ALLOCATED_ANNOTATION,
    Fleet,
    GameServer,
    GameServerState,
    TemplateMeta,
    initial_status,
)
from fleetmatch.nodes import DEFAULT_LEASE_SECONDS, NodeRegistry, OutageGrace, live_nodes
from fleetmatch.store import EventType, GameServerStore, Store, WatchEvent, modify

log = logging.getLogger(__name__)

AHEAD_SECONDS = 5.0
"""How long a claim put into the index from its write's reply waits for the watch to bring it before
changes the watch brings of that server are taken as they come again (a watch lagging that far, or
one that re-listed past it)."""
CONTESTED_SECONDS = 0.5
"""A node where another allocator's claim of a Ready server arrived this recently is contested: a
worker with a share leaves the others' servers there to them while its own share has servers
elsewhere (``allocator.choose.choose_server``)."""

MAX_CLAIM_WAITS = 64
"""In-flight claims one request may wait for before answering UnAllocated."""
MAX_ATTEMPTS = 8
"""Claims one request may try (each on another server) before answering Contention."""
NODE_POLL_SECONDS = 1.0
"""How often the allocator reads node heartbeats: a node is out of reach this long after it lapses."""
KEY_TTL_SECONDS = 15.0
"""How long a key's reservation lasts: past a claim, the time every allocator has to see the write
(informers lag by milliseconds); for a holder stalled before its claim, how long others wait."""
RELEASE_FENCE_SECONDS = 600.0
"""How long a released key stays refused (a late retry of an abandoned match must not claim)."""
KEY_WAIT_SECONDS = 1.0
"""How long a request whose key another holds waits for that claim to show up before a 409."""
_KEY_POLL_SECONDS = 0.05


def allocated(
    gs: GameServer,
    spec: GameServerAllocationSpec,
    now: float,
    *,
    key: AllocationKey | None = None,
    lease_seconds: float = 0.0,
) -> GameServer:
    """``gs`` as the allocation writes it: Allocated, with the request's labels and annotations and
    its counter and list actions applied (on counters and lists the server has; others are ignored).
    ``key`` is recorded on it; ``lease_seconds`` > 0 leases a server taken from Ready (one taken
    again, for another room, is in use: it gets no lease, and loses any it had)."""
    metadata = spec.metadata
    annotations = {**gs.metadata.annotations, **metadata.annotations, LAST_ALLOCATED_ANNOTATION: format_timestamp(now)}
    from_ready = gs.status.state is not GameServerState.ALLOCATED
    kept = allocation_keys(gs)  # none from Ready: those keys' allocations are over
    if ALLOCATION_KEY_ANNOTATION in annotations and not kept:
        del annotations[ALLOCATION_KEY_ANNOTATION]
        annotations.pop(ALLOCATION_REQUEST_ANNOTATION, None)
    if key is not None:
        with_allocation_key(annotations, key, kept=kept)
    if not from_ready or not lease_seconds:
        annotations.pop(ALLOCATION_LEASE_ANNOTATION, None)
    labels = {**gs.metadata.labels, **metadata.labels} if metadata.labels else gs.metadata.labels
    status = evolve(gs.status, state=GameServerState.ALLOCATED)
    if spec.counters or spec.lists:
        status = initial_status(gs.spec, status)
        counters = dict(status.counters)
        for name, action in spec.counters.items():
            if name in counters:
                counters[name] = action.apply(counters[name])
        lists = dict(status.lists)
        for name, list_action in spec.lists.items():
            if name in lists:
                lists[name] = list_action.apply(lists[name])
        status = evolve(status, counters=counters, lists=lists)
    if from_ready and lease_seconds:
        annotations[ALLOCATION_LEASE_ANNOTATION] = lease_annotation(now + lease_seconds, labels, annotations, status)
    # Request labels were validated when the request was decoded: no need to validate again (and
    # one copy of the server, not two: this runs on every allocation).
    return evolve(gs, metadata=evolve(gs.metadata, labels=labels, annotations=annotations), status=status)


_NO_METADATA = TemplateMeta()


def status_of(gs: GameServer) -> GameServerAllocationStatus:
    """The Allocated answer naming ``gs`` as it now is. Its labels and annotations are the stored
    server's, valid already: copied without validating them again (on every allocation)."""
    status = gs.status
    return GameServerAllocationStatus(
        state=AllocationState.ALLOCATED,
        game_server_name=gs.metadata.name,
        address=status.address,
        ports=status.ports,
        node_name=status.node_name,
        metadata=evolve(_NO_METADATA, labels=gs.metadata.labels, annotations=gs.metadata.annotations),
        counters=status.counters,
        lists=status.lists,
    )


@dataclass(slots=True)
class _Hold:
    """A key this request reserved, and when (renewed before a claim made late)."""

    key: str
    since: float


class KeyReservations(Protocol):
    """Idempotency keys held across allocator processes (a record per key, with a TTL)."""

    async def reserve(self, key: str, ttl: float) -> bool:
        """Hold ``key`` for ``ttl`` seconds (or renew our hold); False while someone else holds it."""

    async def release(self, key: str) -> None:
        """Let go of ``key`` (if we hold it)."""


class LeaseReservations:
    """``KeyReservations`` on the backend's leases (``Backend.lease``: on Redis a key set if absent
    with a TTL, held by this process). Within the process the allocator serializes each key itself."""

    def __init__(self, lease: Callable[[str, float], Lease]) -> None:
        self._lease = lease

    @staticmethod
    def name(key: str) -> str:
        """The lease of ``key``: a digest, so that any key makes a valid, short name."""
        return "allocation-key." + hashlib.blake2b(key.encode(), digest_size=16).hexdigest()

    async def reserve(self, key: str, ttl: float) -> bool:
        return await self._lease(self.name(key), ttl).acquire()

    async def release(self, key: str) -> None:
        await self._lease(self.name(key), KEY_TTL_SECONDS).release()


class Allocator:
    def __init__(
        self,
        store: GameServerStore,
        informer: Informer[GameServer],
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        max_attempts: int = MAX_ATTEMPTS,
        nodes: NodeRegistry | None = None,
        node_lease: float = DEFAULT_LEASE_SECONDS,
        reservations: KeyReservations | None = None,
        key_ttl: float = KEY_TTL_SECONDS,
        key_wait: float = KEY_WAIT_SECONDS,
        lease_seconds: float = 0.0,
        fleets: Store[Fleet] | None = None,
        share: Share | None = None,
    ) -> None:
        """``informer``: the process's GameServer informer on ``store`` (``Backend.informer``): the
        index is fed by its events from now on, starting with what it has cached. ``nodes``: node
        heartbeats (``follow_nodes`` keeps servers of silent or restarted node agents out of reach).
        ``reservations``: where keys are reserved across processes (None: this process only).
        ``lease_seconds``: allocation lease stamped on servers taken from Ready (0: none).
        ``fleets``: where ``missing_fleet`` looks fleets up (None: every fleet counts as existing).
        ``share``: this allocator's share of the servers, tried first (one of ``--workers N``)."""
        self.store = store
        self.fleets = fleets
        self.reservations = reservations
        self._key_ttl = key_ttl
        self._key_wait = key_wait
        self._lease_seconds = lease_seconds
        self._keys: dict[str, str] = {}
        """Idempotency key -> the Allocated server carrying it."""
        self._keys_of: dict[str, list[str]] = {}
        """Server -> the keys it carries (to forget them when it changes)."""
        self._key_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._key_seen = asyncio.Event()
        """Set (and replaced) each time a server carrying a key is indexed."""
        self._released: dict[str, float] = {}
        """Keys released here -> until when (``time.monotonic``) they are refused."""
        self.nodes = nodes
        self._node_lease = node_lease
        self._nodes_known = asyncio.Event()
        if nodes is None:
            self._nodes_known.set()
        self.index = AllocationIndex(share)
        self.informer = informer
        self._rng = rng or random.Random()
        self._clock = clock
        self._max_attempts = max_attempts
        self._claiming: dict[str, GameServer] = {}
        """Servers this process is claiming now, as they were chosen: held out of the index until the
        claim ends, so concurrent choices (64 requests on the node Packed prefers) do not keep
        probing and scanning past them."""
        self._touched: set[str] = set()
        """Servers of ``_claiming`` that a change reached meanwhile (the index has that version)."""
        self._ahead: dict[str, tuple[str, float]] = {}
        """Servers whose claim by this process went into the index from the write's reply, before the
        watch brought it: name -> (that resourceVersion, when). A change stream delivers in order,
        so until the watch brings that version what it brings of the server is older (an earlier
        claim of this process coming back late) and must not replace it: a high-density server
        claimed twice in a row would go back to its first claim's counters, and the next room's
        claim would lose to this process's own second one."""
        self._foreign_claims: dict[str, float] = {}
        """With a share: node -> when (``time.monotonic``) another allocator's claim of a Ready
        server there last reached the watch (``contested``)."""
        self._landed = asyncio.Event()
        """Set (and replaced) each time a claim of this process ends, won or lost."""
        for state in (GameServerState.READY, GameServerState.ALLOCATED):
            metrics.ALLOCATABLE.labels(state=state.value).set_function(partial(self.index.count, state))
        self.close = informer.add_handler(self._on_event)
        """Stop following the informer (the index then goes stale)."""

    def set_share(self, share: Share | None) -> None:
        """Take ``share`` of the servers from now on (``allocator.roster``); None: no preference."""
        self.index.set_share(share)
        if share is None:
            self._foreign_claims.clear()

    def _on_event(self, event: WatchEvent[GameServer]) -> None:
        gs = event.object
        ahead = self._ahead.get(gs.name)
        if ahead is not None:
            version, since = ahead
            caught_up = gs.metadata.resource_version == version or event.type is EventType.DELETED
            if not caught_up and time.monotonic() - since <= AHEAD_SECONDS:
                return  # older than the claim the index has
            del self._ahead[gs.name]  # the watch caught up with this process's claim (or lags too far)
        if gs.name in self._claiming:
            self._touched.add(gs.name)
        if event.type is EventType.DELETED:
            self.index.remove(gs.name)
            if gs.name in self._keys_of:
                self._index_keys(gs.name, [])
            return
        if ALLOCATION_KEY_ANNOTATION in gs.metadata.annotations or gs.name in self._keys_of:
            self._index_keys(gs.name, [key for key, _ in allocation_keys(gs)])
        known = self.index.servers.get(gs.name)
        if known is not gs:  # our own claims come back as the same object
            if (
                self.index.share is not None
                and gs.state is GameServerState.ALLOCATED
                and known is not None
                and known.state is GameServerState.READY
                and gs.name not in self._claiming
            ):
                self._foreign_claims[gs.status.node_name] = time.monotonic()
            self.index.upsert(gs)

    def _index_keys(self, name: str, keys: list[str]) -> None:
        for old in self._keys_of.pop(name, ()):
            if self._keys.get(old) == name:
                del self._keys[old]
        if keys:
            self._keys_of[name] = keys
            for key in keys:
                self._keys[key] = name
            self._key_seen.set()
            self._key_seen = asyncio.Event()

    def _replay(self, key: AllocationKey) -> GameServerAllocationStatus | None:
        """The answer already given to ``key`` (its server, as it now is), if a server carries it.
        The same key with another request body is refused, naming the header."""
        name = self._keys.get(key.value)
        gs = self.index.servers.get(name) if name is not None else None
        if gs is None:
            return None
        for value, digest in allocation_keys(gs):
            if value == key.value:
                if digest != key.digest:
                    raise ValidationError(
                        IDEMPOTENCY_HEADER, "was already used with a different request body: use a new key"
                    )
                metrics.ALLOCATIONS_REPLAYED.inc()
                return status_of(gs)
        return None

    @property
    def ready(self) -> bool:
        """True once the index holds the store's state (before that, every answer would be a guess)."""
        return self.informer.synced.is_set() and self._nodes_known.is_set()

    async def wait_ready(self) -> None:
        await self.informer.synced.wait()
        await self._nodes_known.wait()

    async def follow_nodes(self, period: float = NODE_POLL_SECONDS) -> None:
        """Poll the node heartbeats and fence off servers of nodes that went silent or restarted,
        until cancelled. A poll that fails keeps the last view: a store outage is no node's fault."""
        assert self.nodes is not None
        grace = OutageGrace(gap=period + self._node_lease / 4)  # a node renews every lease / 4
        while True:
            try:
                records, now = await self.nodes.list()
            except StoreError as exc:
                grace.failed()
                log.warning("cannot read node heartbeats (%s); keeping the last view", exc)
            else:
                healthy_since = grace.read(now, time.monotonic())
                self.index.set_live_nodes(live_nodes(records, now, self._node_lease, healthy_since))
                metrics.FENCED.set(len(self.index.fenced))
                self._nodes_known.set()
            await asyncio.sleep(period)

    async def allocate(
        self,
        spec: GameServerAllocationSpec,
        *,
        key: AllocationKey | None = None,
        abandoned: Callable[[], bool] | None = None,
    ) -> GameServerAllocationStatus:
        """Claim a server for ``spec``. ``key``: the request's idempotency key (its retries get the
        same server). ``abandoned``: asked just before the claim; True (the client hung up) ends the
        request with ``ClientGoneError`` and nothing claimed."""
        started = time.perf_counter()
        try:
            if key is None:
                status = await self._allocate(spec, None, abandoned)
            else:
                status = await self._allocate_keyed(spec, key, abandoned)
        except ClientGoneError:
            metrics.ALLOCATIONS_ABANDONED.inc()
            raise
        metrics.ALLOCATION_RESULTS.observe(status.state.value, time.perf_counter() - started)
        return status

    async def _allocate_keyed(
        self, spec: GameServerAllocationSpec, key: AllocationKey, abandoned: Callable[[], bool] | None
    ) -> GameServerAllocationStatus:
        async with self._key_lock(key.value):  # one request per key at a time in this process
            if self._released.get(key.value, 0.0) > time.monotonic():
                raise KeyReleasedError()
            replay = self._replay(key)
            if replay is not None:
                return replay
            if self.reservations is None:
                return await self._allocate(spec, key, abandoned)
            hold = await self._reserve(key)
            if isinstance(hold, GameServerAllocationStatus):
                return hold
            status: GameServerAllocationStatus | None = None
            try:
                status = await self._allocate(spec, key, abandoned, hold)
            finally:
                if status is None or status.state is not AllocationState.ALLOCATED:
                    # Nothing claimed: let a retry (anywhere) go ahead at once.
                    with contextlib.suppress(StoreError):
                        await asyncio.shield(self.reservations.release(key.value))
            return status

    async def release(self, key: str) -> tuple[str, ...]:
        """Give back what was allocated under idempotency key ``key`` (a match its director
        abandoned): every server still Allocated under it with no player connected goes to
        Shutdown (a conditional write: a player who connects meanwhile keeps it), and the key is
        refused from now on, here and (held as its reservation) in every allocator."""
        async with self._key_lock(key):
            now = time.monotonic()
            self._released = {k: until for k, until in self._released.items() if until > now}
            self._released[key] = now + RELEASE_FENCE_SECONDS
            if self.reservations is not None:
                with contextlib.suppress(StoreError):
                    await self.reservations.reserve(key, RELEASE_FENCE_SECONDS)
            names = [gs.name for gs in list(self.informer.cache.values()) if _abandoned_under(gs, key)]
            released = []
            for name in names:
                try:
                    gone = await modify(self.store, name, lambda gs: _shut_down_if_abandoned(gs, key))
                except NotFoundError:
                    continue
                if gone is not None:
                    released.append(name)
            metrics.ALLOCATIONS_RELEASED.inc(len(released))
            if released:
                log.info("released %s (allocation key %s)", ", ".join(released), key)
            return tuple(released)

    async def _reserve(self, key: AllocationKey) -> _Hold | GameServerAllocationStatus:
        """Hold ``key`` across processes, or return the answer its holder's claim gave, once this
        index sees it. ``KeyInUseError`` if neither happens within ``key_wait``."""
        assert self.reservations is not None
        deadline = time.monotonic() + self._key_wait
        while not await self.reservations.reserve(key.value, self._key_ttl):
            replay = self._replay(key)
            if replay is not None:
                return replay
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KeyInUseError()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, _KEY_POLL_SECONDS)):
                    await self._key_seen.wait()
        return _Hold(key.value, time.monotonic())

    @contextlib.asynccontextmanager
    async def _key_lock(self, key: str) -> AsyncIterator[None]:
        lock, users = self._key_locks.get(key) or (asyncio.Lock(), 0)
        self._key_locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._key_locks[key]
            if users == 1:
                del self._key_locks[key]
            else:
                self._key_locks[key] = (lock, users - 1)

    async def _still_held(self, hold: _Hold) -> bool:
        """Before a keyed claim: is the reservation still ours? Renewed when half its TTL is gone
        (a process stalled that long may have lost it to another allocator)."""
        if self.reservations is None or time.monotonic() - hold.since < self._key_ttl / 2:
            return True
        if await self.reservations.reserve(hold.key, self._key_ttl):
            hold.since = time.monotonic()
            return True
        return False

    async def _allocate(
        self,
        spec: GameServerAllocationSpec,
        key: AllocationKey | None,
        abandoned: Callable[[], bool] | None,
        hold: _Hold | None = None,
    ) -> GameServerAllocationStatus:
        lost: set[str] = set()
        for _ in range(self._max_attempts):
            gs = self._choose(spec, lost)
            waits = 0
            while gs is None and waits < MAX_CLAIM_WAITS and self._in_flight(spec, lost):
                # Only servers this process is claiming right now would do (a high-density server
                # taking another room): wait for that write, then look again, rather than answer 429.
                waits += 1
                await self._claim_landed()
                gs = self._choose(spec, lost)
            if gs is None:
                return GameServerAllocationStatus(state=AllocationState.UNALLOCATED)
            if abandoned is not None and abandoned():
                raise ClientGoneError()
            if hold is not None and not await self._still_held(hold):
                raise KeyInUseError()
            self._hold(gs)
            settled = False
            try:
                claimed = await self.store.update(
                    allocated(gs, spec, self._clock(), key=key, lease_seconds=self._lease_seconds)
                )
                settled = True
            except (ConflictError, NotFoundError):
                settled = True  # the change that beat it is on its way through the watch
                metrics.CLAIM_CONFLICTS.inc()
                lost.add(gs.name)  # someone else got it, or it changed: try another server
                continue
            finally:
                seen = self._unhold(gs, restore=not settled)
                self._landed.set()
                self._landed = asyncio.Event()
            name = claimed.name
            gone = seen and name not in self.index.servers and name not in self.index.fenced
            if not gone and self.index.servers.get(name) is not claimed:
                # The watch will confirm; until then nobody here picks it, and what it brings of the
                # server before this version is older (``_ahead``). A change seen during the claim
                # may be an earlier claim of this process coming back (its reply came first): this
                # one is newer. One that removed the server (deleted, shut down) stands.
                self.index.upsert(claimed)
                self._ahead[name] = (claimed.metadata.resource_version, time.monotonic())
            if key is not None:
                self._index_keys(claimed.name, [k for k, _ in allocation_keys(claimed)])
            return status_of(claimed)
        log.info("allocation gave up after %d lost races", len(lost))
        return GameServerAllocationStatus(state=AllocationState.CONTENTION)

    async def missing_fleet(self, spec: GameServerAllocationSpec) -> tuple[str, str] | None:
        """(field of the selector's fleet label, fleet name) when every selector asks for a fleet (label
        ``agones.dev/fleet``) that does not exist, the first of them; None otherwise. Asked after an
        UnAllocated answer only, so a typo says so instead of "nothing free", and a full or empty
        fleet that exists is never called missing. A fleet exists if its Fleet does or a server
        carries its label (servers outlive a deleted Fleet while they drain); a store that cannot
        tell counts it as existing."""
        if self.fleets is None:
            return None
        first: tuple[str, str] | None = None
        for i, selector in enumerate(spec.selectors):
            name = selector.match_labels.get(FLEET_LABEL)
            if name is None or any(self.index.with_label(FLEET_LABEL, name, s) for s in ALLOCATABLE_STATES):
                return None
            try:
                await self.fleets.get(name)
                return None
            except NotFoundError:
                pass
            except StoreError as exc:
                log.warning("cannot tell whether fleet %s exists: %s", name, exc, extra={"fleet": name})
                return None
            if any(gs.fleet == name for gs in self.informer.cache.values()):
                return None
            first = first or (f"spec.selectors[{i}].matchLabels.{FLEET_LABEL}", name)
        return first

    def _hold(self, gs: GameServer) -> None:
        """Take ``gs`` out of the index while this process claims it."""
        self._claiming[gs.name] = gs
        self._touched.discard(gs.name)
        self.index.remove(gs.name)

    def _unhold(self, gs: GameServer, *, restore: bool) -> bool:
        """The claim of ``gs`` ended; whether a change to it arrived meanwhile (the index then has
        that version, or knows it is gone). ``restore``: the claim failed without a verdict (the
        store did not answer): unless such a change arrived, the version it was chosen as goes back."""
        del self._claiming[gs.name]
        seen = gs.name in self._touched
        self._touched.discard(gs.name)
        if restore and not seen:
            self.index.upsert(gs)
        return seen

    def _in_flight(self, spec: GameServerAllocationSpec, lost: set[str]) -> bool:
        """Would a server that this process is claiming right now match (as it was chosen)?"""
        return any(
            gs.name not in lost
            and gs.state is selector.game_server_state
            and selector.matches(gs.metadata.labels)
            and (not selector.filters_counts or selector.counts_match(gs))
            for gs in self._claiming.values()
            for selector in spec.selectors
        )

    async def _claim_landed(self) -> None:
        await self._landed.wait()

    def _choose(self, spec: GameServerAllocationSpec, lost: set[str]) -> GameServer | None:
        # Held servers are out of the index; one a change brought back during its claim is not.
        exclude: Collection[str] = self._claiming.keys() | lost if lost else self._claiming.keys()
        for selector in spec.selectors:
            gs = choose_server(
                self.index, selector, spec.scheduling, self._rng, exclude=exclude, contested=self._contested
            )
            if gs is not None:
                return gs
        return None

    def _contested(self, node: str) -> bool:
        """Is another allocator claiming Ready servers on ``node`` now (``allocator.index.Share``)?"""
        last = self._foreign_claims.get(node)
        return last is not None and time.monotonic() - last < CONTESTED_SECONDS


def _abandoned_under(gs: GameServer, key: str) -> bool:
    """Allocated under ``key`` (its idempotency key) and nobody connected to it."""
    players = gs.status.players
    nobody = players is None or (players.count == 0 and not players.ids)
    return nobody and any(k == key for k, _ in allocation_keys(gs))


def _shut_down_if_abandoned(gs: GameServer, key: str) -> GameServer | None:
    return gs.with_status(state=GameServerState.SHUTDOWN) if _abandoned_under(gs, key) else None
