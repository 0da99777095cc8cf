"""A throw-away 3-node Redis Cluster for tests, from the same binary as ``EmbeddedRedis``.

Three primaries, no replicas: enough to prove that every key of a queue lands in one slot and
that scripts, blocking reads and redirects work through ``redis.asyncio.cluster.RedisCluster``.
Each node gets its own data directory and an explicit cluster-bus port (``--cluster-port``), so
no node depends on ``port + 10000`` being free. Slots are split in three ranges with
``CLUSTER ADDSLOTSRANGE`` and the nodes are joined with ``CLUSTER MEET``; ``start`` returns once
every node reports ``cluster_state:ok``, knows the others and sees all slots (polled every 10 ms).
That takes about 2 s, nearly all of it the server's own wait before a fresh primary turns ``ok``
(``CLUSTER_WRITABLE_DELAY``); no sleep of ours adds to it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis

from fleetmatch.backends.redis.embedded import EmbeddedRedis, free_port
from fleetmatch.errors import ConfigError

SLOTS = 16384


def _command(client: redis.Redis, *args: str | int) -> Any:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


class ClusterNode(EmbeddedRedis):
    """One cluster-enabled server; its bus port is picked with its client port."""

    def __init__(self, data_dir: Path, *, binary: str | None = None) -> None:
        super().__init__(data_dir, binary=binary, persist=False)
        self.bus_port = 0

    def _argv(self, port: int) -> list[str]:
        self.bus_port = free_port()
        return [
            *super()._argv(port),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-port",
            str(self.bus_port),
            "--cluster-node-timeout",
            "5000",
        ]


class LocalCluster:
    """``size`` primaries on loopback, started by ``start`` and stopped by ``stop``."""

    def __init__(self, base_dir: Path, *, size: int = 3, binary: str | None = None) -> None:
        self.nodes = [ClusterNode(base_dir / f"node{i}", binary=binary) for i in range(size)]

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """A startup URL for ``RedisCluster.from_url`` (it discovers the other nodes)."""
        return self.nodes[0].url

    def start(self, timeout: float = 20.0) -> None:
        try:
            for node in self.nodes:
                node.start()
            self._form(timeout)
        except BaseException:
            self.stop()
            raise

    def _form(self, timeout: float) -> None:
        clients = [redis.Redis(port=port, socket_timeout=5) for port in self.ports]
        try:
            bounds = [SLOTS * i // len(clients) for i in range(len(clients) + 1)]
            for i, client in enumerate(clients):
                _command(client, "CLUSTER ADDSLOTSRANGE", bounds[i], bounds[i + 1] - 1)
            for node in self.nodes[1:]:
                _command(clients[0], "CLUSTER MEET", "127.0.0.1", node.port, node.bus_port)
            deadline = time.monotonic() + timeout
            while not all(self._ready(c, len(clients)) for c in clients):
                if time.monotonic() > deadline:
                    states = [_command(c, "CLUSTER INFO").get("cluster_state") for c in clients]
                    raise ConfigError(f"test cluster did not form within {timeout}s: {states}")
                time.sleep(0.01)
        finally:
            for client in clients:
                client.close()

    @staticmethod
    def _ready(client: redis.Redis, size: int) -> bool:
        info = _command(client, "CLUSTER INFO")
        if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) != size:
            return False
        # Every node must also see every other node's slots, or a client may start on a stale map.
        shards = _command(client, "CLUSTER SLOTS")
        return sum(int(end) - int(start) + 1 for start, end, *_ in shards) == SLOTS

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
