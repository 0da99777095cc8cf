"""The ticket store on Redis: ``matchmaker.store.TicketStore`` for standalone Redis and Redis Cluster.

Layout: every key of a queue shares the hash tag ``{q:<queue>}``, so each script touches one slot
and the queue runs unchanged on Redis Cluster (``Keys`` builds every name; nothing else does)::

    fm:{q:duel}:tickets:bodies      HASH  id -> msgpack of the parts that never change (players, owner,
                                          created/enqueued/expires times): decoded once per process
    fm:{q:duel}:tickets:state       HASH  id -> queued | leased | matched | cancelled | expired
    fm:{q:duel}:tickets:enqueued    HASH  id -> original enqueue time: the pool score a ticket returns with
    fm:{q:duel}:tickets:owner       HASH  id -> owner (who opened it)
    fm:{q:duel}:tickets:players     HASH  id -> its player ids, space-separated (for the scripts)
    fm:{q:duel}:tickets:match       HASH  id -> the match leasing it (leased) or that it went to (matched)
    fm:{q:duel}:tickets:assignment  HASH  id -> msgpack Assignment (matched tickets only)
    fm:{q:duel}:tickets:reason      HASH  id -> why it was cancelled or expired
    fm:{q:duel}:tickets:pool        ZSET  queued ids by enqueue time: the snapshot directors match
    fm:{q:duel}:tickets:leases      ZSET  leased ids by lease deadline
    fm:{q:duel}:tickets:ttl         ZSET  open ids by expires_at (tickets with a TTL)
    fm:{q:duel}:tickets:done        ZSET  finished ids by the time they finished; purged after ``retention``
    fm:{q:duel}:tickets:by_player   HASH  player id -> its open (queued or leased) tickets, space-separated,
                                          oldest first: the per-player limit, over every player of a party
    fm:{q:duel}:tickets:events      STREAM {t: id, s: state} per ticket matched, cancelled or expired
    fm:{q:duel}:tickets:orphans     ZSET  match id -> when a release attempt is due: matches whose game
                                          server may be allocated to nobody (leases ran out, or the
                                          director gave up on the allocation or the assignment)
    fm:{q:duel}:tickets:orphan_tries HASH match id -> release attempts so far (backing off; given up
                                          after ``ORPHAN_TRIES``)
    fm:{q:duel}:tickets:tick        HASH  at, seconds, matches of the last director pass (operators' view)
    fm:{players}:blocks             HASH  player id -> the players they block, space-separated (one key
                                          for every queue: read with one HMGET per ticket create)
    fm:{q:duel}:tickets:members     HASH  match id -> its ticket ids, space-separated (queues with acceptance:
                                          a proposed match, until matched, released or fallen through)
    fm:{q:duel}:tickets:proposals   HASH  match id -> msgpack ``StoredProposal`` (teams, region, quality,
                                          players per team): what the director that allocates it needs
    fm:{q:duel}:tickets:accepted    HASH  id -> 1: the ticket accepted its proposed match; "<id> players" -> the
                                          players of a party who accepted so far, space-separated
    fm:{q:duel}:tickets:ready       ZSET  match id -> when its last ticket accepted: matches to allocate

A queue with acceptance proposes instead of claiming: the tickets go ``proposed`` with the
acceptance deadline as their score in ``leases``, so a director that dies mid-proposal leaves
nothing behind that another director's ``reap`` does not resolve. The acceptance that completes a
match leases its tickets and lists it in ``ready``; exactly one director takes it from there
(``take_ready``), and from then on it is an ordinary lease.
    fm:{q:duel}:tickets:waits       HASH  wait-summary key -> decayed sample of recent times to match
                                          (``matchmaker.estimate``): at most a few hundred fields, written
                                          once per director pass that matched, read by every frontend

Every state change is one Lua script (``lua/``, EVALSHA through ``register_script``, which on a
``RedisCluster`` routes by the first key and loads scripts on every primary); the ones touching
several tickets are all-or-nothing. State, lease and enqueue time are plain hash fields so the
scripts never decode msgpack. Leases and TTLs run on the Redis server's clock (``TIME``), so
directors on hosts with skewed clocks agree on when a lease ends.

Every script is safe to run twice, because redis-py re-sends a command whose connection broke and
the first may have run: a repeated create, claim or assign by the same caller reports the same
success and changes nothing more (no second event).

Why a stream and not pub/sub for ``updates``: both reach the subscriber on a cluster (PUBLISH is
broadcast to every node; SPUBLISH goes to the slot's shard), but a subscription that drops loses
whatever was published meanwhile, and a waiting player would never hear of their match. A stream
read resumes from the last id it delivered, so a reconnect loses nothing (within ``history``
entries); it is a key in the queue's slot like the others, and costs the same one blocking
connection per queue per process that a subscription would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from importlib import resources
from typing import Any

import msgpack  # type: ignore[import-untyped]
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import AskError, ClusterDownError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from fleetmatch.codec import evolve, load_trusted, to_wire
from fleetmatch.errors import AlreadyExistsError, BackendError, ConfigError, NotFoundError, ValidationError
from fleetmatch.tasks import raise_if_cancelling
from matchmaker.errors import AlreadyQueuedError
from matchmaker.models import Assignment, MatchProposal, Ticket, TicketState, queue_of
from matchmaker.store import OPERATOR_STATES, Answer, QueueSnapshot, Reaped, StoredProposal, Tick

log = logging.getLogger(__name__)

Client = aioredis.Redis | RedisCluster

EXPIRED_REASON = "no match within the queue's time limit"
NOT_ACCEPTED_REASON = "did not accept the proposed match in time"
DEFAULT_HISTORY = 100_000
"""Events kept per queue: an ``updates`` reader may be cut off this many events long and miss none."""
DEFAULT_RETENTION = 600.0
"""Seconds a finished ticket stays readable by ``get`` (a client polling for its assignment)."""
REAP_BATCH = 1000
"""At most this many tickets per step of one ``reap`` (keeps each script short; the rest next time)."""
FETCH_BATCH = 1000
"""Ticket bodies per HMGET when ``pool`` fetches the tickets it has not seen yet."""
ORPHAN_RETRY = 2.0
"""Seconds before a failed release of an abandoned match's server is tried again (doubling)..."""
ORPHAN_RETRY_CAP = 300.0
"""... up to this..."""
ORPHAN_TRIES = 30
"""... this many times (a couple of hours of an unreachable allocator); then the game server's own
join timeout is what ends it."""
LIST_SCAN = 10_000
"""Finished tickets ``list_tickets`` looks through for ones in a state, at most (newest first)."""
_BODY_OMITS = ("state", "assignment", "reason", "proposal")
_TIMES = (("createdAt", "created_at"), ("enqueuedAt", "enqueued_at"), ("expiresAt", "expires_at"))


