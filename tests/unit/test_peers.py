"""Who is calling, from /proc: the caller's socket inode, the game's process tree, and the guard's verdicts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from sdk_sidecar import peers
from sdk_sidecar.peers import PeerGuard, caller_port, descendants

pytestmark = [pytest.mark.skipif(not peers.supported(), reason="no /proc")]


def test_the_guard_admits_the_game_and_its_children_and_nobody_else() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        ours = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", ours)) as mine:
            caller = mine.getsockname()[1]
            guard = PeerGuard()
            assert not guard.allows(caller, ours)  # nobody until the game is named
            guard.confine(os.getppid())  # this process descends from its parent: admitted
            assert guard.allows(caller, ours)
            other = PeerGuard()
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
            try:
                other.confine(child.pid)  # another process tree: refused
                assert not other.allows(caller, ours)
                assert child.pid in descendants(os.getpid())
            finally:
                child.kill()
                child.wait()


def test_caller_ports_of_both_transports() -> None:
    assert caller_port(("127.0.0.1", 5000)) == 5000
    assert caller_port("ipv4:127.0.0.1:5001") == 5001
    assert caller_port("ipv6:[::1]:5002") == 5002
    assert caller_port(None) is None and caller_port("unix:/tmp/x") is None
