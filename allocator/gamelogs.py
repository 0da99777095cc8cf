"""Game-server log files on a node: rotated when large, and removed some time after the game is gone.

A node agent sends each game's stdout and stderr to ``<data dir>/logs/<node>/<server>.log``. A clean
Shutdown deletes its logs; a server that failed keeps them, so that why it failed can be read.
Without bounds a crash-looping fleet leaves thousands of files and a chatty game fills the disk, so:

- a running game's log above ``max_bytes`` is rotated: ``<server>.log.1`` becomes ``.log.2`` and so
  on up to ``generations`` (the oldest is dropped), the log's last ``max_bytes`` become ``.log.1``
  and the log starts over. The game keeps its file descriptor (written with ``O_APPEND``, its next
  write lands at the new end), so the log is copied and truncated, not renamed: what the game
  writes between the copy and the truncation is lost, as with logrotate's ``copytruncate``.
- the logs of servers that no longer run are deleted once older than ``max_age`` seconds, and
  beyond the newest ``max_files`` servers.

On disk per node at most: running servers x (generations + 1) x max_bytes (a live log may pass
``max_bytes`` between two checks), plus ``max_files`` finished servers' logs.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Collection, Mapping
from pathlib import Path

log = logging.getLogger(__name__)

MAX_FILES = 100
MAX_BYTES = 10 * 1024 * 1024
GENERATIONS = 3
MAX_AGE = 7 * 24 * 3600.0


def generation(path: Path, n: int) -> Path:
    """``<server>.log.<n>``: the ``n``-th newest rotated part of ``path`` (0: the log itself)."""
    return path if n == 0 else path.with_name(f"{path.name}.{n}")


def rotate_if_large(path: Path, max_bytes: int = MAX_BYTES, generations: int = GENERATIONS) -> bool:
    """Rotate ``path`` if it is over ``max_bytes``: shift the generations, keep its last ``max_bytes``
    as ``.1``, empty it. ``generations`` 0 keeps nothing: the log is only emptied."""
    try:
        size = path.stat().st_size
    except OSError:
        return False
    if size <= max_bytes:
        return False
    try:
        generation(path, generations + 1).unlink(missing_ok=True)  # left by a larger setting before
        if generations > 0:
            for n in range(generations - 1, 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    generation(path, n).replace(generation(path, n + 1))
            with path.open("rb") as source:
                source.seek(size - max_bytes)
                generation(path, 1).write_bytes(source.read(max_bytes))
        with path.open("r+b") as target:
            target.truncate(0)
    except OSError as exc:
        log.warning("cannot rotate %s: %s", path, exc)
        return False
    return True


def server_of(path: Path) -> str:
    """The server a log file belongs to: ``demo-x7k2p`` for ``demo-x7k2p.log`` and ``demo-x7k2p.log.2``."""
    return path.name.split(".log", 1)[0]


def expired(
    last_written: Mapping[str, float], running: Collection[str], *, max_files: int, max_age: float, now: float
) -> set[str]:
    """Of the servers whose logs were last written at ``last_written[server]``, those whose logs go:
    not running, and older than ``max_age`` or beyond the newest ``max_files``."""
    finished = sorted((s for s in last_written if s not in running), key=lambda s: last_written[s], reverse=True)
    return {s for i, s in enumerate(finished) if i >= max_files or now - last_written[s] > max_age}


def prune(
    directory: Path,
    running: Collection[str],
    max_files: int = MAX_FILES,
    max_age: float = MAX_AGE,
    *,
    now: float | None = None,
) -> list[Path]:
    """Delete the logs (every generation) of servers not in ``running`` that ``expired`` names."""
    files: dict[str, list[Path]] = {}
    last_written: dict[str, float] = {}
    try:
        for path in directory.glob("*.log*"):
            server = server_of(path)
            files.setdefault(server, []).append(path)
            last_written[server] = max(last_written.get(server, 0.0), _mtime(path))
    except OSError:
        return []
    doomed = expired(
        last_written, running, max_files=max_files, max_age=max_age, now=time.time() if now is None else now
    )
    gone = []
    for server in sorted(doomed):
        for path in files[server]:
            with contextlib.suppress(OSError):
                path.unlink()
                gone.append(path)
    return gone


def remove(path: Path, generations: int = GENERATIONS) -> None:
    """Delete a log and its rotated generations (a clean Shutdown leaves nothing behind)."""
    for n in range(generations + 2):
        with contextlib.suppress(OSError):
            generation(path, n).unlink()


def last_line(path: Path, limit: int = 300) -> str:
    """The last non-empty line a game wrote (at most ``limit`` characters), or "" if none; looked
    for in ``.log.1`` too if the log was just rotated."""
    return _last_line(path, limit) or _last_line(generation(path, 1), limit)


def _last_line(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as source:
            source.seek(0, 2)
            size = source.tell()
            source.seek(max(0, size - 4096))
            tail = source.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