@dataclasses.dataclass(frozen=True, slots=True)
class Keys:
    """Every Redis key of one queue (see the module docstring); nothing else builds these names.

    The order of the fields is the order of KEYS in every script (``lua/common.lua``).
    """

    bodies: str
    state: str
    enqueued: str
    owner: str
    players: str
    match: str
    assignment: str
    reason: str
    pool: str
    leases: str
    ttl: str
    done: str
    by_player: str
    events: str
    orphans: str
    orphan_tries: str
    tick: str
    members: str
    proposals: str
    accepted: str
    ready: str
    waits: str

    @classmethod
    def of(cls, queue: str) -> Keys:
        base = f"fm:{{q:{queue}}}:tickets"
        return cls(*(f"{base}:{f.name}" for f in dataclasses.fields(cls)))

    @property
    def all(self) -> tuple[str, ...]:
        return dataclasses.astuple(self)


BLOCKS_KEY = "fm:{players}:blocks"
"""Every player's stored block list (see the module docstring)."""

CREATE_BATCH = 256
"""Creates sent to Redis in one script call, at most."""


def _script(name: str) -> str:
    lua = resources.files(__package__).joinpath("lua")
    return lua.joinpath("common.lua").read_text() + "\n" + lua.joinpath(f"{name}.lua").read_text()


_SCRIPTS = {
    name: _script(name)
    for name in (
        "create",
        "read",
        "cancel",
        "claim",
        "renew",
        "release",
        "assign",
        "reap",
        "orphans",
        "forget",
        "list",
        "propose",
        "accept",
        "decline",
        "take_ready",
    )
}


