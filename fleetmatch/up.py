"""``fleetmatch up``: the whole stack in one process on one machine.

Embedded Redis (or ``REDIS_URL``), the node agent with its SDK endpoints, the fleet controller, a
demo fleet, and ``/metrics``. It writes ``<data dir>/stack.json`` so that other commands
(``fleetmatch gs list``...) find the stack, and holds a lock so two stacks never share a data
directory. Stopping (Ctrl-C or SIGTERM) unwinds in reverse order: controller, node agent (which
stops every game process), metrics, Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import redis.asyncio as aioredis
from aiohttp import web
from redis.asyncio.cluster import RedisCluster

from allocator.app import serve_allocator
from allocator.controllers.autoscaler import AutoscalerController
from allocator.controllers.fleet import FleetController
from allocator.fleetops import apply_autoscaler, apply_fleet
from allocator.nodeagent import NodeAgent
from fleetmatch.backends.redis.client import connect, connect_any
from fleetmatch.backends.redis.embedded import EmbeddedRedis
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.errors import ConfigError, FleetmatchError
from fleetmatch.http import start_site
from fleetmatch.metrics import add_metrics_routes
from fleetmatch.models import Fleet, FleetAutoscaler, GameServer, GameServerState
from fleetmatch.settings import Settings
from fleetmatch.tasks import cancel_and_wait, supervised
from matchmaker.app import serve_matchmaker
from matchmaker.rules import Queue
from matchmaker.tickets import RedisTicketStore
from sdk_sidecar import SdkHost

log = logging.getLogger(__name__)


class StartupError(FleetmatchError):
    """The stack started but did not reach a working state in time."""


STACK_FILE = "stack.json"
LOCK_FILE = "up.lock"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_FLEET = REPO_ROOT / "deploy" / "examples" / "fleet.yaml"
DEMO_FILES = (DEMO_FLEET, REPO_ROOT / "deploy" / "examples" / "autoscaler.yaml")
DEMO_QUEUES = REPO_ROOT / "deploy" / "examples" / "queues.yaml"
"""What ``fleetmatch up`` applies without ``--fleet``: the demo fleet and its Buffer autoscaler."""


@dataclass(frozen=True, slots=True)
class StackInfo:
    """Where a running ``fleetmatch up`` is; written to ``stack.json`` for the other commands."""

    redis_url: str
    metrics_url: str
    allocator_url: str
    allocator_token: str
    matchmaker_url: str
    player_token_secret: str
    namespace: str
    node: str
    data_dir: str
    pid: int

    def write(self, data_dir: Path) -> None:
        """Atomically, readable by this user only (it holds the allocator token)."""
        tmp = data_dir / (STACK_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(data_dir / STACK_FILE)

    @classmethod
    def read(cls, data_dir: Path) -> StackInfo | None:
        try:
            doc = json.loads((data_dir / STACK_FILE).read_text())
            info = cls(**doc)
        except (OSError, ValueError, TypeError):
            return None
        return info if _alive(info.pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Exclusive use of ``data_dir`` by one stack."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / LOCK_FILE).open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise ConfigError(
                f"another `fleetmatch up` (pid {holder}) is using {data_dir}; stop it, or pass --data-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.asynccontextmanager
async def metrics_site(port: int, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``/metrics`` and ``/healthz``; if ``port`` is taken, take any free one (and say so)."""
    app = web.Application()
    add_metrics_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        bound = await start_site(runner, host, port, fallback_port=True, what="metrics")
        yield f"http://{host}:{bound}/metrics"
    finally:
        await runner.cleanup()


async def wait_ready(store: RedisStore[GameServer], fleet: str, replicas: int, *, within: float) -> list[GameServer]:
    """Poll until ``replicas`` servers of ``fleet`` are Ready (or raise ``TimeoutError``)."""
    deadline = time.monotonic() + within
    while True:
        items, _ = await store.list()
        ready = [g for g in items if g.fleet == fleet and g.state is GameServerState.READY]
        if len(ready) >= replicas:
            return ready
        if time.monotonic() > deadline:
            raise StartupError(
                f"only {len(ready)} of {replicas} servers of fleet {fleet} became Ready within {within:.0f}s; "
                "see `fleetmatch gs list` and the game logs under <data dir>/logs/"
            )
        await asyncio.sleep(0.1)


def summary(info: StackInfo, fleet: Fleet | None, servers: Sequence[GameServer]) -> str:
    rows = [
        "fleetmatch is up",
        f"  redis       {info.redis_url}",
        f"  metrics     {info.metrics_url}",
        f"  allocator   {info.allocator_url}/v1/allocations",
        f"  token       {info.allocator_token}   (also in {info.data_dir}/{STACK_FILE})",
        f"  matchmaker  {info.matchmaker_url}/v1/tickets   (player tokens: fleetmatch token --player p1)",
        f"  namespace   {info.namespace}   node {info.node}   data {info.data_dir}",
    ]
    if fleet is not None:
        rows.append(f"  fleet       {fleet.name}: {len(servers)} Ready game servers (UDP)")
        rows += [f"    {g.name:<20} {g.status.address}:{g.status.ports[0].port}" for g in servers if g.status.ports]
        rows.append(f"  try         fleetmatch allocate --fleet {fleet.name}   |   fleetmatch gs list")
        rows.append("              fleetmatch ticket create --queue duel --player p1 --skill 1500 --wait 30")
    rows.append("  stop        Ctrl-C")
    return "\n".join(rows)


