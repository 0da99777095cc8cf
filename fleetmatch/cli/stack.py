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
import logging
import os
import secrets
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from allocator.allocation_lease import AllocationLeaseLoop
from allocator.app import serve_allocator
from allocator.controllers.autoscaler import AutoscalerController
from allocator.controllers.fleet import FleetController
from allocator.controllers.nodes import NodeController
from allocator.nodeagent import NodeAgent
from fleetmatch.backends import open_backend
from fleetmatch.backends.redis.client import connect_any
from fleetmatch.backends.redis.embedded import EmbeddedRedis
from fleetmatch.cli.upstart import apply_at_start
from fleetmatch.dashboard import dashboard
from fleetmatch.errors import FleetmatchError
from fleetmatch.http import metrics_site
from fleetmatch.models import Fleet, FleetAutoscaler, GameServer, GameServerState
from fleetmatch.nodes import NODE_BOOT_ANNOTATION
from fleetmatch.observe import Observability, local_prometheus
from fleetmatch.probes import Probes
from fleetmatch.settings import Settings
from fleetmatch.stackfile import OPERATOR_KEY_NAME, STACK_FILE, StackInfo, data_dir_lock, remove_stack_file
from fleetmatch.store import FleetStore, GameServerStore
from fleetmatch.tasks import cancel_and_wait, supervised
from matchmaker.app import serve_matchmaker
from matchmaker.rules import Queue
from matchmaker.tickets import RedisTicketStore
from sdk_sidecar import SdkHost

log = logging.getLogger(__name__)


class StartupError(FleetmatchError):
    """The stack started but did not reach a working state in time."""


async def wait_ready(
    store: GameServerStore, fleets: FleetStore, fleet: str, *, boot: str, within: float
) -> list[GameServer]:
    """Poll until as many servers of ``fleet`` as it has replicas *now* (an autoscaler may have
    changed them since start) are Ready and confirmed by this run's node agent (``boot``: a crashed
    previous run's servers may still read Ready), or raise ``StartupError``."""
    deadline = time.monotonic() + within
    while True:
        replicas = (await fleets.get(fleet)).spec.replicas
        items, _ = await store.list()
        ready = [
            g
            for g in items
            if g.fleet == fleet
            and g.state is GameServerState.READY
            and g.metadata.annotations.get(NODE_BOOT_ANNOTATION) == boot
        ]
        if len(ready) >= replicas:
            return ready
        if time.monotonic() > deadline:
            raise StartupError(
                f"only {len(ready)} of {replicas} servers of fleet {fleet} became Ready within {within:.0f}s; "
                "see `fleetmatch gs list` and the game logs under <data dir>/logs/"
            )
        await asyncio.sleep(0.1)


def port_note(requested: int, url: str) -> str:
    """What the banner adds when a busy default port was replaced by a free one, else ""."""
    bound = urllib.parse.urlsplit(url).port
    return f"   (port {requested} was busy: took {bound})" if requested and bound != requested else ""


