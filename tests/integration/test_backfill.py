"""Backfill on the real Redis (tickets, backfills and GameServers): a 4v4 match whose ``players``
List lost a player gets a backfill, and one pass fills it with the waiting ticket that fits, in
one conditional write of the server (token hash, team, List); a fill that dies mid-way loses and
duplicates nothing; two directors never give one slot twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.errors import NotFoundError
from fleetmatch.informer import Informer
from fleetmatch.models import GameServer, GameServerState, ListStatus, ObjectMeta, PortStatus
from fleetmatch.store import Store
from matchmaker.backfill import (
    BACKFILL_FILLS_ANNOTATION,
    MATCH_PROFILE_ANNOTATION,
    PLAYER_TEAMS_ANNOTATION,
    PLAYERS_LIST,
    Backfill,
    BackfillState,
    MatchProfile,
    plan_fills,
)
from matchmaker.backfiller import Backfiller, SweptFillError
from matchmaker.backfills import RedisBackfillStore
from matchmaker.director import MATCH_ID_ANNOTATION, PLAYER_TOKENS_ANNOTATION, QUEUE_ANNOTATION, token_hash
from matchmaker.models import Player, Ticket, TicketState, new_ticket_id
from matchmaker.rules import parse_queues
from matchmaker.tickets import Keys, RedisTicketStore
from tests.waiting import eventually

QUEUE = parse_queues("""
kind: Queue
metadata: {name: 4v4}
spec:
  teams: {count: 2, maxSize: 4}
  rules:
    - {name: skill, type: distance, attribute: skill, maxDistance: 100}
    - {name: ping, type: latency, maxLatencyMs: 80, regions: [local]}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
