"""The director's pass, without Redis or an allocator: what it logs and how it runs the match function."""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import pytest
from prometheus_client import REGISTRY

from fleetmatch.allocation import GameServerAllocationSpec, GameServerAllocationStatus
from fleetmatch.allocator_client import AllocatorError
from fleetmatch.errors import BackendError
from fleetmatch.logging import JsonFormatter, TextFormatter
from matchmaker.director import MATCH_ID_ANNOTATION, Director, Matcher
from matchmaker.models import Assignment, Player, Proposal, Ticket
from matchmaker.rules import parse_queues
from matchmaker.store import Reaped, Tick, TicketStore

NOW = 1_800_000_000.0
(DUEL,) = parse_queues(
    """\
kind: Queue
metadata: {name: duel}
spec:
  teams: {count: 2, maxSize: 1}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
"""
).values()
POOL = [Ticket(f"duel.t{i}", "duel", f"p{i}", (Player(f"p{i}"),), enqueued_at=NOW - i) for i in range(2)]


@dataclass
class PoolStore:
    """The part of a ticket store one pass touches: a fixed pool, claims that always succeed, a
    list of orphaned matches."""

    tickets: list[Ticket]
    released: list[tuple[str, bool]] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    waits: dict[str, str] = field(default_factory=dict)

    async def record_tick(self, queue: str, tick: Tick) -> None:
        self.ticks.append(tick)

    async def wait_summary(self, queue: str) -> dict[str, str]:
        return dict(self.waits)

    async def record_waits(self, queue: str, cells: Mapping[str, str]) -> None:
        self.waits.update(cells)

    async def reap(self, queue: str, *, now: float | None = None) -> Reaped:
        return Reaped()

    async def take_orphans(self, queue: str, *, limit: int, now: float | None = None) -> list[str]:
        return self.orphans[:limit]

    async def forget_orphan(self, queue: str, match_id: str) -> None:
        self.orphans.remove(match_id)

    async def pool(self, queue: str) -> list[Ticket]:
        return list(self.tickets)

    async def claim(self, queue: str, match_id: str, ticket_ids: Sequence[str], *, lease_seconds: float) -> bool:
        return True

    async def release(self, queue: str, match_id: str, ticket_ids: Sequence[str], *, orphaned: bool = False) -> int:
        self.released.append((match_id, orphaned))
        return len(ticket_ids)

    async def assign(self, queue: str, match_id: str, assignments: Mapping[str, Assignment]) -> bool:
        raise AssertionError("nothing is allocated, so nothing is assigned")


@dataclass
class Unreachable:
    """An allocator that may or may not have received the requests it saw (their keys, in order)."""

    keys: list[str] = field(default_factory=list)
    annotations: list[Mapping[str, str]] = field(default_factory=list)
    error: AllocatorError = field(default_factory=lambda: AllocatorError(0, "", "connection refused"))

    async def allocate(self, spec: GameServerAllocationSpec, *, idempotency_key: str) -> GameServerAllocationStatus:
        self.keys.append(idempotency_key)
        self.annotations.append(spec.metadata.annotations)
        raise self.error


@dataclass
class Releaser:
    """Releases what ``servers`` maps a match to, or fails as ``fail`` says."""

    servers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    fail: dict[str, Exception] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def release_match(self, match_id: str) -> tuple[str, ...]:
        self.asked.append(match_id)
        if match_id in self.fail:
            raise self.fail[match_id]
        return self.servers.get(match_id, ())


def one_match(pool: Sequence[Ticket], now: float) -> list[Proposal]:
    return [Proposal(teams=((pool[0].id,), (pool[1].id,)))]


def director(
    store: PoolStore,
    match: Matcher = one_match,
    *,
    allocator: Unreachable | None = None,
    releaser: Releaser | None = None,
) -> Director:
    # A PoolStore has no create/get/cancel/updates: a pass never calls them.
    return Director(
        cast(TicketStore, store), DUEL, match, allocator or Unreachable(), clock=lambda: NOW, releaser=releaser
    )


async def test_a_failed_allocation_is_logged_with_its_queue_and_match_id(caplog: pytest.LogCaptureFixture) -> None:
    store = PoolStore(POOL)
    with caplog.at_level(logging.WARNING, logger="matchmaker.director"):
        report = await director(store).tick()
    assert report.failed == 1 and len(store.released) == 1
    ((match_id, _),) = store.released
    (rec,) = [r for r in caplog.records if r.getMessage().startswith("allocation for match")]
    assert TextFormatter("%(message)s").format(rec).endswith(f"[queue=duel match_id={match_id}]")
    doc = json.loads(JsonFormatter().format(rec))
    assert (doc["queue"], doc["match_id"]) == ("duel", match_id)


