"""docs/metrics.md documents every metric the code registers, and nothing else; names follow
Prometheus' conventions (base units, ``_total`` counters, no ``_created`` series)."""

from __future__ import annotations

import importlib
import re

import pytest
from prometheus_client import REGISTRY, generate_latest

from tests.metricnames import REPO, Metric, metrics_modules, registered

DOC = REPO / "docs" / "metrics.md"
ROW = re.compile(r"^\|\s*`(fleetmatch_[a-z0-9_]+)`\s*\|([^|]*)\|([^|]*)\|([^|]*)\|([^|]*)\|$")
NOT_BASE_UNITS = re.compile(r"_(ms|millis|milliseconds|us|micros|microseconds|ns|minutes|hours|kb|mb|percent)(_|$)")


def documented() -> dict[str, Metric]:
    found = {}
    for line in DOC.read_text().splitlines():
        if match := ROW.match(line):
            name, kind, labels, unit, _ = (part.strip() for part in match.groups())
            assert name not in found, f"{name} is documented twice"
            found[name] = Metric(name, kind, tuple(sorted(filter(None, map(str.strip, labels.split(","))))), unit)
    return found


def test_the_metrics_modules_are_found() -> None:
    assert {"allocator.metrics", "matchmaker.metrics", "sdk_sidecar.metrics", "fleetmatch.metrics"} <= set(
        metrics_modules()
    )


def test_every_registered_metric_is_documented_and_every_documented_one_exists() -> None:
    code, doc = registered(), documented()
    assert len(code) > 40  # the walk found the registry, not an empty one
    assert sorted(set(code) - set(doc)) == [], "undocumented in docs/metrics.md"
    assert sorted(set(doc) - set(code)) == [], "documented in docs/metrics.md but not registered"


@pytest.mark.parametrize("name", sorted(documented()))
def test_the_doc_gives_each_metric_its_type_and_labels(name: str) -> None:
    code = registered()[name]
    doc = documented()[name]
    assert (doc.type, doc.labels) == (code.type, code.labels)


@pytest.mark.parametrize("name", sorted(documented()))
def test_names_are_in_base_units(name: str) -> None:
    metric = documented()[name]
    assert not NOT_BASE_UNITS.search(name), f"{name}: Prometheus names carry base units (seconds)"
    assert (metric.unit == "seconds") == name.endswith("_seconds"), f"{name}: unit {metric.unit!r}"
    assert (metric.type == "counter") == name.endswith("_total")


def test_no_created_series_once_metrics_are_served() -> None:
    importlib.import_module("fleetmatch.metrics")  # what every process serving /metrics imports
    for module in metrics_modules():
        importlib.import_module(module)
    exposition = generate_latest(REGISTRY).decode()
    assert "fleetmatch_" in exposition
    assert [line for line in exposition.splitlines() if re.match(r"\w+_created[{ ]", line)] == []
