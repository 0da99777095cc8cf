"""The fake Kubernetes API server (``fakekube``) and its own tests, through the real kubernetes-asyncio client."""
