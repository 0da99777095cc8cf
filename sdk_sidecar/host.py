"""Many game servers' SDK endpoints in one process: REST and gRPC, two loopback ports per server.

Agones runs one sidecar process per game server; a node agent running 200 game servers should not
run 200 Python processes. ``SdkHost`` serves every session's REST SDK from one ``AppRunner``: each
``add`` binds a socket (port 0: the OS picks) and adds it as a ``SockSite``; a request's session is
the one bound to the local port it arrived on. The gRPC SDK of each session gets its own
``grpc.aio`` server on a second port (``sdk_sidecar.grpc_server``: a gRPC call cannot tell which
port it came in on), started and stopped with the REST one. One health loop ticks every session's
pure tracker.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Mapping
from types import MappingProxyType

import grpc
from aiohttp import web

from fleetmatch.models import GameServer
from fleetmatch.settings import SdkSettings
from fleetmatch.store import GameServerStore
from fleetmatch.tasks import cancel_and_wait, supervised
from sdk_sidecar import grpc_server, metrics, peers
from sdk_sidecar.clock import SYSTEM_CLOCK, Clock
from sdk_sidecar.http import build_app
from sdk_sidecar.peers import PeerGuard
from sdk_sidecar.session import SdkSession

log = logging.getLogger(__name__)

STALL_SECONDS = 1.0
"""A health tick this much later than due means the host was stalled (it could not read pings)."""
MASS_FAILURE_MIN = 2
"""At least this many servers (and half of those judged) failing at one tick is suspected as the host's fault."""
MASS_GRACE = 60.0
"""Seconds after giving a mass failure one more period during which the next one is judged as usual."""


