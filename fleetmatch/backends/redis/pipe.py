"""One Lua script, called over a connection of its own: the store's writes without redis-py's per-call cost.

Every store write (an allocator's claim, an SDK change, a controller's create) is one call of the
store's batched write script. When writes come one at a time (an allocator at moderate load, not
at saturation), each pays redis-py's whole command path: a connection taken from the pool and given
back under its lock, the retry wrapper, the stream reader, the parser's read loop. On the
benchmark's machine that is ~130 us of CPU per call against ~40 us for the same EVALSHA written
to an asyncio protocol and parsed by hiredis in ``data_received``, and at half the allocator's
maximum rate the claim is then ~20 % of its CPU.

``ScriptPipe`` is that protocol for one script on one connection: requests pipelined, replies
matched in order. It opens the connection when first called, with what the client's pool would
send first (AUTH, SELECT, CLIENT SETNAME), and again after the connection drops. A ``NOSCRIPT``
(Redis restarted and lost its script cache) is answered by one EVAL, which runs the script and
caches it again. A dropped connection fails the calls in flight with ``ConnectionError``, as
redis-py does; a write whose reply was lost may or may not have landed, and the store's callers
already treat it that way (a conditional write retried finds its version changed).

Like the client, it has no socket timeout, only keepalive: a call waits for a stalled Redis as
long as redis-py would. Like the client's ``health_check_interval``, a connection idle that long
is PINGed before use and replaced if it does not answer (a NAT may have dropped it silently).
URLs it does not serve itself (TLS, Unix sockets: any connection but plain TCP) go through
redis-py's script object unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import socket
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError

Arg = str | bytes | int | float

CONNECT_TIMEOUT = 5.0
"""As the client's ``socket_connect_timeout``."""


def _encode(arg: Arg) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    return repr(arg).encode() if isinstance(arg, float) else str(arg).encode()


def pack(args: Sequence[Arg]) -> bytes:
    """One command in RESP: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _encode(arg)
        parts.append(b"$%d\r\n" % len(data))
        parts.append(data)
        parts.append(b"\r\n")
    return b"".join(parts)


class RawConnection(asyncio.Protocol):
    """Pipelined requests on one connection; replies resolve the waiters in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None
        self.heard = 0.0
        """``loop.time()`` when Redis last answered (or the connection opened)."""
        self._reader = hiredis.Reader()
        self._waiters: deque[asyncio.Future[Any]] = deque()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses
        self.heard = asyncio.get_running_loop().time()
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError, AttributeError):  # keepalive: notice a vanished Redis
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.heard = asyncio.get_running_loop().time()
        reader = self._reader
        reader.feed(data)
        while (reply := reader.gets()) is not False:
            waiter = self._waiters.popleft()
            if not waiter.done():  # its caller may have been cancelled meanwhile
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionError("Redis closed the connection")
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionError(f"connection to Redis lost: {self.lost}"))

    @property
    def usable(self) -> bool:
        return self.lost is None and self.transport is not None and not self.transport.is_closing()

    def idle_since(self, moment: float) -> bool:
        """Nothing in flight and no answer since ``moment``."""
        return not self._waiters and self.heard < moment

    def call(self, data: bytes) -> asyncio.Future[Any]:
        """Send one packed command; its reply (a ``hiredis.ReplyError`` for an error reply) later."""
        assert self.transport is not None
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.transport.write(data)
        return waiter


class ScriptPipe:
    """``script`` (Lua) called over a connection of its own (see the module documentation);
    ``await pipe(keys=..., args=...)`` as redis-py's ``register_script`` object is called."""

    def __init__(self, client: aioredis.Redis, script: str) -> None:
        self._fallback = client.register_script(script)
        self._script = script.encode()
        self._sha = hashlib.sha1(self._script).hexdigest().encode()
        pool = client.connection_pool
        kwargs = dict(pool.connection_kwargs)
        self._kwargs = kwargs if pool.connection_class is Connection else None
        self._protocol: RawConnection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Lock | None = None
        self.health_interval = float((kwargs.get("health_check_interval") or 0) if self._kwargs else 0)
        """As the client's ``health_check_interval``: a connection idle this long is PINGed before
        use (0: never). A NAT or load balancer may have dropped it silently, and without a socket
        timeout a write on it would wait for TCP to give up (many minutes)."""
        self.ping_timeout = CONNECT_TIMEOUT

    @property
    def direct(self) -> bool:
        """Whether calls take the pipe (False: redis-py's script object, for TLS or a Unix socket)."""
        return self._kwargs is not None

    async def __call__(self, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        if self._kwargs is None:
            return await self._fallback(keys=[_encode(key) for key in keys], args=list(args))
        protocol = await self._connection()
        tail = [len(keys), *keys, *args]
        reply = await protocol.call(pack([b"EVALSHA", self._sha, *tail]))
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
            reply = await protocol.call(pack([b"EVAL", self._script, *tail]))  # also caches it again
        if isinstance(reply, hiredis.ReplyError):
            raise ResponseError(str(reply))
        return reply

    async def _connection(self) -> RawConnection:
        loop = asyncio.get_running_loop()
        protocol = self._protocol
        stale = loop.time() - self.health_interval if self.health_interval else -math.inf
        if protocol is not None and protocol.usable and self._loop is loop and not protocol.idle_since(stale):
            return protocol
        if self._connecting is None or self._loop is not loop:
            self._connecting, self._loop = asyncio.Lock(), loop
            self._protocol = None
        async with self._connecting:
            protocol = self._protocol
            if protocol is not None and protocol.usable and protocol.idle_since(stale):
                protocol = await self._checked(protocol)
            if protocol is None or not protocol.usable:
                protocol = self._protocol = await self._open(loop)
            return protocol

    async def _checked(self, protocol: RawConnection) -> RawConnection | None:
        """``protocol`` if it answers a PING in time; else it is dropped (None)."""
        try:
            async with asyncio.timeout(self.ping_timeout):
                await protocol.call(pack([b"PING"]))
        except (TimeoutError, ConnectionError):
            assert protocol.transport is not None
            protocol.transport.abort()
            return None
        return protocol

    async def connection(self, purpose: str) -> RawConnection:
        """A new connection of the caller's own, opened as the pipe's is (``direct`` pipes only): for
        a blocking read such as a watch's XREAD, which would hold up the writes queued behind it on
        the shared one. The caller closes its transport."""
        return await self._open(asyncio.get_running_loop(), purpose)

    async def _open(self, loop: asyncio.AbstractEventLoop, purpose: str = "writes") -> RawConnection:
        kwargs = self._kwargs
        assert kwargs is not None
        async with asyncio.timeout(CONNECT_TIMEOUT):
            _, protocol = await loop.create_connection(RawConnection, kwargs["host"], kwargs["port"])
            try:
                hello: list[asyncio.Future[Any]] = []
                password, username = kwargs.get("password"), kwargs.get("username")
                if password:
                    hello.append(protocol.call(pack([b"AUTH", *([username] if username else []), password])))
                if kwargs.get("db"):
                    hello.append(protocol.call(pack([b"SELECT", kwargs["db"]])))
                if kwargs.get("client_name"):
                    hello.append(protocol.call(pack([b"CLIENT", b"SETNAME", f"{kwargs['client_name']}-{purpose}"])))
                for reply in await asyncio.gather(*hello):
                    if isinstance(reply, hiredis.ReplyError):
                        raise ResponseError(str(reply))
            except BaseException:  # refused, timed out or cancelled: no half-open connection left
                assert protocol.transport is not None
                protocol.transport.close()
                raise
        return protocol

    async def aclose(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
