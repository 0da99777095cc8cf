"""The Redis engine of the state store (key layout: ``fleetmatch.backends.redis.keys``).

Each write is one Lua script: check the version, append to the stream, store the object. The
server-owned fields (resourceVersion, generation, uid, creationTimestamp) live beside the body, so
an update cannot rewrite them without the script reading the body. The stream id is the new
resourceVersion, so ``list`` (one script) returns a version that ``watch`` (XREAD)
continues from exactly. The stream is trimmed to ``history`` entries; a watch from before the trim
floor raises ``ExpiredError`` rather than silently skipping changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from typing import Any, Generic

import hiredis
import msgpack  # type: ignore[import-untyped]
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from fleetmatch.backends.redis.keys import Keys
from fleetmatch.backends.redis.pipe import RawConnection, ScriptPipe, pack
from fleetmatch.codec import load_trusted, to_wire
from fleetmatch.errors import (
    AlreadyExistsError,
    BackendError,
    ConflictError,
    ExpiredError,
    NotFoundError,
    ValidationError,
)
from fleetmatch.models import stamp
from fleetmatch.store import EventType, R, WatchEvent, prepare_create
from fleetmatch.tasks import raise_if_cancelling

log = logging.getLogger(__name__)

_WRITE = resources.files("fleetmatch.backends.redis").joinpath("lua/write.lua").read_text()
_LIST = resources.files("fleetmatch.backends.redis").joinpath("lua/list.lua").read_text()

WRITTEN_MEMORY = 4096
"""Recently written objects kept to spare a watch on the same store instance their decoding."""
WATCH_GATHER = 0.002
"""After a read that was not full, a watch waits this long before reading again, so changes that
arrive close together come in one read. Under load (an allocator seeing its own claims come back)
that halves the CPU per change and cuts the loop's latency tail; a change arrives at most this much
later."""
READ_GRACE_SECONDS = 10.0
"""How long past its block time a watch's XREAD may go unanswered before its connection is given
up (a stalled or vanished Redis; a watch through redis-py waits as long as TCP keeps it)."""
DEFAULT_HISTORY = 100_000
"""Changes kept per namespace and kind: a watcher may fall this far behind before it must re-list."""


@dataclass(frozen=True, slots=True)
class _Owned:
    """The fields the server owns, kept beside the body."""

    version: str
    generation: int
    uid: str
    created: float | None

    @classmethod
    def parse(cls, version: bytes | str, meta: bytes | str) -> _Owned:
        generation, _digest, uid, created = _text(meta).split("|", 3)
        return cls(_text(version), int(generation), uid, float(created) if created else None)


_Write = tuple[str | bytes, ...]
"""op, name, expected version, body, spec digest, uid, creation timestamp."""
_Result = tuple[str, "_Owned", Any]
"""status, the server-owned fields, and the stored object of a successful update (else None)."""
_Batch = list[tuple[_Write, Any, "asyncio.Future[_Result]"]]

_OWNED_FIELDS = ("resourceVersion", "generation", "uid", "creationTimestamp")


_EVENT_TYPES = {t.value.encode(): t for t in EventType}
"""A change's type as the write script records it (``t``), without decoding text and calling the enum."""


def _stream_id(version: str) -> tuple[int, int]:
    ms, _, seq = version.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        raise ExpiredError("", version) from None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def write_pipe(client: aioredis.Redis) -> ScriptPipe:
    """The stores' write script over a connection of its own (``fleetmatch.backends.redis.pipe``):
    one per process is enough for all its stores (they share the script); close it with the client."""
    return ScriptPipe(client, _WRITE)


