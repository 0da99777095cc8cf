"""The kernel contract in pyproject.toml names every kernel module (import-linter checks only the
modules a contract lists: a new kernel module left out would escape the layering rule)."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUTSIDE_THE_KERNEL = {
    "fleetmatch.cli",
    "fleetmatch.backends",
    "fleetmatch.dashboard",
    "fleetmatch.entry",
    "fleetmatch.__main__",
}


def _kernel_modules() -> set[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    contract = next(c for c in contracts if c["name"].startswith("The kernel imports no"))
    return set(contract["source_modules"])


def test_every_kernel_module_is_in_the_kernel_contract() -> None:
    package = REPO / "fleetmatch"
    modules = {f"fleetmatch.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    modules |= {f"fleetmatch.{p.parent.name}" for p in package.glob("*/__init__.py")}
    kernel = modules - OUTSIDE_THE_KERNEL
    assert kernel == _kernel_modules()
