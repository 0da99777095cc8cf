"""Running the matchmaker: the ticket API (with its push hub) and one director per queue.

``serve_matchmaker`` is what ``fleetmatch matchmaker`` and ``fleetmatch up`` run. The API and the
directors may also run in separate processes (``api`` / ``directors`` flags): any number of each
can share one Redis, the directors coordinating only through the store's atomic claims.

This is also where each queue's ``spec.matchFunction`` is resolved to a function (``matchers``):
the rules hold only the name, and the pure matcher knows nothing of plug-ins.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field

from fleetmatch.allocator_client import AllocatorClient
from fleetmatch.errors import ValidationError
from fleetmatch.gctune import freeze_heap
from fleetmatch.http import server_tls, start_site
from fleetmatch.informer import Informer
from fleetmatch.models import GameServer
from fleetmatch.probes import Probes
from fleetmatch.probes import running as running_probes
from fleetmatch.settings import TLS_CERT_VAR, TLS_KEY_VAR, MatchmakerSettings
from fleetmatch.store import Store
from fleetmatch.tasks import cancel_and_wait, supervised
from matchmaker.api import app_runner, build_app
from matchmaker.backfiller import Backfiller
from matchmaker.backfills_api import backfill_store_for
from matchmaker.director import Director, Matcher, Releasing
from matchmaker.functions import MatchFunction, match_function
from matchmaker.matching import QueueMatcher, find_matches
from matchmaker.models import Proposal, Ticket
from matchmaker.push import Hub
from matchmaker.ratingstore import rating_store_for
from matchmaker.rules import Queue
from matchmaker.shadowrun import ShadowRunner
from matchmaker.store import TicketStore

log = logging.getLogger(__name__)


@dataclass
class MatchmakerService:
    url: str
    """The ticket API's base URL ('' when this process serves no API)."""
    directors: dict[str, Director] = field(default_factory=dict)
    probes: Probes | None = None
    """What this process checks for ``/readyz`` (the ticket store); a metrics site can serve it too."""


def ssl_context(settings: MatchmakerSettings) -> ssl.SSLContext | None:
    """The ticket API's TLS (``FLEETMATCH_TLS_CERT_FILE`` / ``_KEY_FILE``), or None for plain HTTP."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    return server_tls(settings.tls_cert, settings.tls_key, names=(TLS_CERT_VAR, TLS_KEY_VAR))


def matchers(queues: Mapping[str, Queue]) -> dict[str, Matcher]:
    """Each queue's match function (``spec.matchFunction``), bound to the queue. An unknown or
    broken plug-in is a ``ValidationError`` naming the queue and the field, before anything starts."""
    out: dict[str, Matcher] = {}
    for name, queue in queues.items():
        try:
            function = match_function(queue.spec.match_function)
        except ValidationError as exc:
            raise ValidationError(f"spec.{exc.field}", f"queue {name!r}: {exc.message}") from None
        out[name] = _bound(function, queue)
    return out


def shadows(queues: Mapping[str, Queue]) -> dict[str, ShadowRunner]:
    """A ``ShadowRunner`` per queue with ``spec.shadow``, its function resolved as ``matchers`` does."""
    out: dict[str, ShadowRunner] = {}
    for name, queue in queues.items():
        shadow, rules = queue.spec.shadow, queue.shadow_queue()
        if shadow is None or rules is None:
            continue
        try:
            function = match_function(shadow.match_function)
        except ValidationError as exc:
            raise ValidationError(f"spec.shadow.{exc.field}", f"queue {name!r}: {exc.message}") from None
        out[name] = ShadowRunner(name, _bound(function, rules), timeout=shadow.timeout_seconds)
    return out


def _bound(function: MatchFunction, queue: Queue) -> Matcher:
    """The default function keeps each ticket's derived rule values between its queue's ticks
    (``QueueMatcher``); a plug-in is called as it is."""
    if function is find_matches:
        return QueueMatcher(queue)

    def match(pool: Sequence[Ticket], now: float) -> list[Proposal]:
        return function(pool, queue, now)

    return match


def _backfiller(
    store: TicketStore,
    queue: Queue,
    gameservers: Store[GameServer] | None,
    informer: Informer[GameServer] | None,
    lease_seconds: float,
) -> Backfiller | None:
    """The queue's backfill, where it can be: tickets on Redis, the GameServers at hand."""
    backfills = backfill_store_for(store)
    if backfills is None or gameservers is None:
        return None
    return Backfiller(backfills, gameservers, queue, lease_seconds=lease_seconds)


