"""The Agones-compatible game-server SDK: the sidecar side and the Python client.

Server side: ``SdkHost`` serves the REST and gRPC SDK of many game servers from one process (two loopback
ports each); each server's ``SdkSession`` runs the shared state machine (``state``, pure), health
tracking (``health``, pure) and a coalescing store writer (``writer``), which both front doors
(``http``, ``grpc_server``) call. Client side: ``SDK`` (``sdk_sidecar.client``) for Python game servers.
"""

from sdk_sidecar.client import SDK, CounterInfo, GameServerInfo, ListInfo, PlayersInfo, SdkError
from sdk_sidecar.health import HealthTracker
from sdk_sidecar.host import SdkHost
from sdk_sidecar.http import build_app
from sdk_sidecar.session import SdkSession
from sdk_sidecar.state import GrpcCode, InvalidArgumentError, Pending, SdkCallError, UnavailableError

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
