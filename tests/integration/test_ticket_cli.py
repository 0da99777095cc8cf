"""``fleetmatch ticket create`` against an in-process ticket API on the real Redis store (found
through a stack file, as after ``fleetmatch up``): a party needs no more than the players' names,
and ``--wait`` that runs out cancels the ticket and exits non-zero instead of leaving it queued."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from fleetmatch.stackfile import StackInfo
from matchmaker.models import TicketState
from matchmaker.tickets import RedisTicketStore
from tests.integration.test_ticket_api import SECRET, Api, assign, player, serving
from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def api(store: RedisTicketStore, tmp_path: Path) -> AsyncIterator[Api]:
    async with serving(store) as api:
        StackInfo(
            redis_url="",
            metrics_url="",
            allocator_url="",
            allocator_token="",
            matchmaker_url=api.url,
            player_token_secret=SECRET,
            namespace="default",
            node="local",
            data_dir=str(tmp_path),
            pid=os.getpid(),
        ).write(tmp_path)
        yield api


@pytest.fixture
def store(redis_client: aioredis.Redis) -> RedisTicketStore:
    return RedisTicketStore(redis_client, block_ms=1000)


async def fleetmatch(data_dir: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fleetmatch",
        *args,
        cwd=REPO,
        env={**os.environ, "FLEETMATCH_DATA_DIR": str(data_dir)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_wait_that_runs_out_cancels_the_ticket_and_exits_1(api: Api, tmp_path: Path) -> None:
    code, out, err = await fleetmatch(
        tmp_path, "ticket", "create", "-q", "duel", "-p", "alice", "--skill", "1500", "--wait", "1"
    )
    assert code == 1, (out, err)
    doc = json.loads(out)
    assert f"no match within 1 s: ticket {doc['id']} was cancelled" in err
    assert doc["state"] == "cancelled" and (await api.store.get(doc["id"])).state is TicketState.CANCELLED
    await api.open("alice", player("alice"))  # free to queue again


async def test_a_match_within_the_wait_exits_0(api: Api, tmp_path: Path) -> None:
    args = ("ticket", "create", "-q", "duel", "-p", "alice", "-p", "bob", "--skill", "1500", "--wait", "60")
    run = asyncio.create_task(fleetmatch(tmp_path, *args))  # a party: the token vouches for bob

    async def opened() -> bool:
        return bool(await api.store.pool("duel"))

    await eventually(opened, within=30)
    (ticket,) = await api.store.pool("duel")
    ticket_id = ticket.id
    await assign(api.store, {"id": ticket_id, "queue": "duel"}, {"alice": "t-a", "bob": "t-b"})
    async with asyncio.timeout(30):
        code, out, err = await run
    assert code == 0, (out, err)
    assert json.loads(out)["state"] == "matched"
