"""Estimated waits and explanations through the real ticket API on the real Redis store, with a real
director matching over a stub allocation API on a socket: a lone duel ticket's explanation names
why it waits; estimates appear once matches were made; the blocked-by-rule gauge."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import REGISTRY

from fleetmatch.allocation import AllocationState, GameServerAllocationStatus
from fleetmatch.allocator_client import AllocatorClient
from fleetmatch.codec import to_wire
from fleetmatch.models import PortStatus
from matchmaker.director import Director
from matchmaker.estimate import PUBLISH_SLACK_SECONDS, Summary, decode_summary, depths_of, keys_of, publish
from matchmaker.matching import find_matches
from matchmaker.models import Player, Proposal, Ticket, new_ticket_id
from matchmaker.rules import Queue
from matchmaker.tickets import RedisTicketStore
from matchmaker.views import SUMMARY_SECONDS, WaitEstimates
from tests.integration.test_ticket_api import Api, player, queues, serving

TOKEN = "stub-allocator-token-0123456789"
_DUEL = queues()["duel"]
assert isinstance(_DUEL, Queue)
DUEL: Queue = _DUEL


@pytest.fixture
def store(redis_client: aioredis.Redis) -> RedisTicketStore:
    return RedisTicketStore(redis_client, block_ms=1000)


@pytest.fixture
async def api(store: RedisTicketStore) -> AsyncIterator[Api]:
    async with serving(store) as api:
        yield api


@pytest.fixture
async def allocator() -> AsyncIterator[str]:
    """An allocation API that gives every match the same server."""

    async def allocate(request: web.Request) -> web.Response:
        doc = await request.json()
        status = GameServerAllocationStatus(AllocationState.ALLOCATED, "arena-1", "127.0.0.1", (PortStatus("p", 7001),))
        return web.json_response({**doc, "status": to_wire(status)}, status=201)

    app = web.Application()
    app.router.add_post("/v1/allocations", allocate)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


def match(pool: Sequence[Ticket], at: float) -> list[Proposal]:
    return find_matches(pool, DUEL, at)


async def explained(api: Api, ticket_id: str, as_: str) -> dict[str, Any]:
    reply = await api.call("GET", f"/v1/tickets/{ticket_id}?explain=1", as_=as_)
    assert reply.status == 200, reply.body
    found: dict[str, Any] = reply.body["explain"]
    return found


async def test_a_lone_duel_ticket_is_told_nobody_else_waits(api: Api) -> None:
    ticket = await api.open("alice", player("alice"))
    found = await explained(api, ticket["id"], "alice")
    assert (found["blockedBy"], found["sampled"], found["waitingTickets"]) == ("players", 0, 1)
    assert found["reason"] == "no other ticket is waiting in queue duel (a match needs 4 players)"
    assert found["rules"] == [
        {"name": "skill", "type": "distance", "window": 100, "widest": 100, "passed": 0, "failed": 0}
    ]
    plain = await api.call("GET", f"/v1/tickets/{ticket['id']}", as_="alice")
    assert "explain" not in plain.body


async def test_a_candidate_too_far_in_skill_is_named_and_only_a_key_sees_its_id(api: Api) -> None:
    ticket = await api.open("alice", player("alice", 1500))
    other = await api.open("bob", player("bob", 1800))
    found = await explained(api, ticket["id"], "alice")
    assert found["blockedBy"] == "skill"
    detail = "skill: distance 300 > 100 (never widens)"
    assert found["best"] == [{"players": 1, "failedRule": "skill", "detail": detail}]
    assert found["rules"][0]["failed"] == 1
    as_key = await explained(api, ticket["id"], "key")
    assert as_key["best"][0]["ticket"] == other["id"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param("explain=yes", "explain", id="not-a-flag"),
        pytest.param("explain=1&wait=5", "explain", id="with-wait"),
    ],
)
async def test_bad_explain_is_422_naming_the_field(api: Api, query: str, field: str) -> None:
    ticket = await api.open("alice", player("alice"))
    reply = await api.call("GET", f"/v1/tickets/{ticket['id']}?{query}", as_="alice")
    assert (reply.status, reply.body["error"]["field"]) == (422, field)


async def test_someone_elses_ticket_is_not_explained(api: Api) -> None:
    ticket = await api.open("alice", player("alice"))
    reply = await api.call("GET", f"/v1/tickets/{ticket['id']}?explain=1", as_="mallory")
    assert reply.status == 404


async def test_estimates_appear_once_matches_were_made(api: Api, allocator: str) -> None:
    first = await api.open("key", player("w0"))
    assert first["estimatedWaitSeconds"] is None  # no data yet
    for i in range(1, 8):
        await api.open("key", player(f"w{i}"))
    async with AllocatorClient(allocator, TOKEN) as client:
        # the director's clock runs 12 s ahead: every ticket it matches waited about 12 s
        director = Director(api.store, DUEL, match, client, clock=lambda: time.time() + 12)
        report = await director.tick()
    assert report.matched == 2
    await asyncio.sleep(SUMMARY_SECONDS + 0.1)  # the frontend read the empty summary for w0: kept 1 s
    fresh = await api.open("key", player("late", 1510))
    assert 11 <= fresh["estimatedWaitSeconds"] <= 13
    again = await api.call("GET", f"/v1/tickets/{fresh['id']}", as_="late")
    assert 10 <= again.body["estimatedWaitSeconds"] <= 13
    matched = await api.call("GET", f"/v1/tickets/{first['id']}", as_="key")
    assert (matched.body["state"], matched.body["estimatedWaitSeconds"]) == ("matched", None)
    summary = decode_summary(await api.store.wait_summary("duel"))
    keys = {"eu|15", "eu|*", "*|*"}  # best region eu; band 1500 // 100
    assert (set(summary.waits), set(summary.rates)) == (keys, keys)
    assert summary.depths == {}  # the pass matched all 8: nobody waits behind them


async def test_tickets_blocked_by_rule_are_gauged(api: Api, allocator: str) -> None:
    await api.open("key", player("solo", 1500))
    await api.open("key", player("far", 2500))
    async with AllocatorClient(allocator, TOKEN) as client:
        await Director(api.store, DUEL, match, client).tick()

    def blocked(rule: str) -> float | None:
        return REGISTRY.get_sample_value("fleetmatch_tickets_blocked", {"queue": "duel", "rule": rule})

    assert (blocked("skill"), blocked("players")) == (2.0, 0.0)


class CountingStore(RedisTicketStore):
    """The real store, counting its reads of wait summaries."""

    summary_reads = 0

    async def wait_summary(self, queue: str) -> dict[str, str]:
        self.summary_reads += 1
        return await super().wait_summary(queue)


async def test_creates_in_flight_when_the_summary_expires_share_one_read(redis_client: aioredis.Redis) -> None:
    """At each expiry of a queue's cached summary, every create in flight used to read it on a
    connection of its own (64 under the benchmark's load); now they await one read."""
    store = CountingStore(redis_client)
    now = [time.time()]
    waits = WaitEstimates(store, {"duel": DUEL}, clock=lambda: now[0])
    tickets = [
        Ticket(new_ticket_id("duel", now[0]), "duel", f"p{i}", (Player(f"p{i}", {"skill": 1500}),), enqueued_at=now[0])
        for i in range(3)
    ]
    matched = [(keys_of(t, DUEL), 12.0, 1) for t in tickets * 3]  # weight enough for an estimate
    await store.record_waits("duel", publish(Summary(), matched, {}, now[0]))
    for expiry in range(2):
        estimates = await asyncio.gather(*(waits.remaining(tickets[i % 3]) for i in range(50)))
        assert store.summary_reads == expiry + 1
        assert len(set(estimates)) == 1 and estimates[0] is not None
        now[0] += SUMMARY_SECONDS + 0.1


async def one_short(store: RedisTicketStore, published: float, now: float, *, matched: int) -> tuple[Ticket, Ticket]:
    """A pass published at ``published`` left all but one of a duel waiting in one band (after
    ``matched`` earlier matches of 2 s there); a ticket of that band the pass saw, and one created
    at ``now``, after it, which completes the match."""
    waiting = Ticket(new_ticket_id("duel", published), "duel", "p1", (Player("p1", {"skill": 1500}),))
    keys = keys_of(waiting, DUEL)
    depths = depths_of([(keys, DUEL.players_needed - 1, published - 1)], published)
    await store.record_waits("duel", publish(Summary(), [(keys, 2.0, 1)] * matched, depths, published))
    return waiting, replace(waiting, id=new_ticket_id("duel", now), owner="p2", enqueued_at=now)


async def test_a_summary_is_read_again_once_the_next_pass_has_published(redis_client: aioredis.Redis) -> None:
    """The next-pass estimate counts the players the coming pass will match: a frontend reads the
    summary again once that pass is due, not a whole ``SUMMARY_SECONDS`` later."""
    store = CountingStore(redis_client)
    published = time.time()
    now = [published + 0.05]
    waits = WaitEstimates(store, {"duel": DUEL}, clock=lambda: now[0])
    _, newcomer = await one_short(store, published, now[0], matched=3)  # recent matches: the queue has data
    first = await waits.remaining(newcomer)
    assert first == pytest.approx(DUEL.tick_seconds - 0.05)  # it completes a match: the next pass
    assert store.summary_reads == 1
    now[0] = published + DUEL.tick_seconds + PUBLISH_SLACK_SECONDS + 0.01  # that pass is due
    assert DUEL.tick_seconds + PUBLISH_SLACK_SECONDS + 0.01 < SUMMARY_SECONDS
    await waits.remaining(newcomer)
    assert store.summary_reads == 2


async def test_a_queue_with_no_match_yet_tells_the_ticket_that_completes_one_the_next_pass(
    redis_client: aioredis.Redis,
) -> None:
    """Passes publish depths before any match has timed a wait: a newcomer completing a match was
    told nothing ("no data") until the queue's first match, though the next pass would match it."""
    store = RedisTicketStore(redis_client)
    published = time.time()
    now = published + 0.05
    waits = WaitEstimates(store, {"duel": DUEL}, clock=lambda: now)
    waiting, newcomer = await one_short(store, published, now, matched=0)  # no waits, no rates
    assert await waits.remaining(waiting) is None  # the pass saw it and left it: nothing to go on
    assert await waits.remaining(newcomer) == pytest.approx(DUEL.tick_seconds - 0.05)
