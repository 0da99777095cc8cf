"""The example UDP game server: ``python -m examples.udp_game.server`` (from the repository root).

It does what a real dedicated server does with the SDK: bind its UDP port, connect to the SDK
sidecar, keep sending Health pings, call Ready once it can take players, follow its GameServer
through the watch stream (logging the allocation's labels and annotations), play the match
(``examples.udp_game.game``), and call Shutdown when the match is over, then exit 0. SIGTERM or
SIGINT ends it promptly with exit code 0 (the node agent sends SIGTERM when the server is deleted).

Environment (the node agent sets the first four):

==========================  ===================================================  ==========
variable                    meaning                                              default
==========================  ===================================================  ==========
``AGONES_SDK_HTTP_PORT``    the SDK sidecar's REST port on 127.0.0.1             9358
``FLEETMATCH_GAMESERVER``   this GameServer's name (replies and logs)            from the SDK
``FLEETMATCH_PORT``         UDP port to bind (else ``FLEETMATCH_PORT_DEFAULT``)  required
``FLEETMATCH_BIND``         address to bind                                      ``0.0.0.0``
``MATCH_TIME_LIMIT``        seconds a match may last, counted from allocation    600
``PLAYER_IDLE_TIMEOUT``     seconds without a datagram before a player is gone    60
``JOIN_TIMEOUT``            seconds after allocation for the first player to join 60
``MAX_PLAYERS``             players at once                                      16
``SHUTDOWN_GRACE``          seconds between Shutdown and exit (late datagrams)   1
==========================  ===================================================  ==========

Standard output carries one JSON object per line for each game event (``ready``, ``allocated`` with
the labels and annotations, ``join``, ``leave``, ``match-over``, ``exit``); diagnostics go to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from examples.udp_game import protocol
from examples.udp_game.game import Match, TokenVerifier, verify_match_token
from examples.udp_game.protocol import Join, Leave, ProtocolError
from sdk_sidecar.client import SDK, SdkError

log = logging.getLogger("examples.udp_game")

TICK_SECONDS = 0.1
"""Game tick: idle players and the time limit are checked this often."""


def emit(event: str, **fields: Any) -> None:
    """One game event as a JSON line on stdout (what the node agent's log and the tests read)."""
    print(json.dumps({"event": event, **fields}, separators=(",", ":"), sort_keys=True), flush=True)


@dataclass(frozen=True, slots=True)
class GameConfig:
    name: str
    port: int
    bind: str = "0.0.0.0"
    sdk_port: int | None = None
    time_limit: float = 600.0
    idle_timeout: float = 60.0
    join_timeout: float = 60.0
    max_players: int = 16
    shutdown_grace: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GameConfig:
        """The configuration in ``env``; ``ValueError`` naming the variable that is wrong."""

        def number(name: str, default: float, parse: Callable[[str], float] = float) -> float:
            raw = env.get(name, "")
            if not raw:
                return default
            try:
                value = parse(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a number") from None
            if value <= 0:
                raise ValueError(f"{name}={raw!r} must be positive")
            return value

        raw_port = env.get("FLEETMATCH_PORT") or env.get("FLEETMATCH_PORT_DEFAULT") or ""
        if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
            raise ValueError(f"FLEETMATCH_PORT={raw_port!r}: set it to the UDP port this server must bind")
        return cls(
            name=env.get("FLEETMATCH_GAMESERVER", ""),
            port=int(raw_port),
            bind=env.get("FLEETMATCH_BIND") or "0.0.0.0",
            sdk_port=int(number("AGONES_SDK_HTTP_PORT", 0, int)) or None,
            time_limit=number("MATCH_TIME_LIMIT", 600.0),
            idle_timeout=number("PLAYER_IDLE_TIMEOUT", 60.0),
            join_timeout=number("JOIN_TIMEOUT", 60.0),
            max_players=int(number("MAX_PLAYERS", 16, int)),
            shutdown_grace=number("SHUTDOWN_GRACE", 1.0),
        )


PLAYERS_LIST = "players"
"""The Agones List of who is in the match (declare it in the fleet: ``lists: {players: {capacity: N}}``)."""


class Roster:
    """Keeps the GameServer's ``players`` List in step with the match: a player who joins is added,
    one who leaves (or goes idle) is removed, so the matchmaker sees the free slot and backfills
    it (docs/matchmaking.md). The matchmaker lists the players it sends before they arrive; adding
    one already there, or a List the fleet does not declare, is not an error here."""

    def __init__(self) -> None:
        self.changes: asyncio.Queue[tuple[bool, str]] = asyncio.Queue()

    def update(self, joined: set[str], left: set[str]) -> None:
        for player in sorted(joined):
            self.changes.put_nowait((True, player))
        for player in sorted(left):
            self.changes.put_nowait((False, player))

    async def run(self, sdk: SDK) -> None:
        while True:
            joined, player = await self.changes.get()
            try:
                if joined:
                    await sdk.add_list_value(PLAYERS_LIST, player)
                else:
                    await sdk.remove_list_value(PLAYERS_LIST, player)
            except SdkError as exc:  # already listed, not listed, or no such List: nothing to keep in step
                log.debug("players List: %s %s: %s", "add" if joined else "remove", player, exc)


class GameProtocol(asyncio.DatagramProtocol):
    """Bytes in, bytes out: decode, let the match decide, reply to the sender. Never raises."""

    def __init__(
        self,
        match: Match,
        on_change: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
        roster: Roster | None = None,
    ) -> None:
        self.match = match
        self.on_change = on_change
        self.clock = clock
        self.roster = roster
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # 3.11's selector transport is not a subclass

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            request = protocol.decode_request(data)
        except ProtocolError as exc:
            reply = protocol.error(exc.reason)
        else:
            try:
                before = set(self.match.players)
                reply = self.match.handle(request, addr, self.clock())
                if isinstance(request, Join | Leave) and set(self.match.players) != before:
                    if self.roster is not None:
                        self.roster.update(set(self.match.players) - before, before - set(self.match.players))
                    emit(
                        "join" if isinstance(request, Join) else "leave",
                        player=request.player,
                        players=sorted(self.match.players),
                    )
            except Exception:
                log.exception("failed to handle %r from %s", request, addr)
                reply = protocol.error("internal")
        if self.transport is not None:
            self.transport.sendto(protocol.encode(reply), addr)
        self.on_change()

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)  # e.g. ICMP unreachable for a player that went away


async def _follow(sdk: SDK, match: Match, changed: asyncio.Event) -> None:
    """Feed the GameServer's updates to the match; log the allocation once, with its metadata."""
    async with contextlib.aclosing(sdk.watch_gameserver()) as updates:
        async for info in updates:
            if not match.server:
                match.server = info.name
            if match.observe(info.state, info.labels, info.annotations, time.monotonic()):
                emit(
                    "allocated",
                    gameserver=match.server,
                    labels=dict(info.labels),
                    annotations=dict(info.annotations),
                )
            changed.set()


async def _play(match: Match, changed: asyncio.Event, roster: Roster | None = None) -> str:
    """Tick until the match is over; its reason."""
    while True:
        before = set(match.players)
        reason = match.advance(time.monotonic())
        if roster is not None and before != set(match.players):  # idle players dropped
            roster.update(set(), before - set(match.players))
        if reason is not None:
            return reason
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(TICK_SECONDS):
                await changed.wait()
        changed.clear()


async def run_game(config: GameConfig, *, verify: TokenVerifier = verify_match_token) -> int:
    """The whole life of the server; the process exit code."""
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()
    match = Match(
        config.name,
        max_players=config.max_players,
        time_limit=config.time_limit,
        idle_timeout=config.idle_timeout,
        join_timeout=config.join_timeout,
        verify=verify,
    )
    roster = Roster()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: GameProtocol(match, changed.set, roster=roster), local_addr=(config.bind, config.port)
    )
    tasks: list[asyncio.Task[Any]] = []
    try:
        async with SDK(port=config.sdk_port) as sdk:
            await sdk.connect()
            tasks.append(asyncio.create_task(sdk.health_loop(), name="health"))
            tasks.append(asyncio.create_task(_follow(sdk, match, changed), name="watch"))
            tasks.append(asyncio.create_task(roster.run(sdk), name="players-list"))
            await sdk.ready()
            emit("ready", gameserver=match.server or config.name, port=config.port)
            reason = await _play(match, changed, roster)
            emit("match-over", gameserver=match.server, reason=reason, players_joined=match.joined)
            await sdk.shutdown()
            await asyncio.sleep(config.shutdown_grace)  # answer late datagrams (pings see the state)
    except SdkError as exc:
        log.error("SDK sidecar: %s", exc)
        return 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        transport.close()
    return 0


async def _until_signalled(main: asyncio.Task[int]) -> int:
    """``main``'s exit code, or 0 right after SIGTERM/SIGINT (``main`` is cancelled and cleaned up)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if main.done():
        return main.result()
    log.info("signalled: stopping")
    main.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await main
    return 0


async def _main(config: GameConfig) -> int:
    return await _until_signalled(asyncio.create_task(run_game(config)))


def main(env: Mapping[str, str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = GameConfig.from_env(os.environ if env is None else env)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    code = asyncio.run(_main(config))
    emit("exit", gameserver=config.name, code=code)
    return code


if __name__ == "__main__":
    sys.exit(main())