async def run_stack(
    settings: Settings,
    resources: Sequence[Fleet | FleetAutoscaler],
    queues: Mapping[str, Queue],
    *,
    environ: Mapping[str, str],
    announce: Callable[[str], None],
    ready_timeout: float = 120.0,
) -> None:
    """Run until cancelled. ``announce`` gets the summary once the first fleet is Ready."""
    data_dir = settings.data_dir
    fleets = [r for r in resources if isinstance(r, Fleet)]
    token = settings.allocator.token or secrets.token_urlsafe(24)
    player_secret = settings.matchmaker.token_secret or secrets.token_urlsafe(32)
    with data_dir_lock(data_dir), contextlib.ExitStack() as stack:
        url = settings.redis.url
        if url is None:
            server = stack.enter_context(
                EmbeddedRedis(data_dir / "redis", binary=settings.redis.server_binary, persist=True)
            )
            url = server.url
        async with contextlib.AsyncExitStack() as services:
            client = connect(url, name="fleetmatch-up")
            services.push_async_callback(client.aclose)
            gameservers = RedisStore(client, GameServer, settings.namespace)
            fleet_store = RedisStore(client, Fleet, settings.namespace)
            autoscalers = RedisStore(client, FleetAutoscaler, settings.namespace)
            for resource in resources:
                if isinstance(resource, Fleet):
                    _, action = await apply_fleet(fleet_store, resource)
                else:
                    _, action = await apply_autoscaler(autoscalers, resource)
                log.info("%s %s %s", resource.KIND, resource.name, action)
            metrics_url = await services.enter_async_context(metrics_site(settings.metrics_port, settings.metrics_host))
            allocator = await services.enter_async_context(
                serve_allocator(gameservers, settings.allocator, token, fallback_port=True)
            )
            tickets_client: aioredis.Redis | RedisCluster = client
            if settings.matchmaker.redis_url:
                tickets_client = connect_any(settings.matchmaker.redis_url, name="fleetmatch-up-tickets")
                services.push_async_callback(tickets_client.aclose)
            matchmaker = await services.enter_async_context(
                serve_matchmaker(
                    RedisTicketStore(tickets_client),
                    queues,
                    replace(settings.matchmaker, token_secret=player_secret),
                    allocator_url=allocator.url,
                    allocator_token=token,
                    fallback_port=True,
                )
            )
            # Started last, stopped first (reverse order): stop replacing servers, then stop them.
            host = SdkHost(gameservers, settings.sdk, bind_host=settings.node.sdk_host)
            agent = NodeAgent(gameservers, settings, host, environ=environ)
            services.push_async_callback(cancel_and_wait, supervised(f"nodeagent[{settings.node.name}]", agent.run))
            controller = FleetController(gameservers, fleet_store)
            services.push_async_callback(cancel_and_wait, supervised("fleetcontroller", controller.run))
            scaler = AutoscalerController(gameservers, fleet_store, autoscalers)
            services.push_async_callback(cancel_and_wait, supervised("autoscaler", scaler.run))
            info = StackInfo(
                redis_url=url,
                metrics_url=metrics_url,
                allocator_url=allocator.url,
                allocator_token=token,
                matchmaker_url=matchmaker.url,
                player_token_secret=player_secret,
                namespace=settings.namespace,
                node=settings.node.name,
                data_dir=str(data_dir),
                pid=os.getpid(),
            )
            info.write(data_dir)
            services.callback(_remove_stack_file, data_dir)
            if fleets:
                first = fleets[0]
                ready = await wait_ready(gameservers, first.name, first.spec.replicas, within=ready_timeout)
                announce(summary(info, first, ready))
            else:
                announce(summary(info, None, []))
            await asyncio.Event().wait()


def _remove_stack_file(data_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (data_dir / STACK_FILE).unlink()


def stack_or_env_redis_url(settings: Settings) -> str:
    """The Redis of the running stack: ``REDIS_URL``, else the one ``fleetmatch up`` recorded."""
    if settings.redis.url:
        return settings.redis.url
    info = StackInfo.read(settings.data_dir)
    if info is None:
        raise ConfigError(
            f"no running fleetmatch stack found in {settings.data_dir}: start one with `fleetmatch up`, "
            "or set REDIS_URL"
        )
    return info.redis_url


def stack_allocator(settings: Settings) -> tuple[str, str]:
    """(URL, token) of the allocation API: from the running stack, with the token from settings if set."""
    info = StackInfo.read(settings.data_dir)
    if info is None:
        raise ConfigError(
            f"no running fleetmatch stack found in {settings.data_dir}: start one with `fleetmatch up`, "
            "or pass --url and --token"
        )
    return info.allocator_url, settings.allocator.token or info.allocator_token


def stack_matchmaker(settings: Settings) -> tuple[str, str]:
    """(URL, player-token secret) of the running stack's ticket API (the secret from settings if set)."""
    info = StackInfo.read(settings.data_dir)
    if info is None:
        raise ConfigError(
            f"no running fleetmatch stack found in {settings.data_dir}: start one with `fleetmatch up`, "
            "or pass --url and --token"
        )
    return info.matchmaker_url, settings.matchmaker.token_secret or info.player_token_secret
