"""``fleetmatch allocator --workers N``: N allocator processes behind one port, one per core.

One Python process allocates on one core (its event loop); more cores need more processes. The
supervisor starts N workers, each a whole ``fleetmatch allocator`` (its own Redis connections, its
own watch and index) that binds the shared port with SO_REUSEPORT, so the kernel spreads incoming
connections over them. Claims stay atomic across them as across any allocators (one conditional
write per claim); each worker tries its own share of the servers first (``allocator.index.Share``),
so they seldom race for one. The supervisor's slot is a worker's share until its slot lease shows
it the N workers, and then its rank among all the allocators of the namespace, here and on other
hosts (``allocator.roster``).

The supervisor holds the port itself (bound with SO_REUSEPORT, never listening, so it gets no
connections): a port 0 becomes one fixed free port for every worker, and a port another program
holds fails at once. A worker that exits is restarted (after a back-off when it
keeps dying young); SIGTERM or Ctrl-C on the supervisor is forwarded to every worker, which drain
and stop, and the supervisor exits after them. Workers die with the supervisor even if it is
SIGKILLed (``fleetmatch.procs.die_with_parent``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Mapping

from allocator.index import Share
from fleetmatch.procs import die_with_parent

log = logging.getLogger(__name__)

WORKER_ENV = "FLEETMATCH_ALLOCATOR_WORKER"
"""Set in each worker: its slot (0..N-1), for logs."""
WORKERS_ENV = "FLEETMATCH_ALLOCATOR_WORKERS"
"""Set in each worker: how many workers there are (with its slot, its share of the servers)."""
RESTARTS_ENV = "FLEETMATCH_ALLOCATOR_WORKER_RESTARTS"
"""Set in each worker: how many times its slot was restarted before (``fleetmatch_allocator_worker_restarts``)."""
STOP_GRACE = 20.0
"""Seconds workers get to drain after SIGTERM before they are killed."""
YOUNG_SECONDS = 10.0
"""A worker that dies sooner than this is restarted after a growing back-off (up to ``MAX_BACKOFF``)."""
MAX_BACKOFF = 10.0


@contextlib.contextmanager
def held_port(host: str, port: int) -> Iterator[int]:
    """Bind ``host:port`` with SO_REUSEPORT without listening, for the block: the workers can then
    share it, nobody without SO_REUSEPORT can take it, and port 0 is resolved once. ``OSError`` if busy."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp: TIME_WAIT does not block
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_GRACE):
                await proc.wait()
        except TimeoutError:
            log.warning("allocator worker %d did not stop in %.0fs; killing it", proc.pid, STOP_GRACE)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def worker_share(env: Mapping[str, str]) -> Share | None:
    """A worker's share of the servers, from the slot and count its supervisor set (None outside
    ``--workers N``, or if they do not make a share: then the worker simply has no preference)."""
    try:
        return Share(int(env[WORKER_ENV]), int(env[WORKERS_ENV]))
    except (KeyError, ValueError):
        return None


async def _slot(slot: int, workers: int, argv: list[str], env: dict[str, str]) -> None:
    """Keep worker ``slot`` running until cancelled; on cancellation stop it with SIGTERM."""
    restarts = 0
    delay = 0.5
    while True:
        child_env = {**env, WORKER_ENV: str(slot), WORKERS_ENV: str(workers), RESTARTS_ENV: str(restarts)}
        proc = await asyncio.create_subprocess_exec(*argv, env=child_env, preexec_fn=die_with_parent)
        started = time.monotonic()
        try:
            code = await proc.wait()
        except asyncio.CancelledError:
            await _stop(proc)
            raise
        lived = time.monotonic() - started
        restarts += 1
        delay = 0.5 if lived >= YOUNG_SECONDS else min(delay * 2, MAX_BACKOFF)
        wait = 0.0 if lived >= YOUNG_SECONDS else delay
        log.warning(
            "allocator worker %d (pid %d) exited with %s after %.1fs; restarting in %.1fs",
            slot,
            proc.pid,
            code,
            lived,
            wait,
            extra={"worker": slot},
        )
        await asyncio.sleep(wait)


async def supervise(workers: int, argv: list[str], env: dict[str, str] | None = None) -> None:
    """Run ``workers`` copies of ``argv`` (a worker's command line) until cancelled, restarting any
    that exits; cancellation (SIGTERM through ``fleetmatch.running.run``) stops them all."""
    base = dict(os.environ if env is None else env)
    async with asyncio.TaskGroup() as group:
        for slot in range(workers):
            group.create_task(_slot(slot, workers, argv, base), name=f"allocator.worker[{slot}]")


def worker_argv(port: int, grpc_port: int | None) -> list[str]:
    """The command line of one worker: this ``fleetmatch allocator`` binding the shared port(s)."""
    argv = [sys.executable, "-m", "fleetmatch", "allocator", "--port", str(port), "--reuse-port"]
    if grpc_port is not None:
        argv += ["--grpc-port", str(grpc_port)]
    return argv
