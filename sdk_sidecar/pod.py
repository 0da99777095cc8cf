"""The SDK sidecar inside a game-server Pod on Kubernetes (Agones' ``agones-gameserver-sidecar``).

``fleetmatch sidecar`` (or ``python -m sdk_sidecar.pod``) is the sidecar shell (``sdk_sidecar.shell``:
flags, health server, graceful termination) on the Pod's GameServer custom resource, read and written
through the thin store (``fleetmatch.backends.kube.podstore``: aiohttp only, no kubernetes-asyncio, no
Redis). The defaults are Agones': health server on 8080, graceful termination on, writes at least
500 ms apart, RequestReady left to the controller.

The API server: as for every fleetmatch process (``fleetmatch.backends.kube.config``); in a Pod,
with no variable set, the Pod's service account.

Memory: this process must not import redis, kubernetes_asyncio, yaml or click (``tests/kube`` checks).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import replace

from fleetmatch.backends.kube.config import KubeConfig
from fleetmatch.backends.kube.podstore import KubeGameServerStore, KubeStoreSettings
from fleetmatch.settings import SdkSettings
from sdk_sidecar.shell import POD, Listening, SidecarOptions, serve_sidecar
from sdk_sidecar.shell import main as shell_main


async def run_pod_sidecar(
    name: str,
    namespace: str,
    *,
    api: KubeConfig,
    http_port: int = 9358,
    grpc_port: int = 9357,
    health_port: int = 8080,
    address: str = "127.0.0.1",
    health_address: str = "0.0.0.0",
    sdk: SdkSettings | None = None,
    kube: KubeStoreSettings | None = None,
    graceful_termination: bool = True,
    termination_timeout: float | None = None,
    stop: asyncio.Event | None = None,
    on_listening: Callable[[Listening], None] | None = None,
) -> None:
    """Serve GameServer ``namespace/name``'s SDK from inside its Pod until stopped (``serve_sidecar``)."""
    options: SidecarOptions = replace(
        POD,
        gameserver=name,
        namespace=namespace,
        http_port=http_port,
        grpc_port=grpc_port,
        health_port=health_port,
        address=address,
        health_address=health_address,
        graceful_termination=graceful_termination,
        termination_timeout=termination_timeout,
    )
    async with KubeGameServerStore(api, namespace, name, settings=kube) as store:
        await serve_sidecar(store, options, sdk or SdkSettings(), stop=stop, on_listening=on_listening)


def main(argv: Sequence[str] | None = None) -> None:
    """The in-pod sidecar process: exit 0 after a graceful termination, 1 with a message if it cannot work."""
    shell_main(argv, os.environ, defaults=POD, prog="fleetmatch sidecar", backend="kubernetes")


__all__ = ["Listening", "main", "run_pod_sidecar"]

if __name__ == "__main__":
    main()