@contextlib.asynccontextmanager
async def serve_matchmaker(
    store: TicketStore,
    queues: Mapping[str, Queue],
    settings: MatchmakerSettings,
    *,
    allocator_url: str,
    allocator_token: str,
    api: bool = True,
    directors: bool = True,
    fallback_port: bool = False,
    releaser: Releasing | None = None,
    metrics: bool = True,
    gameservers: Store[GameServer] | None = None,
    informer: Informer[GameServer] | None = None,
) -> AsyncIterator[MatchmakerService]:
    """Serve until the block ends. ``fallback_port``: take any free port if the default one is
    busy (``fleetmatch up`` on a laptop) instead of failing (a port set explicitly, per
    ``settings.port_source``, never falls back). ``releaser``: how directors return the
    servers of abandoned matches (default: the allocation API's ``release_match``; a process that
    holds the GameServer store may pass a ``StoreReleaser``). ``metrics``: the ticket API serves
    ``/metrics`` (``fleetmatch up`` serves the process's registry on its metrics port only). With
    ``settings.tls_cert`` and ``tls_key`` the ticket API serves HTTPS (``service.url`` says so).
    ``gameservers``: the GameServer store, for backfill (``matchmaker.backfiller``: directors fill
    running matches' open slots first; without it, nothing is backfilled); ``informer``: the
    process's shared GameServer watch, so a pass looks only at the servers that changed."""
    service = MatchmakerService(url="")
    settings.check()
    tls = ssl_context(settings) if api else None  # a bad certificate stops the start, before anything runs
    async with contextlib.AsyncExitStack() as stack:
        probes = Probes()
        probes.add("tickets", store.ping)
        service.probes = probes
        await stack.enter_async_context(running_probes(probes))
        ratings = rating_store_for(store)
        if directors:
            match = matchers(queues)
            shadow = shadows(queues)
            client = AllocatorClient(allocator_url, allocator_token)
            stack.push_async_callback(client.close)
            tasks = []
            for name, queue in queues.items():
                backfiller = _backfiller(store, queue, gameservers, informer, settings.lease_seconds)
                if backfiller is not None and informer is not None:
                    stack.callback(backfiller.follow(informer))
                director = Director(
                    store,
                    queue,
                    match[name],
                    client,
                    lease_seconds=settings.lease_seconds,
                    releaser=releaser or client,
                    matches=ratings if queue.spec.rating_rule is not None else None,
                    shadow=shadow.get(name),
                    backfiller=backfiller,
                )
                service.directors[name] = director
                tasks.append(supervised(f"director[{name}]", director.run))
            stack.push_async_callback(cancel_and_wait, *tasks)
        if api:
            hub = Hub(store)
            app = build_app(store, queues, settings, hub=hub, probes=probes, metrics=metrics, ratings=ratings)
            runner = app_runner(app)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            port = await start_site(
                runner,
                settings.host,
                settings.port,
                ssl_context=tls,
                fallback_port=fallback_port,
                what="matchmaker",
                source=settings.port_source,
            )
            service.url = f"{'https' if tls else 'http'}://{settings.host}:{port}"
        # Modules, rules and app are built and live as long as the process: full collections
        # (a frontend's creates trigger them every few hundred requests) skip them from now on.
        freeze_heap()
        yield service
