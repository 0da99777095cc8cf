"""The Grafana dashboard parses and queries only metrics that fleetmatch defines."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.deploy.schemas import DEPLOY, REPO

DASHBOARD = DEPLOY / "grafana" / "fleetmatch-dashboard.json"
METRIC_MODULES = ["allocator/metrics.py", "matchmaker/metrics.py", "sdk_sidecar/metrics.py", "fleetmatch/metrics.py"]
NAME = re.compile(r"\bfleetmatch_[a-z0-9_]+")


def defined_metrics() -> set[str]:
    """Names passed to prometheus_client constructors in the services' metrics modules."""
    names: set[str] = set()
    for module in METRIC_MODULES:
        names |= set(re.findall(r'"(fleetmatch_[a-z0-9_]+)"', (REPO / module).read_text()))
    return names


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out += panel.get("panels", [])
    return out


def queried_metrics(dashboard: dict[str, Any]) -> set[str]:
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    return {re.sub(r"_(bucket|sum|count)$", "", name) for e in exprs for name in NAME.findall(e)}


def test_dashboard_parses_and_is_a_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] == "fleetmatch"
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"


def test_every_queried_metric_exists_in_the_code() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queried = queried_metrics(dashboard)
    assert queried - defined_metrics() == set()


def test_dashboard_covers_the_essentials() -> None:
    queried = queried_metrics(json.loads(DASHBOARD.read_text()))
    assert {
        "fleetmatch_allocations_total",
        "fleetmatch_allocation_seconds",
        "fleetmatch_gameservers",
        "fleetmatch_time_to_match_seconds",
        "fleetmatch_tickets_total",
        "fleetmatch_sdk_calls_total",
    } <= queried
