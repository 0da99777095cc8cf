"""One game server's SDK: the operations both front doors (REST and gRPC) call.

An ``SdkSession`` holds the latest stored GameServer (fed by ``observe`` from whoever watches the
store, normally the node agent's informer), the coalescing writer, the reserve timer, the health
tracker and the open watch streams. Operations return at once; changes reach the store through the
writer, and reach readers (``get_gameserver``, ``watch``) when the store's change comes back through
``observe``, exactly like Agones' sidecar reading from its informer cache.

Counters, lists and player tracking answer from the session's *view* instead, as Agones answers
them from sidecar memory: the newest GameServer this session knows (observed, or just written by
its own writer and not observed yet) with the changes not yet written applied. So a game that adds
a list value sees it at once, and a second add of the same value fails even before any write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Sequence

from fleetmatch.models import TERMINAL_STATES, CounterStatus, GameServer, GameServerState, GameServerStatus, ListStatus
from fleetmatch.settings import SdkSettings
from fleetmatch.store import GameServerStore
from sdk_sidecar import metrics, state
from sdk_sidecar.health import HealthTracker
from sdk_sidecar.peers import PeerGuard
from sdk_sidecar.state import Pending, UnavailableError
from sdk_sidecar.writer import CoalescingWriter

log = logging.getLogger(__name__)

WATCH_BUFFER = 100
"""Updates kept for one slow watch stream; beyond it the oldest are dropped (the newest always arrives)."""


def _version_key(version: str) -> tuple[int, ...] | None:
    """Order of the store's resource versions where they are numbers (memory: ``"17"``, Redis stream
    ids: ``"1700000000000-3"``); None when they are opaque."""
    parts = version.split("-")
    if not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def _older(version: str, than: str) -> bool:
    mine, other = _version_key(version), _version_key(than)
    return mine is not None and other is not None and mine < other


def _offer(queue: asyncio.Queue[GameServer | None], item: GameServer | None) -> None:
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)


class SdkSession:
    """The SDK of one GameServer."""

    def __init__(
        self,
        gs: GameServer,
        store: GameServerStore,
        settings: SdkSettings,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gs = gs
        self._clock = clock
        self._monotonic = monotonic
        self.guard: PeerGuard | None = None
        """Who may call (``sdk_sidecar.peers``): None admits any local process."""
        self._written: GameServer | None = None
        """Our own last write while the store's watch has not brought it back (the view's base)."""
        self._writer = CoalescingWriter(
            store,
            gs.name,
            interval=settings.write_interval,
            clock=clock,
            monotonic=monotonic,
            on_written=self._on_written,
        )
        self._health = HealthTracker(gs.spec.health, started=monotonic())
        self._watchers: set[asyncio.Queue[GameServer | None]] = set()
        self._reserve_timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._log = logging.LoggerAdapter(log, {"gameserver": gs.name})

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._gs.name

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def writer(self) -> CoalescingWriter:
        return self._writer

    @property
    def health_tracker(self) -> HealthTracker:
        return self._health

    @property
    def watch_count(self) -> int:
        """Open watch streams."""
        return len(self._watchers)

    @property
    def reserve_deadline(self) -> float | None:
        """When the reserve timer fires (event-loop time), or None if none is armed."""
        return self._reserve_timer.when() if self._reserve_timer is not None else None

    def start(self) -> None:
        """Start writing; re-arm the timer of a reservation made before this session existed."""
        self._writer.start()
        gs = self._gs
        if gs.state is GameServerState.RESERVED and gs.status.reserved_until is not None:
            self._arm_reserve_timer(max(0.0, gs.status.reserved_until - self._clock()))

    async def flush(self, within: float | None = None) -> bool:
        """Write pending changes now; True once nothing is pending (False: ``within`` seconds passed)."""
        return await self._writer.flush(within)

    async def close(self, *, flush_timeout: float = 2.0) -> None:
        """End watch streams, stop timers, write what is pending (bounded), stop the writer. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._cancel_reserve_timer()
        for queue in self._watchers:
            _offer(queue, None)
        await self._writer.close(flush_timeout)

    def observe(self, gs: GameServer) -> bool:
        """The store's latest version of this GameServer; True if it was news (watchers get it)."""
        if self._closed or gs.name != self.name or gs.metadata.resource_version == self._gs.metadata.resource_version:
            return False
        self._gs = gs
        written = self._written
        if written is not None and not _older(gs.metadata.resource_version, written.metadata.resource_version):
            self._written = None  # our write came back, or something newer did
        for queue in self._watchers:
            _offer(queue, gs)
        return True

    def _on_written(self, gs: GameServer) -> None:
        if not self._closed and _older(self._gs.metadata.resource_version, gs.metadata.resource_version):
            self._written = gs

    def view(self) -> GameServerStatus:
        """Counters, lists and players as the SDK answers them: the newest known GameServer with
        what is not written yet applied (spec-declared entries the status lacks included)."""
        proposed = self._writer.proposed
        if proposed is not None:  # a write in flight: what it stores, plus what came after it
            return state.view(self._writer.pending, proposed)
        return state.view(self._writer.unwritten, self._written or self._gs)

    def check_health(self, now: float | None = None) -> bool:
        """Run due health checks (``now`` on the monotonic clock); True if the server just became Unhealthy."""
        gs = self._gs
        if self._closed or gs.state in TERMINAL_STATES or gs.metadata.deletion_timestamp is not None:
            return False
        if not self._health.check(self._monotonic() if now is None else now):
            return False
        self._log.warning(
            "%s missed %d health checks of %ds: marking it Unhealthy",
            self.name,
            self._health.failures,
            gs.spec.health.period_seconds,
        )
        metrics.HEALTH_FAILURES.inc()
        self._writer.submit(state.unhealthy())
        return True

    # -- SDK operations ------------------------------------------------------------------------

    def _accept(self, method: str) -> None:
        if self._closed:
            raise UnavailableError(f"the SDK session of {self.name} is closed")
        metrics.SDK_CALLS.labels(method=method).inc()

    def _submit(self, change: Pending) -> None:
        self._writer.submit(change)

    def ready(self) -> None:
        """Ready: ask for RequestReady (the node agent makes it Ready); ends a reservation."""
        self._accept("Ready")
        self._cancel_reserve_timer()
        self._submit(state.ready())

    def allocate(self) -> None:
        self._accept("Allocate")
        self._cancel_reserve_timer()
        self._submit(state.allocate())

    def shutdown(self) -> None:
        self._accept("Shutdown")
        self._cancel_reserve_timer()
        self._submit(state.shutdown())

    def health_ping(self) -> None:
        """One Health message: the game is alive."""
        self._accept("Health")
        self._health.ping(self._monotonic())

    def reserve(self, seconds: int) -> None:
        """Reserved for ``seconds`` (then Ready again); ``seconds <= 0``: until told otherwise."""
        self._accept("Reserve")
        change = state.reserve(seconds, self._clock())
        self._cancel_reserve_timer()
        if seconds > 0:
            self._arm_reserve_timer(seconds)
        self._submit(change)

    def set_label(self, key: str, value: str) -> None:
        """Label ``agones.dev/sdk-<key>``; ``InvalidArgumentError`` for a bad key or value."""
        self._accept("SetLabel")
        self._submit(state.set_label(key, value))

    def set_annotation(self, key: str, value: str) -> None:
        """Annotation ``agones.dev/sdk-<key>``; ``InvalidArgumentError`` for a bad key."""
        self._accept("SetAnnotation")
        self._submit(state.set_annotation(key, value))

    # -- counters and lists (Agones beta) ------------------------------------------------------

    def get_counter(self, name: str) -> CounterStatus:
        self._accept("GetCounter")
        return state.get_counter(self.view(), name)

    def update_counter(
        self, name: str, *, count: int | None = None, capacity: int | None = None, count_diff: int = 0
    ) -> CounterStatus:
        """Set ``count`` and/or ``capacity``, add ``count_diff``; the counter as it will be once written."""
        self._accept("UpdateCounter")
        change, counter = state.update_counter(self.view(), name, count=count, capacity=capacity, count_diff=count_diff)
        self._submit(change)
        return counter

    def get_list(self, name: str) -> ListStatus:
        self._accept("GetList")
        return state.get_list(self.view(), name)

    def update_list(self, name: str, *, capacity: int | None = None, values: Sequence[str] | None = None) -> ListStatus:
        """Set ``capacity`` and/or replace ``values`` (None: leave as is); the list as it will be."""
        self._accept("UpdateList")
        change, found = state.update_list(self.view(), name, capacity=capacity, values=values)
        self._submit(change)
        return found

    def add_list_value(self, name: str, value: str) -> ListStatus:
        self._accept("AddListValue")
        change, found = state.add_list_value(self.view(), name, value)
        self._submit(change)
        return found

    def remove_list_value(self, name: str, value: str) -> ListStatus:
        self._accept("RemoveListValue")
        change, found = state.remove_list_value(self.view(), name, value)
        self._submit(change)
        return found

    # -- player tracking (Agones alpha) --------------------------------------------------------

    def player_connect(self, player_id: str) -> bool:
        """True if the player is now connected, False if it was already; an error at capacity."""
        self._accept("PlayerConnect")
        change, connected = state.player_connect(self.view(), player_id)
        self._submit(change)
        return connected

    def player_disconnect(self, player_id: str) -> bool:
        """True if the player was connected (and is no longer), False if it was not."""
        self._accept("PlayerDisconnect")
        change, disconnected = state.player_disconnect(self.view(), player_id)
        self._submit(change)
        return disconnected

    def set_player_capacity(self, count: int) -> None:
        self._accept("SetPlayerCapacity")
        self._submit(state.set_player_capacity(count))

    def get_player_capacity(self) -> int:
        self._accept("GetPlayerCapacity")
        return state.get_player_capacity(self.view())

    def get_player_count(self) -> int:
        self._accept("GetPlayerCount")
        return state.get_player_count(self.view())

    def is_player_connected(self, player_id: str) -> bool:
        self._accept("IsPlayerConnected")
        return state.is_player_connected(self.view(), player_id)

    def get_connected_players(self) -> list[str]:
        self._accept("GetConnectedPlayers")
        return state.get_connected_players(self.view())

    def get_gameserver(self) -> GameServer:
        self._accept("GetGameServer")
        return self._gs

    async def watch(self) -> AsyncGenerator[GameServer, None]:
        """The current GameServer at once, then each stored change, until the session closes.

        Close it with ``contextlib.aclosing`` (or by cancelling the consumer) to free its queue.
        """
        self._accept("WatchGameServer")
        queue: asyncio.Queue[GameServer | None] = asyncio.Queue(maxsize=WATCH_BUFFER)
        self._watchers.add(queue)
        metrics.WATCH_STREAMS.inc()
        try:
            yield self._gs
            while (gs := await queue.get()) is not None:
                yield gs
        finally:
            self._watchers.discard(queue)
            metrics.WATCH_STREAMS.dec()

    # -- reserve timer -------------------------------------------------------------------------

    def _arm_reserve_timer(self, seconds: float) -> None:
        self._reserve_timer = asyncio.get_running_loop().call_later(seconds, self._end_reservation)

    def _cancel_reserve_timer(self) -> None:
        if self._reserve_timer is not None:
            self._reserve_timer.cancel()
            self._reserve_timer = None

    def _end_reservation(self) -> None:
        self._reserve_timer = None
        if not self._closed:
            self._log.info("%s: reservation over; back to Ready", self.name)
            self._submit(state.end_reservation())
