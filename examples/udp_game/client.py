"""A small async client of the example game, for tests, simulated players and people.

    async with await GameClient.open("127.0.0.1", 7001) as game:
        await game.ping()
        await game.join("p1", token)
        await game.input("p1", 1, {"move": "left"})
        await game.leave("p1")

Each call sends one datagram and waits ``timeout`` seconds for the matching reply, resending up to
``retries`` times (every request is idempotent on the server, so a resend is safe). ``NoReplyError``
when nothing came back, ``RejectedError`` for a refused join, ``GameServerError`` for an ``error``.
A join refused with ``not-allocated`` or ``unknown-player`` is tried again for ``patience`` seconds
(the server learns of its allocation, and of players added to its match, a moment after them).

By hand: ``python -m examples.udp_game.client HOST PORT`` prints the server's ``pong``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Mapping
from typing import Any

from examples.udp_game import protocol
from examples.udp_game.game import NOT_ALLOCATED, UNKNOWN_PLAYER
from examples.udp_game.protocol import Input, Join, Leave, Ping, ProtocolError, Request

PASSING_REFUSALS = frozenset({NOT_ALLOCATED, UNKNOWN_PLAYER})
"""Join refusals the server may take back a moment later: it has not yet learned of its allocation,
or of a player the matchmaker just added to its match (the SDK watch trails the matchmaker)."""
JOIN_PATIENCE = 5.0
"""Default seconds a join refused for one of those reasons is tried again."""
REJOIN_PAUSE = 0.1
"""Seconds between two such tries."""


class GameClientError(Exception):
    """A request to the game server failed."""


class NoReplyError(GameClientError, TimeoutError):
    """No matching reply after every retry."""


class RejectedError(GameClientError):
    def __init__(self, reply: Mapping[str, Any]) -> None:
        self.reply = dict(reply)
        self.reason = str(reply.get("reason", ""))
        super().__init__(f"join refused: {self.reason}")


class GameServerError(GameClientError):
    def __init__(self, reply: Mapping[str, Any]) -> None:
        self.reply = dict(reply)
        self.reason = str(reply.get("reason", ""))
        super().__init__(f"game server error: {self.reason}")


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            self.replies.put_nowait(protocol.decode_reply(data))
        except ProtocolError:
            pass  # not from our server, or garbled: ignore like any lost datagram

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP port unreachable (server not up yet): the retry handles it


class GameClient:
    """One UDP socket to one game server; one request in flight at a time."""

    def __init__(
        self, transport: asyncio.DatagramTransport, endpoint: _Endpoint, *, timeout: float, retries: int
    ) -> None:
        self._transport = transport
        self._endpoint = endpoint
        self.timeout = timeout
        self.retries = retries
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, host: str, port: int, *, reply_timeout: float = 1.0, retries: int = 3) -> GameClient:
        """A client of ``host:port``; each attempt waits ``reply_timeout`` seconds for its reply."""
        loop = asyncio.get_running_loop()
        transport, endpoint = await loop.create_datagram_endpoint(_Endpoint, remote_addr=(host, port))
        return cls(transport, endpoint, timeout=reply_timeout, retries=retries)

    async def __aenter__(self) -> GameClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._transport.close()
        await asyncio.sleep(0)  # let the transport finish closing in this loop iteration

    async def request(self, request: Request, matches: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Send ``request`` until a reply that ``matches`` it arrives (an ``error`` reply raises)."""
        data = protocol.encode_request(request)
        async with self._lock:
            while not self._endpoint.replies.empty():  # late answers to an earlier request
                self._endpoint.replies.get_nowait()
            for _ in range(self.retries + 1):
                self._transport.sendto(data)
                try:
                    async with asyncio.timeout(self.timeout):
                        while True:
                            reply = await self._endpoint.replies.get()
                            if matches(reply):
                                return reply
                            if reply.get("t") == "error":
                                raise GameServerError(reply)
                except TimeoutError:
                    continue
        raise NoReplyError(f"no reply to {request!r} after {self.retries + 1} attempts")

    async def ping(self) -> dict[str, Any]:
        return await self.request(Ping(), lambda r: r.get("t") == "pong")

    async def join(self, player: str, token: str, *, patience: float = JOIN_PATIENCE) -> dict[str, Any]:
        """The ``welcome``; ``RejectedError`` if the server refused for good, or still refused with
        one of ``PASSING_REFUSALS`` after ``patience`` seconds (0: no second try)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while True:
            reply = await self.request(
                Join(player, token), lambda r: r.get("t") in ("welcome", "reject") and r.get("player") == player
            )
            if reply["t"] != "reject":
                return reply
            if reply.get("reason") not in PASSING_REFUSALS or loop.time() >= deadline:
                raise RejectedError(reply)
            await asyncio.sleep(REJOIN_PAUSE)

    async def input(self, player: str, seq: int, data: Any = None) -> dict[str, Any]:
        """The ``state`` acknowledging ``seq`` (or a later one)."""
        return await self.request(
            Input(player, seq, data),
            lambda r: r.get("t") == "state" and r.get("player") == player and r.get("seq", -1) >= seq,
        )

    async def leave(self, player: str) -> dict[str, Any]:
        return await self.request(Leave(player), lambda r: r.get("t") == "bye" and r.get("player") == player)


async def _ping(host: str, port: int, reply_timeout: float, retries: int) -> int:
    async with await GameClient.open(host, port, reply_timeout=reply_timeout, retries=retries) as game:
        try:
            print(json.dumps(await game.ping()))
        except NoReplyError as exc:
            print(f"{host}:{port}: {exc}", file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Ping an example game server and print its reply.")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each reply")
    parser.add_argument("--retries", type=int, default=3, help="resends before giving up")
    args = parser.parse_args(argv)
    return asyncio.run(_ping(args.host, args.port, args.timeout, args.retries))


if __name__ == "__main__":
    sys.exit(main())
