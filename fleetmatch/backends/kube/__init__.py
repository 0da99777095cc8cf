"""The Kubernetes engine: custom resources through the API server.

``store`` is the full store on kubernetes-asyncio (controllers, allocator, CLI); ``podstore`` the
thin one-GameServer store of the in-pod SDK sidecar on plain aiohttp (no kubernetes-asyncio, for
memory); ``client`` builds kubernetes-asyncio clients. Nothing is imported here, so that importing
``podstore`` never loads kubernetes-asyncio.
"""
