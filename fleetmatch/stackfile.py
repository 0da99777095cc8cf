"""Where a running ``fleetmatch up`` is: ``<data dir>/stack.json``, and the lock that keeps one stack per data dir.

The stack writes the file once it serves; the CLI's other commands and the load tester read it to
find the stack's Redis, allocator and ticket API (a file whose pid is dead counts as absent).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from fleetmatch.errors import ConfigError
from fleetmatch.settings import DEFAULT_PLAYER_TOKEN_AUDIENCE, Settings

STACK_FILE = "stack.json"
LOCK_FILE = "up.lock"
OPERATOR_KEY_NAME = "fleetmatch-cli"
"""The name of the ticket API key ``fleetmatch up`` makes for the CLI (principal ``key:fleetmatch-cli``)."""


@dataclass(frozen=True, slots=True)
class StackInfo:
    """Where a running ``fleetmatch up`` is; written to ``stack.json`` for the other commands."""

    redis_url: str
    metrics_url: str
    allocator_url: str
    allocator_token: str
    matchmaker_url: str
    player_token_secret: str
    namespace: str
    node: str
    data_dir: str
    pid: int
    prometheus_url: str | None = None
    """The local Prometheus of ``up --observability`` (None: not running)."""
    operator_api_key: str = ""
    """The ticket API key of the CLI's operator commands (``queue list``, ``ticket list``; ``ticket
    get`` and ``cancel`` without ``--player``); empty in a file of an older stack."""
    player_token_audience: str = DEFAULT_PLAYER_TOKEN_AUDIENCE
    """The ``aud`` the stack's ticket API wants in player tokens (what the CLI and the load tester mint)."""
    dashboard_url: str = ""
    """The web dashboard (log in with ``allocator_token``); empty in a file of an older stack."""

    def write(self, data_dir: Path) -> None:
        """Atomically, readable by this user only (it holds the allocator token and the API key)."""
        tmp = data_dir / (STACK_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(data_dir / STACK_FILE)

    @classmethod
    def read(cls, data_dir: Path) -> StackInfo | None:
        """The running stack's file (None if absent, unreadable or its pid is dead)."""
        info = cls.load(data_dir)
        return info if info is not None and alive(info.pid) else None

    @classmethod
    def load(cls, data_dir: Path) -> StackInfo | None:
        """The file as written, alive or not (``fleetmatch status`` says which)."""
        try:
            doc = json.loads((data_dir / STACK_FILE).read_text())
            return cls(**doc)
        except (OSError, ValueError, TypeError):
            return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Exclusive use of ``data_dir`` by one stack."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / LOCK_FILE).open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise ConfigError(
                f"another `fleetmatch up` (pid {holder}) is using {data_dir}; stop it, or pass --data-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_stack_file(data_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (data_dir / STACK_FILE).unlink()


def stack_or_env_redis_url(settings: Settings) -> str:
    """The Redis of the running stack: ``REDIS_URL``, else the one ``fleetmatch up`` recorded."""
    if settings.redis.url:
        return settings.redis.url
    info = StackInfo.read(settings.data_dir)
    if info is None:
        raise ConfigError(
            f"no running fleetmatch stack found in {settings.data_dir}: start one with `fleetmatch up`, "
            "or set REDIS_URL"
        )
    return info.redis_url


def stack_allocator(settings: Settings) -> tuple[str, str]:
    """(URL, token) of the allocation API: from the running stack, with the token from settings if set."""
    info = StackInfo.read(settings.data_dir)
    if info is None:
        raise ConfigError(
            f"no running fleetmatch stack found in {settings.data_dir}: start one with `fleetmatch up`, "
            "or pass --url and --token"
        )
    return info.allocator_url, settings.allocator.token or info.allocator_token


def stack_token_audience(settings: Settings) -> str:
    """The ``aud`` of player tokens for the running stack's ticket API (the default without a stack)."""
    info = StackInfo.read(settings.data_dir)
    return info.player_token_audience if info is not None else settings.matchmaker.player_token_audience


def stack_matchmaker(settings: Settings) -> tuple[str, str, str]:
    """(URL, player-token secret, operator API key) of the running stack's ticket API (the secret
    from settings if set; the key "" for a stack too old to have one)."""
    info = StackInfo.read(settings.data_dir)
    if info is None:  # the ticket commands have no --url: the stack is the only way to the API
        raise ConfigError(
            f"no running fleetmatch stack found in {settings.data_dir}: start one with `fleetmatch up`, "
            "or pass --data-dir of a running one"
        )
    return info.matchmaker_url, settings.matchmaker.token_secret or info.player_token_secret, info.operator_api_key
