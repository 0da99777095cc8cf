"""Host-port allocation for one node (pure: the caller supplies the "is this port free?" probe).

Ports come from ``[low, high]`` (Agones' default 7000-8000). A cursor walks the range round-robin,
so a port released by a finished match is the last to be reused: stray packets from its old
players do not reach the next match. A port the probe reports busy (another program holds it) is
skipped. No port is ever handed to two owners.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from fleetmatch.errors import FleetmatchError


class PortError(FleetmatchError):
    """Base of port allocation errors."""


class PortsExhaustedError(PortError):
    def __init__(self, wanted: int, low: int, high: int) -> None:
        super().__init__(f"no {wanted} free port(s) left in {low}-{high}")


class PortInUseError(PortError):
    def __init__(self, port: int, owner: str) -> None:
        self.port, self.owner = port, owner
        super().__init__(f"port {port} is already used by {owner}")


class PortAllocator:
    def __init__(self, low: int, high: int, *, is_free: Callable[[int], bool] | None = None) -> None:
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"bad port range {low}-{high}")
        self.low, self.high = low, high
        self._is_free = is_free or (lambda _port: True)
        self._owner_of: dict[int, str] = {}
        self._ports_of: dict[str, list[int]] = {}
        self._cursor = low

    @property
    def in_use(self) -> Mapping[int, str]:
        return self._owner_of

    @property
    def free_count(self) -> int:
        return self.high - self.low + 1 - len(self._owner_of)

    def ports_of(self, owner: str) -> tuple[int, ...]:
        return tuple(self._ports_of.get(owner, ()))

    def allocate(self, owner: str, count: int = 1) -> tuple[int, ...]:
        """``count`` distinct free ports for ``owner``; all or nothing."""
        size = self.high - self.low + 1
        picked: list[int] = []
        port = self._cursor
        for _ in range(size):
            if port not in self._owner_of and self._is_free(port):
                picked.append(port)
                if len(picked) == count:
                    break
            port = self.low if port == self.high else port + 1
        if len(picked) < count:
            raise PortsExhaustedError(count, self.low, self.high)
        self._cursor = self.low if port == self.high else port + 1
        self._take(owner, picked)
        return tuple(picked)

    def reserve(self, owner: str, ports: Iterable[int]) -> None:
        """Claim specific ports (Static policy, or ports found in use after a restart)."""
        wanted = list(ports)
        for port in wanted:
            holder = self._owner_of.get(port)
            if holder is not None and holder != owner:
                raise PortInUseError(port, holder)
        self._take(owner, [p for p in wanted if self._owner_of.get(p) != owner])

    def release(self, owner: str) -> tuple[int, ...]:
        ports = self._ports_of.pop(owner, [])
        for port in ports:
            del self._owner_of[port]
        return tuple(ports)

    def _take(self, owner: str, ports: list[int]) -> None:
        for port in ports:
            self._owner_of[port] = owner
        self._ports_of.setdefault(owner, []).extend(ports)