""")["4v4"]
MATCH = "m-1"
PLAYERS = [f"p{i}" for i in range(8)]
pytestmark = pytest.mark.timeout(30)


async def running_match(gameservers: Store[GameServer], *, left: tuple[str, ...] = ("p7",)) -> GameServer:
    """A 4v4 match on ``arena-0`` (p0-p3 team 0, p4-p7 team 1) whose List lost ``left``."""
    notes = {
        MATCH_ID_ANNOTATION: MATCH,
        QUEUE_ANNOTATION: "4v4",
        PLAYER_TOKENS_ANNOTATION: json.dumps({p: token_hash(f"t-{p}") for p in PLAYERS}),
        PLAYER_TEAMS_ANNOTATION: json.dumps({p: i // 4 for i, p in enumerate(PLAYERS)}),
        MATCH_PROFILE_ANNOTATION: MatchProfile("local", {"skill": 1500.0}).encode(),
    }
    gs = GameServer(metadata=ObjectMeta(name="arena-0", annotations=notes))
    listed = ListStatus(8, tuple(p for p in PLAYERS if p not in left))
    return await gameservers.create(
        gs.with_status(
            state=GameServerState.ALLOCATED,
            address="10.0.0.9",
            ports=(PortStatus("default", 7100),),
            lists={PLAYERS_LIST: listed},
        )
    )


async def queued(tickets: RedisTicketStore, *parties: list[Player]) -> list[str]:
    now = time.time()
    ids = []
    for i, players in enumerate(parties):
        tid = new_ticket_id("4v4", now + i / 1000)
        ticket = Ticket(tid, "4v4", players[0].id, tuple(players), created_at=now, enqueued_at=now + i / 1000)
        await tickets.create(ticket, max_open_per_player=1)
        ids.append(tid)
    return ids


def player(pid: str, skill: float, ms: float = 10.0) -> Player:
    return Player(pid, attributes={"skill": skill}, latencies={"local": ms})


@pytest.fixture
def stores(redis_client: aioredis.Redis) -> tuple[RedisTicketStore, RedisBackfillStore, RedisStore[GameServer]]:
    tickets = RedisTicketStore(redis_client)
    return tickets, RedisBackfillStore(tickets), RedisStore(redis_client, GameServer)


async def claimed_fill(stores: Any, fill_id: str) -> tuple[str, Backfiller, Backfill]:
    """A running match that lost p7, its backfill opened by a scan, and the waiting ticket ``near``
    claimed for it by fill ``fill_id`` (deadline 0.3 s), as a director does before its server write."""
    tickets, backfills, gameservers = stores
    await running_match(gameservers)
    [near] = await queued(tickets, [player("near", 1550)])
    filler = Backfiller(backfills, gameservers, QUEUE, lease_seconds=0.3)
    await filler.scan()
    [opened] = await backfills.open_backfills("4v4")
    assert await backfills.claim("4v4", opened.id, fill_id, [near], lease_seconds=0.3)
    return near, filler, opened


async def test_a_player_leaves_and_one_pass_fills_the_slot(stores, redis_client: aioredis.Redis) -> None:
    tickets, backfills, gameservers = stores
    await running_match(gameservers)
    far, near, party = await queued(
        tickets, [player("far", 2500)], [player("near", 1550)], [player("a", 1500), player("b", 1500)]
    )
    filler = Backfiller(backfills, gameservers, QUEUE)
    await filler.scan()
    [opened] = await backfills.open_backfills("4v4")
    assert opened.open_slots == (0, 1) and opened.source == "list" and opened.match_id == MATCH

    left = await filler.fill(await tickets.pool("4v4"))

    assert {t.id for t in left} == {far, party}  # too far in skill; a party of two does not fit one slot
    got = await tickets.get(near)
    assert got.state is TicketState.MATCHED and got.assignment is not None
    a = got.assignment
    assert (a.match_id, a.game_server, a.address, a.port, a.team) == (MATCH, "arena-0", "10.0.0.9", 7100, 1)
    gs = await gameservers.get("arena-0")
    hashes = json.loads(gs.metadata.annotations[PLAYER_TOKENS_ANNOTATION])
    assert hashes["near"] == token_hash(a.tokens["near"]) and hashes["p0"] == token_hash("t-p0")
    assert json.loads(gs.metadata.annotations[PLAYER_TEAMS_ANNOTATION])["near"] == 1
    assert "near" in gs.status.lists[PLAYERS_LIST].values
    events: Any = await redis_client.xrange(Keys.of("4v4").events)  # what wakes the player's waiting request
    assert {(f[b"t"].decode(), f[b"s"].decode()) for _, f in events} >= {(near, "matched")}
    assert (await backfills.get(opened.id)).state is BackfillState.FILLED
    assert not await backfills.open_backfills("4v4")
    await filler.scan()  # the List is full again: nothing reopens
    assert not await backfills.open_backfills("4v4")


async def test_a_fill_that_dies_after_its_claim_loses_nothing(stores) -> None:
    """The director claims (leases the ticket, locks the backfill) and dies before writing the
    server: the lease and the lock run out, the ticket is back in place, the next pass fills."""
    tickets, _, gameservers = stores
    near, filler, _ = await claimed_fill(stores, "dead-fill")
    assert not await filler.fill(await tickets.pool("4v4")) and not await tickets.pool("4v4")  # leased: not in pool
    await asyncio.sleep(0.4)
    reaped = await tickets.reap("4v4")
    assert near in reaped.leases_returned
    await filler.fill(await tickets.pool("4v4"))
    got = await tickets.get(near)
    assert got.state is TicketState.MATCHED and got.assignment is not None and got.assignment.match_id == MATCH
    gs = await gameservers.get("arena-0")
    assert gs.status.lists[PLAYERS_LIST].values.count("near") == 1
    fills = gs.metadata.annotations[BACKFILL_FILLS_ANNOTATION].split()
    assert len(fills) == 2 and "~dead-fill" in fills  # the committed fill, and the dead one marked swept


async def test_two_directors_never_give_one_slot_twice(stores) -> None:
    """Two directors read the same open slot and each plans a different ticket for it (their pool
    snapshots differ); the second claims before the first writes the server. One player is added,
    the other ticket stays queued."""
    tickets, _, gameservers = stores
    await running_match(gameservers)
    ids = await queued(tickets, [player("n1", 1500)], [player("n2", 1510)])
    one = Backfiller(RedisBackfillStore(tickets), gameservers, QUEUE)
    two = Backfiller(RedisBackfillStore(tickets), gameservers, QUEUE)
    await one.scan()
    [backfill] = await one.backfills.open_backfills("4v4")
    pool = await tickets.pool("4v4")
    by_id = {t.id: t for t in pool}
    seen_by_one, seen_by_two = await one._opening(backfill), await two._opening(backfill)
    assert seen_by_one is not None and seen_by_two is not None
    [fill_one] = plan_fills([seen_by_one], pool[:1], QUEUE, time.time())
    [fill_two] = plan_fills([seen_by_two], pool[1:], QUEUE, time.time())
    two_claimed = asyncio.Event()
    claim_of_two, write_of_one = two.backfills.claim, one._write

    async def claim_then_tell(*args: Any, **kwargs: Any) -> bool:
        try:
            return await claim_of_two(*args, **kwargs)
        finally:
            two_claimed.set()

    async def write_after_two_claimed(*args: Any, **kwargs: Any) -> GameServer | None:
        await two_claimed.wait()
        return await write_of_one(*args, **kwargs)

    two.backfills.claim = claim_then_tell  # type: ignore[method-assign]
    one._write = write_after_two_claimed  # type: ignore[method-assign]
    await asyncio.gather(one._fill(fill_one, seen_by_one, by_id), two._fill(fill_two, seen_by_two, by_id))
    states = [(await tickets.get(t)).state for t in ids]
    assert sorted(states) == [TicketState.MATCHED, TicketState.QUEUED]
    gs = await gameservers.get("arena-0")
    assert len(gs.status.lists[PLAYERS_LIST].values) == 8


async def test_a_ticket_cancelled_mid_fill_is_taken_off_the_server(stores) -> None:
    tickets, backfills, gameservers = stores
    await running_match(gameservers)
    [near] = await queued(tickets, [player("near", 1550)])
    filler = Backfiller(backfills, gameservers, QUEUE)
    await filler.scan()
    real_write = filler._write

    async def write_then_cancel(*args, **kwargs):  # the player cancels while the server is written
        written = await real_write(*args, **kwargs)
        await tickets.cancel(near)
        return written

    filler._write = write_then_cancel  # type: ignore[method-assign]
    await filler.fill(await tickets.pool("4v4"))
    assert (await tickets.get(near)).state is TicketState.CANCELLED
    gs = await gameservers.get("arena-0")
    assert "near" not in gs.status.lists[PLAYERS_LIST].values
    assert "near" not in json.loads(gs.metadata.annotations[PLAYER_TOKENS_ANNOTATION])
    [still] = await backfills.open_backfills("4v4")
    assert still.open_slots == (0, 1)


async def test_a_backfill_of_a_server_that_moved_on_is_cancelled(stores) -> None:
    tickets, backfills, gameservers = stores
    gs = await running_match(gameservers)
    await queued(tickets, [player("near", 1550)])
    filler = Backfiller(backfills, gameservers, QUEUE)
    await filler.scan()
    await gameservers.update(gs.with_status(state=GameServerState.SHUTDOWN))
    left = await filler.fill(await tickets.pool("4v4"))
    assert len(left) == 1 and not await backfills.open_backfills("4v4")


async def test_opening_by_api_then_by_list_keeps_one_backfill_per_server(stores) -> None:
    _, backfills, gameservers = stores
    await running_match(gameservers, left=("p7", "p6"))
    done, first = await backfills.open(Backfill(new_ticket_id("4v4"), "4v4", MATCH, "arena-0", (0, 1), time.time()))
    assert done == "opened"
    await Backfiller(backfills, gameservers, QUEUE).scan()
    [only] = await backfills.open_backfills("4v4")
    assert only.id == first.id and only.open_slots == (0, 2)


async def test_a_director_that_dies_after_writing_the_server_leaves_no_phantom(stores) -> None:
    """The fill's server write happened (the player is in the List, their token hash in the
    annotation), then its director died before the commit. The List is full, so the backfill
    would look full; once the fill's deadline passed, the next pass takes the phantom player off
    the server and the ticket (back in the pool at its place) fills the slot, once."""
    tickets, backfills, gameservers = stores
    near, filler, opened = await claimed_fill(stores, "dead-fill")
    assert await filler._write(opened, "dead-fill", {"near": "lost-token"}, {"near": 1}) is not None
    await filler.scan()  # the List looks full now: the backfill is busy with the fill, not closed
    assert [b.id for b in await backfills.open_backfills("4v4")] == [opened.id]
    await asyncio.sleep(0.4)  # the director is dead: the fill's deadline passes
    await tickets.reap("4v4")
    await filler.fill(await tickets.pool("4v4"))  # one pass: the phantom comes off, the ticket fills the slot
    got = await tickets.get(near)
    assert got.state is TicketState.MATCHED and got.assignment is not None
    gs = await gameservers.get("arena-0")
    assert gs.status.lists[PLAYERS_LIST].values.count("near") == 1
    hashes = json.loads(gs.metadata.annotations[PLAYER_TOKENS_ANNOTATION])
    assert hashes["near"] == token_hash(got.assignment.tokens["near"])  # the live token, not the lost one
    assert "dead-fill" not in gs.metadata.annotations[BACKFILL_FILLS_ANNOTATION].split()
    assert "~dead-fill" in gs.metadata.annotations[BACKFILL_FILLS_ANNOTATION].split()


async def test_a_fill_written_after_it_was_swept_writes_nothing(stores) -> None:
    """A director claims a fill and stalls past its deadline before writing the server. The next
    pass sweeps the fill (nothing on the server yet) and fills the slot with the ticket again, under
    a live token. When the stalled write finally comes it must write nothing: its player would be
    on the server twice over (a stale token, or beside whoever took the slot), and killed before
    its commit, that director would leave them there for good."""
    tickets, _, gameservers = stores
    near, filler, opened = await claimed_fill(stores, "stalled-fill")
    await asyncio.sleep(0.4)  # the fill's director stalls here, before its server write
    await tickets.reap("4v4")
    await filler.fill(await tickets.pool("4v4"))  # swept, then the slot filled again by the same ticket
    got = await tickets.get(near)
    assert got.state is TicketState.MATCHED and got.assignment is not None
    before = await gameservers.get("arena-0")
    with pytest.raises(SweptFillError):
        await filler._write(opened, "stalled-fill", {"near": "stale-token"}, {"near": 0})
    gs = await gameservers.get("arena-0")
    assert gs.metadata.resource_version == before.metadata.resource_version  # nothing written
    hashes = json.loads(gs.metadata.annotations[PLAYER_TOKENS_ANNOTATION])
    assert hashes["near"] == token_hash(got.assignment.tokens["near"])
    assert json.loads(gs.metadata.annotations[PLAYER_TEAMS_ANNOTATION])["near"] == 1
    assert len(gs.status.lists[PLAYERS_LIST].values) == 8


async def test_following_the_watch_opens_and_cancels(stores) -> None:
    """With the shared informer, a pass looks only at the servers that changed: a leaver opens a
    backfill, and the server's end (Shutdown) cancels it."""
    _, backfills, gameservers = stores
    informer = Informer(gameservers)
    watching = asyncio.create_task(informer.run())
    try:
        filler = Backfiller(backfills, gameservers, QUEUE)
        stop = filler.follow(informer)
        gs = await running_match(gameservers)

        async def opened() -> bool:
            await filler.scan()
            return len(await backfills.open_backfills("4v4")) == 1

        await eventually(opened, within=10)
        [backfill] = await backfills.open_backfills("4v4")
        await gameservers.update((await gameservers.get(gs.name)).with_status(state=GameServerState.SHUTDOWN))

        async def cancelled() -> bool:
            await filler.scan()
            return (await backfills.get(backfill.id)).state is BackfillState.CANCELLED

        await eventually(cancelled, within=10)
        stop()
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching


