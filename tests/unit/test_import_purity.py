"""What importing a module drags in, seen from a fresh interpreter.

import-linter checks each module's own imports; it cannot see what a package ``__init__`` loads on the
way (``import sdk_sidecar.state`` first runs ``sdk_sidecar/__init__.py``). So each case imports one
module in a new process and lists ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

IO_LIBRARIES = ("asyncio", "aiohttp", "grpc", "redis", "kubernetes_asyncio", "prometheus_client")
"""What the pure decisions must never load: their callers bring the event loop and the network."""

SERVER_SIDE = (
    "sdk_sidecar.host",
    "sdk_sidecar.http",
    "sdk_sidecar.grpc_server",
    "sdk_sidecar.session",
    "prometheus_client",
    "fleetmatch.settings",
    "grpc",
)
"""What a game importing the Python SDK client must not pay for (gRPC loads only with its transport)."""


def loaded_by(statement: str) -> set[str]:
    """``sys.modules`` after ``statement`` in a fresh interpreter."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def among(loaded: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(p for p in packages if any(m == p or m.startswith(p + ".") for m in loaded))


@pytest.mark.parametrize(
    "module",
    [
        "sdk_sidecar.state",
        "sdk_sidecar.health",
        "sdk_sidecar.codes",
        "allocator.choose",
        "allocator.autoscale",
        "allocator.fleetplan",
        "allocator.index",
        "matchmaker.matching",
        "matchmaker.rules",
        "matchmaker.composition",
        "matchmaker.tickcache",
        "fleetmatch.models",
    ],
)
def test_pure_modules_load_no_io_library(module: str) -> None:
    loaded = loaded_by(f"import {module}")
    assert module in loaded
    assert among(loaded, IO_LIBRARIES) == []


def test_the_sdk_client_loads_no_server_side() -> None:
    loaded = loaded_by("import sdk_sidecar.client")
    assert "aiohttp" in loaded  # its REST transport: the check sees what the import really loads
    assert among(loaded, SERVER_SIDE) == []


def test_the_package_still_exports_the_server_side() -> None:
    loaded = loaded_by("from sdk_sidecar import SDK, SdkHost, build_app")
    assert {"sdk_sidecar.host", "sdk_sidecar.http", "sdk_sidecar.client"} <= loaded


def test_every_public_name_resolves() -> None:
    import sdk_sidecar

    assert sorted(sdk_sidecar._EXPORTS) == sorted(sdk_sidecar.__all__)
    for name in sdk_sidecar.__all__:
        assert getattr(sdk_sidecar, name).__name__ == name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sdk_sidecar.nope  # noqa: B018
