"""Wiring of the Kubernetes engine: an ``ApiClient`` from explicit settings, and the three stores on it.

Nothing here reads the environment itself: the composition root passes what ``Settings`` resolved
(``kubernetes_asyncio`` still honours ``KUBECONFIG`` when no file is named, and the in-cluster
loader reads the service-account files and ``KUBERNETES_SERVICE_HOST``/``PORT``, as every client does).

RBAC the stores need, per namespace they serve (a Role, or a ClusterRole for all namespaces)::

    - apiGroups: ["fleetmatch.dev"]
      resources: ["gameservers", "fleets", "fleetautoscalers"]
      verbs: ["get", "list", "watch", "create", "update", "delete"]
    - apiGroups: ["fleetmatch.dev"]
      resources: ["fleets/status", "fleetautoscalers/status"]   # kinds whose CRD has the subresource
      verbs: ["update"]

A missing rule surfaces as ``fleetmatch.backends.kube.errors.ForbiddenError`` naming verb and resource.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config.config_exception import ConfigException

from fleetmatch.backends.base import Backend, LeaseFactory
from fleetmatch.backends.kube.store import KubeStore
from fleetmatch.errors import ConfigError
from fleetmatch.lease import Lease
from fleetmatch.models import Fleet, FleetAutoscaler, GameServer
from fleetmatch.settings import Settings


async def api_client(
    *,
    server: str = "",
    kubeconfig: str = "",
    context: str = "",
    in_cluster: bool = False,
) -> ApiClient:
    """An ``ApiClient`` (close it when done), from the first of these that is given:

    ``server``: a plain URL without credentials (a local proxy such as ``kubectl proxy``, or a test
    server); ``in_cluster``: the Pod's service account; otherwise the kubeconfig at ``kubeconfig``
    (empty: ``$KUBECONFIG`` or ``~/.kube/config``) and its ``context`` (empty: the current one).
    """
    configuration = Configuration()
    try:
        if server:
            configuration.host = server
        elif in_cluster:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            await config.load_kube_config(
                config_file=kubeconfig or None,
                context=context or None,
                client_configuration=configuration,
                persist_config=False,
            )
    except (ConfigException, OSError) as exc:
        where = "in-cluster service account" if in_cluster else f"kubeconfig {kubeconfig or '(default)'}"
        raise ConfigError(f"cannot configure the Kubernetes client from the {where}: {exc}") from exc
    return ApiClient(configuration=configuration)


@dataclass(frozen=True, slots=True)
class KubeStores:
    """The three stores of one namespace, sharing one ``ApiClient``."""

    gameservers: KubeStore[GameServer]
    fleets: KubeStore[Fleet]
    autoscalers: KubeStore[FleetAutoscaler]


def kube_stores(api: ApiClient, namespace: str = "default", **options: Any) -> KubeStores:
    """GameServer, Fleet and FleetAutoscaler stores of ``namespace`` (``options``: ``KubeStore``'s)."""
    return KubeStores(
        KubeStore(api, GameServer, namespace, **options),
        KubeStore(api, Fleet, namespace, **options),
        KubeStore(api, FleetAutoscaler, namespace, **options),
    )


class KubeBackend(Backend):
    """The Kubernetes engine as a ``Backend``; ``api`` is its client (the Pod controller speaks Pods with it)."""

    def __init__(
        self, api: ApiClient, stores: KubeStores, *, leases: LeaseFactory, lease_seconds: float, owns_api: bool = True
    ) -> None:
        super().__init__(
            "kubernetes",
            gameservers=stores.gameservers,
            fleets=stores.fleets,
            autoscalers=stores.autoscalers,
            leases=leases,
            lease_seconds=lease_seconds,
            on_close=api.close if owns_api else None,
        )
        self.api = api


async def kube_backend(settings: Settings) -> KubeBackend:
    """A ``Backend`` on the API server ``settings.kube`` points at.

    Leader leases live in the Redis at ``settings.redis.url`` (the tickets' Redis); without one,
    taking a lease fails with a ``ConfigError`` naming REDIS_URL.
    """
    kube = settings.kube
    api = await api_client(
        server=kube.server, kubeconfig=kube.kubeconfig, context=kube.context, in_cluster=kube.in_cluster
    )
    redis_url = settings.redis.url

    def leases(name: str, holder: str, ttl: float) -> Lease:
        if not redis_url:
            raise ConfigError("leader leases on the kubernetes backend need REDIS_URL")
        from fleetmatch.backends.redis.client import connect
        from fleetmatch.backends.redis.lease import RedisLease

        return RedisLease(connect(redis_url, name=f"lease-{name}"), name, holder, namespace=settings.namespace, ttl=ttl)

    return KubeBackend(api, kube_stores(api, settings.namespace), leases=leases, lease_seconds=settings.lease_seconds)
