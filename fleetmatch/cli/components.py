"""The commands that run fleetmatch's components: ``up`` (all of them), ``node-agent``, ``controller``,
``allocator``, ``matchmaker`` and ``sidecar``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path

import click

from fleetmatch.backends import Backend, open_backend
from fleetmatch.backends.redis.client import connect_any
from fleetmatch.cli.options import backend_settings, settings_of
from fleetmatch.errors import ConfigError
from fleetmatch.manifests import load_resources
from fleetmatch.probes import Probes
from fleetmatch.running import run
from fleetmatch.settings import AllocatorSettings, Settings

# -- running components ---------------------------------------------------------------------


@click.command()
@click.option(
    "--fleet",
    "-f",
    "fleet_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Fleet/FleetAutoscaler file(s) to apply at start (default: the demo fleet and its autoscaler "
    "from fleetmatch/demo/, created only if missing).",
)
@click.option("--no-demo", is_flag=True, help="Start without the demo fleet.")
@click.option(
    "--queues",
    "queues_file",
    type=click.Path(path_type=Path),
    help="Queue rules (default: FLEETMATCH_QUEUES, else fleetmatch/demo/queues.yaml).",
)
@click.option("--replicas", type=click.IntRange(min=0), help="Override the first fleet's replicas.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), help="Port of /metrics (0: any free port).")
@click.option("--ready-timeout", type=float, default=120.0, show_default=True, help="Seconds to wait for Ready.")
@click.option(
    "--observability",
    is_flag=True,
    help="Also run a local Prometheus (the `prometheus` binary, if installed) scraping the metrics port; "
    "see docs/metrics.md.",
)
@click.pass_context
def up(
    ctx: click.Context,
    fleet_files: Sequence[Path],
    no_demo: bool,
    queues_file: Path | None,
    replicas: int | None,
    metrics_port: int | None,
    ready_timeout: float,
    observability: bool,
) -> None:
    """Run the whole stack locally: embedded Redis, node agent, fleet controller, autoscaler,
    allocator, matchmaker, and a demo fleet."""
    from fleetmatch.cli.stack import run_stack
    from fleetmatch.demo import DEMO_FILES, DEMO_QUEUES
    from matchmaker.rules import load_queues

    settings = settings_of(ctx)
    if metrics_port is not None:
        settings = replace(settings, metrics_port=metrics_port, metrics_port_source="--metrics-port")
    files = list(fleet_files) or ([] if no_demo else list(DEMO_FILES))
    resources = [r for path in files for r in load_resources(path)]
    queues = load_queues(queues_file or settings.matchmaker.queues_file or DEMO_QUEUES)
    demo = bool(files) and not fleet_files

    def announce(text: str) -> None:
        click.echo(text)

    run(
        run_stack(
            settings,
            resources,
            queues,
            environ=dict(os.environ),
            announce=announce,
            ready_timeout=ready_timeout,
            observability=observability,
            demo=demo,
            replicas=replicas,
        ),
        service=True,
    )


@click.command("node-agent")
@click.pass_context
def node_agent(ctx: click.Context) -> None:
    """Run a node agent: start game servers scheduled here and host their SDK endpoints."""
    from allocator.nodeagent import NodeAgent
    from fleetmatch.http import metrics_site
    from sdk_sidecar import SdkHost

    settings = backend_settings(settings_of(ctx))

    async def main() -> None:
        async with (
            open_backend(settings, client_name=f"node-agent-{settings.node.name}") as backend,
            metrics_site(settings.metrics_port, settings.metrics_host, probes=store_probes(backend)) as url,
        ):
            click.echo(f"node agent {settings.node.name}: metrics at {url}", err=True)
            host = SdkHost(backend.gameservers, settings.sdk, bind_host=settings.node.sdk_host)
            await NodeAgent(backend, settings, host, environ=dict(os.environ)).run()

    run(main(), service=True)


@click.command()
@click.pass_context
def controller(ctx: click.Context) -> None:
    """Run the fleet, autoscaler and node controllers, the allocation-lease sweep, and on Kubernetes the
    Pod controller. Run several for availability: they share one lease; the process holding it runs
    them all, the others stand by."""
    from allocator.allocation_lease import AllocationLeaseLoop
    from allocator.controllers.autoscaler import AutoscalerController
    from allocator.controllers.fleet import FleetController
    from allocator.controllers.nodes import NodeController
    from fleetmatch.http import metrics_site
    from fleetmatch.lease import Leadership, Loop

    settings = backend_settings(settings_of(ctx))

    async def main() -> None:
        async with (
            open_backend(settings, client_name="controller") as backend,
            metrics_site(settings.metrics_port, settings.metrics_host, probes=store_probes(backend)) as url,
        ):
            click.echo(f"controller: metrics at {url} (backend {backend.engine})", err=True)
            loops: list[Loop] = [
                ("fleetcontroller", FleetController(backend).run),
                ("autoscaler", AutoscalerController(backend).run),
            ]
            if backend.nodes is not None:
                nodes = NodeController(backend, lease_seconds=settings.node.lease_seconds)
                loops.append(("nodecontroller", nodes.run))
            loops.append(("allocation-leases", AllocationLeaseLoop.on(backend).run))
            if backend.engine == "kubernetes":
                loops.append(("podcontroller", pod_controller(backend, settings)))
            await Leadership(backend.lease("controllers"), "controllers").run(loops)

    run(main(), service=True)


def store_probes(backend: Backend) -> Probes:
    """What a component's ``/readyz`` checks: its backend answers."""
    probes = Probes()
    probes.add("store", backend.ping)
    return probes


