"""Redis clients: one factory for every process (store, tickets, leases).

``connect`` for a single server, ``connect_any`` also for Redis Cluster URLs.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

MAX_CONNECTIONS = 256
"""Per client. Past it, a command waits for a free connection (up to ``POOL_WAIT``) rather than
failing: redis-py's default pool refuses the 101st concurrent command outright."""
POOL_WAIT = 30.0


def connect(url: str, *, name: str = "fleetmatch") -> aioredis.Redis:
    """An asyncio client. No socket timeout: a watch blocks in XREAD on purpose, and redis-py's
    timeout wrapper can swallow a cancellation (Python 3.11), leaving a cancelled watch running.
    Connects time out; keepalive notices dead peers; a burst of commands queues for connections."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT,
        socket_timeout=None,
        socket_connect_timeout=5,
        socket_keepalive=True,
        health_check_interval=30,
        client_name=name,
        decode_responses=False,
    )
    return aioredis.Redis.from_pool(pool)


CLUSTER_SCHEME = "redis+cluster://"


def connect_any(url: str, *, name: str = "fleetmatch") -> aioredis.Redis | RedisCluster:
    """``connect``, or a Redis Cluster client for ``redis+cluster://host:port`` (any one node: the
    client discovers the others). The matchmaker's ticket store runs on either: every key of a
    queue shares one hash slot."""
    if not url.startswith(CLUSTER_SCHEME):
        return connect(url, name=name)
    return RedisCluster.from_url(
        "redis://" + url.removeprefix(CLUSTER_SCHEME),
        socket_connect_timeout=5,
        socket_keepalive=True,
        client_name=name,
        decode_responses=False,
    )
