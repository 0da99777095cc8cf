"""The sidecar shell: one game server's SDK in its own process, whatever holds its GameServer.

Two thin entry points run it: ``fleetmatch sidecar`` (``python -m sdk_sidecar.pod``), next to a game
in its Pod, where the GameServer is a custom resource; and ``python -m sdk_sidecar``, next to a game
that runs elsewhere (a container, a debugger) while its GameServer lives in the configured backend
(Redis by default). Both take the same flags, each with its environment variable in brackets (the
names Agones' sidecar reads), and differ only in defaults:

    --gameserver-name, --gameserver (GAMESERVER_NAME, FLEETMATCH_GAMESERVER; required)
    --pod-namespace, --namespace (POD_NAMESPACE, FLEETMATCH_NAMESPACE; default)
    --http-port (AGONES_SDK_HTTP_PORT, HTTP_PORT; 9358)   --grpc-port (AGONES_SDK_GRPC_PORT, GRPC_PORT; 9357)
    --address (ADDRESS; 127.0.0.1, empty: all interfaces)
    --health-port (HEALTH_PORT; Pod 8080, standalone none)   --health-address (0.0.0.0)
    --promote-ready / --no-promote-ready (Pod: off, the controller does it; standalone: on)
    --graceful-termination (GRACEFUL_TERMINATION; Pod true, standalone false)
    --request-rate-limit (REQUESTS_RATE_LIMIT; 500ms: least time between two writes on Kubernetes)
    --termination-timeout (FLEETMATCH_SIDECAR_TERMINATION_TIMEOUT; seconds, none)

What a run does (``serve_sidecar``): it waits for the GameServer to exist, serves the REST and gRPC
SDK (``SdkHost``), feeds the session from an informer on that one object and, with
``--promote-ready``, turns the game's RequestReady into Ready (standing in for a node agent). Once the
SDK ports listen it prints one line on stderr:
``sdk sidecar NAME: REST host:port gRPC host:port`` (and ``health host:port`` with a health server).

The health server, when on: ``GET /healthz`` is 200 while this process runs (the sidecar
container's liveness probe); ``GET /gshealthz`` is 200 while the game's Health pings keep up and 500
once the session found it unhealthy (the game container's liveness probe; the session also writes
state Unhealthy).

Graceful termination (Agones' ``--graceful-termination``): on SIGTERM the pending SDK changes are
written, then the GameServer is read. If it is gone, Shutdown (or in another terminal state), or the
game never made a state call (still Creating/Starting/Scheduled), the sidecar exits at once;
otherwise it keeps serving until the GameServer reaches Shutdown (or another terminal state, or is
deleted) or ``--termination-timeout`` passes, then flushes and exits 0. A second SIGTERM or SIGINT
ends the wait. Without it, SIGTERM writes what is pending and exits 0.

Memory: on Kubernetes this process must not import redis, kubernetes_asyncio, yaml or click
(``tests/kube`` checks): the store comes from ``fleetmatch.backends.open_gameserver_store``, which
imports only the engine it uses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from aiohttp import web

from fleetmatch.errors import FleetmatchError, NotFoundError, StoreError
from fleetmatch.informer import Informer
from fleetmatch.models import TERMINAL_STATES, GameServer, GameServerState
from fleetmatch.settings import SdkSettings
from fleetmatch.store import EventType, GameServerStore, WatchEvent, modify
from fleetmatch.tasks import cancel_and_wait, supervised
from sdk_sidecar.host import SdkHost, listen_socket

log = logging.getLogger(__name__)

NOT_STARTED_STATES = frozenset(
    {GameServerState.PORT_ALLOCATION, GameServerState.CREATING, GameServerState.STARTING, GameServerState.SCHEDULED}
)
"""The game made no state call yet (Ready, Allocate, Reserve, Shutdown): SIGTERM exits at once."""
FLUSH_SECONDS = 5.0
"""How long pending SDK changes may take to be written when terminating."""


@dataclass(frozen=True, slots=True)
class SidecarOptions:
    """One sidecar's flags (see the module documentation)."""

    gameserver: str
    namespace: str = "default"
    http_port: int = 9358
    grpc_port: int = 9357
    address: str = "127.0.0.1"
    health_port: int | None = None
    """None: no health server."""
    health_address: str = "0.0.0.0"
    promote_ready: bool = False
    graceful_termination: bool = False
    request_rate_limit: float = 0.5
    termination_timeout: float | None = None