def pod_controller(backend: Backend, settings: Settings) -> Callable[[], Awaitable[None]]:
    """The GameServer -> Pod controller's loop, on the Kubernetes backend's client."""
    from allocator.controllers.pods import PodController
    from fleetmatch.backends.kube.client import KubeBackend

    assert isinstance(backend, KubeBackend)
    return PodController(backend, settings.pods).run


@click.command("allocator")
@click.option("--port", type=click.IntRange(0, 65535), help="Listen port (default FLEETMATCH_ALLOCATOR_PORT or 9180).")
@click.option(
    "--grpc-port",
    type=click.IntRange(0, 65535),
    help="Also serve Agones' allocation.AllocationService over gRPC (FLEETMATCH_ALLOCATOR_GRPC_PORT; default off).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Allocator processes sharing the port(s) (SO_REUSEPORT): one per core. A supervisor restarts any that exits.",
)
@click.option("--reuse-port", is_flag=True, hidden=True, help="Bind with SO_REUSEPORT (a worker of --workers).")
@click.pass_context
def allocator_cmd(ctx: click.Context, port: int | None, grpc_port: int | None, workers: int, reuse_port: bool) -> None:
    """Run the allocation API (run several: claims are safe across processes)."""
    from allocator.app import serve_allocator

    settings = backend_settings(settings_of(ctx))
    alloc = settings.allocator if port is None else replace(settings.allocator, port=port, port_source="--port")
    if grpc_port is not None:
        alloc = replace(alloc, grpc_port=grpc_port)
    if alloc.token is None:
        raise ConfigError(
            "the allocator needs a token: set FLEETMATCH_ALLOCATOR_TOKEN or FLEETMATCH_ALLOCATOR_TOKEN_FILE"
        )
    token = alloc.token
    if workers > 1:
        _supervise_allocators(settings, alloc, workers)
        return

    share = None
    if reuse_port:
        from allocator.metrics import WORKER_RESTARTS
        from allocator.workers import RESTARTS_ENV, worker_share

        WORKER_RESTARTS.set(int(os.environ.get(RESTARTS_ENV, "0")))
        share = worker_share(os.environ)  # serve_allocator reports it (fleetmatch_allocator_worker_slot)

    async def main() -> None:
        async with (
            open_backend(settings, client_name="allocator") as backend,
            serve_allocator(
                backend, alloc, token, node_lease=settings.node.lease_seconds, reuse_port=reuse_port, share=share
            ) as service,
        ):
            grpc = f"; gRPC AllocationService on port {service.grpc_port}" if service.grpc_port is not None else ""
            click.echo(f"allocator: {service.url}/v1/allocations (metrics at {service.url}/metrics){grpc}", err=True)
            await asyncio.Event().wait()

    run(main(), service=True)


def _supervise_allocators(settings: Settings, alloc: AllocatorSettings, workers: int) -> None:
    """``--workers N``: hold the port(s), start N workers sharing them, restart any that exits."""
    from allocator.workers import held_port, supervise, worker_argv

    env = {
        **os.environ,
        "FLEETMATCH_NAMESPACE": settings.namespace,
        "FLEETMATCH_DATA_DIR": str(settings.data_dir),
        "FLEETMATCH_LOG_LEVEL": settings.log_level,
        "FLEETMATCH_LOG_FORMAT": settings.log_format,
        "FLEETMATCH_ALLOCATOR_HOST": alloc.host,
    }
    if settings.redis.url:
        env["REDIS_URL"] = settings.redis.url
    where = alloc.port_source or "FLEETMATCH_ALLOCATOR_PORT"
    with contextlib.ExitStack() as held:
        try:
            port = held.enter_context(held_port(alloc.host, alloc.port))
            grpc_port = None if alloc.grpc_port is None else held.enter_context(held_port(alloc.host, alloc.grpc_port))
        except OSError as exc:
            raise ConfigError(
                f"{where}: the allocator workers cannot listen on {alloc.host} (port {alloc.port}"
                f"{'' if alloc.grpc_port is None else f', gRPC port {alloc.grpc_port}'}): {exc.strerror}"
            ) from exc
        scheme = "https" if alloc.tls_cert is not None else "http"
        grpc = f"; gRPC AllocationService on port {grpc_port}" if grpc_port is not None else ""
        click.echo(f"allocator: {scheme}://{alloc.host}:{port}/v1/allocations ({workers} workers){grpc}", err=True)
        run(supervise(workers, worker_argv(port, grpc_port), env), service=True)