def listen_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket on ``host`` (IPv4 preferred when a name resolves to both)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class SdkHost:
    """The REST SDK of every GameServer this process hosts."""

    def __init__(
        self,
        store: GameServerStore,
        settings: SdkSettings,
        *,
        bind_host: str = "127.0.0.1",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """``clock`` is every session's time: its ``monotonic`` drives the health deadlines (tests pass a
        virtual one), its ``time`` stamps what is stored."""
        self._store = store
        self._settings = settings
        self._bind_host = bind_host
        self._clock = clock
        self._sessions: dict[str, SdkSession] = {}
        self._ports: dict[str, int] = {}
        self._by_port: dict[int, SdkSession] = {}
        self._sites: dict[str, web.SockSite] = {}
        self._grpc: dict[str, tuple[grpc.aio.Server, int]] = {}
        self._runner: web.AppRunner | None = None
        self._health_task: asyncio.Task[None] | None = None

    @property
    def sessions(self) -> Mapping[str, SdkSession]:
        return MappingProxyType(self._sessions)

    def port_of(self, name: str) -> int | None:
        """The REST SDK port of ``name`` (``AGONES_SDK_HTTP_PORT``), None if not hosted."""
        return self._ports.get(name)

    def grpc_port_of(self, name: str) -> int | None:
        """The gRPC SDK port of ``name`` (``AGONES_SDK_GRPC_PORT``), None if not hosted."""
        entry = self._grpc.get(name)
        return entry[1] if entry is not None else None

    def _lookup(self, request: web.Request) -> SdkSession | None:
        transport = request.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        return self._by_port.get(sockname[1]) if sockname else None

    async def start(self) -> None:
        if self._runner is not None:
            return
        # handler_cancellation: a watch stream whose game hung up ends now, not at the next update.
        runner = web.AppRunner(
            build_app(self._lookup), handler_cancellation=True, access_log=None, shutdown_timeout=2.0
        )
        await runner.setup()
        self._runner = runner
        self._health_task = supervised("sdk.health", self._health_loop)

    async def add(self, gs: GameServer, *, port: int = 0, grpc_port: int = 0, confined: bool = False) -> int:
        """Serve the SDK of stored GameServer ``gs``: REST on ``bind_host:port``, gRPC on
        ``bind_host:grpc_port`` (0: any free port); the REST port (``grpc_port_of`` tells the other).

        Both listen when this returns. Health tracking starts now (the initial delay counts from
        here). Adding a name already hosted returns its current port. ``OSError`` if a port is taken.
        ``confined``: only the process named later with ``confine`` (and its children) may call,
        where the platform tells who calls (``sdk_sidecar.peers``); nobody until then.
        """
        if self._runner is None:
            raise RuntimeError("SdkHost.start() must run before add()")
        if gs.name in self._sessions:
            return self._ports[gs.name]
        sock = listen_socket(self._bind_host, port)
        bound = int(sock.getsockname()[1])
        session = SdkSession(gs, self._store, self._settings, clock=self._clock.time, monotonic=self._clock.monotonic)
        if confined and peers.supported():
            session.guard = PeerGuard()
        site = web.SockSite(self._runner, sock)
        self._sessions[gs.name], self._ports[gs.name], self._by_port[bound] = session, bound, session
        self._sites[gs.name] = site
        try:
            await site.start()
        except BaseException:
            self._forget(gs.name)
            sock.close()
            raise
        try:
            rpc = await grpc_server.serve(session, self._bind_host, grpc_port)
        except BaseException:
            self._forget(gs.name)
            await site.stop()
            raise
        if self._sessions.get(gs.name) is not session:  # removed while the gRPC server started
            await rpc[0].stop(None)
            return bound
        self._grpc[gs.name] = rpc
        session.start()
        metrics.SESSIONS.inc()
        log.info(
            "SDK of %s on %s: REST port %d, gRPC port %d",
            gs.name,
            self._bind_host,
            bound,
            rpc[1],
            extra={"gameserver": gs.name},
        )
        return bound

    def confine(self, name: str, pid: int) -> None:
        """Admit only process ``pid`` (the game) and its children to ``name``'s SDK (if it was
        added ``confined``)."""
        session = self._sessions.get(name)
        if session is not None and session.guard is not None:
            session.guard.confine(pid)

    def observe(self, gs: GameServer) -> None:
        """The latest stored state of a hosted GameServer (ignored for names not hosted here)."""
        session = self._sessions.get(gs.name)
        if session is not None:
            session.observe(gs)

    async def flush(self, name: str, within: float = 5.0) -> bool:
        """Write ``name``'s pending SDK changes now; True once none is pending
        (or it is not hosted); False if the store did not take them within ``within`` seconds."""
        session = self._sessions.get(name)
        return True if session is None else await session.flush(within)

    def _forget(self, name: str) -> tuple[SdkSession, web.SockSite, int, grpc.aio.Server | None] | None:
        session = self._sessions.pop(name, None)
        if session is None:
            return None
        port = self._ports.pop(name)
        self._by_port.pop(port, None)
        rpc = self._grpc.pop(name, None)
        return session, self._sites.pop(name), port, rpc[0] if rpc is not None else None

    async def remove(self, name: str) -> None:
        """Stop serving ``name``: end its watch streams, write what is pending, close its socket. Idempotent."""
        entry = self._forget(name)
        if entry is None:
            return
        session, site, port, rpc = entry
        try:
            await session.close()  # ends watch streams first, on both front doors
        finally:
            try:
                # A call in flight gets a second on either port; a new one is refused at once.
                stops = [self._stop_rest(site, port)]
                if rpc is not None:
                    stops.append(rpc.stop(grpc_server.STOP_GRACE))
                await asyncio.gather(*stops)
            finally:
                metrics.SESSIONS.dec()
        log.info("SDK of %s closed", name, extra={"gameserver": name})

    async def _stop_rest(self, site: web.SockSite, port: int) -> None:
        await site.stop()
        await self._close_connections(port)

    async def _close_connections(self, port: int) -> None:
        """Close connections to a removed port (kept-alive ones included), so that a later session on
        the same port never receives the old game's requests; a request in flight gets a second."""
        server = self._runner.server if self._runner is not None else None
        handlers = []
        for handler in server.connections if server is not None else ():
            transport = handler.transport
            sockname = transport.get_extra_info("sockname") if transport is not None else None
            if sockname and sockname[1] == port:
                handler.close()  # an idle one stops waiting for its next request
                handlers.append(handler)
        await asyncio.gather(*(handler.shutdown(1.0) for handler in handlers))

    async def close(self) -> None:
        """Remove every session, stop the health loop and the server."""
        await cancel_and_wait(self._health_task)
        self._health_task = None
        await asyncio.gather(*(self.remove(name) for name in list(self._sessions)))
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _health_loop(self) -> None:
        """Judge every session's health each tick, on pings this process was able to receive.

        - A stalled host (its event loop blocked: a long pause, SIGSTOP, swapping) cannot read the
          pings its games keep sending; the time it was away is added to every deadline, and the
          pings queued meanwhile are read before the next judgement.
        - When many servers would fail at the same tick, the likelier cause is this host, not all
          its games at once: they get one more period (logged, counted) before they are judged.
        """
        tick = self._settings.health_tick
        loop = asyncio.get_running_loop()
        last = loop.time()
        forgiven_at = float("-inf")
        while True:
            await asyncio.sleep(tick)
            away = loop.time() - last - tick
            last = loop.time()
            sessions = list(self._sessions.values())
            if away > STALL_SECONDS:
                log.warning("the SDK host was stalled for %.1fs: its games' health deadlines move by as much", away)
                metrics.HOST_STALLS.inc()
                for session in sessions:
                    session.health_tracker.pause(away)
                continue  # read the pings that queued up before judging anyone
            now = self._clock.monotonic()
            failing = [s for s in sessions if s.health_tracker.would_fail(now)]
            judged = [s for s in sessions if not s.health_tracker.disabled and not s.health_tracker.unhealthy]
            if len(failing) >= MASS_FAILURE_MIN and 2 * len(failing) >= len(judged) and now - forgiven_at > MASS_GRACE:
                forgiven_at = now
                metrics.MASS_HEALTH_FAILURES.inc()
                log.error(
                    "%d of %d game servers missed their health checks at once: more likely this host than "
                    "every game; giving them one more period", len(failing), len(judged),
                )  # fmt: skip
                for session in failing:
                    session.health_tracker.forgive(now)
                continue
            for session in sessions:
                session.check_health(now)
