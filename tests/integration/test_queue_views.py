"""The operators' views of the ticket API (``GET /v1/queues``, ``GET /v1/tickets``) on the real
Redis store: API keys only, numbers computed from what the store holds, answers as the OpenAPI
document describes them, bad query parameters named."""

from __future__ import annotations

import time
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from matchmaker.openapi import OPENAPI
from matchmaker.store import Tick
from tests.integration.test_ticket_api import Api, api, assign, player, store

__all__ = ["api", "store"]  # fixtures


def check_schema(body: Any, path: str) -> None:
    """``body`` is what the OpenAPI document says ``GET path`` answers with 200."""
    schema = OPENAPI["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    Draft202012Validator({**schema, "components": OPENAPI["components"]}).validate(body)


@pytest.mark.parametrize("path", ["/v1/queues", "/v1/tickets?queue=duel"])
async def test_players_may_not_use_the_operators_views(api: Api, path: str) -> None:
    reply = await api.call("GET", path, as_="alice")
    assert reply.status == 403, reply.body
    assert reply.body["error"]["code"] == "Forbidden" and "API key" in reply.body["error"]["message"]
    assert (await api.call("GET", path)).status == 401


async def test_queue_statistics_from_the_store(api: Api) -> None:
    before = time.time()
    await api.open("key", player("eu1", eu=10, us=90), player("eu2", eu=20, us=80))  # a party: 2 players in eu
    await api.open("key", player("us1", eu=120, us=15))
    matched = await api.open("key", player("gone", eu=5))
    await assign(api.store, matched, {"gone": "t"})
    await api.store.record_tick("duel", Tick(at=1_800_000_000.0, seconds=0.25, matches=1))

    reply = await api.call("GET", "/v1/queues", as_="key")
    assert reply.status == 200, reply.body
    check_schema(reply.body, "/v1/queues")
    by_name = {q["name"]: q for q in reply.body["items"]}
    assert set(by_name) == {"duel", "squad"}
    duel = by_name["duel"]
    assert (duel["waitingTickets"], duel["waitingPlayers"], duel["byRegion"]) == (2, 3, {"eu": 2, "us": 1})
    assert 0 <= duel["oldestWaitSeconds"] <= time.time() - before + 1
    assert duel["lastTick"] == {"at": "2027-01-15T08:00:00.000Z", "seconds": 0.25, "matches": 1}
    p50, p95 = duel["timeToMatchSeconds"]["p50"], duel["timeToMatchSeconds"]["p95"]
    assert 0 <= p50 == p95 <= time.time() - before + 1  # one matched ticket: both percentiles are its wait
    squad = by_name["squad"]
    assert (squad["waitingTickets"], squad["byRegion"], squad["lastTick"], squad["timeToMatchSeconds"]) == (
        0,
        {},
        None,
        None,
    )


async def test_tickets_listed_by_state_with_a_cap(api: Api) -> None:
    queued = [await api.open("key", player(f"q{i}")) for i in range(3)]
    cancelled = await api.open("key", player("c1"))
    await api.call("DELETE", f"/v1/tickets/{cancelled['id']}", as_="key")
    matched = await api.open("key", player("m1"))
    await assign(api.store, matched, {"m1": "tok"})

    everything = await api.call("GET", "/v1/tickets?queue=duel", as_="key")
    assert everything.status == 200, everything.body
    check_schema(everything.body, "/v1/tickets")
    ids = [t["id"] for t in everything.body["items"]]
    # Queued oldest first, then finished newest first.
    assert ids == [t["id"] for t in queued] + [matched["id"], cancelled["id"]]
    assert everything.body["truncated"] is False
    assert everything.body["items"][3]["assignment"]["tokens"] == {"m1": "tok"}  # a key sees every token

    only = await api.call("GET", "/v1/tickets?queue=duel&state=cancelled", as_="key")
    assert [(t["id"], t["state"]) for t in only.body["items"]] == [(cancelled["id"], "cancelled")]

    capped = await api.call("GET", "/v1/tickets?queue=duel&state=queued&limit=2", as_="key")
    assert [t["id"] for t in capped.body["items"]] == [t["id"] for t in queued[:2]]
    assert capped.body["truncated"] is True


async def test_a_leased_ticket_is_listed_as_queued(api: Api) -> None:
    ticket = await api.open("key", player("solo"))
    assert await api.store.claim("duel", "m-1", [ticket["id"]], lease_seconds=30)
    listed = await api.call("GET", "/v1/tickets?queue=duel&state=queued", as_="key")
    assert [(t["id"], t["state"]) for t in listed.body["items"]] == [(ticket["id"], "queued")]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param("", "queue", id="no-queue"),
        pytest.param("?queue=ranked", "queue", id="unknown-queue"),
        pytest.param("?queue=duel&state=leased", "state", id="bad-state"),
        pytest.param("?queue=duel&limit=0", "limit", id="limit-too-small"),
        pytest.param("?queue=duel&limit=1001", "limit", id="limit-too-large"),
        pytest.param("?queue=duel&limit=ten", "limit", id="limit-not-a-number"),
    ],
)
async def test_bad_list_parameters_are_422_naming_the_field(api: Api, query: str, field: str) -> None:
    reply = await api.call("GET", f"/v1/tickets{query}", as_="key")
    assert reply.status == 422, reply.body
    assert reply.body["error"]["field"] == field


async def test_a_snapshot_reads_the_oldest_tickets_only_and_counts_them_all(api: Api) -> None:
    opened = [await api.open("key", player(f"p{i}")) for i in range(5)]
    snap = await api.store.snapshot("duel", oldest=2, recent=0)
    assert snap.waiting_tickets == 5
    assert [t.id for t in snap.oldest] == [t["id"] for t in opened[:2]]
    assert (snap.matched_waits, snap.last_tick) == ((), None)
