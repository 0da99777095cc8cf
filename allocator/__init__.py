"""The allocator side of fleetmatch: fleets of game servers, their placement and their allocation.

- ``allocation``, ``choose`` (pure), ``index`` (pure), ``api``, ``app``, ``errors``: the allocation API.
- ``allocation_lease``: recycles allocations their game never confirmed (a controller loop).
- ``nodeagent``: the local kubelet: runs game processes, hosts their SDK endpoints, reports exits.
- ``ports``: host-port allocation (pure).
- ``fleetplan`` (pure) and ``controllers.fleet``: keep each fleet at its replicas, roll out updates.
- ``autoscale`` (pure) and ``controllers.autoscaler``: the Buffer policy.
- ``podspec`` (pure) and ``controllers.pods``: GameServers as Pods on Kubernetes.
- ``fleetops``: apply/scale used by the CLI.
"""
