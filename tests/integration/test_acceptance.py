"""Match acceptance (a ready check) on the real Redis ticket store, real directors (driven pass by
pass) and a real allocator: players answer through the ticket API; no server is allocated before
every ticket accepted; a decline or a deadline cancels who did not accept and puts the others back
in the pool at their original place."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from jsonschema import Draft202012Validator, ValidationError
from openapi_spec_validator import validate
from prometheus_client import REGISTRY

from allocator.app import serve_allocator
from fleetmatch.allocator_client import AllocatorClient
from fleetmatch.backends.base import Backend
from fleetmatch.models import FLEET_LABEL, GameServer, GameServerState, ObjectMeta, PortStatus
from fleetmatch.settings import AllocatorSettings, MatchmakerSettings
from matchmaker.api import app_runner, build_app
from matchmaker.auth import mint_player_token
from matchmaker.director import Director
from matchmaker.matching import find_matches
from matchmaker.models import Proposal, Ticket
from matchmaker.push import Hub
from matchmaker.rules import Queue, parse_queues
from matchmaker.store import StoredProposal
from matchmaker.tickets import NOT_ACCEPTED_REASON, RedisTicketStore

SECRET = "player-token-secret-0123456789"
KEY = "backend-key-0123456789abcdef"
TOKEN = "allocator-token-0123456789abcdef"
QUEUES = parse_queues(
    """\
kind: Queue
metadata: {name: duel}
spec:
  teams: {count: 2, maxSize: 1}
  acceptance: {timeoutSeconds: 1}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
---
kind: Queue
metadata: {name: squad}
spec:
  teams: {count: 2, maxSize: 2}
  acceptance: {timeoutSeconds: 1}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
---
kind: Queue
metadata: {name: plain}
spec:
  teams: {count: 2, maxSize: 1}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
