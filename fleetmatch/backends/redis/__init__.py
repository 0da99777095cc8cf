"""The Redis engine: ``store`` (GameServers and friends, Lua + streams), ``lease`` (leader leases),
``keys`` (every key name), ``client`` (the client factory) and ``embedded`` (the local server launcher)."""