@pytest.mark.parametrize("threaded", [False, True], ids=["in-loop", "worker-thread"])
async def test_the_match_runs_with_the_collector_paused(monkeypatch: pytest.MonkeyPatch, threaded: bool) -> None:
    """A tick's burst of short-lived objects beside a large pool: the director pauses the cyclic
    collector around the match call (``fleetmatch.gctune``), in the loop or in the worker thread
    a big pool goes to, and leaves it on afterwards."""
    if threaded:
        monkeypatch.setattr("matchmaker.director.THREAD_POOL_SIZE", 1)
    seen: list[bool] = []

    def spy(pool: Sequence[Ticket], now: float) -> list[Proposal]:
        seen.append(gc.isenabled())
        return []

    was = gc.isenabled()
    gc.enable()
    try:
        report = await director(PoolStore(POOL), spy).tick()
        assert gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()
    assert (report.pool, seen) == (2, [False])


async def test_the_allocation_carries_the_match_id_as_its_idempotency_key_and_annotation() -> None:
    allocator = Unreachable()
    await director(PoolStore(POOL), allocator=allocator).tick()
    (key,) = allocator.keys
    assert len(key) == 32 and allocator.annotations[0][MATCH_ID_ANNOTATION] == key


@pytest.mark.parametrize("releaser", [Releaser(), None], ids=["with-a-releaser", "without"])
async def test_an_allocation_of_unknown_outcome_lists_its_match_as_an_orphan(releaser: Releaser | None) -> None:
    store = PoolStore(POOL)
    await director(store, releaser=releaser).tick()
    ((_, orphaned),) = store.released
    assert orphaned is (releaser is not None)  # nobody would sweep the list otherwise


async def test_orphans_are_released_forgotten_or_kept_for_a_retry(caplog: pytest.LogCaptureFixture) -> None:
    store = PoolStore([], orphans=["m-done", "m-flaky", "m-store", "m-nothing"])
    releaser = Releaser(
        servers={"m-done": ("gs-1",)},
        fail={"m-flaky": AllocatorError(503, "Unavailable", "later"), "m-store": BackendError("redis down")},
    )
    before = REGISTRY.get_sample_value("fleetmatch_abandoned_servers_released_total", {"queue": "duel"}) or 0.0
    with caplog.at_level(logging.INFO, logger="matchmaker.director"):
        await director(store, releaser=releaser).tick()
    assert sorted(releaser.asked) == ["m-done", "m-flaky", "m-nothing", "m-store"]
    assert store.orphans == ["m-flaky", "m-store"]  # kept: tried again on a later pass
    after = REGISTRY.get_sample_value("fleetmatch_abandoned_servers_released_total", {"queue": "duel"})
    assert after == before + 1
    assert any("returned gs-1, allocated for abandoned match m-done" in r.getMessage() for r in caplog.records)


async def test_an_allocator_that_cannot_release_is_said_once_and_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    store = PoolStore([], orphans=["m1", "m2"])
    releaser = Releaser(fail={m: AllocatorError(404, "NotFound", "no route") for m in ("m1", "m2")})
    d = director(store, releaser=releaser)
    with caplog.at_level(logging.WARNING, logger="matchmaker.director"):
        await d.tick()
        store.orphans.append("m3")
        releaser.fail["m3"] = AllocatorError(405, "MethodNotAllowed", "no")
        await d.tick()
    assert store.orphans == []
    assert len([r for r in caplog.records if "cannot release" in r.getMessage()]) == 1


@pytest.mark.parametrize("pool", [POOL, []], ids=["with-tickets", "empty-pool"])
async def test_every_pass_is_recorded_as_the_queues_last_tick(pool: list[Ticket]) -> None:
    store = PoolStore(list(pool))
    report = await director(store).tick()
    ((tick),) = store.ticks
    assert (tick.at, tick.matches) == (NOW, report.matched) and tick.seconds >= 0


async def test_a_fleet_that_does_not_exist_allocated_nothing_so_no_orphan_is_listed() -> None:
    store = PoolStore(POOL)
    missing = Unreachable(error=AllocatorError(404, "FleetNotFound", 'fleet "arena" does not exist'))
    report = await director(store, allocator=missing, releaser=Releaser()).tick()
    assert report.failed == 1 and [orphaned for _, orphaned in store.released] == [False]