@click.command("matchmaker")
@click.option("--queues", "queues_file", type=click.Path(path_type=Path), help="Queue rules (FLEETMATCH_QUEUES).")
@click.option("--port", type=click.IntRange(0, 65535), help="Ticket API port (FLEETMATCH_MATCHMAKER_PORT, 9190).")
@click.option("--api/--no-api", default=True, show_default=True, help="Serve the ticket API.")
@click.option("--directors/--no-directors", default=True, show_default=True, help="Run a director per queue.")
@click.option(
    "--backfill/--no-backfill",
    default=None,
    help="Directors fill running matches' open slots, reading and writing GameServers (FLEETMATCH_BACKEND). "
    "Default: on, except on Kubernetes (the matchmaker's ServiceAccount needs gameservers get/list/watch/update; "
    "the Helm chart grants them and passes --backfill with matchmaker.backfill.enabled).",
)
@click.pass_context
def matchmaker_cmd(
    ctx: click.Context, queues_file: Path | None, port: int | None, api: bool, directors: bool, backfill: bool | None
) -> None:
    """Run the matchmaker: the ticket API and/or the directors (any number of each may share a Redis)."""
    from matchmaker.app import serve_matchmaker
    from matchmaker.rules import load_queues
    from matchmaker.tickets import RedisTicketStore

    settings = settings_of(ctx)
    mm = settings.matchmaker if port is None else replace(settings.matchmaker, port=port)
    if backfill is None:
        backfill = settings.backend != "kubernetes"
    path = queues_file or mm.queues_file
    if path is None:
        raise ConfigError("the matchmaker needs its queues: pass --queues FILE or set FLEETMATCH_QUEUES")
    queues = load_queues(path)
    if api and mm.token_secret is None:
        raise ConfigError("the ticket API needs FLEETMATCH_PLAYER_TOKEN_SECRET (or _FILE) to check player tokens")
    alloc_url, alloc_token = mm.allocator_url, settings.allocator.token
    if directors and (alloc_url is None or alloc_token is None):
        raise ConfigError("directors need FLEETMATCH_ALLOCATOR_URL and FLEETMATCH_ALLOCATOR_TOKEN to allocate servers")

    async def main() -> None:
        from fleetmatch.http import metrics_site
        from fleetmatch.models import GameServer
        from fleetmatch.stackfile import stack_or_env_redis_url

        redis_url = mm.redis_url or stack_or_env_redis_url(settings)
        client = connect_any(redis_url, name="matchmaker")
        try:
            async with contextlib.AsyncExitStack() as stack:
                gameservers, informer = None, None
                if directors and backfill:  # the GameServers whose players Lists open backfills
                    local = replace(settings, redis=replace(settings.redis, url=settings.redis.url or redis_url))
                    backend = await stack.enter_async_context(open_backend(local, client_name="matchmaker"))
                    gameservers, informer = backend.gameservers, backend.informer(GameServer)
                service = await stack.enter_async_context(
                    serve_matchmaker(
                        RedisTicketStore(client),
                        queues,
                        mm,
                        allocator_url=alloc_url or "",
                        allocator_token=alloc_token or "",
                        api=api,
                        directors=directors,
                        gameservers=gameservers,
                        informer=informer,
                    )
                )
                parts = [f"ticket API at {service.url}/v1/tickets"] if api else []
                parts += [f"directors for {', '.join(queues)}"] if directors else []
                if not api:  # the ticket API serves /metrics itself; directors alone need a site for it
                    url = await stack.enter_async_context(
                        metrics_site(settings.metrics_port, settings.metrics_host, probes=service.probes)
                    )
                    parts.append(f"metrics at {url}")
                click.echo(f"matchmaker: {'; '.join(parts) or 'nothing to do'}", err=True)
                await asyncio.Event().wait()
        finally:
            await client.aclose()

    run(main(), service=True)


@click.command(
    "sidecar",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.pass_context
def sidecar_cmd(ctx: click.Context) -> None:
    """The SDK sidecar of one game server in its Pod (Kubernetes); `fleetmatch sidecar --help`."""
    # `fleetmatch sidecar` normally never gets here (fleetmatch.entry hands it over before the CLI
    # is imported); this keeps it listed in --help and working through `cli` too.
    from sdk_sidecar.pod import main as sidecar_main

    sidecar_main(ctx.args)
