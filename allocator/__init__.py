"""The allocator side of fleetmatch: fleets of game servers and their placement.

- ``backends``: the state-store engines (``redis``, ``memory``) behind ``fleetmatch.store.Store``.
- ``nodeagent``: the local kubelet: runs game processes, hosts their SDK endpoints, reports exits.
- ``ports``: host-port allocation (pure).
- ``fleetplan``: what a fleet needs (pure); ``controllers.fleet``: the loop that does it.
- ``fleetops``: apply/delete used by the CLI.

The allocation API and the autoscaler arrive with issue 3.
"""
