"""The example UDP game as the node agent runs it: a real process, a real SDK endpoint (SdkHost on the
Redis store, fed by an informer), and a player talking to it over UDP.

The node agent normally promotes RequestReady to Ready and the allocator marks the server Allocated;
here the test writes those states to the store itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from examples.udp_game.client import GameClient, GameServerError, NoReplyError, RejectedError
from examples.udp_game.game import Match
from examples.udp_game.server import GameProtocol
from fleetmatch.models import (
    GameServer,
    GameServerPort,
    GameServerSpec,
    GameServerState,
    GameServerStatus,
    Health,
    ObjectMeta,
    PortPolicy,
    PortStatus,
    with_meta,
)
from fleetmatch.store import modify
from tests.integration.sdkenv import Env, running_host
from tests.waiting import eventually

S = GameServerState
REPO_ROOT = Path(__file__).resolve().parents[2]
MATCH_LABEL = "fleetmatch.dev/match"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GameProcess:
    """``python -m examples.udp_game.server`` with the node agent's environment; its JSON events."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr: Path) -> None:
        self.proc = proc
        self.stderr = stderr
        self.events: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, name: str, sdk_port: int, udp_port: int, tmp: Path, **env: str) -> GameProcess:
        stderr = tmp / f"{name}.stderr"
        full_env = {
            **os.environ,
            "AGONES_SDK_HTTP_PORT": str(sdk_port),
            "FLEETMATCH_GAMESERVER": name,
            "FLEETMATCH_PORT": str(udp_port),
            "FLEETMATCH_PORT_DEFAULT": str(udp_port),
            "FLEETMATCH_BIND": "127.0.0.1",
            "SHUTDOWN_GRACE": "0.2",
            **env,
        }
        with stderr.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "examples.udp_game.server",
                cwd=REPO_ROOT,
                env=full_env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
            )
        return cls(proc, stderr)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(line))
                self._arrived.set()

    async def event(self, name: str, within: float = 20.0) -> dict[str, Any]:
        """The first ``name`` event the game printed (waits for it)."""
        async with asyncio.timeout(within):
            while True:
                for event in self.events:
                    if event.get("event") == name:
                        return event
                if self._reader.done():
                    raise AssertionError(f"game exited without {name!r}; stderr:\n{self.stderr.read_text()}")
                self._arrived.clear()
                await self._arrived.wait()

    async def exit_code(self, within: float = 20.0) -> int:
        async with asyncio.timeout(within):
            code = await self.proc.wait()
            await self._reader
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        await self._reader


@contextlib.asynccontextmanager
async def game_server(
    env: Env, tmp: Path, name: str = "game-1", **game_env: str
) -> AsyncIterator[tuple[GameProcess, GameClient]]:
    """A stored GameServer, its SDK on the host, the game process, and a UDP client to it."""
    udp_port = free_udp_port()
    gs = await env.store.create(
        GameServer(
            metadata=ObjectMeta(name=name),
            spec=GameServerSpec(
                ports=(GameServerPort(port_policy=PortPolicy.STATIC, host_port=udp_port),),
                health=Health(period_seconds=2, failure_threshold=3, initial_delay_seconds=0),
            ),
            status=GameServerStatus(
                state=S.SCHEDULED, address="127.0.0.1", ports=(PortStatus("default", udp_port),), node_name="local"
            ),
        )
    )
    sdk_port = await env.host.add(gs)
    game = await GameProcess.start(name, sdk_port, udp_port, tmp, **game_env)
    try:
        async with await GameClient.open("127.0.0.1", udp_port, reply_timeout=0.5, retries=6) as client:
            yield game, client
    finally:
        await game.kill()


async def set_state(env: Env, name: str, state: GameServerState, **labels: str) -> None:
    """What the node agent (Ready) or the allocator (Allocated, with labels) would write."""

    def change(gs: GameServer) -> GameServer:
        return with_meta(gs.with_status(state=state), labels={**gs.metadata.labels, **labels})

    await modify(env.store.inner, name, change)


