"""`fleetmatch up --observability` as a subprocess: every series once over all of up's ports, no
``_created`` series, and a real Prometheus (the ``prometheus`` binary; ``make test`` installs it)
that scrapes the stack and is stopped with it."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleetmatch.allocation import GameServerAllocationSpec, GameServerSelector
from fleetmatch.allocator_client import AllocatorClient
from fleetmatch.stackfile import StackInfo
from loadtest.stack import start_stack, stop_stack
from tests.deploy.test_grafana import DASHBOARD, panels

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@dataclass
class Stack:
    proc: subprocess.Popen[str]
    info: StackInfo
    data_dir: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    assert shutil.which("prometheus"), "no prometheus binary: `make test` installs it (apt-get install prometheus)"
    data_dir = tmp_path_factory.mktemp("observe") / "data"
    proc = start_stack(data_dir, "--observability", port_range="7750-7779")
    try:
        info = StackInfo.read(data_dir)
        assert info is not None
        yield Stack(proc, info, data_dir)
    finally:
        stop_stack(proc)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def series(text: str) -> list[tuple[str, frozenset[tuple[str, str]]]]:
    return [
        (sample.name, frozenset(sample.labels.items()))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


async def test_every_series_is_served_once_over_all_ports(stack: Stack) -> None:
    async with AllocatorClient(stack.info.allocator_url, stack.info.allocator_token) as client:
        status = await client.allocate(GameServerAllocationSpec(selectors=(GameServerSelector.for_fleet("demo"),)))
    assert status.game_server_name  # one allocation: the allocator's counters have samples

    ports = {
        "metrics": stack.info.metrics_url,
        "allocator": f"{stack.info.allocator_url}/metrics",
        "matchmaker": f"{stack.info.matchmaker_url}/metrics",
    }
    answers = {name: get(url) for name, url in ports.items()}
    served = {name: text for name, (code, text) in answers.items() if code == 200}
    assert set(served) == {"metrics"}, {name: code for name, (code, _) in answers.items()}

    seen = Counter(s for text in served.values() for s in series(text))
    assert [s for s, n in seen.items() if n > 1] == []
    names = {name for name, _ in seen}
    # One port, every component: allocator, matchmaker, node agent and controllers, SDK.
    assert ("fleetmatch_allocations_total", frozenset({("result", "Allocated")})) in seen
    assert {"fleetmatch_ticket_waiters", "fleetmatch_nodeagent_ports_free", "fleetmatch_gameservers"} <= names
    assert "fleetmatch_sdk_calls_total" in names
    assert [n for n in names if n.endswith("_created")] == []


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    code, body = get(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
    assert code == 200, body
    doc = json.loads(body)
    assert doc["status"] == "success", doc
    result: list[dict[str, Any]] = doc["data"]["result"]
    return result


def test_every_dashboard_query_runs_on_the_stacks_prometheus(stack: Stack) -> None:
    """The Grafana dashboard's PromQL, with its variables filled in as Grafana would, is accepted by
    the real Prometheus (a typo in a function or a matcher fails here, not in front of an operator)."""
    assert stack.info.prometheus_url is not None
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    assert len(exprs) > 20
    for expr in exprs:
        promql = expr.replace("$__rate_interval", "1m").replace("$fleet", ".*").replace("$queue", ".*")
        query(stack.info.prometheus_url, promql)


def test_prometheus_scrapes_the_stack_and_stops_with_it(stack: Stack) -> None:
    prometheus = stack.info.prometheus_url
    assert prometheus is not None
    config = (stack.data_dir / "prometheus" / "prometheus.yml").read_text()
    assert stack.info.metrics_url.split("/")[2] in config

    deadline = time.monotonic() + 90
    up: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not up:
        up = query(prometheus, 'up{job="fleetmatch"} == 1')
        time.sleep(0.5)
    assert [r["metric"]["instance"] for r in up] == [stack.info.metrics_url.split("/")[2]]
    ready = query(prometheus, 'sum(fleetmatch_gameservers{fleet="demo", state="Ready"})')
    while time.monotonic() < deadline and not ready:
        time.sleep(0.5)
        ready = query(prometheus, 'sum(fleetmatch_gameservers{fleet="demo", state="Ready"})')
    assert ready and float(ready[0]["value"][1]) >= 1

    (child,) = [p for p in psutil.Process(stack.proc.pid).children() if p.name() == "prometheus"]
    stop_stack(stack.proc)
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
