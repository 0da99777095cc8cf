"""The director's pass, without Redis or an allocator: what it logs and how it runs the match function."""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import pytest

from fleetmatch.allocation import GameServerAllocationSpec, GameServerAllocationStatus
from fleetmatch.allocator_client import AllocatorError
from fleetmatch.logging import JsonFormatter, TextFormatter
from matchmaker.director import Director, Matcher
from matchmaker.models import Assignment, Player, Proposal, Ticket
from matchmaker.rules import parse_queues
from matchmaker.store import Reaped, TicketStore

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
    """The part of a ticket store one pass touches: a fixed pool, claims that always succeed."""

    tickets: list[Ticket]
    released: list[str] = field(default_factory=list)

    async def reap(self, queue: str, *, now: float | None = None) -> Reaped:
        return Reaped()

    async def pool(self, queue: str) -> list[Ticket]:
        return list(self.tickets)

    async def claim(self, queue: str, match_id: str, ticket_ids: Sequence[str], *, lease_seconds: float) -> bool:
        return True

    async def release(self, queue: str, match_id: str, ticket_ids: Sequence[str]) -> int:
        self.released.append(match_id)
        return len(ticket_ids)

    async def assign(self, queue: str, match_id: str, assignments: Mapping[str, Assignment]) -> bool:
        raise AssertionError("nothing is allocated, so nothing is assigned")


class Unreachable:
    async def allocate(self, spec: GameServerAllocationSpec) -> GameServerAllocationStatus:
        raise AllocatorError(0, "", "connection refused")


def one_match(pool: Sequence[Ticket], now: float) -> list[Proposal]:
    return [Proposal(teams=((pool[0].id,), (pool[1].id,)))]


def director(store: PoolStore, match: Matcher = one_match) -> Director:
    # A PoolStore has no create/get/cancel/updates: a pass never calls them.
    return Director(cast(TicketStore, store), DUEL, match, Unreachable(), clock=lambda: NOW)


async def test_a_failed_allocation_is_logged_with_its_queue_and_match_id(caplog: pytest.LogCaptureFixture) -> None:
    store = PoolStore(POOL)
    with caplog.at_level(logging.WARNING, logger="matchmaker.director"):
        report = await director(store).tick()
    assert report.failed == 1 and len(store.released) == 1
    (match_id,) = store.released
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
