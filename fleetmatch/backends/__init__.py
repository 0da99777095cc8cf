"""State backends: where GameServers, Fleets and FleetAutoscalers live.

Three engines implement ``fleetmatch.store.Store``: ``redis`` (the embedded default and fleets on
plain hosts: Lua writes, streams as the watch), ``kube`` (custom resources through the Kubernetes
API) and ``memory`` (the in-process twin the contract suite is written against). Engines are
imported only when used: the in-pod SDK sidecar must not pay for redis-py or kubernetes-asyncio.
"""