"""
)
SETTINGS = MatchmakerSettings(
    token_secret=SECRET, api_keys={"backend": KEY}, rate_per_second=1000.0, rate_burst=1000, lease_seconds=10.0
)


def proposals(outcome: str) -> float:
    return REGISTRY.get_sample_value("fleetmatch_match_proposals_total", {"queue": "duel", "outcome": outcome}) or 0.0


@dataclass
class Stack:
    url: str
    http: aiohttp.ClientSession
    store: RedisTicketStore
    director: Director
    backend: Backend

    async def call(self, method: str, path: str, player: str) -> tuple[int, Any]:
        auth = KEY if player == "key" else mint_player_token(SECRET, player, 600, time.time())
        async with self.http.request(method, f"{self.url}{path}", headers={"Authorization": f"Bearer {auth}"}) as r:
            return r.status, await r.json()

    async def open(self, player: str, queue: str = "duel") -> str:
        body = {"queue": queue, "players": [{"id": player}]}
        headers = {"Authorization": f"Bearer {mint_player_token(SECRET, player, 600, time.time())}"}
        async with self.http.post(f"{self.url}/v1/tickets", json=body, headers=headers) as resp:
            assert resp.status == 201, await resp.text()
            ticket_id: str = (await resp.json())["id"]
            return ticket_id

    async def open_party(self, leader: str, member: str) -> str:
        """A squad ticket of two, opened by ``leader`` with a token vouching for ``member``."""
        body = {"queue": "squad", "players": [{"id": leader}, {"id": member}]}
        token = mint_player_token(SECRET, leader, 600, time.time(), party=(member,))
        async with self.http.post(
            f"{self.url}/v1/tickets", json=body, headers={"Authorization": f"Bearer {token}"}
        ) as r:
            assert r.status == 201, await r.text()
            ticket_id: str = (await r.json())["id"]
            return ticket_id

    async def ticket(self, ticket_id: str, player: str) -> dict[str, Any]:
        status, doc = await self.call("GET", f"/v1/tickets/{ticket_id}", player)
        assert status == 200, doc
        return dict(doc)

    async def allocated(self) -> list[GameServer]:
        items, _ = await self.backend.gameservers.list()
        return [g for g in items if g.state is GameServerState.ALLOCATED]


@pytest.fixture
async def stack(redis_client: aioredis.Redis, backend: Backend) -> AsyncIterator[Stack]:
    for i in range(4):
        gs = GameServer(metadata=ObjectMeta(name=f"arena-{i}", labels={FLEET_LABEL: "arena"}))
        await backend.gameservers.create(
            gs.with_status(
                state=GameServerState.READY, node_name="n", address="10.0.0.1", ports=(PortStatus("p", 7000 + i),)
            )
        )
    store = RedisTicketStore(redis_client, block_ms=1000)
    queue: Queue = QUEUES["duel"]

    def match(pool: Sequence[Ticket], now: float) -> list[Proposal]:
        return find_matches(pool, queue, now)

    hub = Hub(store)
    runner = app_runner(build_app(store, QUEUES, SETTINGS, hub=hub))
    await runner.setup()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(hub.close)
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        allocator = await stack.enter_async_context(serve_allocator(backend, AllocatorSettings(port=0), TOKEN))
        client = await stack.enter_async_context(AllocatorClient(allocator.url, TOKEN))
        http = await stack.enter_async_context(aiohttp.ClientSession())
        director = Director(store, queue, match, client, lease_seconds=10.0, releaser=client)
        yield Stack(f"http://127.0.0.1:{port}", http, store, director, backend)


async def test_everyone_accepts_then_one_server_and_the_match_is_pushed(stack: Stack) -> None:
    a, b = await stack.open("alice"), await stack.open("bob")
    events: list[dict[str, Any]] = []

    async def follow() -> None:
        headers = {"Authorization": f"Bearer {mint_player_token(SECRET, 'alice', 600, time.time())}"}
        async with stack.http.get(f"{stack.url}/v1/tickets/{a}/events", headers=headers) as resp:
            async for raw in resp.content:
                line = raw.decode().strip()
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))

    follower = asyncio.create_task(follow())
    before = proposals("accepted")
    report = await stack.director.tick()
    assert report.proposed == 1 and report.matched == 0
    alice, bob = await stack.ticket(a, "alice"), await stack.ticket(b, "bob")
    assert alice["state"] == bob["state"] == "proposed"
    proposal = alice["proposal"]
    assert proposal["matchId"] == bob["proposal"]["matchId"]
    assert proposal["teamSizes"] == [1, 1] and proposal["tickets"] == 2 and proposal["acceptedTickets"] == 0
    assert {alice["proposal"]["team"], bob["proposal"]["team"]} == {0, 1}
    assert proposal["accepted"] is False and proposal["deadline"]

    status, doc = await stack.call("POST", f"/v1/tickets/{a}/accept", "alice")
    assert status == 200 and doc["proposal"]["accepted"] is True and doc["proposal"]["acceptedTickets"] == 1
    await stack.director.tick()
    assert await stack.allocated() == [], "a server before everyone accepted"
    assert (await stack.ticket(a, "alice"))["state"] == "proposed"

    status, doc = await stack.call("POST", f"/v1/tickets/{b}/accept", "bob")
    assert status == 200 and doc["proposal"]["acceptedTickets"] == 2
    assert proposals("accepted") == before + 1
    assert (await stack.director.tick()).matched == 1
    alice, bob = await stack.ticket(a, "alice"), await stack.ticket(b, "bob")
    assert alice["state"] == bob["state"] == "matched" and alice["proposal"] is None
    assert alice["assignment"]["matchId"] == bob["assignment"]["matchId"] == proposal["matchId"]
    assert [g.name for g in await stack.allocated()] == [alice["assignment"]["gameServer"]]
    assert (await stack.director.tick()).matched == 0  # allocated once, never again

    status, doc = await stack.call("POST", f"/v1/tickets/{a}/accept", "alice")
    assert (status, doc["error"]["code"]) == (409, "NotProposed")
    await asyncio.wait_for(follower, 10)
    assert [e["state"] for e in events][:2] == ["queued", "proposed"] and events[-1]["state"] == "matched"
    assert [e["proposal"]["acceptedTickets"] for e in events if e["state"] == "proposed"][-1] == 2


async def test_a_decline_cancels_the_decliner_and_the_others_go_back_in_their_place(stack: Stack) -> None:
    a, b, c, d = [await stack.open(p) for p in ("p1", "p2", "p3", "p4")]
    await asyncio.sleep(0.01)
    e = await stack.open("p5")
    assert (await stack.director.tick()).proposed == 2  # (a, b), (c, d); e waits
    first = (await stack.ticket(a, "p1"))["proposal"]["matchId"]
    before = proposals("declined")

    status, doc = await stack.call("POST", f"/v1/tickets/{b}/decline", "p2")
    assert status == 200 and doc["state"] == "cancelled" and "declined" in doc["reason"]
    assert proposals("declined") == before + 1
    back = await stack.ticket(a, "p1")
    assert back["state"] == "queued" and back["proposal"] is None
    assert [t.id for t in await stack.store.pool("duel")] == [a, e], "a is back ahead of e, who waited meanwhile"
    assert (await stack.call("POST", f"/v1/tickets/{b}/decline", "p2"))[0] == 200  # a retry: the same answer
    assert (await stack.call("POST", f"/v1/tickets/{b}/accept", "p2"))[0] == 409
    assert (await stack.call("POST", f"/v1/tickets/{c}/decline", "p1"))[0] == 404  # not p1's ticket

    assert (await stack.director.tick()).proposed == 1  # a and e, matched again
    again = (await stack.ticket(a, "p1"))["proposal"]
    assert again["matchId"] != first and again["matchId"] == (await stack.ticket(e, "p5"))["proposal"]["matchId"]
    for ticket_id, player in ((a, "p1"), (e, "p5"), (c, "p3"), (d, "p4")):
        assert (await stack.call("POST", f"/v1/tickets/{ticket_id}/accept", player))[0] == 200
    assert (await stack.director.tick()).matched == 2
    assert len(await stack.allocated()) == 2
    assert (await stack.ticket(b, "p2"))["state"] == "cancelled"


async def test_cancelling_a_proposed_ticket_declines_its_match(stack: Stack) -> None:
    a, b = await stack.open("p1"), await stack.open("p2")
    await stack.director.tick()
    status, doc = await stack.call("DELETE", f"/v1/tickets/{a}", "p1")
    assert status == 200 and doc["state"] == "cancelled"
    assert (await stack.ticket(b, "p2"))["state"] == "queued"
    assert [t.id for t in await stack.store.pool("duel")] == [b]


async def test_who_does_not_accept_in_time_is_cancelled_the_others_go_back(stack: Stack) -> None:
    a, b = await stack.open("p1"), await stack.open("p2")
    await stack.director.tick()
    assert (await stack.call("POST", f"/v1/tickets/{a}/accept", "p1"))[0] == 200
    before = proposals("timed-out")
    await asyncio.sleep(1.1)  # the queue's timeoutSeconds: 1
    status, doc = await stack.call("POST", f"/v1/tickets/{b}/accept", "p2")
    assert (status, doc["error"]["code"]) == (409, "NotProposed")  # too late, even before a director looked
    await stack.director.tick()
    assert proposals("timed-out") == before + 1
    late = await stack.ticket(b, "p2")
    assert late["state"] == "cancelled" and late["reason"] == NOT_ACCEPTED_REASON
    back = await stack.ticket(a, "p1")
    assert back["state"] == "queued" and back["proposal"] is None
    assert await stack.allocated() == []


async def test_answers_to_tickets_no_match_awaits_are_409(stack: Stack) -> None:
    a = await stack.open("p1")
    plain = await stack.open("p2", queue="plain")
    for path in (f"/v1/tickets/{a}/accept", f"/v1/tickets/{a}/decline", f"/v1/tickets/{plain}/accept"):
        status, doc = await stack.call("POST", path, "key")
        assert (status, doc["error"]["code"]) == (409, "NotProposed"), path
    assert (await stack.call("POST", "/v1/tickets/nonsense/accept", "key"))[0] == 404


async def test_a_proposed_ticket_is_in_no_other_match_and_a_ready_match_goes_to_one_director(stack: Stack) -> None:
    store = stack.store
    a, b, c = await stack.open("p1"), await stack.open("p2"), await stack.open("p3")
    match = Proposal(((a,), (b,)))
    assert await store.propose("duel", "m1", StoredProposal("m1", match, (1, 1)), timeout_seconds=30)
    assert await store.propose("duel", "m1", StoredProposal("m1", match, (1, 1)), timeout_seconds=30)  # a retry
    assert not await store.claim("duel", "m2", [a, c], lease_seconds=30)
    other = Proposal(((b,), (c,)))
    assert not await store.propose("duel", "m2", StoredProposal("m2", other, (1, 1)), timeout_seconds=30)
    await store.accept(a, lease_seconds=30)
    await store.accept(b, lease_seconds=30)
    taken = await asyncio.gather(*(store.take_ready("duel", limit=10, lease_seconds=30) for _ in range(4)))
    assert [m for batch in taken for m, _ in batch] == ["m1"]


async def test_the_served_openapi_document_states_the_routes_and_the_proposal(stack: Stack) -> None:
    async with stack.http.get(f"{stack.url}/openapi.json") as resp:
        doc = await resp.json()
    validate(doc)
    paths = doc["paths"]
    for route in ("/v1/tickets/{id}/accept", "/v1/tickets/{id}/decline"):
        assert set(paths[route]["post"]["responses"]) >= {"200", "401", "404", "409"}

    def check(name: str, value: Any) -> None:
        Draft202012Validator({**doc, "$ref": f"#/components/schemas/{name}"}).validate(value)

    a, b = await stack.open("p1"), await stack.open("p2")
    await stack.director.tick()
    check("Ticket", await stack.ticket(a, "p1"))
    status, accepted = await stack.call("POST", f"/v1/tickets/{a}/accept", "p1")
    assert status == 200
    check("Ticket", accepted)
    with pytest.raises(ValidationError):  # the check can fail: a proposal missing a field is refused
        check("Ticket", {**accepted, "proposal": {**accepted["proposal"], "team": None}})
    status, declined = await stack.call("POST", f"/v1/tickets/{b}/decline", "key")
    check("Ticket", declined)
    status, refused = await stack.call("POST", f"/v1/tickets/{b}/decline", "p1")
    assert status == 404
    status, refused = await stack.call("POST", f"/v1/tickets/{a}/decline", "key")
    assert status == 409
    check("Error", refused)


def squad_proposals(outcome: str) -> float:
    labels = {"queue": "squad", "outcome": outcome}
    return REGISTRY.get_sample_value("fleetmatch_match_proposals_total", labels) or 0.0


async def propose_squads(stack: Stack) -> tuple[str, str]:
    """Two parties of two proposed one match (as a director would)."""
    a, b = await stack.open_party("p1", "p2"), await stack.open_party("p3", "p4")
    match = Proposal(((a,), (b,)))
    assert await stack.store.propose("squad", "m1", StoredProposal("m1", match, (2, 2)), timeout_seconds=1)
    return a, b


async def test_each_player_of_a_party_accepts_and_the_match_waits_for_all_of_them(stack: Stack) -> None:
    a, b = await propose_squads(stack)
    status, doc = await stack.call("POST", f"/v1/tickets/{b}/accept", "key")  # a backend answers for a party
    assert status == 200 and doc["proposal"]["accepted"] is True and doc["proposal"]["acceptedPlayers"] == ["p3", "p4"]
    before = squad_proposals("accepted")

    status, doc = await stack.call("POST", f"/v1/tickets/{a}/accept", "p1")
    proposal = doc["proposal"]
    assert status == 200 and proposal["accepted"] is False and proposal["acceptedPlayers"] == ["p1"]
    assert proposal["acceptedTickets"] == 1, "the party has not accepted: p2 has not"
    assert (await stack.call("POST", f"/v1/tickets/{a}/accept", "p1"))[1]["proposal"]["acceptedPlayers"] == ["p1"]
    assert (await stack.ticket(a, "p2"))["proposal"]["acceptedPlayers"] == ["p1"]  # p2 sees who accepted
    assert await stack.store.take_ready("squad", limit=10, lease_seconds=30) == []
    assert squad_proposals("accepted") == before

    status, doc = await stack.call("POST", f"/v1/tickets/{a}/accept", "p2")
    assert status == 200 and doc["proposal"]["accepted"] is True and doc["proposal"]["acceptedTickets"] == 2
    assert doc["proposal"]["acceptedPlayers"] == ["p1", "p2"]
    assert squad_proposals("accepted") == before + 1
    assert [m for m, _ in await stack.store.take_ready("squad", limit=10, lease_seconds=30)] == ["m1"]


async def test_a_member_declining_cancels_the_party_ticket_the_others_go_back(stack: Stack) -> None:
    a, b = await propose_squads(stack)
    assert (await stack.call("POST", f"/v1/tickets/{a}/accept", "p1"))[0] == 200
    status, doc = await stack.call("POST", f"/v1/tickets/{a}/decline", "p2")
    assert status == 200 and doc["state"] == "cancelled" and "p2" in doc["reason"]
    assert (await stack.ticket(a, "p1"))["state"] == "cancelled"
    back = await stack.ticket(b, "p3")
    assert back["state"] == "queued" and back["proposal"] is None


async def test_a_party_not_all_of_whose_players_accepted_in_time_is_cancelled(stack: Stack) -> None:
    a, b = await propose_squads(stack)
    assert (await stack.call("POST", f"/v1/tickets/{a}/accept", "p1"))[0] == 200
    assert (await stack.call("POST", f"/v1/tickets/{b}/accept", "p3"))[0] == 200
    assert (await stack.call("POST", f"/v1/tickets/{b}/accept", "p4"))[0] == 200
    await asyncio.sleep(1.1)  # the squad's timeoutSeconds: 1; p2 never answered
    reaped = await stack.store.reap("squad")
    assert reaped.tickets_not_accepted == (a,) and reaped.proposals_timed_out == ("m1",)
    late = await stack.ticket(a, "p1")
    assert late["state"] == "cancelled" and late["reason"] == NOT_ACCEPTED_REASON
    back = await stack.ticket(b, "p4")
    assert back["state"] == "queued" and back["proposal"] is None
    # back in the pool, its players' earlier answers do not count for the next match
    match = Proposal(((b,), (await stack.open_party("p5", "p6"),)))
    assert await stack.store.propose("squad", "m2", StoredProposal("m2", match, (2, 2)), timeout_seconds=30)
    again = await stack.ticket(b, "p3")
    assert again["proposal"]["accepted"] is False and again["proposal"]["acceptedPlayers"] == []