def summary(
    info: StackInfo,
    fleet: Fleet | None,
    servers: Sequence[GameServer],
    notes: Mapping[str, str] | None = None,
    observability: Observability | None = None,
) -> str:
    """The banner. ``notes``: per API (``metrics``, ``allocator``, ``matchmaker``, ``dashboard``), a ``port_note``."""
    note = dict(notes or {})
    tickets_note = note.get("matchmaker") or "   (player tokens: fleetmatch token --player p1)"
    rows = [
        "fleetmatch is up",
        f"  redis       {info.redis_url}",
        f"  metrics     {info.metrics_url}{note.get('metrics') or '   (every component; docs/metrics.md)'}",
    ]
    if observability is not None:
        rows.append(f"  prometheus  {observability.banner()}")
    rows += [
        f"  allocator   {info.allocator_url}/v1/allocations{note.get('allocator', '')}",
        f"  token       {info.allocator_token}   (also in {info.data_dir}/{STACK_FILE})",
        f"  matchmaker  {info.matchmaker_url}/v1/tickets{tickets_note}",
    ]
    if info.dashboard_url:  # the token in the link: one click logs in (it becomes a cookie, then leaves the URL)
        rows.append(f"  dashboard   {info.dashboard_url}?token={info.allocator_token}{note.get('dashboard', '')}")
    rows += [
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
    observability: bool = False,
    demo: bool = False,
    replicas: int | None = None,
) -> None:
    """Run until cancelled. ``announce`` gets the summary once the first fleet is Ready. ``demo``:
    ``resources`` are the demo, created only if missing (``fleetmatch.cli.upstart``); ``replicas``
    overrides the first fleet's. ``observability``: also run a local Prometheus scraping the metrics
    port (``fleetmatch.observe``)."""
    data_dir = settings.data_dir
    token = settings.allocator.token or secrets.token_urlsafe(24)
    player_secret = settings.matchmaker.token_secret or secrets.token_urlsafe(32)
    operator_key = secrets.token_urlsafe(24)  # the CLI's API key: queue list, ticket list/get/cancel
    with data_dir_lock(data_dir), contextlib.ExitStack() as stack:
        url = settings.redis.url
        server: EmbeddedRedis | None = None
        if url is None:
            server = stack.enter_context(
                EmbeddedRedis(data_dir / "redis", binary=settings.redis.server_binary, persist=True)
            )
            url = server.url
        async with contextlib.AsyncExitStack() as services:
            if server is not None:  # killed or crashed, it comes back on the same port and data
                services.push_async_callback(cancel_and_wait, supervised("embedded-redis", server.supervise))
            # One backend for the whole process: one watch per kind feeds every component.
            local = replace(settings, backend="redis", redis=replace(settings.redis, url=url))
            backend = await services.enter_async_context(open_backend(local, client_name="fleetmatch-up"))
            fleets = await apply_at_start(backend, resources, demo=demo, replicas=replicas)
            probes = Probes()
            probes.add("store", backend.ping)
            metrics_url = await services.enter_async_context(
                metrics_site(
                    settings.metrics_port, settings.metrics_host, probes=probes, source=settings.metrics_port_source
                )
            )
            watching = None
            if observability:
                watching = await services.enter_async_context(local_prometheus(metrics_url, data_dir / "prometheus"))
            host = SdkHost(backend.gameservers, settings.sdk, bind_host=settings.node.sdk_host)
            agent = NodeAgent(backend, settings, host, environ=environ)
            await agent.announce()  # before allocations: servers a crashed previous run left are fenced
            allocator = await services.enter_async_context(
                serve_allocator(  # one process, one /metrics: the metrics port's (scraped once, counted once)
                    backend,
                    settings.allocator,
                    token,
                    fallback_port=True,
                    node_lease=settings.node.lease_seconds,
                    metrics=False,
                )
            )
            tickets_client = connect_any(settings.matchmaker.redis_url or url, name="fleetmatch-up-tickets")
            services.push_async_callback(tickets_client.aclose)
            matchmaker = await services.enter_async_context(
                serve_matchmaker(
                    RedisTicketStore(tickets_client),
                    queues,
                    replace(
                        settings.matchmaker,
                        token_secret=player_secret,
                        api_keys={**settings.matchmaker.api_keys, OPERATOR_KEY_NAME: operator_key},
                    ),
                    allocator_url=allocator.url,
                    allocator_token=token,
                    fallback_port=True,
                    metrics=False,
                    gameservers=backend.gameservers,  # backfill: the players Lists, the token annotations
                    informer=backend.informer(GameServer),
                )
            )
            board = await services.enter_async_context(
                dashboard(  # the process's informers and registry; queues through the operator key, as the CLI
                    backend,
                    replace(settings.dashboard, matchmaker_url=matchmaker.url, api_key=operator_key),
                    [token, operator_key],
                    local_metrics=True,
                    node_lease=settings.node.lease_seconds,
                    fallback_port=True,
                )
            )
            # Started last, stopped first (reverse order): stop replacing servers, then stop them.
            services.push_async_callback(cancel_and_wait, supervised(f"nodeagent[{settings.node.name}]", agent.run))
            controller = FleetController(backend)
            services.push_async_callback(cancel_and_wait, supervised("fleetcontroller", controller.run))
            scaler = AutoscalerController(backend)
            services.push_async_callback(cancel_and_wait, supervised("autoscaler", scaler.run))
            nodes = NodeController(backend, lease_seconds=settings.node.lease_seconds)
            services.push_async_callback(cancel_and_wait, supervised("nodecontroller", nodes.run))
            leases = AllocationLeaseLoop.on(backend)  # recycles allocations no game confirmed (when leases are on)
            services.push_async_callback(cancel_and_wait, supervised("allocation-leases", leases.run))
            info = StackInfo(
                operator_api_key=operator_key,
                redis_url=url,
                metrics_url=metrics_url,
                allocator_url=allocator.url,
                allocator_token=token,
                matchmaker_url=matchmaker.url,
                player_token_secret=player_secret,
                player_token_audience=settings.matchmaker.player_token_audience,
                namespace=settings.namespace,
                node=settings.node.name,
                data_dir=str(data_dir),
                pid=os.getpid(),
                prometheus_url=watching.url if watching else None,
                dashboard_url=board.url,
            )
            info.write(data_dir)
            notes = {
                "metrics": port_note(settings.metrics_port, metrics_url),
                "allocator": port_note(settings.allocator.port, allocator.url),
                "matchmaker": port_note(settings.matchmaker.port, matchmaker.url),
                "dashboard": port_note(settings.dashboard.port, board.url),
            }
            services.callback(remove_stack_file, data_dir)
            if fleets:
                first = fleets[0]
                ready = await wait_ready(
                    backend.gameservers, backend.fleets, first.name, boot=agent.boot, within=ready_timeout
                )
                announce(summary(info, first, ready, notes, watching))
            else:
                announce(summary(info, None, [], notes, watching))
            await asyncio.Event().wait()
