"""Running the allocation API: an allocator on the process's GameServer informer, behind an aiohttp site
(HTTP or HTTPS)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from aiohttp import web

from allocator import metrics as alloc_metrics
from allocator.allocation import Allocator, KeyReservations, LeaseReservations
from allocator.api import build_app, fast_route, server_ssl_context
from allocator.grpc_api import serve_grpc
from allocator.index import Share
from allocator.roster import Roster
from fleetmatch.backends import Backend
from fleetmatch.fastpath import FastSite
from fleetmatch.gctune import freeze_heap, keep_heap_frozen
from fleetmatch.http import app_runner, start_site
from fleetmatch.models import GameServer
from fleetmatch.nodes import DEFAULT_LEASE_SECONDS
from fleetmatch.probes import Probes
from fleetmatch.settings import AllocatorSettings
from fleetmatch.tasks import cancel_and_wait, supervised

log = logging.getLogger(__name__)

HTTP_GRACE = 2.0
"""Seconds the HTTP requests in flight get to finish when the allocator stops."""
GRPC_GRACE = HTTP_GRACE
"""Seconds the gRPC calls in flight get to finish when the allocator stops (as the HTTP site's)."""


@dataclass(frozen=True, slots=True)
class AllocatorService:
    url: str
    allocator: Allocator
    grpc_port: int | None = None
    """Where Agones' ``allocation.AllocationService`` answers (None: not served)."""


def key_reservations(backend: Backend) -> KeyReservations | None:
    """Where idempotency keys are reserved across allocator processes: the backend's leases, where
    they are cheap records with a TTL (Redis, memory). None on Kubernetes, where a lease is an API
    object: there a key is honoured by the annotation its claim writes, and two allocators racing
    one key before either sees the other's write could both claim (see docs/allocation.md)."""
    if backend.engine == "kubernetes":
        return None
    return LeaseReservations(lambda name, ttl: backend.lease(name, ttl=ttl))


@contextlib.asynccontextmanager
async def serve_allocator(
    backend: Backend,
    settings: AllocatorSettings,
    token: str,
    *,
    fallback_port: bool = False,
    node_lease: float = DEFAULT_LEASE_SECONDS,
    metrics: bool = True,
    reuse_port: bool = False,
    share: Share | None = None,
) -> AsyncIterator[AllocatorService]:
    """Serve the allocation API until the block ends. ``fallback_port``: if the default port is
    taken, use any free one (``fleetmatch up`` on a busy laptop) instead of failing; a port set
    explicitly (``settings.port_source``) that is taken is always an error naming the setting.
    ``node_lease``: servers of node agents silent this long are not allocated. ``metrics``: serve
    ``/metrics`` on this port (``fleetmatch up`` serves the process's registry on its metrics port only).
    ``reuse_port``: bind with SO_REUSEPORT, sharing the port with the other workers of
    ``fleetmatch allocator --workers N`` (the kernel spreads connections over them). The gRPC
    service (``settings.grpc_port``) starts once the index is read. ``share``: the worker's share of
    the servers, tried first (``allocator.index.Share``). Unless ``settings.slot_leases`` is off,
    the allocator finds its share among all the allocators of the namespace by slot lease
    (``allocator.roster``), keeping ``share`` while it sees no other."""
    allocator = Allocator(
        backend.gameservers,
        backend.informer(GameServer),
        nodes=backend.nodes,
        node_lease=node_lease,
        reservations=key_reservations(backend),
        lease_seconds=settings.allocation_lease_seconds,
        fleets=backend.fleets,
        share=share,
    )
    following = supervised("allocator.nodes", allocator.follow_nodes) if backend.nodes is not None else None
    alloc_metrics.show_share(share)  # the roster's rounds update it
    roster = None
    if settings.slot_leases:
        roster = supervised(
            "allocator.roster",
            Roster(lambda name, ttl: backend.lease(name, ttl=ttl), allocator.set_share, fallback=share).run,
        )
    probes = Probes()
    probes.add("store", backend.ping)
    probes.gate("index", lambda: allocator.ready)
    checking = supervised("allocator.probes", probes.run)
    app = build_app(allocator, settings, token, probes, metrics=metrics, namespace=backend.namespace)
    runner = app_runner(app, header_timeout=settings.header_timeout, access_log=None, shutdown_timeout=HTTP_GRACE)
    await runner.setup()
    context = server_ssl_context(settings)
    grpc_server: grpc.aio.Server | None = None
    freezing: asyncio.Task[None] | None = None
    try:
        port = await start_site(
            runner,
            settings.host,
            settings.port,
            ssl_context=context,
            fallback_port=fallback_port,
            what="allocator",
            source=settings.port_source,
            reuse_port=reuse_port,
            site_class=(
                functools.partial(FastSite, route=fast_route(app, settings), grace=HTTP_GRACE)
                if settings.fast_path
                else web.TCPSite
            ),
        )
        scheme = "https" if context is not None else "http"
        await allocator.wait_ready()
        grpc_port = None
        if settings.grpc_port is not None:
            grpc_server, grpc_port = await serve_grpc(
                allocator, settings, token, backend.namespace, reuse_port=reuse_port
            )
        # The index is built and long-lived: collections skip it from now on, and (by default)
        # also the servers each claim puts into it (fleetmatch.gctune).
        every = settings.heap_freeze_seconds
        if every > 0:
            freezing = supervised(
                "allocator.heap", lambda: keep_heap_frozen(every, on_sweep=alloc_metrics.show_heap_sweep)
            )
        else:
            freeze_heap()
        yield AllocatorService(f"{scheme}://{settings.host}:{port}", allocator, grpc_port)
    finally:
        if grpc_server is not None:
            await grpc_server.stop(GRPC_GRACE)
        await runner.cleanup()
        await cancel_and_wait(following, checking, roster, freezing)
        allocator.close()
