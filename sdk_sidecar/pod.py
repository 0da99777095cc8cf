"""The SDK sidecar inside a game-server Pod on Kubernetes (Agones' ``agones-gameserver-sidecar``).

``run_pod_sidecar`` composes: the Pod's GameServer custom resource through the thin store
(``fleetmatch.backends.kube.podstore``: aiohttp only, no kubernetes-asyncio, no Redis), an ``Informer`` on that one
object feeding the ``SdkSession``, the REST and gRPC SDK on ``address`` (``SdkHost``), and the
health server on ``health_address:health_port``:

- ``GET /healthz``: 200 while this process runs (the sidecar container's liveness probe);
- ``GET /gshealthz``: 200 while the game's Health pings keep up, 500 once the session's
  ``HealthTracker`` found it unhealthy (the game container's liveness probe, reference/agones.md 3.2;
  the session also writes state Unhealthy).

Graceful termination (Agones ``--graceful-termination``, default on): on SIGTERM the pending SDK
changes are written, then the GameServer is read. If it is gone, Shutdown (or in another terminal
state), or the game never made a state call (it is still Creating/Starting/Scheduled), the sidecar
exits at once; otherwise it keeps serving the SDK until the GameServer reaches Shutdown (or another
terminal state, or is deleted), or ``termination_timeout`` passes (None: until then; the kubelet's
``terminationGracePeriodSeconds`` bounds it anyway), then flushes and returns: exit status 0. A
second SIGTERM or SIGINT ends the wait.

``python -m sdk_sidecar.pod`` (or ``main()``) configures itself like Agones' sidecar, from flags
or, for each flag, its environment variable (in brackets):

    --gameserver-name (GAMESERVER_NAME, required)   --pod-namespace (POD_NAMESPACE, else default)
    --http-port (AGONES_SDK_HTTP_PORT, HTTP_PORT; 9358)   --grpc-port (AGONES_SDK_GRPC_PORT, GRPC_PORT; 9357)
    --health-port (HEALTH_PORT; 8080)   --address (ADDRESS; 127.0.0.1, empty: all interfaces)
    --graceful-termination (GRACEFUL_TERMINATION; true)
    --request-rate-limit (REQUESTS_RATE_LIMIT; 500ms: least time between two GameServer writes)
    --termination-timeout (FLEETMATCH_SIDECAR_TERMINATION_TIMEOUT; seconds, none)

The API server: ``FLEETMATCH_KUBE_API_URL`` (no authentication: tests), else the Pod's service
account, else ``KUBECONFIG`` (``KubeConfig.from_env``). ``FLEETMATCH_SDK_WRITE_INTERVAL``,
``FLEETMATCH_LOG_LEVEL`` and ``FLEETMATCH_LOG_FORMAT`` as for every fleetmatch command. Once
the SDK ports listen it prints one line on stderr:
``sdk sidecar NAME: REST host:port gRPC host:port health host:port``.

Memory: this process must not import redis, kubernetes_asyncio, yaml or click (``tests/kube`` checks).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web

from fleetmatch.backends.kube.podstore import KubeConfig, KubeGameServerStore, KubeStoreSettings
from fleetmatch.errors import FleetmatchError, NotFoundError, StoreError
from fleetmatch.informer import Informer
from fleetmatch.logging import configure
from fleetmatch.models import TERMINAL_STATES, GameServer, GameServerState
from fleetmatch.settings import SdkSettings, Settings
from fleetmatch.store import EventType, WatchEvent
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
class Listening:
    """Where a running pod sidecar serves (ports are the bound ones: 0 in the arguments picks one)."""

    address: str
    http_port: int
    grpc_port: int
    health_address: str
    health_port: int


class _Signals:
    """SIGTERM/SIGINT: the first asks for graceful termination, the next one ends the wait."""

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


async def run_pod_sidecar(
    name: str,
    namespace: str,
    *,
    api: KubeConfig,
    http_port: int = 9358,
    grpc_port: int = 9357,
    health_port: int = 8080,
    address: str = "127.0.0.1",
    health_address: str = "0.0.0.0",
    sdk: SdkSettings | None = None,
    kube: KubeStoreSettings | None = None,
    graceful_termination: bool = True,
    termination_timeout: float | None = None,
    stop: asyncio.Event | None = None,
    on_listening: Callable[[Listening], None] | None = None,
) -> None:
    """Serve GameServer ``namespace/name``'s SDK from inside its Pod until stopped (see the module doc).

    ``stop``: set it to terminate (gracefully); None installs SIGTERM/SIGINT handlers on the running
    loop that do. ``on_listening`` is called once the SDK and health ports listen. Returns after a
    graceful termination; ``OSError`` if a port is taken, ``ConfigError``/``StoreError`` if the API
    server cannot be used.
    """
    signals = _Signals()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if stop is None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, signals)
            installed.append(signum)
        stop = signals.stop
    store = KubeGameServerStore(api, namespace, name, settings=kube)
    host = SdkHost(store, sdk or SdkSettings(), bind_host=address)
    informer: Informer[GameServer] = Informer(store)

    def on_event(event: WatchEvent[GameServer]) -> None:
        if event.object.name == name and event.type is not EventType.DELETED:
            host.observe(event.object)

    informer.add_handler(on_event)
    health = web.AppRunner(_health_app(name, host), access_log=None, shutdown_timeout=1.0)
    watching: asyncio.Task[None] | None = None
    try:
        await health.setup()
        health_sock = listen_socket(health_address, health_port)
        await web.SockSite(health, health_sock).start()
        watching = supervised(f"sdk_sidecar[{name}].informer", informer.run)
        gs = await _first(informer, name, namespace, stop)
        if gs is None:
            return  # stopped before the GameServer existed
        await host.start()
        bound = await host.add(gs, port=http_port, grpc_port=grpc_port)
        where = Listening(address, bound, host.grpc_port_of(name) or 0, health_address, health_sock.getsockname()[1])
        print(
            f"sdk sidecar {name}: REST {address}:{where.http_port} gRPC {address}:{where.grpc_port} "
            f"health {health_address}:{where.health_port}",
            file=sys.stderr,
            flush=True,
        )
        if on_listening is not None:
            on_listening(where)
        await stop.wait()
        if graceful_termination:
            await _terminate(host, store, informer, name, termination_timeout, signals.force)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        await cancel_and_wait(watching)
        await host.close()
        await health.cleanup()
        await store.close()


async def _first(informer: Informer[GameServer], name: str, namespace: str, stop: asyncio.Event) -> GameServer | None:
    """The GameServer once the informer has it; None if ``stop`` is set first."""
    while not stop.is_set():
        if informer.synced.is_set() and (gs := informer.cache.get(name)) is not None:
            return gs
        if informer.synced.is_set():
            log.info("waiting for GameServer %s/%s to exist", namespace, name, extra={"gameserver": name})
        await _either(informer.wait_changed(5.0), stop.wait())
    return None


def _finished(gs: GameServer | None) -> bool:
    return gs is None or gs.state in TERMINAL_STATES


async def _terminate(
    host: SdkHost,
    store: KubeGameServerStore,
    informer: Informer[GameServer],
    name: str,
    bound: float | None,
    force: asyncio.Event,
) -> None:
    """Agones' graceful termination: keep serving until the GameServer is Shutdown (see the module doc)."""
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
                await _either(informer.wait_changed(), force.wait())
    except TimeoutError:
        log.warning("SIGTERM: %s not Shutdown after %.0fs; exiting", name, bound or 0.0, extra=extra)
        return
    current = informer.cache.get(name)
    log.info("SIGTERM: %s is %s; exiting", name, current.state if current else "gone", extra=extra)


