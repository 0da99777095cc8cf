"""A worker of ``fleetmatch allocator --workers N`` reads its share of the servers from the
environment its supervisor gives it (``allocator.workers``)."""

from __future__ import annotations

import pytest

from allocator.index import Share
from allocator.workers import RESTARTS_ENV, WORKER_ENV, WORKERS_ENV, worker_share


@pytest.mark.parametrize(
    ("env", "share"),
    [
        pytest.param({WORKER_ENV: "1", WORKERS_ENV: "3"}, Share(1, 3), id="slot-of-count"),
        pytest.param({WORKER_ENV: "0", WORKERS_ENV: "1"}, Share(0, 1), id="one-worker"),
        pytest.param({}, None, id="not-a-worker"),
        pytest.param({WORKER_ENV: "1", RESTARTS_ENV: "2"}, None, id="no-count"),
        pytest.param({WORKER_ENV: "x", WORKERS_ENV: "2"}, None, id="garbage"),
        pytest.param({WORKER_ENV: "2", WORKERS_ENV: "2"}, None, id="slot-out-of-range"),
    ],
)
def test_worker_share(env: dict[str, str], share: Share | None) -> None:
    assert worker_share(env) == share
