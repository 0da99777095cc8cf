"""The Grafana dashboard parses and queries only metrics that fleetmatch defines."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.deploy.schemas import DEPLOY
from tests.metricnames import registered

DASHBOARD = DEPLOY / "grafana" / "fleetmatch-dashboard.json"
NAME = re.compile(r"\bfleetmatch_[a-z0-9_]+")


def defined_metrics() -> set[str]:
    """The fleetmatch metrics in the registry of every metrics module (the names PromQL uses)."""
    return set(registered())


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
        # game-server crashes: Unhealthy servers, crash-loop back-off, crashed processes
        "fleetmatch_fleet_failed_before_ready",
        "fleetmatch_nodeagent_process_exits_total",
        "fleetmatch_sdk_health_failures_total",
        # free ports
        "fleetmatch_nodeagent_ports_free",
        "fleetmatch_podcontroller_host_ports_free",
        # match quality
        "fleetmatch_match_skill_spread",
        "fleetmatch_match_worst_latency_seconds",
        "fleetmatch_match_longest_wait_seconds",
    } <= queried


def test_histograms_are_queried_through_their_series() -> None:
    """A histogram's own name selects nothing in PromQL: only ``_bucket``, ``_sum`` and ``_count`` do."""
    types = {name: metric.type for name, metric in registered().items()}
    dashboard = json.loads(DASHBOARD.read_text())
    for expr in (t["expr"] for p in panels(dashboard) for t in p.get("targets", [])):
        for name in NAME.findall(expr):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert (types.get(base) == "histogram") == (base != name), f"{name} in {expr}"
