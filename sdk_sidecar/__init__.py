"""The Agones-compatible game-server SDK: the sidecar side and the Python client.

Server side: ``SdkHost`` serves the REST and gRPC SDK of many game servers from one process (two loopback
ports each); each server's ``SdkSession`` runs the shared state machine (``state``, pure), health
tracking (``health``, pure) and a coalescing store writer (``writer``), which both front doors
(``http``, ``grpc_server``) call. Client side: ``SDK`` (``sdk_sidecar.client``) for Python game servers.

The names below load their module on first use (PEP 562), so that a game importing the client, or a
test importing the pure ``state``, does not pay for the server side (grpc, prometheus_client, settings).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fleetmatch.procs import no_grpc_fork_handlers

no_grpc_fork_handlers()  # before any module of this package imports grpc (the node agent forks games)

if TYPE_CHECKING:
    from sdk_sidecar.client import SDK, CounterInfo, GameServerInfo, ListInfo, PlayersInfo, SdkError
    from sdk_sidecar.codes import GrpcCode
    from sdk_sidecar.health import HealthTracker
    from sdk_sidecar.host import SdkHost
    from sdk_sidecar.http import build_app
    from sdk_sidecar.session import SdkSession
    from sdk_sidecar.state import InvalidArgumentError, Pending, SdkCallError, UnavailableError

_EXPORTS = {
    "SDK": "sdk_sidecar.client",
    "CounterInfo": "sdk_sidecar.client",
    "GameServerInfo": "sdk_sidecar.client",
    "ListInfo": "sdk_sidecar.client",
    "PlayersInfo": "sdk_sidecar.client",
    "SdkError": "sdk_sidecar.client",
    "GrpcCode": "sdk_sidecar.codes",
    "HealthTracker": "sdk_sidecar.health",
    "SdkHost": "sdk_sidecar.host",
    "build_app": "sdk_sidecar.http",
    "SdkSession": "sdk_sidecar.session",
    "InvalidArgumentError": "sdk_sidecar.state",
    "Pending": "sdk_sidecar.state",
    "SdkCallError": "sdk_sidecar.state",
    "UnavailableError": "sdk_sidecar.state",
}

__all__ = [
    "SDK",
    "CounterInfo",
    "GameServerInfo",
    "GrpcCode",
    "HealthTracker",
    "InvalidArgumentError",
    "ListInfo",
    "Pending",
    "PlayersInfo",
    "SdkCallError",
    "SdkError",
    "SdkHost",
    "SdkSession",
    "UnavailableError",
    "build_app",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
