"""Fixtures for the integration tests that need more than the session's standalone Redis."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.clusterfixture import LocalCluster


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A 3-node Redis Cluster, started on first use and shared by the session (about 2 s: a
    fresh primary waits out Redis' CLUSTER_WRITABLE_DELAY before it reports ``cluster_state:ok``)."""
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), binary=os.environ.get("FLEETMATCH_REDIS_SERVER"))
    cluster.start()
    yield cluster
    cluster.stop()
