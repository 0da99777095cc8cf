"""One game server's SDK in its own process, as Agones runs its sidecar next to a game in a pod.

    python -m sdk_sidecar --gameserver NAME [--http-port 9358] [--grpc-port 9357] [--address 127.0.0.1]

The node agent hosts every local game server's SDK in its one process (``SdkHost``); this is for a
game that runs elsewhere (a container, a debugger) but whose GameServer lives in fleetmatch's store.
Settings come from the environment like every fleetmatch command (``REDIS_URL`` is required here,
``FLEETMATCH_NAMESPACE``, ``FLEETMATCH_SDK_WRITE_INTERVAL``, ``FLEETMATCH_LOG_LEVEL``...); ports and
the name also from ``AGONES_SDK_HTTP_PORT``, ``AGONES_SDK_GRPC_PORT`` and ``GAMESERVER_NAME``
(the sidecar's own names). It waits for the GameServer to exist, serves REST and gRPC, feeds the
session from an informer and, standing in for the node agent, turns the game's RequestReady into
Ready (``--no-promote-ready``: leave that to someone else). SIGTERM or Ctrl-C: pending changes are
written, then it exits 0. Once both ports listen it prints one line on stderr:
``sdk sidecar NAME: REST host:port gRPC host:port``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

from fleetmatch.backends.redis.client import connect
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.errors import FleetmatchError
from fleetmatch.informer import Informer
from fleetmatch.logging import configure
from fleetmatch.models import GameServer, GameServerState
from fleetmatch.settings import Settings
from fleetmatch.store import EventType, WatchEvent, modify
from fleetmatch.tasks import cancel_and_wait, supervised
from sdk_sidecar.host import SdkHost

log = logging.getLogger("sdk_sidecar")


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port")
    return port


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m sdk_sidecar", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--gameserver", default=env.get("GAMESERVER_NAME") or env.get("FLEETMATCH_GAMESERVER"))
    parser.add_argument("--http-port", type=_port, default=env.get("AGONES_SDK_HTTP_PORT") or 9358)
    parser.add_argument("--grpc-port", type=_port, default=env.get("AGONES_SDK_GRPC_PORT") or 9357)
    parser.add_argument("--address", default=env.get("ADDRESS") or "127.0.0.1", help="bind address")
    parser.add_argument("--no-promote-ready", dest="promote", action="store_false")
    args = parser.parse_args(argv)
    if not args.gameserver:
        parser.error("--gameserver (or GAMESERVER_NAME) is required")
    return args


def _promote(gs: GameServer) -> GameServer | None:
    return gs.with_status(state=GameServerState.READY) if gs.state is GameServerState.REQUEST_READY else None


async def serve(settings: Settings, args: argparse.Namespace) -> None:
    """Serve ``args.gameserver``'s SDK until cancelled."""
    if not settings.redis.url:
        raise FleetmatchError("REDIS_URL is required: the store that holds the GameServer")
    name: str = args.gameserver
    client = connect(settings.redis.url, name=f"sdk-sidecar-{name}")
    store = RedisStore(client, GameServer, settings.namespace)
    host = SdkHost(store, settings.sdk, bind_host=args.address)
    informer: Informer[GameServer] = Informer(store)
    promotions: set[asyncio.Task[GameServer | None]] = set()

    def on_event(event: WatchEvent[GameServer]) -> None:
        gs = event.object
        if gs.name != name or event.type is EventType.DELETED:
            return
        host.observe(gs)
        if args.promote and gs.state is GameServerState.REQUEST_READY:
            task = asyncio.create_task(modify(store, name, _promote))
            promotions.add(task)
            task.add_done_callback(promotions.discard)

    informer.add_handler(on_event)
    watching = supervised(f"sdk_sidecar[{name}].informer", informer.run)
    try:
        await informer.synced.wait()
        while (gs := informer.cache.get(name)) is None:
            log.info("waiting for GameServer %s/%s to exist", settings.namespace, name)
            await informer.wait_changed(within=5.0)
        await host.start()
        port = await host.add(gs, port=args.http_port, grpc_port=args.grpc_port)
        print(
            f"sdk sidecar {name}: REST {args.address}:{port} gRPC {args.address}:{host.grpc_port_of(name)}",
            file=sys.stderr,
            flush=True,
        )
        await asyncio.Event().wait()  # until cancelled
    finally:
        await cancel_and_wait(watching)
        await host.close()
        for task in list(promotions):
            await cancel_and_wait(task)
        await client.aclose()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        settings = Settings.from_env()
    except FleetmatchError as exc:
        sys.exit(f"error: {exc}")
    configure(settings.log_level, settings.log_format)

    async def run() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await serve(settings, args)

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(run())
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    except (FleetmatchError, OSError) as exc:  # OSError: a port is taken
        sys.exit(f"error: {exc}")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed, as the ``fleetmatch`` commands use."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    main()
