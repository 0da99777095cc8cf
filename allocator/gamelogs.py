"""Game-server log files on a node: rotated when large, and only the newest kept once the game is gone.

A node agent sends each game's stdout and stderr to ``<data dir>/logs/<node>/<server>.log``. A clean
Shutdown deletes its log; a server that failed keeps it, so that why it failed can be read. Without
bounds a crash-looping fleet leaves thousands of files and a chatty game fills the disk, so:

- a running game's log above ``max_bytes`` keeps its last half in ``<server>.log.1`` and starts
  over (the game writes with ``O_APPEND``: after the truncation its writes land at the new end);
- of the logs of servers that no longer run, only the newest ``max_files`` are kept.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection
from pathlib import Path

log = logging.getLogger(__name__)

MAX_FILES = 100
MAX_BYTES = 10 * 1024 * 1024


def rotate_if_large(path: Path, max_bytes: int = MAX_BYTES) -> bool:
    """Keep the last half of ``path`` in ``path.1`` and empty ``path`` if it is over ``max_bytes``."""
    try:
        size = path.stat().st_size
    except OSError:
        return False
    if size <= max_bytes:
        return False
    keep = max_bytes // 2
    try:
        with path.open("rb") as source:
            source.seek(size - keep)
            tail = source.read(keep)
        path.with_name(path.name + ".1").write_bytes(tail)
        with path.open("r+b") as target:
            target.truncate(0)
    except OSError as exc:
        log.warning("cannot rotate %s: %s", path, exc)
        return False
    return True


def prune(directory: Path, running: Collection[str], max_files: int = MAX_FILES) -> list[Path]:
    """Delete the oldest logs of servers not in ``running`` beyond the newest ``max_files``."""
    try:
        candidates = [p for p in directory.glob("*.log*") if p.name.split(".log", 1)[0] not in running]
    except OSError:
        return []
    by_age = sorted(candidates, key=_mtime, reverse=True)
    gone = []
    for path in by_age[max_files:]:
        with contextlib.suppress(OSError):
            path.unlink()
            gone.append(path)
    return gone


def last_line(path: Path, limit: int = 300) -> str:
    """The last non-empty line a game wrote (at most ``limit`` characters), or "" if none."""
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
