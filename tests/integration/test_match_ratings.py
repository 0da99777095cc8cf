"""Results and ratings end to end on the real Redis and the real ticket API: two players queue in a
rating queue without a skill, a director matches them (through a stub allocation API on a real
socket), the game's backend posts the result, the ratings move once, and the next tickets carry
the stored rating."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from fleetmatch.allocator_client import AllocatorClient
from fleetmatch.settings import MatchmakerSettings
from matchmaker.api import app_runner, build_app
from matchmaker.director import Director
from matchmaker.matching import find_matches
from matchmaker.models import Proposal, Ticket
from matchmaker.push import Hub
from matchmaker.ratings import DEFAULT_MU, DEFAULT_SIGMA, Rating, rate
from matchmaker.ratingstore import RedisRatingStore
from matchmaker.rules import parse_queues
from matchmaker.tickets import RedisTicketStore
from tests.integration.test_director_allocation import TOKEN, StubAllocator
from tests.integration.test_ticket_api import KEY, SECRET, token
from tests.integration.test_ticket_cli import fleetmatch, write_stack

RANKED_YAML = """
kind: Queue
metadata: {name: ranked}
spec:
  teams: {count: 2, maxSize: 1}
  rules:
    - {name: rating, type: rating, attribute: skill, maxDistance: 10}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
"""
QUEUES = parse_queues(RANKED_YAML)
RANKED = QUEUES["ranked"]
SETTINGS = MatchmakerSettings(token_secret=SECRET, api_keys={"game": KEY}, rate_per_second=1000.0, rate_burst=1000)


class Stack:
    def __init__(self, url: str, http: aiohttp.ClientSession, director: Director, ratings: RedisRatingStore) -> None:
        self.url, self.http, self.director, self.ratings = url, http, director, ratings

    async def call(self, method: str, path: str, *, as_: str = "key", body: Any = None) -> tuple[int, Any]:
        bearer = KEY if as_ == "key" else token(as_)
        async with self.http.request(
            method, self.url + path, json=body, headers={"Authorization": f"Bearer {bearer}"}
        ) as resp:
            return resp.status, await resp.json()

    async def queue(self, player: str, **attributes: float) -> dict[str, Any]:
        status, doc = await self.call(
            "POST", "/v1/tickets", as_=player, body={"queue": "ranked", "players": [{"id": player}]}
        )
        assert status == 201, doc
        return dict(doc)

    async def match(self, *players: str) -> tuple[str, dict[str, int]]:
        """Queue ``players``, run a director pass: (match id, each player's team)."""
        tickets = [await self.queue(p) for p in players]
        report = await self.director.tick()
        assert report.matched == 1, report
        teams, match_ids = {}, set()
        for t in tickets:
            _, doc = await self.call("GET", f"/v1/tickets/{t['id']}")
            assert doc["state"] == "matched", doc
            match_ids.add(doc["assignment"]["matchId"])
            teams[doc["players"][0]["id"]] = doc["assignment"]["team"]
        (match_id,) = match_ids
        return match_id, teams

    async def rating(self, player: str) -> dict[str, Any]:
        status, doc = await self.call("GET", f"/v1/ratings/{player}?queue=ranked")
        assert status == 200, doc
        return dict(doc)


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = app_runner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]


@pytest.fixture
async def stack(redis_client: aioredis.Redis) -> AsyncIterator[Stack]:
    store = RedisTicketStore(redis_client, block_ms=1000)
    ratings = RedisRatingStore(redis_client)
    stub = StubAllocator()
    allocator_app = web.Application()
    allocator_app.router.add_post("/v1/allocations", stub.allocate)
    hub = Hub(store)
    async with contextlib.AsyncExitStack() as exits:
        allocator_runner, stub.url = await _serve(allocator_app)
        exits.push_async_callback(allocator_runner.cleanup)
        api_runner, url = await _serve(build_app(store, QUEUES, SETTINGS, hub=hub, ratings=ratings))
        exits.push_async_callback(hub.close)
        exits.push_async_callback(api_runner.cleanup)
        client = await exits.enter_async_context(AllocatorClient(stub.url, TOKEN))
        http = await exits.enter_async_context(aiohttp.ClientSession())

        def match(pool: list[Ticket] | Any, now: float) -> list[Proposal]:
            return find_matches(pool, RANKED, now)

        yield Stack(url, http, Director(store, RANKED, match, client, matches=ratings), ratings)


async def test_a_result_moves_the_ratings_once_and_the_next_tickets_carry_them(stack: Stack) -> None:
    first = await stack.queue("alice")
    assert first["players"][0]["attributes"] == {"skill": DEFAULT_MU, "skill.sigma": DEFAULT_SIGMA}
    await stack.call("DELETE", f"/v1/tickets/{first['id']}")
    match_id, teams = await stack.match("alice", "bob")
    ranks = [{"rank": 1 if team == teams["alice"] else 2} for team in range(2)]  # alice wins

    status, doc = await stack.call("POST", f"/v1/matches/{match_id}/result", body={"teams": ranks})
    assert status == 200, doc
    assert doc["replayed"] is False and doc["matchId"] == match_id and doc["queue"] == "ranked"
    (won,), (lost,) = rate([[Rating()], [Rating()]], ranks=[1, 2])
    alice = await stack.rating("alice")
    bob = await stack.rating("bob")
    assert (alice["mu"], alice["sigma"], alice["games"]) == (pytest.approx(won.mu), pytest.approx(won.sigma), 1)
    assert (bob["mu"], bob["games"]) == (pytest.approx(lost.mu), 1)
    assert alice["ordinal"] == pytest.approx(won.mu - 3 * won.sigma)

    again_status, again = await stack.call("POST", f"/v1/matches/{match_id}/result", body={"teams": ranks})
    assert (again_status, again) == (200, {**doc, "replayed": True})
    assert await stack.rating("alice") == alice  # not applied twice

    flipped = list(reversed(ranks))
    status, conflict = await stack.call("POST", f"/v1/matches/{match_id}/result", body={"teams": flipped})
    assert (status, conflict["error"]["code"]) == (409, "ResultConflict")
    assert await stack.rating("bob") == bob

    nxt = await stack.queue("alice")  # a new ticket without a skill: the stored rating
    assert nxt["players"][0]["attributes"] == {"skill": pytest.approx(won.mu), "skill.sigma": pytest.approx(won.sigma)}