async def until_pong(client: GameClient, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Ping until the reply satisfies ``check`` (the game learns of store changes through its watch)."""
    last: dict[str, Any] = {}

    async def ok() -> bool:
        nonlocal last
        last = await client.ping()
        return check(last)

    await eventually(ok, 20, what=lambda: f"pong {last}")
    return last


@pytest.fixture
async def env(redis_client: aioredis.Redis) -> AsyncIterator[Env]:
    async with running_host(redis_client) as e:
        yield e


async def test_a_match_from_ready_to_shutdown(env: Env, tmp_path: Path) -> None:
    async with game_server(env, tmp_path) as (game, client):
        # Ready: the game asks for it once its UDP socket is up; the node agent would promote it.
        await env.stored("game-1", lambda g: g.state is S.REQUEST_READY, within=20)
        await game.event("ready")
        await set_state(env, "game-1", S.READY)
        pong = await until_pong(client, lambda p: p["state"] == "Ready")
        assert pong == {"t": "pong", "server": "game-1", "state": "Ready", "players": 0, "labels": {}}
        with pytest.raises(RejectedError) as rejected:
            await client.join("p1", "token-1", patience=0)
        assert rejected.value.reason == "not-allocated"

        # Allocated, with the match's label: the game logs it and reports it.
        await set_state(env, "game-1", S.ALLOCATED, **{MATCH_LABEL: "m-42"})
        allocated = await game.event("allocated")
        assert allocated["gameserver"] == "game-1"
        assert allocated["labels"][MATCH_LABEL] == "m-42"
        pong = await until_pong(client, lambda p: p["state"] == "Allocated")
        assert pong["labels"][MATCH_LABEL] == "m-42"

        # Two players play; one leaves, the match goes on.
        welcome = await client.join("p1", "token-1")
        assert (welcome["server"], welcome["players"]) == ("game-1", [{"id": "p1", "seq": -1}])
        await client.join("p2", "token-2")
        assert (await client.input("p1", 1, {"move": "left"}))["seq"] == 1
        assert (await client.input("p1", 3, {"move": "up"}))["seq"] == 3
        state = await client.input("p2", 1)
        assert state["players"] == [{"id": "p1", "seq": 3}, {"id": "p2", "seq": 1}]
        assert await client.leave("p1") == {"t": "bye", "player": "p1"}
        with pytest.raises(GameServerError, match="not-joined"):
            await client.input("p1", 4)
        assert (await client.ping())["players"] == 1
        assert (await env.store.get("game-1")).state is S.ALLOCATED

        # The game keeps its health pings going the whole time.
        tracker = env.host.sessions["game-1"].health_tracker
        seen = tracker.last_ping
        await eventually(lambda: tracker.last_ping > seen, 10, what=lambda: "another health ping")

        # The last player leaves: the game calls Shutdown and exits 0.
        assert await client.leave("p2") == {"t": "bye", "player": "p2"}
        await env.stored("game-1", lambda g: g.state is S.SHUTDOWN, within=20)
        assert await game.exit_code() == 0
        over = await game.event("match-over")
        assert (over["reason"], over["players_joined"]) == ("all-players-left", 2)
        assert (await game.event("exit"))["code"] == 0
        assert [e["event"] for e in game.events if e["event"] in ("join", "leave")] == [
            "join",
            "join",
            "leave",
            "leave",
        ]


async def test_the_time_limit_ends_a_match_nobody_joined(env: Env, tmp_path: Path) -> None:
    async with game_server(env, tmp_path, MATCH_TIME_LIMIT="1") as (game, _):
        await env.stored("game-1", lambda g: g.state is S.REQUEST_READY, within=20)
        await set_state(env, "game-1", S.ALLOCATED)
        await game.event("allocated")
        await env.stored("game-1", lambda g: g.state is S.SHUTDOWN, within=20)
        assert (await game.event("match-over"))["reason"] == "time-limit"
        assert await game.exit_code() == 0


async def test_sigterm_stops_the_game_at_once_without_shutdown(env: Env, tmp_path: Path) -> None:
    async with game_server(env, tmp_path) as (game, client):
        await env.stored("game-1", lambda g: g.state is S.REQUEST_READY, within=20)
        await game.event("ready")
        assert (await client.ping())["server"] == "game-1"
        game.proc.send_signal(signal.SIGTERM)
        assert await game.exit_code(within=10) == 0
        assert (await game.event("exit"))["code"] == 0
        assert not any(e["event"] == "match-over" for e in game.events)
        await env.host.flush("game-1")
        assert (await env.store.get("game-1")).state is S.REQUEST_READY  # deleted by whoever sent SIGTERM


async def catches(pid: int, signum: int, within: float) -> None:
    """Until process ``pid`` has a handler for ``signum`` (Linux: its ``SigCgt`` mask): before that,
    the signal's default action would kill it, whatever the program does once started."""
    bit = 1 << (signum - 1)

    def caught() -> bool:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            raise AssertionError(f"process {pid} exited before it caught signal {signum}") from None
        mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
        return bool(int(mask, 16) & bit)

    await eventually(caught, within=within)


async def test_sigterm_while_waiting_for_the_sdk_exits_cleanly(tmp_path: Path) -> None:
    # A port bound here and never listened on: connecting to it is refused, and no other test's
    # server can take it meanwhile (a free port number alone once got a listener, and the game an
    # answer from it: it exited before the signal).
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    game = await GameProcess.start("lonely", holder.getsockname()[1], free_udp_port(), tmp_path)
    try:
        # The SDK client waits 30 s for a late sidecar; SIGTERM during the wait still exits cleanly.
        # (A fixed 0.5 s was not always enough on a loaded machine to get past Python's start-up:
        # the default action of SIGTERM killed it, exit -15.)
        await catches(game.proc.pid, signal.SIGTERM, within=20)
        assert game.proc.returncode is None
        game.proc.send_signal(signal.SIGTERM)
        assert await game.exit_code(within=10) == 0
    finally:
        await game.kill()
        holder.close()


# -- the client against the in-process protocol -----------------------------------------------------


class Lossy(GameProtocol):
    """The real datagram handler, dropping the first ``drop`` datagrams (UDP loses packets)."""

    def __init__(self, match: Match, drop: int) -> None:
        super().__init__(match, lambda: None)
        self.drop = drop
        self.received = 0

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.received += 1
        if self.received > self.drop:
            super().datagram_received(data, addr)


@contextlib.asynccontextmanager
async def in_process(drop: int = 0) -> AsyncIterator[tuple[Lossy, int]]:
    match = Match("local")
    match.observe("Allocated", {"mode": "duel"}, {}, now=0)
    handler = Lossy(match, drop)
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: handler, local_addr=("127.0.0.1", 0)
    )
    try:
        yield handler, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


