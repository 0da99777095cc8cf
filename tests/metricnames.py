"""The metrics the code registers, found by importing every ``metrics.py`` module and walking the
default registry (shared by the metrics documentation and Grafana dashboard tests)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("fleetmatch", "allocator", "matchmaker", "sdk_sidecar", "loadtest")

__all__ = ["Metric", "metrics_modules", "registered"]


@dataclass(frozen=True)
class Metric:
    name: str
    """As exposed (a counter with its ``_total``)."""
    type: str
    labels: tuple[str, ...]
    unit: str = ""


def metrics_modules() -> list[str]:
    return sorted(
        ".".join(path.relative_to(REPO).with_suffix("").parts)
        for package in PACKAGES
        for path in (REPO / package).rglob("metrics.py")
    )


def registered() -> dict[str, Metric]:
    """Every fleetmatch metric in the default registry once every metrics module is imported."""
    wrappers: dict[str, MetricWrapperBase] = {}
    for module in map(importlib.import_module, metrics_modules()):
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                wrappers[value._name] = value  # the family name: a counter's without _total
    found = {}
    for family in REGISTRY.collect():
        if not family.name.startswith("fleetmatch_"):
            continue
        name = family.name + "_total" if family.type == "counter" else family.name
        labels = tuple(sorted(wrappers[family.name]._labelnames)) if family.name in wrappers else ("?",)
        found[name] = Metric(name, family.type, labels)
    return found
