"""Names the docs promise exist in the code: metrics and environment variables."""

from __future__ import annotations

import importlib
import re

import pytest
from prometheus_client import REGISTRY

from tests.docs.markdown import REPO, rel, user_docs

PACKAGES = ("fleetmatch", "allocator", "matchmaker", "sdk_sidecar", "loadtest")
_METRIC = re.compile(r"\bfleetmatch_[a-z_]*[a-z]\b")
_SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_created")
_VARIABLE = re.compile(r"\bFLEETMATCH_[A-Z_]*[A-Z]\b")


def named(pattern: re.Pattern[str]) -> dict[str, str]:
    """Each name the docs mention, with the first document that does."""
    found: dict[str, str] = {}
    for doc in user_docs():
        for name in pattern.findall(doc.read_text()):
            found.setdefault(name, rel(doc))
    return found


def declared_metrics() -> set[str]:
    """Every series name of the metrics modules (``<package>/**/metrics.py``), as scraped."""
    for package in PACKAGES:
        for path in (REPO / package).rglob("metrics.py"):
            importlib.import_module(".".join(path.relative_to(REPO).with_suffix("").parts))
    return {family.name + suffix for family in REGISTRY.collect() for suffix in _SUFFIXES}


def test_every_documented_metric_is_declared() -> None:
    declared = declared_metrics()
    missing = [f"{doc}: {name}" for name, doc in sorted(named(_METRIC).items()) if name not in declared]
    if missing:
        pytest.fail("the docs name metrics no metrics.py declares:\n" + "\n".join(missing), pytrace=False)


def test_every_documented_environment_variable_is_read() -> None:
    """Named in the code (``X_FILE`` variants are built from ``X``, so ``X`` is enough for them)."""
    code = "\n".join(
        path.read_text()
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
        if "grpc_gen" not in path.parts
    )
    missing = [
        f"{doc}: {name}"
        for name, doc in sorted(named(_VARIABLE).items())
        if name not in code and name.removesuffix("_FILE") not in code
    ]
    if missing:
        pytest.fail("the docs name variables the code never mentions:\n" + "\n".join(missing), pytrace=False)