async def test_two_results_racing_for_one_match_apply_once(stack: Stack) -> None:
    match_id, _ = await stack.match("carol", "dave")
    body = {"players": [{"id": "carol", "rank": 1}, {"id": "dave", "rank": 2}]}
    replies = await asyncio.gather(*(stack.call("POST", f"/v1/matches/{match_id}/result", body=body) for _ in range(8)))
    assert [status for status, _ in replies] == [200] * 8
    assert sorted(doc["replayed"] for _, doc in replies) == [False] + [True] * 7
    assert (await stack.rating("carol"))["games"] == 1 and (await stack.rating("dave"))["games"] == 1


async def test_results_of_different_matches_of_one_player_both_count(stack: Stack) -> None:
    """Two matches of erin's rated at once: each reads erin's rating, one of them re-reads."""
    one, _ = await stack.match("erin", "frank")
    two, _ = await stack.match("erin", "gina")
    await asyncio.gather(
        stack.call(
            "POST",
            f"/v1/matches/{one}/result",
            body={"players": [{"id": "erin", "rank": 1}, {"id": "frank", "rank": 2}]},
        ),
        stack.call(
            "POST",
            f"/v1/matches/{two}/result",
            body={"players": [{"id": "erin", "rank": 1}, {"id": "gina", "rank": 2}]},
        ),
    )
    erin = await stack.rating("erin")
    assert erin["games"] == 2 and erin["mu"] > (await stack.rating("frank"))["mu"]


async def test_who_may_post_and_what_is_refused(stack: Stack) -> None:
    match_id, _ = await stack.match("hal", "ivy")
    path = f"/v1/matches/{match_id}/result"
    ranks = {"teams": [{"rank": 1}, {"rank": 2}]}
    status, doc = await stack.call("POST", path, as_="hal", body=ranks)
    assert (status, doc["error"]["code"]) == (403, "Forbidden")
    status, doc = await stack.call("GET", "/v1/ratings/hal?queue=ranked", as_="hal")
    assert status == 403
    status, doc = await stack.call("POST", path, body={"teams": [{"rank": 1}]})
    assert (status, doc["error"]["field"]) == (422, "teams")
    status, doc = await stack.call("POST", path, body={"players": [{"id": "mallory", "rank": 1}]})
    assert (status, doc["error"]["field"]) == (422, "players[0].id")
    status, doc = await stack.call("POST", "/v1/matches/no-such-match/result", body=ranks)
    assert status == 404
    status, doc = await stack.call("GET", "/v1/ratings/hal")
    assert (status, doc["error"]["field"]) == (422, "queue")
    status, doc = await stack.call(
        "POST",
        "/v1/tickets",
        as_="zed",
        body={"queue": "ranked", "players": [{"id": "zed", "attributes": {"skill": 99}}]},
    )
    assert (status, doc["error"]["field"]) == (422, "players[0].attributes.skill")  # players do not choose their skill
    assert (await stack.rating("hal"))["games"] == 0  # nothing applied


async def test_the_match_record_expires(redis_client: aioredis.Redis) -> None:
    ratings = RedisRatingStore(redis_client, match_ttl=60)
    await ratings.record_match("ranked", "m-1", [["a"], ["b"]])
    ttl = await redis_client.ttl("fm:{m:m-1}:match")
    assert 0 < ttl <= 60
    record = await ratings.match("m-1")
    assert record.teams == (("a",), ("b",)) and abs(record.at - time.time()) < 60


async def test_the_cli_posts_a_result_and_reads_a_rating(stack: Stack, tmp_path: Path) -> None:
    write_stack(tmp_path, stack.url)
    match_id, teams = await stack.match("jo", "kim")
    ranks = ["--rank", "1", "--rank", "2"] if teams["jo"] == 0 else ["--rank", "2", "--rank", "1"]
    code, out, err = await fleetmatch(tmp_path, "match", "result", match_id, *ranks, "-o", "json")
    assert code == 0, err
    assert json.loads(out)["replayed"] is False
    code, out, err = await fleetmatch(tmp_path, "match", "result", match_id, *ranks)
    assert code == 0 and "rated before" in err, err
    assert out.splitlines()[0].split() == ["PLAYER", "TEAM", "BEFORE", "AFTER"]
    code, out, err = await fleetmatch(tmp_path, "rating", "get", "jo", "--queue", "ranked", "-o", "json")
    assert code == 0, err
    assert json.loads(out) == await stack.rating("jo") and json.loads(out)["mu"] > DEFAULT_MU
    assert "note" not in err
    code, out, err = await fleetmatch(tmp_path, "rating", "get", "nobody-yet", "--queue", "ranked")
    assert code == 0 and "no rated match of nobody-yet in ranked yet" in err, err
    code, out, err = await fleetmatch(tmp_path, "match", "result", "nope", "--rank", "1", "--rank", "2")
    assert code == 1 and err.startswith("error: 404"), err