async def test_a_filled_ticket_is_stored_like_any_matched_one_and_a_retried_commit_changes_nothing(
    stores: tuple[RedisTicketStore, RedisBackfillStore, RedisStore[GameServer]], redis_client: aioredis.Redis
) -> None:
    tickets, backfills, gameservers = stores
    await running_match(gameservers, left=("p7", "p6"))
    [near] = await queued(tickets, [player("near", 1550)])
    filler = Backfiller(backfills, gameservers, QUEUE)
    await filler.scan()
    [opened] = await backfills.open_backfills("4v4")
    commits = []
    real_commit = backfills.commit

    async def commit_twice(*args: Any, **kwargs: Any) -> bool:  # the reply was lost: sent again
        commits.append(await real_commit(*args, **kwargs))
        return await real_commit(*args, **kwargs)

    backfills.commit = commit_twice  # type: ignore[method-assign]
    await filler.fill(await tickets.pool("4v4"))
    assert commits == [True]
    assert (
        await redis_client.hget(Keys.of("4v4").match, near)
    ) == MATCH.encode()  # the match, as for its first players
    after = await backfills.get(opened.id)
    assert (after.open_slots, after.filled, after.state) == ((0, 1), 1, BackfillState.OPEN)  # taken once
    gs = await gameservers.get("arena-0")  # the retry answered as the first: nothing was undone
    assert "near" in gs.status.lists[PLAYERS_LIST].values
    assert "near" in json.loads(gs.metadata.annotations[PLAYER_TOKENS_ANNOTATION])


async def test_closed_backfills_are_purged_after_the_retention(redis_client: aioredis.Redis) -> None:
    tickets = RedisTicketStore(redis_client, retention=0.2)
    backfills = RedisBackfillStore(tickets)
    _, opened = await backfills.open(Backfill(new_ticket_id("4v4"), "4v4", MATCH, "arena-0", (0, 1), time.time()))
    assert await backfills.close(opened)
    assert (await backfills.get(opened.id)).state is BackfillState.CANCELLED
    await asyncio.sleep(0.3)
    await backfills.lapsed("4v4")  # each pass's sweep purges on the way
    with pytest.raises(NotFoundError):
        await backfills.get(opened.id)
