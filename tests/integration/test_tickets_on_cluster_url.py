"""`redis+cluster://` URLs give the ticket store a Redis Cluster client (the matchmaker's
FLEETMATCH_TICKETS_REDIS_URL), and the queue works on it through that path too."""

from __future__ import annotations

import secrets
import time

from redis.asyncio.cluster import RedisCluster

from fleetmatch.backends.redis.client import connect_any
from matchmaker.models import Player, Ticket, TicketState, new_ticket_id
from matchmaker.tickets import RedisTicketStore
from tests.clusterfixture import LocalCluster


async def test_cluster_url_gives_a_working_ticket_store(redis_cluster: LocalCluster) -> None:
    client = connect_any(f"redis+cluster://127.0.0.1:{redis_cluster.ports[1]}", name="tests")
    assert isinstance(client, RedisCluster)
    try:
        store = RedisTicketStore(client)
        queue = f"q{secrets.token_hex(4)}"  # the cluster is shared by the session: a queue of our own
        now = time.time()
        player = Player("p1", attributes={"skill": 1500.0})
        ticket = Ticket(new_ticket_id(queue), queue, "p1", (player,), created_at=now, expires_at=now + 60)
        await store.create(ticket, max_open_per_player=1)
        assert [t.id for t in await store.pool(queue)] == [ticket.id]
        assert await store.claim(queue, "m1", [ticket.id], lease_seconds=30)
        assert (await store.get(ticket.id)).state is TicketState.LEASED
    finally:
        await client.aclose()
