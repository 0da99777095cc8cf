"""Child processes that cannot outlive fleetmatch.

Every process fleetmatch starts (the embedded Redis, game servers) asks the kernel for SIGKILL when
its parent dies, so even a SIGKILLed ``fleetmatch up`` leaves nothing behind on Linux.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def _make_preexec() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return preexec


die_with_parent: Callable[[], None] | None = _make_preexec()
"""Pass as ``preexec_fn``: the child gets SIGKILL when the thread that started it exits."""


def no_grpc_fork_handlers(*, override: bool = False) -> None:
    """Keep gRPC's fork handlers out of a process that forks game servers while serving gRPC.

    A ``preexec_fn`` makes Python fork (not vfork), and gRPC's core then runs its ``pthread_atfork``
    handlers on every fork: each logs "skipping fork() handlers" while other threads are in gRPC,
    and now and then the child died of SIGABRT in them before it could exec the game. The child
    execs at once and never uses gRPC, so the handlers have nothing to protect. gRPC reads the
    variable when it is first imported: call this before anything imports ``grpc``.

    ``override``: fleetmatch's own executable sets it even if the environment says otherwise (a
    shell exporting ``GRPC_ENABLE_FORK_SUPPORT=1`` for another program brought the line back on
    every game start); a library import (``sdk_sidecar``, which games import too) only sets a
    default. Games inherit the value; one that forks with gRPC sets it in its template's ``env``.
    """
    if override:
        os.environ[GRPC_FORK_SUPPORT] = "0"
    else:
        os.environ.setdefault(GRPC_FORK_SUPPORT, "0")


GRPC_FORK_SUPPORT = "GRPC_ENABLE_FORK_SUPPORT"
