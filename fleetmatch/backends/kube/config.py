"""Where the Kubernetes API server is and how to authenticate: ONE resolver for every client.

``resolve(settings.kube)`` decides the source, in this order:

1. ``FLEETMATCH_KUBE_SERVER``: a plain URL, no credentials (``kubectl proxy``, a test server);
2. the Pod's service account: asked for (``FLEETMATCH_KUBE_IN_CLUSTER=true``), or found when
   nothing else is configured and the kubelet set ``KUBERNETES_SERVICE_HOST`` (so the in-pod
   sidecar needs no variable at all);
3. a kubeconfig: ``FLEETMATCH_KUBECONFIG``, else ``KUBECONFIG``, else ``~/.kube/config``, and
   ``FLEETMATCH_KUBE_CONTEXT`` (empty: its current context).

Two thin builders use it: ``fleetmatch.backends.kube.client.api_client`` (kubernetes-asyncio, for
the controllers, the allocator and the CLI: its kubeconfig loader also runs exec plugins and
client certificates) and ``thin_config`` here (the ``KubeConfig`` of the sidecar's aiohttp store:
bearer tokens only). Only ``fleetmatch.settings`` reads the environment; nothing here imports an
HTTP library or yaml at import time (the in-pod sidecar loads this module).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fleetmatch.errors import ConfigError
from fleetmatch.settings import KubeSettings

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where the kubelet mounts a Pod's service-account token and the cluster's CA."""


@dataclass(frozen=True, slots=True)
class KubeSource:
    """The API server and its credentials, as ``resolve`` decided."""

    kind: Literal["url", "in-cluster", "kubeconfig"]
    server: str = ""
    """``url`` and ``in-cluster``: the base URL."""
    token_file: Path | None = None
    ca_file: Path | None = None
    """``in-cluster``: the service account's token and CA bundle (None: not mounted)."""
    kubeconfig: str = ""
    """``kubeconfig``: its file, or several separated by ``os.pathsep`` as in ``KUBECONFIG``."""
    context: str = ""

    def describe(self) -> str:
        if self.kind == "kubeconfig":
            return f"kubeconfig {self.kubeconfig}" + (f" (context {self.context})" if self.context else "")
        return f"{self.kind} {self.server}"


def resolve(kube: KubeSettings, *, account_dir: Path = SERVICE_ACCOUNT_DIR) -> KubeSource:
    """The source ``kube`` configures (see the module documentation); ``ConfigError`` if it cannot work."""
    if kube.server:
        return KubeSource("url", server=kube.server.rstrip("/"))
    found_in_pod = kube.in_cluster is None and not kube.kubeconfig and not kube.context and bool(kube.service_host)
    if kube.in_cluster or found_in_pod:
        host, port = kube.service_host, kube.service_port
        if not host or not port:
            raise ConfigError(
                "FLEETMATCH_KUBE_IN_CLUSTER=true, but this is not a Kubernetes Pod: "
                "KUBERNETES_SERVICE_HOST/_PORT are not set"
            )
        token = account_dir / "token"
        if not token.is_file():
            raise ConfigError(f"no service-account token at {token} (automountServiceAccountToken: false?)")
        ca = account_dir / "ca.crt"
        host = f"[{host}]" if ":" in host else host
        return KubeSource(
            "in-cluster", server=f"https://{host}:{port}", token_file=token, ca_file=ca if ca.is_file() else None
        )
    path = kube.kubeconfig or kube.default_kubeconfig or str(Path("~/.kube/config").expanduser())
    return KubeSource("kubeconfig", kubeconfig=path, context=kube.context)


@dataclass(frozen=True, slots=True)
class KubeConfig:
    """The thin client's connection: a server and a bearer token (the sidecar's aiohttp store)."""

    server: str
    """Base URL, e.g. ``https://10.96.0.1:443`` or ``http://127.0.0.1:PORT`` (a test's fake)."""
    token: str | None = None
    """A fixed bearer token (from a kubeconfig)."""
    token_file: Path | None = None
    """A bearer token re-read every ``token_refresh_seconds``: bound service-account tokens rotate."""
    ca_file: Path | None = None
    """CA bundle that signed the server's certificate (in a Pod: the service account's ``ca.crt``)."""
    insecure: bool = False
    """Skip TLS verification (kubeconfig ``insecure-skip-tls-verify``)."""
    token_refresh_seconds: float = 60.0

    @classmethod
    def from_url(cls, url: str) -> KubeConfig:
        """An API server at ``url`` without authentication (tests, ``kubectl proxy``)."""
        return cls(server=url.rstrip("/"))

    @classmethod
    def from_kubeconfig(cls, path: Path, context: str = "") -> KubeConfig:
        """A kubeconfig's server, token (or tokenFile) and CA; client certificates and exec plugins
        are not supported (use a service-account token). Imports yaml: not for the in-pod path."""
        import yaml  # only here: the in-pod sidecar never pays for it

        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"kubeconfig {path}: {exc}") from None

        def named(section: str, name: str) -> dict[str, Any]:
            for item in doc.get(section) or ():
                if item.get("name") == name:
                    return dict(item.get(section[:-1]) or {})
            raise ConfigError(f"kubeconfig {path}: no {section[:-1]} named {name!r}")

        ctx = named("contexts", context or doc.get("current-context") or "")
        cluster, user = named("clusters", ctx.get("cluster", "")), named("users", ctx.get("user", ""))
        if "client-certificate" in user or "client-certificate-data" in user or "exec" in user:
            raise ConfigError(f"kubeconfig {path}: only token authentication is supported by the sidecar")
        ca: Path | None = None
        if cluster.get("certificate-authority"):
            ca = Path(cluster["certificate-authority"])
        elif cluster.get("certificate-authority-data"):
            raise ConfigError(f"kubeconfig {path}: certificate-authority-data is not supported; use a file")
        return cls(
            server=str(cluster.get("server", "")).rstrip("/"),
            token=user.get("token"),
            token_file=Path(user["tokenFile"]) if user.get("tokenFile") else None,
            ca_file=ca,
            insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        )


def thin_config(kube: KubeSettings, *, account_dir: Path = SERVICE_ACCOUNT_DIR) -> KubeConfig:
    """The sidecar's ``KubeConfig`` from the source ``resolve`` picks."""
    source = resolve(kube, account_dir=account_dir)
    if source.kind == "url":
        return KubeConfig.from_url(source.server)
    if source.kind == "in-cluster":
        return KubeConfig(server=source.server, token_file=source.token_file, ca_file=source.ca_file)
    paths = [p for p in source.kubeconfig.split(os.pathsep) if p]
    path = next((Path(p).expanduser() for p in paths if Path(p).expanduser().is_file()), None)
    if path is None:
        raise ConfigError(
            f"no Kubernetes API: no kubeconfig at {source.kubeconfig}, not in a Pod (KUBERNETES_SERVICE_HOST "
            "unset), and FLEETMATCH_KUBE_SERVER is not set"
        )
    return KubeConfig.from_kubeconfig(path, source.context)


__all__ = ["SERVICE_ACCOUNT_DIR", "KubeConfig", "KubeSource", "resolve", "thin_config"]
