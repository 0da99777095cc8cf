"""``RedisTicketStore`` against a real standalone Redis and a real 3-node Redis Cluster.

Every test runs twice through the parametrized ``backend`` fixture. Concurrency tests race
several stores, each with its own client (its own connections), not one pipelined socket. Event
tests never sleep to prove that nothing arrived: after the changes under test they cancel a
*sentinel* ticket and require the delivered ids, up to the sentinel, to be exactly the expected
ones, so a missing, duplicated, reordered or spurious event fails deterministically.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from fleetmatch.backends.redis.client import connect
from fleetmatch.backends.redis.embedded import EmbeddedRedis
from fleetmatch.errors import AlreadyExistsError, ConfigError, NotFoundError, ValidationError
from fleetmatch.models import PortStatus
from matchmaker.errors import AlreadyQueuedError
from matchmaker.models import Assignment, Player, Ticket, TicketState, new_ticket_id
from matchmaker.store import Reaped, TicketStore
from matchmaker.tickets import EXPIRED_REASON, Client, Keys, RedisTicketStore, _backend
from tests.clusterfixture import LocalCluster
from tests.waiting import eventually

Q = "duel"
LIMIT = 100
"""Open tickets per player, for tests that are not about the limit."""
LEASE = 30.0


class Backend:
    """One Redis deployment (standalone or cluster) and the clients a test opened on it."""

    def __init__(self, make: Callable[[], Client]) -> None:
        self._make = make
        self._clients: list[Client] = []

    def client(self) -> Client:
        client = self._make()
        self._clients.append(client)
        return client

    def store(self, **kwargs: Any) -> RedisTicketStore:
        """A store with its own client: stores race each other over separate connections."""
        return RedisTicketStore(self.client(), **kwargs)

    async def primaries(self) -> list[aioredis.Redis]:
        """A plain client per primary (closed with the backend), for server-side inspection."""
        client = self.client()
        if isinstance(client, RedisCluster):
            await client.initialize()
            nodes = [(n.host, int(n.port)) for n in client.get_primaries()]
            plain = [aioredis.Redis(host=h, port=p) for h, p in nodes]
            self._clients.extend(plain)
            return plain
        return [client]

    async def slot(self, key: str) -> int:
        client = self.client()
        if isinstance(client, RedisCluster):
            return int(await client.cluster_keyslot(key))
        return key_slot(key.encode())

    async def keys(self) -> dict[str, int]:
        """Every key stored anywhere -> the index of the primary holding it."""
        found: dict[str, int] = {}
        for i, node in enumerate(await self.primaries()):
            async for key in node.scan_iter(count=1000):
                found[key.decode()] = i
        return found

    async def kill_blocked_readers(self) -> int:
        """Drop every connection whose last command was XREAD (an ``updates`` reader)."""
        killed = 0
        for node in await self.primaries():
            for info in await node.client_list():
                if info.get("cmd") == "xread":
                    killed += int(await node.client_kill_filter(_id=info["id"]))
        return killed

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


@pytest.fixture(params=["standalone", "cluster"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "standalone":
        server: EmbeddedRedis = request.getfixturevalue("redis_server")
        b = Backend(lambda: connect(server.url, name="tests"))
    else:
        cluster: LocalCluster = request.getfixturevalue("redis_cluster")
        b = Backend(lambda: RedisCluster.from_url(cluster.url, socket_connect_timeout=5))
    for node in await b.primaries():
        await node.flushall()
    try:
        yield b
    finally:
        await b.aclose()


@pytest.fixture
def store(backend: Backend) -> RedisTicketStore:
    return backend.store()


def _implements_the_port(store: RedisTicketStore) -> TicketStore:
    return store  # mypy checks that RedisTicketStore matches the TicketStore protocol


_players = iter(range(10**9))


def ticket(
    *,
    at: float | None = None,
    ttl: float = 600.0,
    owner: str | None = None,
    party: int = 1,
    queue: str = Q,
    players: tuple[str, ...] = (),
) -> Ticket:
    """A queued ticket enqueued at ``at`` (now by default), expiring ``ttl`` later (0: never), of
    ``players`` (default: ``party`` new players)."""
    at = time.time() if at is None else at
    names = players or tuple(f"p{next(_players)}" for _ in range(party))
    members = tuple(
        Player(pid, {"skill": 1500.0 + i, "mode": "ranked"}, {"eu": 20.0 + i}) for i, pid in enumerate(names)
    )
    return Ticket(
        id=new_ticket_id(queue, at),
        queue=queue,
        owner=owner or members[0].id,
        players=members,
        created_at=at,
        enqueued_at=at,
        expires_at=at + ttl if ttl else 0.0,
    )


async def open_tickets(store: RedisTicketStore, n: int, *, start: float | None = None, **kw: Any) -> list[Ticket]:
    """``n`` tickets enqueued 1 ms apart, oldest first."""
    start = time.time() if start is None else start
    return [await store.create(ticket(at=start + i / 1000, **kw), max_open_per_player=LIMIT) for i in range(n)]


def assignment(match_id: str, i: int = 0) -> Assignment:
    return Assignment(
        match_id=match_id,
        game_server=f"gs-{match_id}",
        address="10.0.0.7",
        port=7000 + i,
        ports=(PortStatus("game", 7000 + i),),
        team=i % 2,
        region="eu",
        tokens={"p": f"token-{i}"},
    )


def ids(tickets: list[Ticket]) -> list[str]:
    return [t.id for t in tickets]


class Updates:
    """Collects ``store.updates(queue)`` in a task; ``through_sentinel`` returns what came before a
    sentinel cancellation."""

    def __init__(self, store: RedisTicketStore, queue: str = Q) -> None:
        self.seen: list[str] = []
        self._store = store
        self.task = asyncio.create_task(self._run(store, queue))

    async def _run(self, store: RedisTicketStore, queue: str) -> None:
        async for ticket_id in store.updates(queue):
            self.seen.append(ticket_id)

    async def started(self) -> None:
        """Wait for the reader's "subscribed" marker (``""``): from then on nothing may be missed."""
        await eventually(lambda: "" in self.seen, within=10, what=lambda: f"no subscribed marker; got {self.seen}")
        assert self.seen == [""], self.seen  # the marker comes first, and only once
        self.seen.clear()

    async def through_sentinel(self) -> list[str]:
        sentinel = (await self._store.create(ticket(), max_open_per_player=LIMIT)).id
        await self._store.cancel(sentinel)
        await eventually(lambda: sentinel in self.seen, within=15, what=lambda: f"sentinel missing; got {self.seen}")
        got, self.seen = self.seen[: self.seen.index(sentinel)], self.seen[self.seen.index(sentinel) + 1 :]
        return got

    async def aclose(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def updates(store: RedisTicketStore) -> AsyncIterator[Updates]:
    collector = Updates(store)
    try:
        await collector.started()
        yield collector
    finally:
        await collector.aclose()


class TestTicketStore:
    async def test_create_get_cancel(self, store: RedisTicketStore) -> None:
        party = ticket(party=3, owner="key:backend")
        created = await store.create(party, max_open_per_player=3)
        assert created == party
        got = await store.get(party.id)
        assert got == party and got.state is TicketState.QUEUED and got.assignment is None
        assert got.players[1].attributes == {"skill": 1501.0, "mode": "ranked"}

        cancelled = await store.cancel(party.id, reason="left the lobby")
        assert (cancelled.state, cancelled.reason) == (TicketState.CANCELLED, "left the lobby")
        assert await store.get(party.id) == cancelled
        again = await store.cancel(party.id, reason="another reason")
        assert again == cancelled, "a cancelled ticket is returned unchanged"
        assert await store.pool(Q) == []

    async def test_unknown_and_malformed(self, store: RedisTicketStore) -> None:
        unknown = new_ticket_id(Q)
        for call in (store.get, store.cancel):
            with pytest.raises(NotFoundError):
                await call(unknown)
            with pytest.raises(NotFoundError):
                await call("not-a-ticket-id")
        t = ticket()
        await store.create(t, max_open_per_player=LIMIT)
        with pytest.raises(AlreadyExistsError):
            await store.create(dataclasses.replace(t, owner="someone-else"), max_open_per_player=LIMIT)
        with pytest.raises(ValidationError, match="not a ticket id of queue"):
            await store.create(dataclasses.replace(t, queue="other"), max_open_per_player=1)

    async def test_one_open_ticket_per_player_whoever_opens_it(self, store: RedisTicketStore) -> None:
        first = await store.create(ticket(players=("ann",)), max_open_per_player=1)
        for owner, players, index in (("ann", ("ann",), 0), ("key:shop", ("bob", "ann"), 1)):
            with pytest.raises(AlreadyQueuedError) as err:
                await store.create(ticket(owner=owner, players=players), max_open_per_player=1)
            assert (err.value.field, err.value.player, err.value.ticket_id) == (f"players[{index}].id", "ann", first.id)
            assert err.value.http_status == 409 and first.id in err.value.message
        bob = await store.create(ticket(players=("bob",)), max_open_per_player=1)  # a refusal wrote nothing
        assert ids(await store.pool(Q)) == [first.id, bob.id]

        await store.cancel(first.id)  # cancelling frees the player
        second = await store.create(ticket(players=("ann",)), max_open_per_player=1)
        assert await store.claim(Q, "m1", [second.id], lease_seconds=LEASE)  # a leased ticket is still open
        with pytest.raises(AlreadyQueuedError):
            await store.create(ticket(players=("ann",)), max_open_per_player=1)
        assert await store.assign(Q, "m1", {second.id: assignment("m1")})  # a match frees the player
        third = await store.create(ticket(players=("ann",), ttl=5), max_open_per_player=1)
        assert (await store.reap(Q, now=third.expires_at + 1)).tickets_expired == (third.id,)  # so does expiry
        await store.create(ticket(players=("ann",)), max_open_per_player=1)
        other = await store.create(ticket(players=("ann",), queue="other"), max_open_per_player=1)
        assert other.queue == "other", "the limit is per queue"

    async def test_the_limit_counts_every_player_of_a_party(self, store: RedisTicketStore) -> None:
        """Five leaders each put the same sixth player in their party: one ticket gets them."""
        outcomes: list[Ticket | AlreadyQueuedError] = []
        for i in range(5):
            try:
                outcomes.append(
                    await store.create(ticket(owner=f"lead{i}", players=(f"lead{i}", "six")), max_open_per_player=1)
                )
            except AlreadyQueuedError as exc:
                outcomes.append(exc)
        assert isinstance(outcomes[0], Ticket)
        assert [(e.field, e.ticket_id) for e in outcomes[1:] if isinstance(e, AlreadyQueuedError)] == [
            ("players[1].id", outcomes[0].id)
        ] * 4
        for i in range(1, 5):  # the refused leaders were not counted either
            await store.create(ticket(players=(f"lead{i}",)), max_open_per_player=1)

    async def test_a_higher_limit_names_the_oldest_ticket(self, store: RedisTicketStore) -> None:
        a = await store.create(ticket(players=("ann",)), max_open_per_player=2)
        await store.create(ticket(players=("ann", "bob")), max_open_per_player=2)
        with pytest.raises(AlreadyQueuedError) as err:
            await store.create(ticket(players=("ann",)), max_open_per_player=2)
        assert (err.value.ticket_id, err.value.limit) == (a.id, 2)
        await store.create(ticket(players=("bob",)), max_open_per_player=2)
        with pytest.raises(ValidationError, match="at least 1"):
            await store.create(ticket(), max_open_per_player=0)

    async def test_the_player_limit_is_atomic(self, backend: Backend) -> None:
        stores = [backend.store() for _ in range(4)]
        results = await asyncio.gather(
            *(
                stores[i % 4].create(ticket(players=("eve", f"x{i}") if i % 2 else (f"x{i}",)), max_open_per_player=3)
                for i in range(24)
            ),
            return_exceptions=True,
        )
        with_eve = [r for i, r in enumerate(results) if i % 2]
        assert sum(isinstance(r, Ticket) for r in with_eve) == 3
        assert all(isinstance(r, Ticket | AlreadyQueuedError) for r in with_eve), with_eve
        assert all(isinstance(r, Ticket) for i, r in enumerate(results) if not i % 2)
        assert len(await stores[0].pool(Q)) == 12 + 3

    async def test_a_claim_with_one_player_in_two_tickets_changes_nothing(self, store: RedisTicketStore) -> None:
        """The last line of defence against a match function that pairs a player with themselves."""
        a = await store.create(ticket(players=("ann",)), max_open_per_player=2)
        b = await store.create(ticket(players=("bob", "ann")), max_open_per_player=2)
        c = await store.create(ticket(players=("cat",)), max_open_per_player=2)
        with pytest.raises(ValidationError, match="'ann' is in two tickets") as err:
            await store.claim(Q, "m1", [a.id, c.id, b.id], lease_seconds=LEASE)
        assert err.value.field == "ticket_ids"
        assert ids(await store.pool(Q)) == [a.id, b.id, c.id]
        assert await store.claim(Q, "m2", [a.id, c.id], lease_seconds=LEASE)

    async def test_pool_is_oldest_first_and_only_queued(self, store: RedisTicketStore) -> None:
        start = time.time()
        order = [5, 0, 3, 1, 4, 2]  # created out of enqueue order
        made = {i: await store.create(ticket(at=start + i), max_open_per_player=LIMIT) for i in order}
        assert ids(await store.pool(Q)) == [made[i].id for i in range(6)]
        assert await store.claim(Q, "m1", [made[1].id, made[4].id], lease_seconds=LEASE)
        await store.cancel(made[2].id)
        pool = await store.pool(Q)
        assert ids(pool) == [made[i].id for i in (0, 3, 5)]
        assert all(t.state is TicketState.QUEUED for t in pool)
        assert [t.enqueued_at for t in pool] == [start, start + 3, start + 5]

    async def test_pool_fetches_only_tickets_it_has_not_seen(
        self, store: RedisTicketStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        start = time.time()
        first = await open_tickets(store, 5, start=start)
        fetched: list[int] = []
        hmget = store._redis.hmget

        async def counting_hmget(key: str, keys: list[bytes]) -> Any:
            fetched.append(len(keys))
            return await hmget(key, keys)

        monkeypatch.setattr(store._redis, "hmget", counting_hmget)
        assert ids(await store.pool(Q)) == ids(first)
        assert ids(await store.pool(Q)) == ids(first)
        later = await open_tickets(store, 2, start=start + 1)
        assert ids(await store.pool(Q)) == ids(first + later)
        assert fetched == [5, 2]

    async def test_claim_is_all_or_nothing(self, store: RedisTicketStore) -> None:
        a, b, c, d = await open_tickets(store, 4)
        assert await store.claim(Q, "m1", [a.id, b.id], lease_seconds=LEASE)
        assert not await store.claim(Q, "m2", [b.id, c.id], lease_seconds=LEASE), "b is leased by m1"
        await store.cancel(d.id)
        assert not await store.claim(Q, "m3", [c.id, d.id], lease_seconds=LEASE), "d is cancelled"
        assert not await store.claim(Q, "m4", [c.id, new_ticket_id(Q)], lease_seconds=LEASE), "unknown ticket"
        other = await store.create(ticket(queue="other"), max_open_per_player=LIMIT)
        assert not await store.claim(Q, "m5", [c.id, other.id], lease_seconds=LEASE), "another queue's ticket"
        assert ids(await store.pool(Q)) == [c.id], "no failed claim took anything"
        assert (await store.get(c.id)).state is TicketState.QUEUED
        assert [(await store.get(t.id)).state for t in (a, b)] == [TicketState.LEASED] * 2
        with pytest.raises(ValidationError, match="twice"):
            await store.claim(Q, "m6", [c.id, c.id], lease_seconds=LEASE)
        with pytest.raises(ValidationError):
            await store.claim(Q, "m6", [], lease_seconds=LEASE)

    async def test_concurrent_overlapping_claims_never_share_a_ticket(self, backend: Backend) -> None:
        stores = [backend.store() for _ in range(4)]
        tickets = ids(await open_tickets(stores[0], 40))
        rng = random.Random(7)
        proposals = [(f"m{i}", rng.sample(tickets, rng.randint(2, 5))) for i in range(200)]

        async def claim(i: int, match_id: str, ticket_ids: list[str]) -> bool:
            return await stores[i % len(stores)].claim(Q, match_id, ticket_ids, lease_seconds=LEASE)

        won = await asyncio.gather(*(claim(i, m, t) for i, (m, t) in enumerate(proposals)))
        winners = [(m, t) for (m, t), ok in zip(proposals, won, strict=True) if ok]
        claimed = [t for _, ts in winners for t in ts]
        assert winners and len(claimed) == len(set(claimed)), "a ticket landed in two leases"
        assert set(ids(await stores[1].pool(Q))) == set(tickets) - set(claimed)
        for ticket_id in tickets:
            expected = TicketState.LEASED if ticket_id in claimed else TicketState.QUEUED
            assert (await stores[2].get(ticket_id)).state is expected
        # Only the holder can assign; a loser that proposed the same tickets cannot.
        losers = [(m, t) for (m, t), ok in zip(proposals, won, strict=True) if not ok and set(t) <= set(claimed)]
        for match_id, ticket_ids in losers:
            assert not await stores[3].assign(Q, match_id, {t: assignment(match_id) for t in ticket_ids})
        for match_id, ticket_ids in winners:
            assert await stores[3].assign(Q, match_id, {t: assignment(match_id) for t in ticket_ids})

    async def test_release_keeps_the_original_place(self, store: RedisTicketStore) -> None:
        a, b, c = await open_tickets(store, 3)
        assert await store.claim(Q, "m1", [a.id, c.id], lease_seconds=LEASE)
        (d,) = await open_tickets(store, 1, start=a.enqueued_at + 1)
        assert await store.release(Q, "someone-else", [a.id, c.id]) == 0
        assert ids(await store.pool(Q)) == [b.id, d.id]
        assert await store.release(Q, "m1", [a.id, c.id]) == 2
        assert ids(await store.pool(Q)) == [a.id, b.id, c.id, d.id], "released tickets are ahead of younger ones"
        assert (await store.get(a.id)).enqueued_at == a.enqueued_at
        assert await store.release(Q, "m1", [a.id]) == 0, "no longer leased"

    async def test_lease_expiry_returns_tickets_to_their_place(self, store: RedisTicketStore) -> None:
        a, b, c = await open_tickets(store, 3)
        assert await store.claim(Q, "m1", [a.id, b.id], lease_seconds=LEASE)
        assert await store.reap(Q) == Reaped(), "nothing is due yet"
        reaped = await store.reap(Q, now=time.time() + LEASE + 1)
        assert sorted(reaped.leases_returned) == sorted([a.id, b.id]) and reaped.tickets_expired == ()
        assert ids(await store.pool(Q)) == [a.id, b.id, c.id]
        assert not await store.assign(Q, "m1", {a.id: assignment("m1"), b.id: assignment("m1")})
        assert await store.claim(Q, "m2", [a.id, b.id], lease_seconds=LEASE), "free for the next director"

    async def test_a_lease_that_runs_out_lists_its_match_as_an_orphan(self, store: RedisTicketStore) -> None:
        a, b, c = await open_tickets(store, 3)
        assert await store.claim(Q, "m1", [a.id, b.id], lease_seconds=LEASE)
        assert await store.claim(Q, "m2", [c.id], lease_seconds=LEASE)
        assert await store.assign(Q, "m2", {c.id: assignment("m2")})  # m2 was played: no orphan
        now = time.time() + LEASE + 1
        assert (await store.reap(Q, now=now)).matches_abandoned == ("m1",)
        assert await store.take_orphans(Q, limit=10, now=now) == ["m1"]
        assert await store.take_orphans(Q, limit=10, now=now) == [], "taken: not due again at once"
        assert await store.take_orphans(Q, limit=10, now=now + 60) == ["m1"], "a failed release is retried"
        await store.forget_orphan(Q, "m1")
        assert await store.take_orphans(Q, limit=10, now=now + 10**5) == []

    async def test_a_release_after_an_allocation_may_list_the_match(self, store: RedisTicketStore) -> None:
        a, b = await open_tickets(store, 2)
        assert await store.claim(Q, "m1", [a.id], lease_seconds=LEASE)
        assert await store.claim(Q, "m2", [b.id], lease_seconds=LEASE)
        assert await store.release(Q, "m1", [a.id]) == 1
        assert await store.release(Q, "m2", [b.id], orphaned=True) == 1
        assert await store.release(Q, "m3", [], orphaned=True) == 0  # its tickets went back already
        assert sorted(await store.take_orphans(Q, limit=10)) == ["m2", "m3"]

    async def test_a_release_after_the_assignment_lists_no_orphan(self, store: RedisTicketStore) -> None:
        """A director stopped between its assignment and the reply gives the match back: the
        players keep their server (listing it would have it released under them)."""
        (a,) = await open_tickets(store, 1)
        assert await store.claim(Q, "m1", [a.id], lease_seconds=LEASE)
        assert await store.assign(Q, "m1", {a.id: assignment("m1")})
        assert await store.release(Q, "m1", [a.id], orphaned=True) == 0
        assert await store.take_orphans(Q, limit=10) == []
        assert (await store.get(a.id)).state is TicketState.MATCHED

    async def test_renew_keeps_a_held_lease_and_never_revives_a_lapsed_one(self, store: RedisTicketStore) -> None:
        a, b, c = await open_tickets(store, 3)
        assert await store.claim(Q, "m1", [a.id, b.id], lease_seconds=0.3)
        assert await store.claim(Q, "m2", [c.id], lease_seconds=0.3)
        assert await store.renew(Q, "m1", [a.id, b.id], lease_seconds=LEASE)
        assert not await store.renew(Q, "m2", [a.id], lease_seconds=LEASE), "not m2's lease"
        await asyncio.sleep(0.4)
        assert (await store.reap(Q)).leases_returned == (c.id,), "m1 renewed, m2 lapsed"
        assert not await store.renew(Q, "m2", [c.id], lease_seconds=LEASE), "back in the pool: not revived"
        assert await store.assign(Q, "m1", {a.id: assignment("m1"), b.id: assignment("m1")})

    async def test_orphans_back_off_and_are_given_up(
        self, store: RedisTicketStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        monkeypatch.setattr("matchmaker.tickets.ORPHAN_TRIES", 3)
        await store.release(Q, "m1", [], orphaned=True)
        start, taken = time.time(), []
        for step in range(4):
            now = start + 1000 * step
            taken.append(await store.take_orphans(Q, limit=10, now=now))
            assert await store.take_orphans(Q, limit=10, now=now + 1) == []
        assert taken == [["m1"], ["m1"], ["m1"], []]
        assert any("gave up releasing the server of abandoned match m1" in r.getMessage() for r in caplog.records)
        await store.release(Q, "m2", [], orphaned=True)
        await store.reap(Q, now=time.time() + 86400 + 1)  # a day nobody took it: forgotten
        assert await store.take_orphans(Q, limit=10, now=time.time() + 10**6) == []

    async def test_an_expired_lease_cannot_assign_even_before_reap(self, store: RedisTicketStore) -> None:
        a, b = await open_tickets(store, 2)
        assert await store.claim(Q, "m1", [a.id, b.id], lease_seconds=0.05)
        await asyncio.sleep(0.1)
        assert not await store.assign(Q, "m1", {a.id: assignment("m1"), b.id: assignment("m1")})
        assert (await store.get(a.id)).state is TicketState.LEASED, "a failed assign changes nothing"
        assert sorted((await store.reap(Q)).leases_returned) == sorted([a.id, b.id])
        assert ids(await store.pool(Q)) == [a.id, b.id]

    async def test_ttl_expiry(self, store: RedisTicketStore) -> None:
        start = time.time()
        old = await store.create(ticket(at=start, ttl=10), max_open_per_player=LIMIT)
        forever = await store.create(ticket(at=start + 0.001, ttl=0), max_open_per_player=LIMIT)
        leased = await store.create(ticket(at=start + 0.002, ttl=10), max_open_per_player=LIMIT)
        young = await store.create(ticket(at=start + 5, ttl=10), max_open_per_player=LIMIT)
        assert await store.claim(Q, "m1", [leased.id], lease_seconds=3600)

        reaped = await store.reap(Q, now=start + 11)
        assert reaped.tickets_expired == (old.id,), "a leased ticket is left to its holder"
        expired = await store.get(old.id)
        assert (expired.state, expired.reason) == (TicketState.EXPIRED, EXPIRED_REASON)
        assert ids(await store.pool(Q)) == [forever.id, young.id]
        assert await store.assign(Q, "m1", {leased.id: assignment("m1")}), "its holder may still assign it"

        await store.reap(Q, now=start + 10**6)
        assert ids(await store.pool(Q)) == [forever.id]

    async def test_a_lease_that_ends_past_the_ttl_expires_the_ticket(self, store: RedisTicketStore) -> None:
        start = time.time()
        t = await store.create(ticket(at=start, ttl=10), max_open_per_player=LIMIT)
        assert await store.claim(Q, "m1", [t.id], lease_seconds=LEASE)
        reaped = await store.reap(Q, now=time.time() + LEASE + 1)
        assert (reaped.leases_returned, reaped.tickets_expired) == ((), (t.id,))
        assert (await store.get(t.id)).state is TicketState.EXPIRED

    async def test_cancel_during_a_claim(self, store: RedisTicketStore) -> None:
        a, b, c, d = await open_tickets(store, 4)
        assert await store.claim(Q, "m1", [a.id, b.id, c.id], lease_seconds=LEASE)
        assert (await store.cancel(b.id)).state is TicketState.CANCELLED
        match = {t.id: assignment("m1", i) for i, t in enumerate((a, b, c))}
        assert not await store.assign(Q, "m1", match), "b was cancelled: the match is off"
        assert [(await store.get(t.id)).state for t in (a, b, c)] == [
            TicketState.LEASED,
            TicketState.CANCELLED,
            TicketState.LEASED,
        ]
        assert await store.release(Q, "m1", [a.id, b.id, c.id]) == 2
        assert ids(await store.pool(Q)) == [a.id, c.id, d.id]
        assert (await store.get(b.id)).state is TicketState.CANCELLED

    async def test_racing_cancels_and_claims_never_match_a_cancelled_ticket(self, backend: Backend) -> None:
        director, player = backend.store(), backend.store()
        for round_ in range(30):
            a, b = await open_tickets(director, 2)
            match_id = f"m{round_}"
            claim = director.claim(Q, match_id, [a.id, b.id], lease_seconds=LEASE)
            if round_ % 2:  # both orders: the cancel sent first, then the claim first
                _, claimed = await asyncio.gather(player.cancel(b.id), claim)
            else:
                claimed, _ = await asyncio.gather(claim, player.cancel(b.id))
            assigned = claimed and await director.assign(
                Q, match_id, {a.id: assignment(match_id), b.id: assignment(match_id)}
            )
            assert not assigned
            if claimed:
                assert await director.release(Q, match_id, [a.id, b.id]) == 1
            assert (await director.get(a.id)).state is TicketState.QUEUED
            assert (await director.get(b.id)).state is TicketState.CANCELLED
            await director.cancel(a.id)

    async def test_assign_only_with_the_lease(self, store: RedisTicketStore) -> None:
        a, b, c = await open_tickets(store, 3)
        both = {a.id: assignment("m1", 0), b.id: assignment("m1", 1)}
        assert not await store.assign(Q, "m1", both), "not claimed"
        assert await store.claim(Q, "m1", [a.id], lease_seconds=LEASE)
        assert not await store.assign(Q, "m1", both), "b is not leased"
        assert await store.claim(Q, "m2", [b.id], lease_seconds=LEASE)
        assert not await store.assign(Q, "m1", both), "b is leased by m2"
        assert not await store.assign(Q, "m2", {b.id: assignment("m2"), c.id: assignment("m2")})
        assert [(await store.get(t.id)).state for t in (a, b, c)] == [
            TicketState.LEASED,
            TicketState.LEASED,
            TicketState.QUEUED,
        ]
        with pytest.raises(ValidationError, match="match_id"):
            await store.assign(Q, "m1", {a.id: assignment("m2")})

        assert await store.assign(Q, "m1", {a.id: assignment("m1", 0)})
        matched = await store.get(a.id)
        assert (matched.state, matched.assignment) == (TicketState.MATCHED, assignment("m1", 0))
        assert not await store.assign(Q, "m2", {a.id: assignment("m2", 0)}), "matched into another match"
        assert (await store.cancel(a.id)) == matched, "a matched ticket cannot be cancelled"
        assert await store.release(Q, "m1", [a.id]) == 0

    async def test_every_write_is_safe_to_repeat(self, store: RedisTicketStore, updates: Updates) -> None:
        """redis-py re-sends a command whose connection broke, and the first may have run."""
        t = ticket(players=("ann",))
        assert await store.create(t, max_open_per_player=1) == t
        assert await store.create(t, max_open_per_player=1) == t, "the same ticket again: no second place"
        with pytest.raises(AlreadyQueuedError):
            await store.create(ticket(players=("ann",)), max_open_per_player=1)
        (u,) = await open_tickets(store, 1)
        assert await store.claim(Q, "m1", [t.id, u.id], lease_seconds=1)
        assert await store.claim(Q, "m1", [t.id, u.id], lease_seconds=3600), "the holder may claim again"
        assert (await store.reap(Q, now=time.time() + 60)).leases_returned == (), "and that renewed the lease"
        match = {t.id: assignment("m1", 0), u.id: assignment("m1", 1)}
        assert await store.assign(Q, "m1", match)
        assert await store.assign(Q, "m1", match), "the same assign again reports success"
        assert await updates.through_sentinel() == [t.id, u.id], "and announces nothing twice"
        assert (await store.get(u.id)).assignment == assignment("m1", 1)

    async def test_updates_deliver_matched_cancelled_expired_exactly_once(
        self, store: RedisTicketStore, updates: Updates
    ) -> None:
        start = time.time()
        a, b, c, e = await open_tickets(store, 4, start=start)
        x = await store.create(ticket(at=start + 1, ttl=5), max_open_per_player=LIMIT)
        # Changes a waiting client does not care about: no event.
        assert await store.claim(Q, "m0", [c.id, e.id], lease_seconds=LEASE)
        assert await store.release(Q, "m0", [c.id, e.id]) == 2
        assert await store.claim(Q, "m1", [a.id, b.id], lease_seconds=LEASE)
        assert not await store.assign(Q, "m0", {a.id: assignment("m0")})
        # Changes it does.
        assert await store.assign(Q, "m1", {a.id: assignment("m1"), b.id: assignment("m1")})
        await store.cancel(c.id)
        await store.cancel(c.id)  # unchanged: no second event
        await store.cancel(a.id)  # matched: unchanged, no event
        assert (await store.reap(Q, now=x.expires_at + 1)).tickets_expired == (x.id,)
        assert await updates.through_sentinel() == [a.id, b.id, c.id, x.id]
        # Nothing after the sentinel either.
        assert await updates.through_sentinel() == []

    async def test_updates_resume_after_a_lost_connection(
        self, backend: Backend, store: RedisTicketStore, updates: Updates, caplog: pytest.LogCaptureFixture
    ) -> None:
        player = backend.store()  # another frontend: it changes tickets while the reader is cut off
        a, b, c = await open_tickets(player, 3)
        await player.cancel(a.id)
        await eventually(lambda: a.id in updates.seen)
        with caplog.at_level(logging.WARNING, logger="matchmaker.tickets"):
            assert await backend.kill_blocked_readers() >= 1
            await player.cancel(b.id)
            await player.cancel(c.id)
            assert await updates.through_sentinel() == [a.id, b.id, c.id]
        assert any("lost Redis" in r.getMessage() for r in caplog.records), "the reader was not cut off"

    async def test_finished_tickets_are_forgotten_after_the_retention(self, backend: Backend) -> None:
        store = backend.store(retention=60)
        a, b, c = await open_tickets(store, 3)
        await store.cancel(a.id)
        assert await store.claim(Q, "m1", [b.id], lease_seconds=LEASE)
        assert await store.assign(Q, "m1", {b.id: assignment("m1")})
        await store.reap(Q, now=time.time() + 30)
        assert (await store.get(a.id)).state is TicketState.CANCELLED, "still within the retention"
        await store.reap(Q, now=time.time() + 61)
        for gone in (a, b):
            with pytest.raises(NotFoundError):
                await store.get(gone.id)
        assert (await store.get(c.id)).state is TicketState.QUEUED
        keys = Keys.of(Q)
        node = backend.client()
        for per_ticket in (keys.bodies, keys.state, keys.enqueued, keys.owner):
            assert await node.hkeys(per_ticket) == [c.id.encode()], f"{per_ticket} leaks"
        for emptied in (keys.assignment, keys.reason, keys.match, keys.done, keys.leases):
            assert not await node.exists(emptied), f"{emptied} leaks"

    async def test_every_key_of_a_queue_is_in_one_slot(self, backend: Backend, store: RedisTicketStore) -> None:
        keys = Keys.of(Q)
        assert len({await backend.slot(k) for k in keys.all}) == 1
        assert await backend.slot(Keys.of("brawl").pool) == await backend.slot(Keys.of("brawl").events)
        # Exercise every kind of key, then check that nothing outside Keys was written.
        collector = Updates(store)
        try:
            await collector.started()
            a, b, c, d, _ = await open_tickets(store, 5, ttl=5)
            assert await store.claim(Q, "m1", [a.id, b.id], lease_seconds=LEASE)
            assert await store.assign(Q, "m1", {a.id: assignment("m1")} | {b.id: assignment("m1")})
            assert await store.claim(Q, "m2", [c.id], lease_seconds=LEASE)
            await store.cancel(d.id)
            await store.pool(Q)
            assert await collector.through_sentinel() == [a.id, b.id, d.id]
        finally:
            await collector.aclose()
        found = await backend.keys()
        assert set(found) <= set(keys.all), set(found) - set(keys.all)
        assert {keys.pool, keys.leases, keys.ttl, keys.done, keys.assignment, keys.match, keys.events} <= set(found)
        assert len(set(found.values())) == 1, "a queue's keys live on one node"


def test_a_client_that_decodes_responses_is_refused() -> None:
    with pytest.raises(ConfigError, match="decode_responses"):
        RedisTicketStore(aioredis.Redis(decode_responses=True))


def test_only_redis_internals_become_backend_errors() -> None:
    """The workaround for redis-py's None-writer race must not hide our own bugs."""
    with pytest.raises(AttributeError), _backend():
        None.writelines  # type: ignore[attr-defined]  # noqa: B018


async def test_concurrent_block_list_reads_each_get_their_own_players_lists(store: RedisTicketStore) -> None:
    """The reads of one event-loop iteration go to Redis together: each caller still gets exactly
    its own players' stored lists, and none of another's."""
    await store.set_blocks("ann", ["bob", "cat"])
    await store.set_blocks("bob", ["ann"])
    await store.set_blocks("dan", ["eve"])
    asked = [["ann"], ["bob", "cat"], ["zed"], ["dan", "ann"], ["cat"], ["ann"]]
    got = await asyncio.gather(*(store.blocks(players) for players in asked))
    assert got == [
        {"ann": ("bob", "cat")},
        {"bob": ("ann",)},
        {},
        {"dan": ("eve",), "ann": ("bob", "cat")},
        {},
        {"ann": ("bob", "cat")},
    ]
    await store.set_blocks("ann", [])
    assert list(await asyncio.gather(store.blocks(["ann"]), store.blocks(["bob"]))) == [{}, {"bob": ("ann",)}]
