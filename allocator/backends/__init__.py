"""Engines behind ``fleetmatch.store.Store``: ``redis`` (embedded default, plain hosts) and
``memory`` (unit tests, and the reference the contract suite is written against)."""