@contextlib.contextmanager
def _backend() -> Iterator[None]:
    """Redis failures become ``BackendError`` (a cancellation redis-py disguised stays one)."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise_if_cancelling()
        raise BackendError(f"redis: {exc}") from exc
    except (AttributeError, TypeError) as exc:
        if not _closed_under_us(exc):
            raise
        raise_if_cancelling()
        raise BackendError(f"redis: connection closed during the command ({exc})") from exc


def _closed_under_us(exc: BaseException) -> bool:
    """redis-py 8.1 reports a connection that another task closed mid-command as
    ``'NoneType' object has no attribute 'writelines'`` (or ``... is not callable`` from asyncio's
    transport) instead of ``ConnectionError``: its async cluster client disconnects a node's free
    connections after any connection error while other commands pick them up (redis-py #3546,
    fixed upstream by #4288, not released as of 8.1.0). Only that shape counts: a None-related
    error raised from inside redis-py's or asyncio's connection code."""
    if "NoneType" not in str(exc):
        return False
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    return bool(frames) and frames[-1].startswith(("redis.", "asyncio.")) and "redis.asyncio.connection" in frames


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode_body(body: bytes) -> Ticket:
    """A stored ticket as queued: written by ``create`` after validation, so read without checks."""
    return load_trusted(Ticket, msgpack.unpackb(body, raw=False))


Blocks = dict[str, tuple[str, ...]]
"""Player -> the players they block (those with a stored list)."""
_BlockRead = tuple[Sequence[str], asyncio.Future[Blocks]]


class RedisTicketStore:
    """``TicketStore`` on a ``redis.asyncio`` client, standalone or ``RedisCluster``.

    The client must return bytes (``decode_responses=False``: bodies are msgpack).

    ``updates`` reads on a connection of its own (the client's settings, without a socket
    timeout; on a cluster, to the node serving the queue's slot), like a subscription would. Run
    through the client itself, the blocking read would hold one of its pooled connections, and on
    a ``RedisCluster`` (5 s socket timeout by default) it would race that timeout: redis-py 8.1 on
    Python 3.11 then swallowed the reader's cancellation, and a dropped reader made the client
    re-discover its nodes under the feet of concurrent commands.
    """

    def __init__(
        self,
        client: Client,
        *,
        history: int = DEFAULT_HISTORY,
        retention: float = DEFAULT_RETENTION,
        block_ms: int = 5_000,
    ) -> None:
        cluster = isinstance(client, RedisCluster)
        if isinstance(client, RedisCluster):
            kwargs = client.connection_kwargs
        else:
            kwargs = client.connection_pool.connection_kwargs
        if kwargs.get("decode_responses"):
            raise ConfigError("RedisTicketStore needs a Redis client with decode_responses=False (bodies are msgpack)")
        self._redis = client
        self._history = history
        self._retention = retention
        self._block_ms = block_ms
        self._scripts: dict[str, AsyncScript] = {name: client.register_script(text) for name, text in _SCRIPTS.items()}
        self._keys: dict[str, Keys] = {}
        self._uninitialized_cluster = cluster
        self._creates: dict[str, list[tuple[tuple[str | bytes, ...], asyncio.Future[Any]]]] = {}
        self._sending: set[asyncio.Future[None]] = set()
        self._block_reads: list[_BlockRead] = []
        self._bodies: dict[str, dict[bytes, Ticket]] = {}
        """Per queue: ticket id (bytes, as Redis returns it) -> the ticket as queued. Bodies never
        change, so ``pool`` decodes each ticket once and then only fetches ids it has not seen."""

    @property
    def retention(self) -> float:
        """Seconds a finished ticket stays readable (a closed backfill too: ``matchmaker.backfills``)."""
        return self._retention

    @property
    def history(self) -> int:
        """Events kept on each queue's stream (``matchmaker.backfills`` announces fills there too)."""
        return self._history

    @property
    def client(self) -> Client:
        """The Redis client (``matchmaker.ratingstore`` keeps ratings beside the tickets)."""
        return self._redis

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise BackendError(f"redis: {exc}") from exc

    def keys(self, queue: str) -> Keys:
        keys = self._keys.get(queue)
        if keys is None:
            keys = self._keys[queue] = Keys.of(queue)
        return keys

    async def _ready(self) -> None:
        """Initialize a ``RedisCluster`` before its first command. redis-py 8.1 can hand a closed
        connection to one of several commands that race into an uninitialized cluster client
        (``'NoneType' object has no attribute 'writelines'``, seen with concurrent EVALSHA retries
        after NOSCRIPT); ``initialize()`` is locked, so awaiting it first serializes that start."""
        if self._uninitialized_cluster:
            assert isinstance(self._redis, RedisCluster)
            with _backend():
                await self._redis.initialize()
            self._uninitialized_cluster = False

    async def _run(self, name: str, queue: str, *args: str | bytes | float, now: float | None = None) -> Any:
        await self._ready()
        with _backend():
            return await self._scripts[name](
                keys=self.keys(queue).all, args=["" if now is None else repr(now), self._history, *args]
            )

    # -- players ----------------------------------------------------------------------------

    async def blocks(self, players: Sequence[str]) -> dict[str, tuple[str, ...]]:
        if not players:
            return {}
        await self._ready()
        done: asyncio.Future[Blocks] = asyncio.get_running_loop().create_future()
        self._block_reads.append((players, done))
        if len(self._block_reads) == 1:
            asyncio.get_running_loop().call_soon(self._flush_block_reads)
        return await done

    def _flush_block_reads(self) -> None:
        """The block-list reads of one event-loop iteration as one HMGET (every ticket create reads
        its players' lists: one round trip per create cost a busy frontend a third of its rate)."""
        batch, self._block_reads = self._block_reads, []
        task = asyncio.ensure_future(self._send_block_reads(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send_block_reads(self, batch: list[_BlockRead]) -> None:
        names = list(dict.fromkeys(p for players, _ in batch for p in players))
        try:
            with _backend():
                lists: list[Any] = await self._redis.hmget(BLOCKS_KEY, names)
        except BaseException as exc:
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        stored = {p: tuple(_text(v).split()) for p, v in zip(names, lists, strict=True) if v}
        for players, done in batch:
            if not done.done():
                done.set_result({p: stored[p] for p in players if p in stored})

    async def set_blocks(self, player: str, blocked: Sequence[str]) -> None:
        await self._ready()
        with _backend():
            if blocked:
                await self._redis.hset(BLOCKS_KEY, player, " ".join(blocked))
            else:
                await self._redis.hdel(BLOCKS_KEY, player)

    # -- tickets ----------------------------------------------------------------------------

    async def create(self, ticket: Ticket, *, max_open_per_player: int) -> Ticket:
        if queue_of(ticket.id) != ticket.queue:
            raise ValidationError("id", f"{ticket.id!r} is not a ticket id of queue {ticket.queue!r}")
        if max_open_per_player < 1:
            raise ValidationError("max_open_per_player", f"must be at least 1, got {max_open_per_player}")
        created = ticket.created_at or time.time()
        ticket = evolve(
            ticket,
            state=TicketState.QUEUED,
            created_at=created,
            enqueued_at=ticket.enqueued_at or created,
            assignment=None,
            reason="",
        )
        wire = to_wire(ticket)
        for name in _BODY_OMITS:
            del wire[name]
        for wire_name, name in _TIMES:  # floats, not RFC 3339: exact, and cheaper to read back
            wire[wire_name] = getattr(ticket, name)
        status = await self._create_batched(
            ticket.queue,
            (
                ticket.id,
                ticket.owner,
                str(max_open_per_player),
                msgpack.packb(wire, use_bin_type=True),
                repr(ticket.enqueued_at),
                repr(ticket.expires_at) if ticket.expires_at else "",
                " ".join(p.id for p in ticket.players),
            ),
        )
        if isinstance(status, list):  # ['open', index, the player's oldest open ticket]
            index = int(status[1])
            raise AlreadyQueuedError(
                f"players[{index}].id", ticket.players[index].id, ticket.queue, _text(status[2]), max_open_per_player
            )
        if status == b"exists":
            raise AlreadyExistsError(Ticket.KIND, ticket.id)
        return ticket

    async def _create_batched(self, queue: str, args: tuple[str | bytes, ...]) -> Any:
        """Queue one create; the creates of one event-loop iteration go to Redis in one call
        (an idle frontend sends a batch of one at once, a busy one fewer, larger batches)."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        pending = self._creates.setdefault(queue, [])
        pending.append((args, done))
        if len(pending) == 1:
            asyncio.get_running_loop().call_soon(self._flush_creates, queue)
        return await done

    def _flush_creates(self, queue: str) -> None:
        batch = self._creates.pop(queue, [])
        for start in range(0, len(batch), CREATE_BATCH):
            task = asyncio.ensure_future(self._send_creates(queue, batch[start : start + CREATE_BATCH]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send_creates(self, queue: str, batch: list[tuple[tuple[str | bytes, ...], asyncio.Future[Any]]]) -> None:
        args = [a for item, _ in batch for a in item]
        try:
            statuses = await self._run("create", queue, *args)
        except BaseException as exc:
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, done), status in zip(batch, statuses, strict=True):
            if not done.done():
                done.set_result(status)

    def _ticket(self, queue: str, ticket_id: str, record: list[Any] | None) -> Ticket:
        if not record:
            raise NotFoundError(Ticket.KIND, ticket_id)
        state, body, assignment, reason, *proposed = record
        base = self._bodies.get(queue, {}).get(ticket_id.encode()) or _decode_body(body)
        proposal = _proposal(ticket_id, *proposed) if proposed else None
        if proposal is not None and proposal.accepted:  # accepted as a whole, or by each player
            proposal = evolve(proposal, accepted_players=tuple(p.id for p in base.players))
        ticket_state = TicketState(_text(state))
        if proposal is not None:  # everyone accepted (leased): still proposed to its players until matched
            ticket_state = TicketState.PROPOSED
        return evolve(
            base,
            state=ticket_state,
            assignment=load_trusted(Assignment, msgpack.unpackb(assignment, raw=False)) if assignment else None,
            reason=_text(reason) if reason else "",
            proposal=proposal,
        )

    async def get(self, ticket_id: str) -> Ticket:
        queue = queue_of(ticket_id)
        if queue is None:
            raise NotFoundError(Ticket.KIND, ticket_id)
        return self._ticket(queue, ticket_id, await self._run("read", queue, ticket_id))

    async def cancel(self, ticket_id: str, *, reason: str = "cancelled by the player") -> Ticket:
        queue = queue_of(ticket_id)
        if queue is None:
            raise NotFoundError(Ticket.KIND, ticket_id)
        return self._ticket(queue, ticket_id, await self._run("cancel", queue, ticket_id, reason))

    async def accept(self, ticket_id: str, *, lease_seconds: float, player: str | None = None) -> tuple[Answer, Ticket]:
        queue = queue_of(ticket_id)
        if queue is None:
            raise NotFoundError(Ticket.KIND, ticket_id)
        if lease_seconds <= 0:
            raise ValidationError("lease_seconds", f"must be positive, got {lease_seconds}")
        status, record = await self._run("accept", queue, ticket_id, repr(float(lease_seconds)), player or "")
        return Answer(_text(status)), self._ticket(queue, ticket_id, record)

    async def decline(self, ticket_id: str, *, reason: str) -> tuple[Answer, Ticket]:
        queue = queue_of(ticket_id)
        if queue is None:
            raise NotFoundError(Ticket.KIND, ticket_id)
        status, record = await self._run("decline", queue, ticket_id, reason)
        return Answer(_text(status)), self._ticket(queue, ticket_id, record)

    # -- directors --------------------------------------------------------------------------

    async def pool(self, queue: str) -> list[Ticket]:
        keys = self.keys(queue)
        await self._ready()
        with _backend():
            ids: list[bytes] = await self._redis.zrange(keys.pool, 0, -1)  # type: ignore[assignment]
        return await self._queued(queue, ids, prune=True)

    async def _queued(self, queue: str, ids: list[bytes], *, prune: bool = False) -> list[Ticket]:
        """The queued tickets of ``ids`` (in order), decoding only bodies not seen before. ``prune``:
        forget the bodies of other tickets once they far outnumber ``ids`` (the memory stays bounded)."""
        keys = self.keys(queue)
        known = self._bodies.setdefault(queue, {})
        tickets = list(map(known.get, ids))  # the hot path: one C-level pass when nothing is new
        if None not in tickets:
            return tickets  # type: ignore[return-value]  # no None: checked
        missing = [i for i, t in zip(ids, tickets, strict=True) if t is None]
        for start in range(0, len(missing), FETCH_BATCH):
            chunk = missing[start : start + FETCH_BATCH]
            with _backend():
                bodies: list[Any] = await self._redis.hmget(keys.bodies, chunk)
            for ticket_id, body in zip(chunk, bodies, strict=True):
                if body is not None:  # gone since the ZRANGE (finished and purged): not in the pool
                    known[ticket_id] = _decode_body(body)
        if prune and len(known) > 2 * len(ids) + FETCH_BATCH:  # drop what left the pool for good
            known = self._bodies[queue] = {i: known[i] for i in ids if i in known}
        return [t for t in map(known.get, ids) if t is not None]

    async def claim(self, queue: str, match_id: str, ticket_ids: Sequence[str], *, lease_seconds: float) -> bool:
        _check_ids(ticket_ids)
        if lease_seconds <= 0:
            raise ValidationError("lease_seconds", f"must be positive, got {lease_seconds}")
        result = await self._run("claim", queue, match_id, repr(float(lease_seconds)), *ticket_ids)
        if isinstance(result, list):  # ['player', id]: a bug in the proposal's maker, said loudly
            raise ValidationError("ticket_ids", f"player {_text(result[1])!r} is in two tickets of match {match_id}")
        return bool(result)

    async def renew(self, queue: str, match_id: str, ticket_ids: Sequence[str], *, lease_seconds: float) -> bool:
        _check_ids(ticket_ids)
        if lease_seconds <= 0:
            raise ValidationError("lease_seconds", f"must be positive, got {lease_seconds}")
        return bool(await self._run("renew", queue, match_id, repr(float(lease_seconds)), *ticket_ids))

    async def propose(self, queue: str, match_id: str, proposal: StoredProposal, *, timeout_seconds: float) -> bool:
        ids = proposal.proposal.ticket_ids
        _check_ids(ids)
        if timeout_seconds <= 0:
            raise ValidationError("timeout_seconds", f"must be positive, got {timeout_seconds}")
        doc = msgpack.packb(to_wire(proposal), use_bin_type=True)
        result = await self._run("propose", queue, match_id, repr(float(timeout_seconds)), doc, *ids)
        if isinstance(result, list):
            raise ValidationError("ticket_ids", f"player {_text(result[1])!r} is in two tickets of match {match_id}")
        return bool(result)

    async def take_ready(self, queue: str, *, limit: int, lease_seconds: float) -> list[tuple[str, StoredProposal]]:
        flat = await self._run("take_ready", queue, limit, repr(float(lease_seconds)))
        return [
            (_text(flat[i]), load_trusted(StoredProposal, msgpack.unpackb(flat[i + 1], raw=False)))
            for i in range(0, len(flat), 2)
        ]

    async def release(self, queue: str, match_id: str, ticket_ids: Sequence[str], *, orphaned: bool = False) -> int:
        if not ticket_ids and not orphaned:
            return 0
        return int(await self._run("release", queue, match_id, "1" if orphaned else "0", *ticket_ids))

    async def assign(self, queue: str, match_id: str, assignments: Mapping[str, Assignment]) -> bool:
        _check_ids(list(assignments))
        pairs: list[str | bytes] = []
        for ticket_id, assignment in assignments.items():
            if assignment.match_id != match_id:
                raise ValidationError(
                    f"assignments.{ticket_id}.match_id", f"is {assignment.match_id!r}, not {match_id!r}"
                )
            pairs += (ticket_id, msgpack.packb(to_wire(assignment), use_bin_type=True))
        return bool(await self._run("assign", queue, match_id, *pairs))

    async def reap(self, queue: str, *, now: float | None = None) -> Reaped:
        returned, expired, abandoned, timed_out, unanswered = await self._run(
            "reap", queue, repr(float(self._retention)), REAP_BATCH, EXPIRED_REASON, NOT_ACCEPTED_REASON, now=now
        )
        return Reaped(
            tuple(map(_text, returned)),
            tuple(map(_text, expired)),
            tuple(map(_text, abandoned)),
            tuple(map(_text, timed_out)),
            tuple(map(_text, unanswered)),
        )

    async def take_orphans(self, queue: str, *, limit: int, now: float | None = None) -> list[str]:
        due, dropped = await self._run(
            "orphans", queue, limit, repr(ORPHAN_RETRY), repr(ORPHAN_RETRY_CAP), ORPHAN_TRIES, now=now
        )
        for match_id in map(_text, dropped):
            log.warning(
                "gave up releasing the server of abandoned match %s after %d attempts",
                match_id,
                ORPHAN_TRIES,
                extra={"queue": queue, "match_id": match_id},
            )
        return [_text(m) for m in due]

    async def forget_orphan(self, queue: str, match_id: str) -> None:
        await self._run("forget", queue, match_id)

    # -- operators --------------------------------------------------------------------------

    async def record_tick(self, queue: str, tick: Tick) -> None:
        await self._ready()
        with _backend():
            await self._redis.hset(
                self.keys(queue).tick,
                mapping={"at": repr(tick.at), "seconds": repr(tick.seconds), "matches": tick.matches},
            )

    async def wait_summary(self, queue: str) -> dict[str, str]:
        await self._ready()
        with _backend():
            raw: Any = await self._redis.hgetall(self.keys(queue).waits)
        return {_text(k): _text(v) for k, v in raw.items()}

    async def record_waits(self, queue: str, cells: Mapping[str, str]) -> None:
        if not cells:
            return
        await self._ready()
        with _backend():
            mapping: dict[str | bytes, str | bytes] = {key: value for key, value in cells.items()}
            await self._redis.hset(self.keys(queue).waits, mapping=mapping)  # type: ignore[arg-type]

    async def snapshot(self, queue: str, *, oldest: int, recent: int) -> QueueSnapshot:
        """Separate reads (statistics need no atomic view): the pool's size and its ``oldest``
        tickets, the ``recent`` finished ids with their state and enqueue time, the last tick."""
        keys = self.keys(queue)
        await self._ready()
        with _backend():
            waiting: int = await self._redis.zcard(keys.pool)
            ids: Any = await self._redis.zrange(keys.pool, 0, oldest - 1) if oldest else []
            done: Any = await self._redis.zrevrange(keys.done, 0, recent - 1, withscores=True) if recent else []
            finished = [i for i, _ in done]
            states: list[Any] = await self._redis.hmget(keys.state, finished) if finished else []
            enqueued: list[Any] = await self._redis.hmget(keys.enqueued, finished) if finished else []
            tick: Any = await self._redis.hgetall(keys.tick)
        waits = tuple(
            max(0.0, at - float(since))
            for (_, at), state, since in zip(done, states, enqueued, strict=True)
            if state == b"matched" and since is not None
        )
        last = (
            Tick(float(tick[b"at"]), float(tick[b"seconds"]), int(tick[b"matches"]))
            if {b"at", b"seconds", b"matches"} <= tick.keys()
            else None
        )
        # Pruned to what was read once the cache outgrows it: exact when the read covered the pool
        # (up to ``oldest`` tickets); past that, a director sharing this store re-reads the rest once.
        return QueueSnapshot(waiting, tuple(await self._queued(queue, ids, prune=True)), waits, last)

    async def list_tickets(self, queue: str, *, state: str | None, limit: int) -> tuple[list[Ticket], bool]:
        if state is not None and state not in OPERATOR_STATES:
            raise ValidationError("state", f"must be one of {', '.join(OPERATOR_STATES)}, got {state[:100]!r}")
        if limit < 1:
            raise ValidationError("limit", f"must be at least 1, got {limit}")
        more, *flat = await self._run("list", queue, state or "", limit, LIST_SCAN)
        tickets = [self._ticket(queue, _text(flat[i]), flat[i + 1]) for i in range(0, len(flat), 2)]
        return tickets, bool(more)

    # -- push -------------------------------------------------------------------------------

    async def updates(self, queue: str) -> AsyncIterator[str]:
        """Ids as their tickets become matched, cancelled or expired; first ``""`` once the read
        position is fixed. One blocking read per call, resumed after a lost connection without a gap."""
        key = self.keys(queue).events
        position: bytes | None = None
        backoff = 0.05
        reader: aioredis.Redis | None = None
        address: tuple[str, int] | None = None
        reconnected = False
        try:
            while True:
                try:
                    if reader is None:
                        reader = await self._reader(key, address)
                    if position is None:
                        last: Any = await reader.xrevrange(key, count=1)
                        position = last[0][0] if last else b"0-0"
                        yield ""  # subscribed: from here on, nothing is missed
                    elif reconnected:
                        await _check_gap(reader, key, position)
                        reconnected = False
                    reply: Any = await reader.xread({key: position}, count=1000, block=self._block_ms)
                except (AskError, ClusterDownError, RedisConnectionError, RedisTimeoutError, OSError) as exc:
                    raise_if_cancelling()
                    # MOVED/ASK: the slot is moving to another node (resharding): follow it.
                    address = (exc.host, int(exc.port)) if isinstance(exc, AskError) else None
                    log.warning("ticket updates of %s lost Redis (%s); resuming after %r", queue, exc, position)
                    await _close(reader)
                    reader, reconnected = None, True
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                except RedisError as exc:
                    raise BackendError(f"redis: {exc}") from exc
                backoff = 0.05
                for _, entries in reply or ():
                    for entry_id, fields in entries:
                        position = entry_id
                        yield _text(fields[b"t"])
        finally:
            await _close(reader)

    async def _reader(self, key: str, address: tuple[str, int] | None) -> aioredis.Redis:
        """A one-connection client for ``key``'s blocking reads, with the store's client settings
        but no socket timeout and no retries (on a cluster: to the node serving the key, or to
        ``address``)."""
        if isinstance(self._redis, RedisCluster):
            await self._ready()
            node = self._redis.get_node_from_key(key)
            if node is None:
                raise RedisConnectionError(f"no cluster node serves {key}")
            connection_class: type[AbstractConnection] = node.connection_class
            kwargs = dict(node.connection_kwargs)
            if address is not None:
                kwargs["host"], kwargs["port"] = address
        else:
            pool = self._redis.connection_pool
            connection_class, kwargs = pool.connection_class, dict(pool.connection_kwargs)
        kwargs["socket_timeout"] = None
        kwargs["retry"] = Retry(NoBackoff(), 0)  # failures come to ``updates``: it resumes, checks for a gap
        own = aioredis.ConnectionPool(connection_class=connection_class, max_connections=1, **kwargs)
        return aioredis.Redis.from_pool(own)


async def _close(client: aioredis.Redis | None) -> None:
    if client is not None:
        with contextlib.suppress(RedisError, OSError):
            await client.aclose()


async def _check_gap(reader: aioredis.Redis, key: str, position: bytes) -> None:
    """After a reconnect: warn if the stream was trimmed past where we were (events not yet read may
    be gone; their players hear of them only when they re-read the ticket)."""
    info: Any = await reader.xinfo_stream(key)
    first = info.get("recorded-first-entry-id") or (info.get("first-entry") or (b"0-0",))[0]
    if _stream_id(first) > _stream_id(position):
        log.warning("ticket updates of %s may have missed events trimmed while disconnected (after %r)", key, position)


def _stream_id(value: bytes | str) -> tuple[int, int]:
    ms, _, seq = _text(value).partition("-")
    return int(ms), int(seq or 0)


def _proposal(
    ticket_id: str, doc: bytes, deadline: bytes | None, accepted: int, mine: int, players: bytes | None = None
) -> MatchProposal:
    """A ticket's view of its proposed match, from what ``record`` (lua/common.lua) returned."""
    stored = load_trusted(StoredProposal, msgpack.unpackb(doc, raw=False))
    teams = stored.proposal.teams
    team = next((i for i, members in enumerate(teams) if ticket_id in members), 0)
    return MatchProposal(
        match_id=stored.match_id,
        deadline=float(deadline) if deadline else 0.0,
        team=team,
        team_sizes=stored.team_sizes,
        tickets=sum(len(t) for t in teams),
        accepted_tickets=int(accepted),
        accepted=bool(mine),
        accepted_players=tuple(_text(players).split()) if players else (),
    )


def _check_ids(ticket_ids: Sequence[str]) -> None:
    """A proposal naming no ticket or one ticket twice is a bug in its maker: say so loudly."""
    if not ticket_ids:
        raise ValidationError("ticket_ids", "a match needs at least one ticket")
    if len(set(ticket_ids)) != len(ticket_ids):
        twice = next(t for t, n in itertools.groupby(sorted(ticket_ids)) if len(list(n)) > 1)
        raise ValidationError("ticket_ids", f"ticket {twice!r} appears twice")


def _fail(batch: Sequence[tuple[object, asyncio.Future[Any]]], exc: BaseException) -> None:
    """Every caller of a batched call that failed gets the error (a cancellation: a backend error)."""
    for _, done in batch:
        if not done.done():
            done.set_exception(exc if isinstance(exc, Exception) else BackendError(f"interrupted: {exc!r}"))