POD = SidecarOptions(gameserver="", health_port=8080, graceful_termination=True)
"""Defaults in a Pod, next to the game container (Agones' sidecar)."""
STANDALONE = SidecarOptions(gameserver="", promote_ready=True)
"""Defaults of ``python -m sdk_sidecar`` (nobody else turns RequestReady into Ready)."""


@dataclass(frozen=True, slots=True)
class Listening:
    """Where a running sidecar serves (ports are the bound ones: 0 in the options picks one)."""

    address: str
    http_port: int
    grpc_port: int
    health_address: str
    health_port: int


class _Signals:
    """SIGTERM/SIGINT: the first asks for termination, the next one ends a graceful wait."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.force = asyncio.Event()

    def __call__(self) -> None:
        (self.force if self.stop.is_set() else self.stop).set()


def _health_app(name: str, host: SdkHost) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def gshealthz(request: web.Request) -> web.Response:
        session = host.sessions.get(name)
        if session is not None and session.health_tracker.unhealthy:
            return web.Response(status=500, text="unhealthy")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/gshealthz", gshealthz)
    return app


def _promote(gs: GameServer) -> GameServer | None:
    return gs.with_status(state=GameServerState.READY) if gs.state is GameServerState.REQUEST_READY else None


async def serve_sidecar(
    store: GameServerStore,
    options: SidecarOptions,
    sdk: SdkSettings,
    *,
    stop: asyncio.Event | None = None,
    on_listening: Callable[[Listening], None] | None = None,
) -> None:
    """Serve ``options.gameserver``'s SDK on ``store`` until stopped (see the module documentation).

    ``stop``: set it to terminate; None installs SIGTERM/SIGINT handlers on the running loop that do.
    ``on_listening`` is called once the ports listen. ``OSError`` if a port is taken, ``StoreError``
    if the store cannot be used. The caller owns (and closes) ``store``.
    """
    name = options.gameserver
    signals = _Signals()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if stop is None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, signals)
            installed.append(signum)
        stop = signals.stop
    host = SdkHost(store, sdk, bind_host=options.address)
    informer: Informer[GameServer] = Informer(store)
    changed = asyncio.Event()
    promotions: set[asyncio.Task[GameServer | None]] = set()

    def on_event(event: WatchEvent[GameServer]) -> None:
        gs = event.object
        changed.set()
        if gs.name != name or event.type is EventType.DELETED:
            return
        host.observe(gs)
        if options.promote_ready and gs.state is GameServerState.REQUEST_READY:
            task = asyncio.create_task(modify(store, name, _promote), name=f"sdk_sidecar[{name}].promote")
            promotions.add(task)
            task.add_done_callback(promotions.discard)

    informer.add_handler(on_event)
    health: web.AppRunner | None = None
    watching: asyncio.Task[None] | None = None
    try:
        health_where = ""
        health_port = 0
        if options.health_port is not None:
            health = web.AppRunner(_health_app(name, host), access_log=None, shutdown_timeout=1.0)
            await health.setup()
            health_sock = listen_socket(options.health_address, options.health_port)
            await web.SockSite(health, health_sock).start()
            health_port = health_sock.getsockname()[1]
            health_where = f" health {options.health_address}:{health_port}"
        watching = supervised(f"sdk_sidecar[{name}].informer", informer.run)
        gs = await _first(informer, changed, options, stop)
        if gs is None:
            return  # stopped before the GameServer existed
        await host.start()
        bound = await host.add(gs, port=options.http_port, grpc_port=options.grpc_port)
        where = Listening(options.address, bound, host.grpc_port_of(name) or 0, options.health_address, health_port)
        print(
            f"sdk sidecar {name}: REST {options.address}:{where.http_port} gRPC {options.address}:{where.grpc_port}"
            + health_where,
            file=sys.stderr,
            flush=True,
        )
        if on_listening is not None:
            on_listening(where)
        await stop.wait()
        if options.graceful_termination:
            await _terminate(host, store, informer, changed, options, signals.force)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        await cancel_and_wait(watching)
        await host.close()
        await cancel_and_wait(*promotions)
        if health is not None:
            await health.cleanup()


async def _first(
    informer: Informer[GameServer], changed: asyncio.Event, options: SidecarOptions, stop: asyncio.Event
) -> GameServer | None:
    """The GameServer once the informer has it; None if ``stop`` is set first."""
    name = options.gameserver
    await _either(informer.synced.wait(), stop.wait())
    while not stop.is_set():
        if (gs := informer.cache.get(name)) is not None:
            return gs
        log.info("waiting for GameServer %s/%s to exist", options.namespace, name, extra={"gameserver": name})
        changed.clear()
        await _either(_wait(changed, 5.0), stop.wait())
    return None


def _finished(gs: GameServer | None) -> bool:
    return gs is None or gs.state in TERMINAL_STATES


async def _terminate(
    host: SdkHost,
    store: GameServerStore,
    informer: Informer[GameServer],
    changed: asyncio.Event,
    options: SidecarOptions,
    force: asyncio.Event,
) -> None:
    """Agones' graceful termination: keep serving until the GameServer is Shutdown (see the module doc)."""
    name, bound = options.gameserver, options.termination_timeout
    extra = {"gameserver": name}
    if not await host.flush(name, FLUSH_SECONDS):
        log.warning("SIGTERM: pending SDK changes of %s not written within %.0fs", name, FLUSH_SECONDS, extra=extra)
    try:
        gs: GameServer | None = await store.get(name)
    except NotFoundError:
        gs = None
    except StoreError as exc:
        log.warning("SIGTERM: cannot read %s (%s); using the last one seen", name, exc, extra=extra)
        gs = informer.cache.get(name)
    if _finished(gs) or gs is None or gs.state in NOT_STARTED_STATES:
        log.info("SIGTERM: %s is %s; exiting", name, gs.state if gs else "gone", extra=extra)
        return
    log.info("SIGTERM: serving the SDK of %s (%s) until it is Shutdown", name, gs.state, extra=extra)
    try:
        async with asyncio.timeout(bound):
            while not force.is_set() and not _finished(informer.cache.get(name)):
                changed.clear()
                await _either(changed.wait(), force.wait())
    except TimeoutError:
        log.warning("SIGTERM: %s not Shutdown after %.0fs; exiting", name, bound or 0.0, extra=extra)
        return
    current = informer.cache.get(name)
    log.info("SIGTERM: %s is %s; exiting", name, current.state if current else "gone", extra=extra)


