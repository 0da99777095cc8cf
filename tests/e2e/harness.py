"""What the end-to-end tests of several processes share: real ``fleetmatch`` processes on one Redis,
Ready servers written as a node agent would, and tickets written as the ticket API would."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.models import FLEET_LABEL, GameServer, GameServerState, ObjectMeta, PortStatus
from matchmaker.models import Player, Ticket, new_ticket_id
from matchmaker.tickets import RedisTicketStore

REPO = Path(__file__).resolve().parents[2]


def start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``python -m fleetmatch ARGV``; its log goes to ``{argv[0]}-{pid}.log`` in the data directory
    (``FLEETMATCH_DATA_DIR``), so a failed run can be read afterwards without flooding the test's output."""
    logs = Path(env.get("FLEETMATCH_DATA_DIR") or tempfile.gettempdir())
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=logs, prefix=f"{argv[0]}-", suffix=".log", delete=False) as log:
        return subprocess.Popen(
            [sys.executable, "-m", "fleetmatch", *argv],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process still running, then wait for each (SIGKILL after 30 s)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()


def stack_env(redis_url: str, data_dir: Path, allocator_port: int, token: str, **extra: str) -> dict[str, str]:
    """The environment of an allocator on ``allocator_port`` and the directors that call it."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "FLEETMATCH_DATA_DIR": str(data_dir),
        "FLEETMATCH_METRICS_PORT": "0",
        "FLEETMATCH_ALLOCATOR_TOKEN": token,
        "FLEETMATCH_ALLOCATOR_URL": f"http://127.0.0.1:{allocator_port}",
        "FLEETMATCH_LOG_LEVEL": "INFO",
        **extra,
    }


async def ready_servers(gameservers: RedisStore[GameServer], count: int, *, fleet: str = "arena") -> None:
    """``count`` Ready servers of ``fleet`` named ``{fleet}-000``…, one port each."""
    for i in range(count):
        gs = GameServer(metadata=ObjectMeta(name=f"{fleet}-{i:03d}", labels={FLEET_LABEL: fleet}))
        await gameservers.create(
            gs.with_status(state=GameServerState.READY, address="10.0.0.1", ports=(PortStatus("default", 7000 + i),))
        )


async def allocated(gameservers: RedisStore[GameServer]) -> list[GameServer]:
    items, _ = await gameservers.list()
    return [g for g in items if g.state is GameServerState.ALLOCATED]


async def open_tickets(store: RedisTicketStore, queue: str, parties: Sequence[Sequence[Player]]) -> list[str]:
    """One queued ticket per party, a millisecond apart so their order in line is theirs."""
    now = time.time()
    ids = []
    for i, players in enumerate(parties):
        at = now + i / 1000
        tid = new_ticket_id(queue, at)
        ticket = Ticket(tid, queue, players[0].id, tuple(players), created_at=now, enqueued_at=at, expires_at=now + 600)
        await store.create(ticket, max_open_per_player=1)
        ids.append(tid)
    return ids
