"""Wiring of the Kubernetes engine: an ``ApiClient`` from ``Settings``, the three stores and the
leader leases on it.

Nothing here reads the environment: ``fleetmatch.backends.kube.config.resolve`` decides from
``KubeSettings`` where the API server is and how to authenticate.

RBAC the stores need, per namespace they serve (a Role, or a ClusterRole for all namespaces)::

    - apiGroups: ["fleetmatch.dev"]
      resources: ["gameservers", "fleets", "fleetautoscalers"]
      verbs: ["get", "list", "watch", "create", "update", "delete"]
    - apiGroups: ["fleetmatch.dev"]
      resources: ["fleets/status", "fleetautoscalers/status"]   # kinds whose CRD has the subresource
      verbs: ["update"]
    - apiGroups: ["fleetmatch.dev"]          # owner references with blockOwnerDeletion, where the
      resources: ["fleets/finalizers"]       # OwnerReferencesPermissionEnforcement admission plugin runs
      verbs: ["update"]
    - apiGroups: ["coordination.k8s.io"]                          # leader leases (``fleetmatch controller``)
      resources: ["leases"]
      verbs: ["get", "create", "update"]

A missing rule surfaces as ``fleetmatch.backends.kube.errors.ForbiddenError`` naming verb and resource.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config.config_exception import ConfigException
from kubernetes_asyncio.config.incluster_config import InClusterConfigLoader

from fleetmatch.backends.base import Backend, LeaseFactory, default_holder
from fleetmatch.backends.kube.config import SERVICE_ACCOUNT_DIR, resolve
from fleetmatch.backends.kube.events import KubeEventLog
from fleetmatch.backends.kube.lease import KubeLease
from fleetmatch.backends.kube.store import LIST_PAGE, KubeStore
from fleetmatch.errors import ConfigError, NotFoundError
from fleetmatch.lease import Lease
from fleetmatch.models import Fleet, FleetAutoscaler, GameServer
from fleetmatch.settings import KubeSettings, Settings


async def api_client(kube: KubeSettings, *, account_dir: Path = SERVICE_ACCOUNT_DIR) -> ApiClient:
    """An ``ApiClient`` (close it when done) on the source ``fleetmatch.backends.kube.config.resolve``
    picks: a plain URL, the Pod's service account (its token re-read as it rotates), or a kubeconfig
    through kubernetes-asyncio's loader (exec plugins and client certificates work)."""
    source = resolve(kube, account_dir=account_dir)
    configuration = Configuration()
    try:
        if source.kind == "url":
            configuration.host = source.server
        elif source.kind == "in-cluster":
            assert source.token_file is not None
            InClusterConfigLoader(
                token_filename=str(source.token_file),
                cert_filename=str(source.ca_file or account_dir / "ca.crt"),
                environ={"KUBERNETES_SERVICE_HOST": kube.service_host, "KUBERNETES_SERVICE_PORT": kube.service_port},
            ).load_and_set(configuration)
        else:
            await config.load_kube_config(
                config_file=source.kubeconfig,
                context=source.context or None,
                client_configuration=configuration,
                persist_config=False,
            )
    except (ConfigException, OSError) as exc:
        raise ConfigError(f"cannot configure the Kubernetes client from the {source.describe()}: {exc}") from exc
    return ApiClient(configuration=configuration)


@dataclass(frozen=True, slots=True)
class KubeStores:
    """The three stores of one namespace, sharing one ``ApiClient``."""

    gameservers: KubeStore[GameServer]
    fleets: KubeStore[Fleet]
    autoscalers: KubeStore[FleetAutoscaler]


def kube_stores(api: ApiClient, namespace: str = "default", **options: Any) -> KubeStores:
    """GameServer, Fleet and FleetAutoscaler stores of ``namespace`` (``options``: ``KubeStore``'s).

    fleetmatch deletes a Fleet with ``propagationPolicy: Orphan``: its GameServers lose their owner
    reference instead of being garbage-collected, and the fleet controller deletes those no match
    is using, so Allocated ones finish their match (the documented ``fleetmatch fleet delete``).
    ``kubectl delete fleet`` (Background) lets the garbage collector delete them all, as Agones."""
    return KubeStores(
        KubeStore(api, GameServer, namespace, **options),
        KubeStore(api, Fleet, namespace, **({"propagation": "Orphan"} | options)),
        KubeStore(api, FleetAutoscaler, namespace, **options),
    )


class KubeBackend(Backend):
    """The Kubernetes engine as a ``Backend``; ``api`` is its client (the Pod controller speaks Pods with it)."""

    def __init__(
        self,
        api: ApiClient,
        stores: KubeStores,
        *,
        leases: LeaseFactory,
        lease_seconds: float,
        owns_api: bool = True,
        holder: str | None = None,
        list_page: int = LIST_PAGE,
    ) -> None:
        super().__init__(
            "kubernetes",
            gameservers=stores.gameservers,
            fleets=stores.fleets,
            autoscalers=stores.autoscalers,
            leases=leases,
            lease_seconds=lease_seconds,
            holder=holder,
            events=KubeEventLog(api, stores.gameservers.namespace, instance=holder or default_holder()),
            on_close=api.close if owns_api else None,
        )
        self.api = api
        self.list_page = list_page
        """Objects per list request of the caches built on ``api`` (the stores have theirs)."""
        self._ping = self._reach

    async def _reach(self) -> None:
        """One cheap request: reading a GameServer that does not exist answers 404 when all is well."""
        with contextlib.suppress(NotFoundError):
            await self.gameservers.get("fleetmatch-probe")


async def kube_backend(settings: Settings, *, holder: str | None = None) -> KubeBackend:
    """A ``Backend`` on the API server ``settings.kube`` points at. Leader leases are Leases
    (``coordination.k8s.io/v1``, ``fleetmatch-<name>``) in the namespace of the objects they guard,
    held as ``holder`` (default: ``host/pid``)."""
    api = await api_client(settings.kube)

    def leases(name: str, holder: str, ttl: float) -> Lease:
        return KubeLease(api, f"fleetmatch-{name}", holder, namespace=settings.namespace, ttl=ttl)

    page = settings.kube.list_page
    stores = kube_stores(api, settings.namespace, list_page=page)
    return KubeBackend(api, stores, leases=leases, lease_seconds=settings.lease_seconds, holder=holder, list_page=page)
