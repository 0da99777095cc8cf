"""Game-server ports of a range, handed out round-robin (pure: the caller supplies any "is this port
free?" probe). One pool serves both engines: the node agent's ports of one host, and the Pod
controller's host ports across a cluster.

Ports come from ``[low, high]`` (Agones' default 7000-8000). A cursor walks the range round-robin,
so a port released by a finished match is the last to be reused: stray packets from its old
players do not reach the next match. A port the probe reports busy (another program holds it) is
skipped. A port is given to at most ``per_port`` owners at once: 1 on a host; on Kubernetes up to
the number of nodes, like Agones' allocator, since the scheduler's NodePorts filter then places
each Pod on a node where its host port is free.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from fleetmatch.errors import FleetmatchError
from fleetmatch.models import GameServer, PortPolicy, PortStatus


class PortError(FleetmatchError):
    """Base of port allocation errors."""


class PortsExhaustedError(PortError):
    def __init__(self, wanted: int, low: int, high: int) -> None:
        super().__init__(f"no {wanted} free port(s) left in {low}-{high}")


class PortInUseError(PortError):
    def __init__(self, port: int, owner: str) -> None:
        self.port, self.owner = port, owner
        super().__init__(f"port {port} is already used by {owner}")


class PortPool:
    """Ports of ``[low, high]``, each held by at most ``per_port`` owners (GameServer names)."""

    def __init__(self, low: int, high: int, *, per_port: int = 1, is_free: Callable[[int], bool] | None = None) -> None:
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"bad port range {low}-{high}")
        if per_port < 1:
            raise ValueError(f"per_port must be at least 1, got {per_port}")
        self.low, self.high, self.per_port = low, high, per_port
        self._is_free = is_free or (lambda _port: True)
        self._owners: dict[int, set[str]] = {}
        self._held: dict[str, tuple[int, ...]] = {}
        self._cursor = low

    def ports_of(self, owner: str) -> tuple[int, ...]:
        return self._held.get(owner, ())

    def users(self, port: int) -> int:
        return len(self._owners.get(port, ()))

    @property
    def owners(self) -> Iterable[str]:
        return self._held.keys()

    @property
    def free_count(self) -> int:
        """Ports of the range nobody holds."""
        return self.high - self.low + 1 - sum(1 for p, o in self._owners.items() if o and self.low <= p <= self.high)

    def allocate(self, owner: str, count: int = 1) -> tuple[int, ...]:
        """``count`` more distinct ports for ``owner`` (all or nothing); ports it holds already are kept."""
        if count <= 0:
            return ()
        size = self.high - self.low + 1
        picked: list[int] = []
        port = self._cursor
        for _ in range(size):
            users = self._owners.get(port, ())
            if len(users) < self.per_port and owner not in users and self._is_free(port):
                picked.append(port)
                if len(picked) == count:
                    break
            port = self.low if port == self.high else port + 1
        if len(picked) < count:
            raise PortsExhaustedError(count, self.low, self.high)
        self._cursor = self.low if port == self.high else port + 1
        self.hold(owner, [*self.ports_of(owner), *picked])
        return tuple(picked)

    def reserve(self, owner: str, ports: Iterable[int]) -> None:
        """Claim specific ports too (Static policy, or ports found in use after a restart);
        ``PortInUseError`` if one is full already."""
        wanted = [p for p in dict.fromkeys(ports) if p not in self.ports_of(owner)]
        for port in wanted:
            users = self._owners.get(port, set())
            if len(users) >= self.per_port:
                raise PortInUseError(port, sorted(users)[0])
        self.hold(owner, [*self.ports_of(owner), *wanted])

    def hold(self, owner: str, ports: Iterable[int]) -> None:
        """Record that ``owner`` uses exactly ``ports`` (a fact seen on a Pod: may exceed ``per_port``)."""
        wanted = tuple(dict.fromkeys(ports))
        if wanted == self._held.get(owner):
            return
        self.release(owner)
        if not wanted:
            return
        for port in wanted:
            self._owners.setdefault(port, set()).add(owner)
        self._held[owner] = wanted

    def release(self, owner: str) -> tuple[int, ...]:
        ports = self._held.pop(owner, ())
        for port in ports:
            users = self._owners.get(port)
            if users is not None:
                users.discard(owner)
                if not users:
                    del self._owners[port]
        return ports

    def assign(self, gs: GameServer, *, reserve_static: bool = False) -> tuple[PortStatus, ...]:
        """The ports ``gs`` gets, one per ``spec.ports`` entry: Dynamic and Passthrough from the pool
        (what it held before is released first), Static as given (also held, with
        ``reserve_static``: a node agent's processes share the host's ports), None its container
        port. All or nothing: on ``PortError`` ``gs`` holds nothing."""
        dynamic = [p for p in gs.spec.ports if p.port_policy in (PortPolicy.DYNAMIC, PortPolicy.PASSTHROUGH)]
        static = [p.host_port for p in gs.spec.ports if p.port_policy is PortPolicy.STATIC]
        self.release(gs.name)
        try:
            if reserve_static and static:
                self.reserve(gs.name, static)
            picked = iter(self.allocate(gs.name, len(dynamic)))
        except PortError:
            self.release(gs.name)
            raise
        out = []
        for p in gs.spec.ports:
            if p.port_policy is PortPolicy.STATIC:
                out.append(PortStatus(p.name, p.host_port))
            elif p.port_policy is PortPolicy.NONE:
                out.append(PortStatus(p.name, p.container_port))
            else:
                out.append(PortStatus(p.name, next(picked)))
        return tuple(out)


__all__ = ["PortError", "PortInUseError", "PortPool", "PortsExhaustedError"]