async def _either(*aws: Awaitable[object]) -> None:
    """Wait until the first of ``aws`` is done; cancel the others."""
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# -- the process -----------------------------------------------------------------------------------

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
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port")
    return port


def parse_args(argv: Sequence[str] | None, env: Mapping[str, str]) -> argparse.Namespace:
    def default(*names: str, fallback: str | None = None) -> str | None:
        return next((env[n] for n in names if env.get(n)), fallback)

    address = env.get("ADDRESS")
    parser = argparse.ArgumentParser(prog="python -m sdk_sidecar.pod", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--gameserver-name", default=default("GAMESERVER_NAME"))
    parser.add_argument("--pod-namespace", default=default("POD_NAMESPACE", "FLEETMATCH_NAMESPACE", fallback="default"))
    parser.add_argument(
        "--http-port", type=_port, default=default("AGONES_SDK_HTTP_PORT", "HTTP_PORT", fallback="9358")
    )
    parser.add_argument(
        "--grpc-port", type=_port, default=default("AGONES_SDK_GRPC_PORT", "GRPC_PORT", fallback="9357")
    )
    parser.add_argument("--health-port", type=_port, default=default("HEALTH_PORT", fallback="8080"))
    parser.add_argument("--address", default="127.0.0.1" if address is None else address)
    parser.add_argument("--graceful-termination", type=_bool, default=default("GRACEFUL_TERMINATION", fallback="true"))
    parser.add_argument(
        "--request-rate-limit", type=parse_duration, default=default("REQUESTS_RATE_LIMIT", fallback="500ms")
    )
    parser.add_argument(
        "--termination-timeout", type=parse_duration, default=default("FLEETMATCH_SIDECAR_TERMINATION_TIMEOUT")
    )
    args = parser.parse_args(argv)
    if not args.gameserver_name:
        parser.error("--gameserver-name (or GAMESERVER_NAME) is required")
    args.address = args.address or "0.0.0.0"
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """The in-pod sidecar process: flags and environment (module documentation), exit status 0
    after a graceful termination, 1 with a message if it cannot work."""
    env = os.environ
    args = parse_args(argv, env)
    try:
        settings = Settings.from_env(env)
        api = KubeConfig.from_env(env)
    except FleetmatchError as exc:
        sys.exit(f"error: {exc}")
    configure(settings.log_level, settings.log_format)

    async def run() -> None:
        await run_pod_sidecar(
            args.gameserver_name,
            args.pod_namespace,
            api=api,
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            health_port=args.health_port,
            address=args.address,
            sdk=settings.sdk,
            kube=KubeStoreSettings(write_spacing=args.request_rate_limit),
            graceful_termination=args.graceful_termination,
            termination_timeout=args.termination_timeout,
        )

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(run())
    except KeyboardInterrupt:
        pass
    except (FleetmatchError, OSError) as exc:  # OSError: a port is taken
        sys.exit(f"error: {exc}")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed, as the ``fleetmatch`` commands use."""
    with contextlib.suppress(ImportError):
        import uvloop

        return uvloop.new_event_loop
    return None


if __name__ == "__main__":
    main()
