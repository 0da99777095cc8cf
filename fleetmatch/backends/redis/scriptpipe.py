"""One Lua script called on a dedicated connection, pipelined, past redis-py's generic command path.

The store's writes (every allocation's claim) are one script call per batch. Through redis-py each
call takes a pooled connection, wraps itself in the retry machinery, encodes each argument through
the generic encoder and hands the reply to response callbacks. Here the store keeps one connection
of the client's pool for itself: a call packs ``EVALSHA`` into RESP bytes at once, sends it without
waiting for the replies of calls still in flight (pipelining), and reads its own reply in the order
the calls were sent (hiredis parses it).

What stays as it was: the script and its atomicity (Redis runs each EVALSHA alone); ``NOSCRIPT``
(Redis restarted or ``SCRIPT FLUSH``) is answered by running the call through redis-py's script
object, which loads the script, and later calls use EVALSHA again; errors raise redis-py's
exceptions, which the store maps to ``BackendError`` as before. A connection that fails, or whose
reply order may have been lost (a call cancelled while it waited), is dropped: every call still in
flight on it fails (its outcome unknown, as any write whose reply was lost: never retried, since a
retried conditional write that had landed would report a conflict), and the next call connects
again. One that Redis closed while nothing was in flight is replaced before the next call. The
connection belongs to the client's pool, so closing the client closes it, and the client's own
commands (``PING`` for ``/readyz``) keep telling whether Redis is reachable.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

Arg = str | bytes | int


def pack(*args: Arg) -> bytes:
    """A command as RESP (an array of bulk strings)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else (arg.encode() if isinstance(arg, str) else b"%d" % arg)
        parts.append(b"$%d\r\n" % len(data))
        parts.append(data)
        parts.append(b"\r\n")
    return b"".join(parts)


class ScriptPipe:
    """Call one Lua script: ``await pipe(keys, args)`` returns its reply."""

    def __init__(self, client: aioredis.Redis, script: str) -> None:
        self._pool = client.connection_pool
        self._fallback = client.register_script(script)
        self._sha = hashlib.sha1(script.encode()).hexdigest()
        self._conn: AbstractConnection | None = None
        self._generation = 0
        """Bumped each time the connection is dropped: calls sent before cannot read from it."""
        self._sending = asyncio.Lock()
        self._in_flight = 0
        self._last: asyncio.Future[None] | None = None
        """Done when the last call sent has read its reply (or given up): the next one reads after it."""

    async def _connection(self) -> AbstractConnection:
        if self._conn is not None and self._in_flight and not self._conn.is_connected:
            await self._drop(self._generation)  # closed under calls in flight (the client closing)
        if self._conn is None:
            self._conn = await self._pool.get_connection()  # type: ignore[no-untyped-call]
        elif not self._in_flight:
            # Nothing in flight: a connection that Redis closed meanwhile (a restart, CLIENT KILL,
            # a proxy's idle timeout) is replaced before the write, never the write retried after
            # it (as redis-py's pool checks a connection it hands out).
            try:
                stale = await self._conn.can_read()
            except (RedisConnectionError, OSError):
                stale = True
            if stale:
                await self._conn.disconnect()
                await self._conn.connect()  # type: ignore[no-untyped-call]
        return self._conn

    async def __call__(self, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        command = pack("EVALSHA", self._sha, len(keys), *keys, *args)
        try:
            reply = await self._call(command)
        except NoScriptError:
            return await self._fallback(keys=list(keys), args=list(args))  # loads the script
        return reply

    async def _call(self, command: bytes) -> Any:
        async with self._sending:  # FIFO: calls are sent, and queued for their replies, in arrival order
            conn = await self._connection()
            generation = self._generation
            try:
                await conn.send_packed_command(command, check_health=False)
            except BaseException:
                await self._drop(generation)
                raise
            previous, mine = self._last, asyncio.get_running_loop().create_future()
            self._last = mine
            self._in_flight += 1
        try:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])  # (unlike awaiting it, never cancels it)
            if self._generation != generation:
                raise RedisConnectionError("the connection was dropped before this call's reply arrived")
            return await conn.read_response()  # an error reply (NOSCRIPT...) raises, still in step
        except BaseException as exc:
            if isinstance(exc, RedisConnectionError | OSError | asyncio.CancelledError):
                await self._drop(generation)  # its reply may be half read, or would come unread
            raise
        finally:
            if generation == self._generation:
                self._in_flight -= 1
            mine.set_result(None)

    async def _drop(self, generation: int) -> None:
        """Drop the connection (once per generation): the calls in flight on it fail."""
        if generation != self._generation or self._conn is None:
            return
        conn, self._conn = self._conn, None
        self._generation += 1
        self._in_flight = 0
        self._last = None
        try:
            await conn.disconnect()
        finally:
            await self._pool.release(conn)