async def test_the_client_resends_until_a_reply_comes() -> None:
    async with in_process(drop=2) as (handler, port):
        async with await GameClient.open("127.0.0.1", port, reply_timeout=0.2, retries=3) as client:
            pong = await client.ping()
        assert pong["labels"] == {"mode": "duel"}
        assert handler.received == 3


async def test_the_client_gives_up_and_reports_errors() -> None:
    async with in_process(drop=1_000) as (_, port):
        async with await GameClient.open("127.0.0.1", port, reply_timeout=0.1, retries=2) as client:
            with pytest.raises(NoReplyError):
                await client.ping()
    async with in_process() as (_, port):
        async with await GameClient.open("127.0.0.1", port, reply_timeout=0.5) as client:
            with pytest.raises(GameServerError, match="not-joined"):
                await client.input("stranger", 1)


async def test_the_client_command_line_pings_a_server() -> None:
    async with in_process() as (_, port):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "examples.udp_game.client",
            "127.0.0.1",
            str(port),
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        assert json.loads(out) == {
            "t": "pong",
            "server": "local",
            "state": "Allocated",
            "players": 0,
            "labels": {"mode": "duel"},
        }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "examples.udp_game.client",
        "127.0.0.1",
        str(free_udp_port()),
        "--timeout",
        "0.1",
        "--retries",
        "0",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 1
    assert b"no reply" in err