async def _wait(event: asyncio.Event, within: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            await event.wait()


async def _either(*aws: Awaitable[object]) -> None:
    """Wait until the first of ``aws`` is done; cancel the others."""
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# -- flags -----------------------------------------------------------------------------------------

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")


def parse_duration(text: str) -> float:
    """Seconds of a Go-style duration (``500ms``, ``1s``, ``2m``) or a plain number of seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 500ms or 1s")
    value, unit = float(match[1]), match[2] or "s"
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


def _bool(text: str) -> bool:
    if text.lower() in ("1", "t", "true", "yes"):
        return True
    if text.lower() in ("0", "f", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port")
    return port


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(
    argv: Sequence[str] | None, env: Mapping[str, str], *, defaults: SidecarOptions, prog: str
) -> SidecarOptions:
    """The options from ``argv``, each defaulting to its environment variable, then to ``defaults``."""

    def default(*names: str, fallback: object = None) -> str | None:
        """The first variable set, else ``fallback`` as text: argparse applies ``type`` to text defaults."""
        found = next((env[n] for n in names if env.get(n)), fallback)
        return None if found is None else str(found)

    parser = argparse.ArgumentParser(prog=prog, description="The Agones SDK of one game server.")
    add = parser.add_argument
    add("--gameserver-name", "--gameserver", dest="gameserver",
        default=default("GAMESERVER_NAME", "FLEETMATCH_GAMESERVER"))  # fmt: skip
    add("--pod-namespace", "--namespace", dest="namespace",
        default=default("POD_NAMESPACE", "FLEETMATCH_NAMESPACE", fallback=defaults.namespace))  # fmt: skip
    add("--http-port", type=_port, default=default("AGONES_SDK_HTTP_PORT", "HTTP_PORT", fallback=defaults.http_port))
    add("--grpc-port", type=_port, default=default("AGONES_SDK_GRPC_PORT", "GRPC_PORT", fallback=defaults.grpc_port))
    add("--address", default=env.get("ADDRESS", defaults.address), help="bind address of the SDK (empty: all)")
    add("--health-port", type=_port, default=default("HEALTH_PORT", fallback=defaults.health_port))
    add("--health-address", default=defaults.health_address)
    add("--promote-ready", action=argparse.BooleanOptionalAction, default=defaults.promote_ready,
        help="turn the game's RequestReady into Ready (when no node agent or controller does)")  # fmt: skip
    add("--graceful-termination", type=_bool,
        default=default("GRACEFUL_TERMINATION", fallback=defaults.graceful_termination))  # fmt: skip
    add("--request-rate-limit", type=_duration,
        default=default("REQUESTS_RATE_LIMIT", fallback=f"{defaults.request_rate_limit}s"))  # fmt: skip
    add("--termination-timeout", type=_duration, default=default("FLEETMATCH_SIDECAR_TERMINATION_TIMEOUT"))
    args = parser.parse_args(argv)
    if not args.gameserver:
        parser.error("--gameserver-name (or GAMESERVER_NAME) is required")
    return SidecarOptions(
        gameserver=args.gameserver,
        namespace=args.namespace,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        address=args.address or "0.0.0.0",
        health_port=args.health_port,
        health_address=args.health_address,
        promote_ready=args.promote_ready,
        graceful_termination=args.graceful_termination,
        request_rate_limit=args.request_rate_limit,
        termination_timeout=args.termination_timeout,
    )


def main(argv: Sequence[str] | None, env: Mapping[str, str], *, defaults: SidecarOptions, prog: str,
         backend: str | None = None) -> None:  # fmt: skip
    """Run a sidecar process: exit 0 after SIGTERM, 1 with one line if it cannot work.

    ``backend``: the engine holding the GameServer (None: ``FLEETMATCH_BACKEND``, Redis by default).
    """
    from fleetmatch.backends import open_gameserver_store
    from fleetmatch.logging import configure
    from fleetmatch.running import loop_factory
    from fleetmatch.settings import Settings

    options = parse_args(argv, env, defaults=defaults, prog=prog)
    try:
        settings = Settings.from_env(env)
    except FleetmatchError as exc:
        sys.exit(f"error: {exc}")
    if backend is not None:
        settings = replace(settings, backend=backend)
    configure(settings.log_level, settings.log_format)

    async def run() -> None:
        async with open_gameserver_store(
            settings, options.gameserver, namespace=options.namespace, write_spacing=options.request_rate_limit
        ) as store:
            await serve_sidecar(store, options, settings.sdk)

    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(run())
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    except (FleetmatchError, OSError) as exc:  # OSError: a port is taken
        sys.exit(f"error: {exc}")