class RedisStore(Generic[R]):
    """``fleetmatch.store.Store`` on Redis (standalone or Cluster)."""

    def __init__(
        self,
        client: aioredis.Redis,
        kind: type[R],
        namespace: str = "default",
        *,
        history: int = DEFAULT_HISTORY,
        block_ms: int = 5_000,
        batch: int = 256,
        watch_gather: float = WATCH_GATHER,
        writes: ScriptPipe | None = None,
        read_grace: float = READ_GRACE_SECONDS,
    ) -> None:
        """``writes``: the write script over a connection of its own (``write_pipe``; its owner
        closes it), shared by the stores of one backend; without it, through ``client``. With a
        direct ``writes``, each watch reads over a connection of its own too, given up when a read
        goes unanswered ``read_grace`` seconds past its ``block_ms``."""
        self._watch_gather = watch_gather
        self._redis = client
        self._kind = kind
        self._namespace = namespace
        self._keys = Keys.of(namespace, kind.PLURAL)
        self._history = history
        self._block_ms = block_ms
        self._read_grace = read_grace
        self._write: ScriptPipe | AsyncScript = writes if writes is not None else client.register_script(_WRITE)
        self._queued: _Batch = []
        self._flush_scheduled = False
        self._sending: set[asyncio.Future[None]] = set()
        self._batch = batch
        self._pack = msgpack.Packer(use_bin_type=True).pack
        """One packer per store: ``msgpack.packb`` builds a packer (and its buffer) per call."""
        self._written: dict[tuple[str, str], R] = {}
        """Objects this instance wrote, by (name, version): a watch on the same instance hands them
        out instead of decoding the change again (an allocator sees each of its claims come back)."""
        self._list = client.register_script(_LIST)

    @property
    def kind(self) -> type[R]:
        return self._kind

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def keys(self) -> Keys:
        return self._keys

    # -- codec -------------------------------------------------------------------------------

    def _encode(self, obj: R) -> tuple[bytes, str]:
        wire = to_wire(obj)
        meta = wire["metadata"]
        for owned in _OWNED_FIELDS:  # kept beside the body, not in it
            meta.pop(owned, None)
        pack = self._pack
        return pack(wire), hashlib.blake2b(pack(wire["spec"]), digest_size=8).hexdigest()

    def _decode(self, body: bytes, owned: _Owned) -> R:
        """Records were validated when written: read them back without validating again."""
        wire = msgpack.unpackb(body, raw=False)
        meta = wire["metadata"]
        meta["resourceVersion"] = owned.version
        meta["generation"] = owned.generation
        meta["uid"] = owned.uid
        meta["creationTimestamp"] = owned.created
        return load_trusted(self._kind, wire)

    # -- reads -------------------------------------------------------------------------------

    async def get(self, name: str) -> R:
        k = self._keys
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hget(k.objs, name)
                pipe.hget(k.vers, name)
                pipe.hget(k.meta, name)
                body, version, meta = await pipe.execute()
        except RedisError as exc:
            raise BackendError(f"redis: {exc}") from exc
        if body is None:
            raise NotFoundError(self._kind.KIND, name)
        return self._decode(body, _Owned.parse(version, meta))

    async def list(self) -> tuple[list[R], str]:
        k = self._keys
        try:
            version, objs, vers, metas = await self._list(keys=[k.objs, k.vers, k.meta, k.events])
        except RedisError as exc:
            raise BackendError(f"redis: {exc}") from exc
        versions = {_text(vers[i]): vers[i + 1] for i in range(0, len(vers), 2)}
        meta = {_text(metas[i]): metas[i + 1] for i in range(0, len(metas), 2)}
        items = []
        for i in range(0, len(objs), 2):
            name = _text(objs[i])
            items.append(self._decode(objs[i + 1], _Owned.parse(versions[name], meta[name])))
        items.sort(key=lambda o: o.metadata.name)
        return items, _text(version)

    async def _check_floor(self, position: str) -> None:
        floor = await self._redis.get(self._keys.floor)
        if floor is not None and _stream_id(position) < _stream_id(_text(floor)):
            raise ExpiredError(self._kind.KIND, position)

    async def watch(self, since: str) -> AsyncIterator[WatchEvent[R]]:
        """Changes after ``since``; survives Redis disconnects by resuming from the last delivered id.

        With a direct write pipe (plain TCP), the blocking reads go over a connection of the watch's
        own, parsed by hiredis: redis-py's command path costs ~100 us of CPU per read against ~37, and
        ~4-10 us per change against ~2-5 (``fleetmatch.backends.redis.pipe``); an allocator reads
        its own claims back through it."""
        position = since
        _stream_id(position)  # reject garbage early
        count = min(1000, self._history)
        checked = False
        backoff = 0.05
        reads = _WatchReads(self)
        try:
            while True:
                try:
                    if not checked:
                        await self._check_floor(position)
                        checked = True
                    entries = await reads.read(position, count)
                    if not entries:
                        continue
                    if len(entries) >= count:
                        # Entries after `position` can only have been trimmed if at least `history`
                        # (>= count) newer ones exist, i.e. this batch is full: only then look.
                        await self._check_floor(position)
                    backoff = 0.05
                except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                    raise_if_cancelling()
                    log.warning(
                        "watch of %s lost its Redis connection (%s); resuming from %s",
                        self._keys.events,
                        exc,
                        position,
                    )
                    reads.drop()
                    checked = False
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                except RedisError as exc:
                    raise BackendError(f"redis: {exc}") from exc
                if self._sending:
                    # Writes of this store whose replies are on their way (Redis may answer this read
                    # first): let them land, so that their objects are handed out, not decoded again.
                    await asyncio.wait(list(self._sending))
                for entry_id, fields in entries:
                    version = _text(entry_id)
                    event = _EVENT_TYPES[fields[b"t"]]
                    obj = (
                        self._written.pop((_text(fields[b"n"]), version), None)
                        if event is not EventType.DELETED
                        else None
                    )
                    if obj is None:
                        owned = _Owned(version, int(fields[b"g"]), _text(fields[b"u"]), _float(fields[b"c"]))
                        obj = self._decode(fields[b"b"], owned)
                    position = version
                    yield WatchEvent(event, obj)
                if self._watch_gather and len(entries) < count:
                    await asyncio.sleep(self._watch_gather)  # let changes gather: one read for many
        finally:
            reads.drop()

    # -- writes ------------------------------------------------------------------------------

    async def _run(self, op: str, obj: R | None, name: str, expected: str) -> _Result:
        """Queue one write; concurrent writes go to Redis together in one script call."""
        body, digest, uid, created = b"", "", "", ""
        if obj is not None:
            body, digest = self._encode(obj)
            uid = obj.metadata.uid
            stamp = obj.metadata.creation_timestamp
            created = repr(stamp) if stamp is not None else ""
        done: asyncio.Future[_Result] = asyncio.get_running_loop().create_future()
        write: _Write = (op, name, expected, body, digest, uid, created)
        self._queued.append((write, obj, done))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return await done

    def _flush(self) -> None:
        """Send what was queued during this loop iteration as one batch (no waiting: an idle store
        sends a batch of one at once; a busy one sends fewer, larger batches)."""
        self._flush_scheduled = False
        batch, self._queued = self._queued[: self._batch], self._queued[self._batch :]
        if self._queued:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: _Batch) -> None:
        k = self._keys
        args: list[str | bytes | int] = [self._history]
        for write, _, _ in batch:
            args.extend(write)
        try:
            replies = await self._write(keys=[k.objs, k.vers, k.meta, k.events, k.floor], args=args)
        except (RedisError, OSError) as exc:
            for _, _, done in batch:
                if not done.done():
                    done.set_exception(BackendError(f"redis: {exc}"))
            return
        except BaseException as exc:  # cancelled: the waiters must not hang
            for _, _, done in batch:
                if not done.done():
                    done.set_exception(BackendError(f"redis write interrupted: {exc!r}"))
            raise
        for (write, obj, done), reply in zip(batch, replies, strict=True):
            status, version, generation, uid_, created_ = reply
            owned = _Owned(_text(version), int(generation), _text(uid_), _float(created_))
            stored = None
            if write[0] == "update" and _text(status) == "ok":
                # Remembered now, not when the writer resumes: the watch may bring this change back
                # in the same loop iteration as this reply, before any waiter runs.
                stored = stamp(
                    obj,
                    resource_version=owned.version,
                    generation=owned.generation,
                    uid=owned.uid,
                    creation_timestamp=owned.created,
                )
                self._remember(stored)
            if not done.done():
                done.set_result((_text(status), owned, stored))

    async def create(self, obj: R) -> R:
        obj = prepare_create(obj, self._namespace)
        status, owned, _ = await self._run("create", obj, obj.metadata.name, "")
        if status == "exists":
            raise AlreadyExistsError(self._kind.KIND, obj.metadata.name)
        return stamp(obj, resource_version=owned.version, generation=owned.generation)

    async def update(self, obj: R) -> R:
        meta = obj.metadata
        if not meta.resource_version:
            raise ConflictError(self._kind.KIND, meta.name, "", None)
        obj = stamp(obj, namespace=self._namespace) if obj.metadata.namespace != self._namespace else obj
        status, owned, stored = await self._run("update", obj, meta.name, meta.resource_version)
        if status == "notfound":
            raise NotFoundError(self._kind.KIND, meta.name)
        if status == "conflict":
            raise ConflictError(self._kind.KIND, meta.name, meta.resource_version, owned.version)
        if status == "immutable":
            raise ValidationError("metadata.uid", f"field is immutable (is {owned.uid!r})")
        if stored is not None:  # "ok": built (and remembered for the watch) when the reply came
            written: R = stored
            return written
        return stamp(  # "noop": the same body was stored already
            obj,
            resource_version=owned.version,
            generation=owned.generation,
            uid=owned.uid,
            creation_timestamp=owned.created,
        )

    def _remember(self, obj: R) -> None:
        written = self._written
        written[(obj.metadata.name, obj.metadata.resource_version)] = obj
        if len(written) > WRITTEN_MEMORY:
            del written[next(iter(written))]  # oldest first: a dict keeps insertion order

    async def delete(self, name: str, *, version: str | None = None) -> None:
        status, owned, _ = await self._run("delete", None, name, version or "")
        if status == "notfound":
            raise NotFoundError(self._kind.KIND, name)
        if status == "conflict":
            raise ConflictError(self._kind.KIND, name, version or "", owned.version)


