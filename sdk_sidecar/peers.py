"""Only its own game may use a game server's SDK endpoints (where the platform tells who is calling).

The node agent hosts every local game server's SDK on loopback ports. Without more, any process on
the host could call them: allocate one server, shut down another, relabel a third. On Linux the
kernel says which process holds the other end of a loopback TCP connection: the client socket is
a line of ``/proc/net/tcp`` (local port = the caller's port, remote port = ours) with an inode,
and exactly one process has a file descriptor on ``socket:[inode]``. A ``PeerGuard`` admits a
connection only when that process is the game the node agent started or one of its descendants.
Nothing changes for the game: the official SDKs (Go, C++, C#, Node.js, Rust, Unity's REST
calls) work unchanged, with no token to pass.

- Each connection is judged once (cached by its port pair while it lives): a REST client with
  keep-alive or a gRPC channel costs one lookup.
- Where ``/proc`` is not there (macOS, Windows), nothing is checked: the SDK answers any local
  process, as Agones' sidecar does; in a Kubernetes Pod the network namespace already limits the
  SDK to the Pod's containers.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

PROC = Path("/proc")
CACHE_SECONDS = 30.0
"""How long a verdict on one (caller port, our port) pair is kept: a closed connection's port is
not reused by the system that soon."""


def supported(proc: Path = PROC) -> bool:
    return (proc / "net" / "tcp").exists()


def socket_inode(caller_port: int, our_port: int, proc: Path = PROC) -> int | None:
    """The inode of the caller's socket of the loopback connection ``caller_port`` -> ``our_port``."""
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (proc / "net" / table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) < 10:
                    continue
                local, remote = fields[1], fields[2]
                if int(local.rsplit(":", 1)[1], 16) == caller_port and int(remote.rsplit(":", 1)[1], 16) == our_port:
                    return int(fields[9])
    return None


def descendants(root: int, proc: Path = PROC) -> set[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name may hold spaces and parentheses
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def holds(pid: int, inode: int, proc: Path = PROC) -> bool:
    """Does process ``pid`` have a file descriptor on socket ``inode``?"""
    target = f"socket:[{inode}]"
    fd_dir = proc / str(pid) / "fd"
    with contextlib.suppress(OSError):
        for fd in os.listdir(fd_dir):
            with contextlib.suppress(OSError):
                if os.readlink(fd_dir / fd) == target:
                    return True
    return False


class PeerGuard:
    """Admits loopback connections from one process tree (the game's) to one server's SDK ports."""

    def __init__(self, proc: Path = PROC, clock: Callable[[], float] = time.monotonic) -> None:
        self._root: int | None = None
        self._proc = proc
        self._clock = clock
        self._verdicts: dict[tuple[int, int], tuple[bool, float]] = {}

    def confine(self, root_pid: int) -> None:
        """From now on only process ``root_pid`` and its descendants are admitted."""
        self._root = root_pid
        self._verdicts.clear()

    def allows(self, caller_port: int, our_port: int) -> bool:
        """Is the caller on ``caller_port`` the game (or its child)? Until ``confine`` names the game,
        nobody is (it has not started yet)."""
        if self._root is None:
            return False
        now = self._clock()
        key = (caller_port, our_port)
        known = self._verdicts.get(key)
        if known is not None and known[1] > now:
            return known[0]
        verdict = self._judge(caller_port, our_port, self._root)
        if len(self._verdicts) > 1024:
            self._verdicts = {k: v for k, v in self._verdicts.items() if v[1] > now}
        self._verdicts[key] = (verdict, now + CACHE_SECONDS)
        return verdict

    def _judge(self, caller_port: int, our_port: int, root: int) -> bool:
        inode = socket_inode(caller_port, our_port, self._proc)
        if inode is None:
            return False
        return any(holds(pid, inode, self._proc) for pid in descendants(root, self._proc))


def caller_port(peer: object) -> int | None:
    """The port of a peer address: ``("127.0.0.1", 5000)`` (aiohttp) or ``"ipv4:127.0.0.1:5000"`` (gRPC)."""
    if isinstance(peer, tuple) and len(peer) >= 2 and isinstance(peer[1], int):
        return peer[1]
    if isinstance(peer, str) and peer.rsplit(":", 1)[-1].isdigit():
        return int(peer.rsplit(":", 1)[1])
    return None
