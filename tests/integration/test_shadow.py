"""A queue's shadow match function with a real director on the real Redis ticket store, over a stub
allocation API on a socket: the shadow runs each pass, claims and allocates nothing, and its
metrics follow its rules (the same rules agree with live; narrower ones propose fewer matches)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from fleetmatch.allocator_client import AllocatorClient
from fleetmatch.settings import MatchmakerSettings
from matchmaker.app import matchers, serve_matchmaker, shadows
from matchmaker.director import Director
from matchmaker.models import Player, Proposal, Ticket, new_ticket_id
from matchmaker.rules import Queue, parse_queues
from matchmaker.tickets import RedisTicketStore
from tests.integration.test_director_allocation import TOKEN, StubAllocator, stub  # noqa: F401 (fixture)
from tests.waiting import eventually

QUEUE = """\
kind: Queue
metadata: {name: NAME}
spec:
  teams: {count: 2, maxSize: 1}
  rules:
    - {name: skill, type: distance, attribute: skill, maxDistance: 100}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
  shadow:
    rules: [{name: skill, type: distance, attribute: skill, maxDistance: SHADOW}]
"""
SKILLS = (1500, 1550, 1600, 1650)
"""Live (100) pairs them 1500-1550 and 1600-1650; a shadow window of 10 pairs none."""


def queue(name: str, shadow_window: int) -> Queue:
    return parse_queues(QUEUE.replace("NAME", name).replace("SHADOW", str(shadow_window)))[name]


def sample(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


@pytest.fixture
def store(redis_client: aioredis.Redis) -> RedisTicketStore:
    return RedisTicketStore(redis_client, block_ms=1000)


async def fill(store: RedisTicketStore, name: str) -> list[str]:
    ids = []
    for i, skill in enumerate(SKILLS):
        player = Player(f"{name}-p{i}", attributes={"skill": skill})
        ticket = Ticket(id=new_ticket_id(name), queue=name, owner=player.id, players=(player,), enqueued_at=time.time())
        ids.append((await store.create(ticket, max_open_per_player=1)).id)
    return ids


async def one_pass(store: RedisTicketStore, q: Queue, url: str, live: bool = True) -> Director:
    """One director pass with the queue's shadow, waiting for the shadow run to finish."""

    def nothing(pool: Sequence[Ticket], now: float) -> list[Proposal]:
        return []

    match = matchers({q.name: q})[q.name] if live else nothing
    async with AllocatorClient(url, TOKEN) as client:
        director = Director(store, q, match, client, shadow=shadows({q.name: q})[q.name])
        await director.tick()
        assert director.shadow is not None
        assert await director.shadow.last() is not None
    return director


async def test_the_shadow_claims_and_allocates_nothing(store: RedisTicketStore, stub: StubAllocator) -> None:  # noqa: F811
    q = queue("shadow-idle", 100)  # the shadow has the live rules, but live proposes nothing
    ids = await fill(store, q.name)
    await one_pass(store, q, stub.url, live=False)
    assert sample("fleetmatch_shadow_matches_total", queue=q.name, side="shadow") == 2
    assert sample("fleetmatch_shadow_matches_total", queue=q.name, side="live") == 0
    assert stub.posts == []
    assert sorted(t.id for t in await store.pool(q.name)) == sorted(ids)  # all still waiting, unclaimed
    for tid in ids:
        assert (await store.get(tid)).state == "queued"


async def test_same_rules_agree_narrower_rules_propose_fewer(store: RedisTicketStore, stub: StubAllocator) -> None:  # noqa: F811
    same, narrow = queue("shadow-same", 100), queue("shadow-narrow", 10)
    for q in (same, narrow):
        await fill(store, q.name)
        await one_pass(store, q, stub.url)
        assert sample("fleetmatch_shadow_runs_total", queue=q.name, outcome="ok") == 1
        assert sample("fleetmatch_shadow_matches_total", queue=q.name, side="live") == 2
        assert sample("fleetmatch_shadow_players_total", queue=q.name, side="live") == 4
        assert len(await store.pool(q.name)) == 0  # the live matches were played: the shadow did not hold them
    assert len(stub.posts) == 4  # two live matches per queue; none for a shadow
    assert sample("fleetmatch_shadow_matches_total", queue=same.name, side="shadow") == 2
    assert sample("fleetmatch_shadow_agreement_ratio", queue=same.name) == 1.0
    assert sample("fleetmatch_shadow_matches_total", queue=narrow.name, side="shadow") == 0
    assert sample("fleetmatch_shadow_agreement_ratio", queue=narrow.name) == 0.0
    assert sample("fleetmatch_shadow_ticket_wait_seconds_count", queue=narrow.name, side="live") == 4
    assert sample("fleetmatch_shadow_ticket_wait_seconds_count", queue=narrow.name, side="shadow") == 0


async def test_the_matchmaker_runs_a_queues_shadow_beside_its_director(
    store: RedisTicketStore,
    stub: StubAllocator,  # noqa: F811
) -> None:
    q = queue("shadow-served", 10)
    await fill(store, q.name)

    def shadow_runs() -> float:
        return sample("fleetmatch_shadow_runs_total", queue=q.name, outcome="ok")

    async with serve_matchmaker(
        store, {q.name: q}, MatchmakerSettings(port=0), allocator_url=stub.url, allocator_token=TOKEN, api=False
    ) as service:
        assert service.directors[q.name].shadow is not None
        await eventually(lambda: shadow_runs() >= 1, what=lambda: f"{shadow_runs()} shadow runs")
    assert sample("fleetmatch_shadow_matches_total", queue=q.name, side="live") == 2
    assert sample("fleetmatch_shadow_matches_total", queue=q.name, side="shadow") == 0
    assert len(stub.posts) == 2  # the live matches only
