"""Backfill of a queue with role slots, through a real director, allocator and Redis: a match is
formed and allocated (its players' roles on the server), the game takes the tank of one team out
of its ``players`` List, and the next pass fills the slot with the waiting ticket that offers
tank (not the older dps one), whose assignment says it plays tank, as does the server."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis

from allocator.app import serve_allocator
from fleetmatch.allocator_client import AllocatorClient
from fleetmatch.backends.base import Backend
from fleetmatch.models import FLEET_LABEL, GameServer, GameServerState, ListStatus, ObjectMeta, PortStatus
from fleetmatch.settings import AllocatorSettings
from matchmaker.app import _backfiller
from matchmaker.backfill import PLAYER_TEAMS_ANNOTATION, PLAYERS_LIST
from matchmaker.backfiller import Backfiller
from matchmaker.backfills import RedisBackfillStore
from matchmaker.director import PLAYER_ROLES_ANNOTATION, PLAYER_TOKENS_ANNOTATION, Director, token_hash
from matchmaker.matching import find_matches
from matchmaker.models import Player, Proposal, Ticket, TicketState, new_ticket_id
from matchmaker.rules import parse_queues
from matchmaker.tickets import RedisTicketStore
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(30)
TOKEN = "allocator-token-0123456789abcdef"
RAID = parse_queues("""
kind: Queue
metadata: {name: raid}
spec:
  teams: {count: 2, roles: {tank: 1, dps: 2}}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
""")["raid"]


@dataclass
class Stack:
    tickets: RedisTicketStore
    backend: Backend
    director: Director
    backfiller: Backfiller

    async def queue(self, pid: str, *roles: str) -> str:
        at = time.time()
        player = Player(pid, roles=roles)
        ticket = Ticket(new_ticket_id("raid", at), "raid", pid, (player,), enqueued_at=at, expires_at=at + 600)
        return (await self.tickets.create(ticket, max_open_per_player=1)).id

    async def allocated(self) -> GameServer:
        items, _ = await self.backend.gameservers.list()
        [gs] = [g for g in items if g.state is GameServerState.ALLOCATED]
        return gs


@pytest.fixture
async def stack(redis_client: aioredis.Redis, backend: Backend) -> AsyncIterator[Stack]:
    for i in range(2):
        gs = GameServer(metadata=ObjectMeta(name=f"arena-{i}", labels={FLEET_LABEL: "arena"}))
        await backend.gameservers.create(
            gs.with_status(
                state=GameServerState.READY,
                node_name="n",
                address="10.0.0.1",
                ports=(PortStatus("p", 7000 + i),),
                lists={PLAYERS_LIST: ListStatus(6, ())},
            )
        )
    tickets = RedisTicketStore(redis_client, block_ms=1000)

    def match(pool: Sequence[Ticket], now: float) -> list[Proposal]:
        return find_matches(pool, RAID, now)

    async with contextlib.AsyncExitStack() as stack:
        service = await stack.enter_async_context(serve_allocator(backend, AllocatorSettings(port=0), TOKEN))
        client = await stack.enter_async_context(AllocatorClient(service.url, TOKEN))
        await eventually(lambda: len(service.allocator.index) >= 2, within=10)
        backfiller = Backfiller(RedisBackfillStore(tickets), backend.gameservers, RAID)
        yield Stack(tickets, backend, Director(tickets, RAID, match, client, backfiller=backfiller), backfiller)


async def a_tank_left(stack: Stack, leaver: str = "tank0") -> GameServer:
    """A full match of six, allocated by the director; then the game takes ``leaver`` out of the
    List (``SDK.remove_list_value("players", id)``). The server as the match was formed."""
    for i in range(2):
        await stack.queue(f"tank{i}", "tank")
        await stack.queue(f"dps{i}a", "dps")
        await stack.queue(f"dps{i}b", "dps")
    assert (await stack.director.tick()).matched == 1
    gs = await stack.allocated()
    roles = json.loads(gs.metadata.annotations[PLAYER_ROLES_ANNOTATION])
    assert sorted(roles.values()) == ["dps"] * 4 + ["tank"] * 2
    listed = gs.status.lists[PLAYERS_LIST]
    assert len(listed.values) == 6
    left = tuple(v for v in listed.values if v != leaver)
    await stack.backend.gameservers.update(gs.with_status(lists={PLAYERS_LIST: ListStatus(listed.capacity, left)}))
    return gs


async def test_a_tank_leaves_and_the_tank_ticket_takes_the_slot(stack: Stack) -> None:
    leaver = "tank0"
    gs = await a_tank_left(stack, leaver)
    roles = json.loads(gs.metadata.annotations[PLAYER_ROLES_ANNOTATION])
    teams = json.loads(gs.metadata.annotations[PLAYER_TEAMS_ANNOTATION])
    dps = await stack.queue("late-dps", "dps")  # older, but the team has no dps slot open
    tank = await stack.queue("late-tank", "tank", "dps")

    report = await stack.director.tick()

    assert report.pool == 1  # the dps ticket waits; no new match
    assert (await stack.tickets.get(dps)).state is TicketState.QUEUED
    got = await stack.tickets.get(tank)
    assert got.state is TicketState.MATCHED and got.assignment is not None
    a = got.assignment
    assert (a.game_server, a.team, a.roles, a.backfill_id != "") == (
        gs.name,
        teams[leaver],
        {"late-tank": "tank"},
        True,
    )
    after = await stack.backend.gameservers.get(gs.name)
    notes = after.metadata.annotations
    assert json.loads(notes[PLAYER_ROLES_ANNOTATION]) == {**roles, "late-tank": "tank"}
    assert json.loads(notes[PLAYER_TEAMS_ANNOTATION])["late-tank"] == teams[leaver]
    assert json.loads(notes[PLAYER_TOKENS_ANNOTATION])["late-tank"] == token_hash(a.tokens["late-tank"])
    assert "late-tank" in after.status.lists[PLAYERS_LIST].values


async def test_a_newcomer_cancelled_mid_fill_leaves_no_role_on_the_server(stack: Stack) -> None:
    gs = await a_tank_left(stack)
    roles = json.loads(gs.metadata.annotations[PLAYER_ROLES_ANNOTATION])
    tank = await stack.queue("late-tank", "tank")
    real_write = stack.backfiller._write

    async def write_then_cancel(*args: Any, **kwargs: Any) -> GameServer | None:  # cancelled meanwhile
        written = await real_write(*args, **kwargs)
        assert written is not None and "late-tank" in json.loads(written.metadata.annotations[PLAYER_ROLES_ANNOTATION])
        await stack.tickets.cancel(tank)
        return written

    stack.backfiller._write = write_then_cancel  # type: ignore[method-assign]
    await stack.director.tick()
    assert (await stack.tickets.get(tank)).state is TicketState.CANCELLED
    after = await stack.backend.gameservers.get(gs.name)
    assert json.loads(after.metadata.annotations[PLAYER_ROLES_ANNOTATION]) == roles  # the role is open again
    assert "late-tank" not in after.status.lists[PLAYERS_LIST].values


def test_the_matchmaker_gives_a_role_queue_its_backfiller(redis_client: aioredis.Redis, backend: Backend) -> None:
    """``fleetmatch matchmaker`` builds the directors' backfillers with ``_backfiller``: a role queue gets one."""
    made = _backfiller(RedisTicketStore(redis_client), RAID, backend.gameservers, None, 15.0)
    assert made is not None and made.queue is RAID
