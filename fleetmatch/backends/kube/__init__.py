"""The Kubernetes engine: custom resources through the API server, one client package.

What every client shares (none of it imports kubernetes-asyncio):

- ``config``: ONE resolver of where the API server is and how to authenticate (a URL, the Pod's
  service account, a kubeconfig), and the sidecar's thin ``KubeConfig``;
- ``errors``: ONE mapping of the API server's ``Status`` to fleetmatch errors, with the RBAC rule a
  refusal needs;
- ``wire``: custom-resource documents <-> models, keeping what the models do not know;
- ``watch``: ONE resumable watch (bookmarks, 410, reconnects, back-off), transport-agnostic.

On kubernetes-asyncio (controllers, allocator, CLI): ``calls`` (requests and watch streams with our
errors), ``store`` (``KubeStore``), ``lease`` (``coordination.k8s.io`` leader leases) and ``client``
(the ``ApiClient`` and the ``KubeBackend``). On plain aiohttp: ``podstore``, the thin one-GameServer
store of the in-pod SDK sidecar (memory). Nothing is imported here, so that importing ``podstore``
never loads kubernetes-asyncio.
"""