_Entries = list[tuple[bytes, dict[bytes, bytes]]]


class _WatchReads:
    """A watch's blocking XREADs: over a connection of the watch's own when the store's write pipe
    is direct (plain TCP), else through redis-py's pool."""

    def __init__(self, store: RedisStore[Any]) -> None:
        self._store = store
        write = store._write
        self._pipe = write if isinstance(write, ScriptPipe) and write.direct else None
        self._conn: RawConnection | None = None

    async def read(self, position: str, count: int) -> _Entries:
        store = self._store
        if self._pipe is None:
            reply: Any = await store._redis.xread({store._keys.events: position}, count=count, block=store._block_ms)
            entries: _Entries = reply[0][1] if reply else []
            return entries
        conn = self._conn
        if conn is None or not conn.usable:
            conn = self._conn = await self._pipe.connection("watch")
        block = store._block_ms
        command = pack([b"XREAD", b"COUNT", count, b"BLOCK", block, b"STREAMS", store._keys.events, position])
        try:
            # Redis answers within the block time: a read unanswered well past it means a stalled
            # or vanished server, and the watch gives the connection up and opens another.
            async with asyncio.timeout(block / 1000 + store._read_grace):
                reply = await conn.call(command)
        except TimeoutError:
            raise_if_cancelling()
            raise ConnectionError(f"no answer to a {block} ms XREAD within {store._read_grace:g} s more") from None
        if isinstance(reply, hiredis.ReplyError):
            raise RedisError(str(reply))
        if not reply:
            return []
        out = []
        for entry_id, flat in reply[0][1]:
            pairs = iter(flat)
            out.append((entry_id, dict(zip(pairs, pairs, strict=True))))
        return out

    def drop(self) -> None:
        """Close the watch's own connection at once, if any (its pending read is of no use)."""
        conn, self._conn = self._conn, None
        if conn is not None and conn.transport is not None:
            conn.transport.abort()


def _float(value: bytes | str) -> float | None:
    text = _text(value)
    return float(text) if text else None
