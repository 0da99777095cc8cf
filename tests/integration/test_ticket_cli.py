"""``fleetmatch ticket`` and ``queue`` against an in-process ticket API on the real Redis store
(found through a stack file, as after ``fleetmatch up``): a party needs no more than the players'
names; ``--wait`` that runs out cancels the ticket and exits non-zero instead of leaving it queued;
the operator commands use the stack's API key; ``--watch`` prints each change; a refusal is one
line on stderr."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import click
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from fleetmatch.stackfile import StackInfo
from matchmaker.models import Proposal, TicketState
from matchmaker.store import StoredProposal
from matchmaker.tickets import RedisTicketStore
from tests.integration.test_example_game import catches
from tests.integration.test_ticket_api import KEY, SECRET, Api, assign, player, serving
from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def api(store: RedisTicketStore, tmp_path: Path) -> AsyncIterator[Api]:
    async with serving(store) as api:
        write_stack(tmp_path, api.url)
        yield api


def write_stack(data_dir: Path, matchmaker_url: str) -> None:
    """The stack file through which the CLI finds a ticket API at ``matchmaker_url`` (as after ``up``)."""
    StackInfo(
        redis_url="",
        metrics_url="",
        allocator_url="",
        allocator_token="",
        matchmaker_url=matchmaker_url,
        player_token_secret=SECRET,
        namespace="default",
        node="local",
        data_dir=str(data_dir),
        pid=os.getpid(),
        operator_api_key=KEY,
    ).write(data_dir)


@pytest.fixture
def store(redis_client: aioredis.Redis) -> RedisTicketStore:
    return RedisTicketStore(redis_client, block_ms=1000)


def in_the_foreground() -> None:
    """SIGINT back to its default in the child, as for a command typed at a terminal. A suite run
    in the background by a shell without job control (``./.ci/run &``) inherits SIGINT ignored, and
    so would the command: it keeps ignoring it, as a background job should, and Ctrl-C is not
    what these tests would then be sending."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def start(data_dir: Path, *args: str) -> asyncio.subprocess.Process:
    """``fleetmatch ARGS`` against the stack of ``data_dir``, its output piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fleetmatch",
        *args,
        cwd=REPO,
        env={**os.environ, "FLEETMATCH_DATA_DIR": str(data_dir)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=in_the_foreground,
    )


async def fleetmatch(data_dir: Path, *args: str) -> tuple[int, str, str]:
    proc = await start(data_dir, *args)
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


async def opened(api: Api, *players: str) -> str:
    ticket = await api.open("key", *(player(p) for p in players))
    return str(ticket["id"])


async def test_get_and_cancel_without_a_player_use_the_stacks_key(api: Api, tmp_path: Path) -> None:
    ticket_id = await opened(api, "alice", "bob")
    code, out, err = await fleetmatch(tmp_path, "ticket", "get", ticket_id)
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split() == ["ID", "STATE", "PLAYERS", "AGE", "SERVER", "EST-WAIT"]
    assert row.split()[:3] == [ticket_id, "queued", "alice,bob"]

    code, out, err = await fleetmatch(tmp_path, "ticket", "cancel", ticket_id, "-o", "json")
    assert code == 0, err
    assert json.loads(out)["state"] == "cancelled" and json.loads(out)["owner"] == "key:shop"
    assert (await api.store.get(ticket_id)).state is TicketState.CANCELLED

    code, out, _ = await fleetmatch(tmp_path, "ticket", "get", ticket_id, "--player", "alice", "-o", "yaml")
    assert code == 0 and "state: cancelled" in out.splitlines()  # --player keeps working


async def test_accept_and_decline_answer_a_proposed_match(api: Api, tmp_path: Path) -> None:
    first, second = await opened(api, "alice"), await opened(api, "bob")
    match = StoredProposal("m1", Proposal(((first,), (second,))), (1, 1))
    assert await api.store.propose("duel", "m1", match, timeout_seconds=60)
    code, out, err = await fleetmatch(tmp_path, "ticket", "accept", first, "--player", "alice", "-o", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["state"] == "proposed" and doc["proposal"]["accepted"] and doc["proposal"]["acceptedTickets"] == 1
    code, out, err = await fleetmatch(tmp_path, "ticket", "decline", second, "-o", "json")
    assert code == 0, err
    assert json.loads(out)["state"] == "cancelled"
    assert (await api.store.get(first)).state is TicketState.QUEUED  # back in the pool
    code, _, err = await fleetmatch(tmp_path, "ticket", "accept", first)
    assert code == 1 and err.startswith("error: 409 "), err


@pytest.mark.parametrize(
    ("args", "line"),
    [
        pytest.param(("ticket", "get", "duel.0000000000000000000000000z"), "error: 404 Ticket ", id="unknown-ticket"),
        pytest.param(("ticket", "get", "not-an-id"), "error: 404 Ticket ", id="malformed-id"),
        pytest.param(("ticket", "list", "--queue", "ranked"), "error: 422 queue: unknown queue 'ranked'", id="queue"),
        pytest.param(
            ("ticket", "create", "-q", "duel", "-p", "alice", "--attr", "skill=high"),
            "error: 422 players[0].attributes.skill: ",
            id="attribute",
        ),
    ],
)
async def test_refusals_are_one_line_on_stderr(api: Api, tmp_path: Path, args: tuple[str, ...], line: str) -> None:
    code, out, err = await fleetmatch(tmp_path, *args)
    assert (code, out) == (1, ""), err
    assert len(err.splitlines()) == 1 and err.startswith(line), err
    assert "Traceback" not in err


async def test_get_explain_says_why_a_lone_ticket_waits(api: Api, tmp_path: Path) -> None:
    ticket = await api.open("alice", player("alice"))
    code, out, err = await fleetmatch(tmp_path, "ticket", "get", ticket["id"], "--player", "alice", "--explain")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[2] == "why: no other ticket is waiting in queue duel (a match needs 4 players)"
    assert "  rule skill (window 100, widest 100): 0 pass, 0 fail" in lines

    code, _, err = await fleetmatch(tmp_path, "ticket", "get", ticket["id"], "--explain", "--watch")
    assert code == 2 and "--explain cannot be combined with --wait or --watch" in err


async def test_a_player_sees_only_their_tickets(api: Api, tmp_path: Path) -> None:
    ticket_id = await opened(api, "alice")
    code, out, err = await fleetmatch(tmp_path, "ticket", "get", ticket_id, "--player", "mallory")
    assert (code, out) == (1, "") and err.startswith("error: 404 "), err


async def test_ticket_list_by_state(api: Api, tmp_path: Path) -> None:
    first, second = await opened(api, "p1"), await opened(api, "p2")
    gone = await opened(api, "p3")
    await api.call("DELETE", f"/v1/tickets/{gone}", as_="key")
    code, out, err = await fleetmatch(tmp_path, "ticket", "list", "--queue", "duel", "--state", "queued", "-o", "name")
    assert code == 0, err
    assert out.splitlines() == [f"ticket/{first}", f"ticket/{second}"]
    code, out, err = await fleetmatch(tmp_path, "ticket", "list", "-q", "duel", "--limit", "1", "-o", "json")
    assert code == 0, err
    assert [t["id"] for t in json.loads(out)["items"]] == [first] and "only the first 1" in err


async def test_queue_list(api: Api, tmp_path: Path) -> None:
    await api.open("key", player("a", eu=10), player("b", eu=30))
    code, out, err = await fleetmatch(tmp_path, "queue", "list")
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(rows) == {"duel", "squad"}
    assert rows["duel"].split()[1:3] == ["2", "eu=2"] and "never" in rows["duel"]
    code, out, err = await fleetmatch(tmp_path, "queue", "list", "-o", "json")
    (duel,) = [q for q in json.loads(out)["items"] if q["name"] == "duel"]
    assert (duel["waitingTickets"], duel["waitingPlayers"], duel["byRegion"]) == (1, 2, {"eu": 2})


async def test_watch_prints_each_change_until_the_ticket_is_final(api: Api, tmp_path: Path) -> None:
    ticket_id = await opened(api, "alice")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fleetmatch",
        "ticket",
        "get",
        ticket_id,
        "--watch",
        cwd=REPO,
        env={**os.environ, "FLEETMATCH_DATA_DIR": str(tmp_path)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        header = await proc.stdout.readline()
        queued = await proc.stdout.readline()
        assert header.split()[:2] == [b"ID", b"STATE"] and queued.split()[1] == b"queued"
        await assign(api.store, {"id": ticket_id, "queue": "duel"}, {"alice": "t-a"})
        rest, err = await proc.communicate()
    assert proc.returncode == 0, err
    (matched,) = rest.decode().splitlines()  # the header once
    assert matched.split()[1] == "matched" and "arena-007" in matched


async def test_a_stack_without_an_operator_key_says_what_to_do(api: Api, tmp_path: Path) -> None:
    info = StackInfo.read(tmp_path)
    assert info is not None
    old = {k: v for k, v in json.loads((tmp_path / "stack.json").read_text()).items() if k != "operator_api_key"}
    (tmp_path / "stack.json").write_text(json.dumps(old))
    code, _, err = await fleetmatch(tmp_path, "ticket", "get", "duel.0000000000000000000000000z")
    assert code == 1 and "restart `fleetmatch up`, or pass --player" in err, err
    code, _, err = await fleetmatch(tmp_path, "queue", "list")
    assert code == 1 and err.startswith("error: ") and "--player" not in err, err  # queue list has no --player


def test_every_option_of_the_ticket_and_queue_commands_says_what_it_does() -> None:
    from fleetmatch.cli import queues, tickets

    groups = [tickets.ticket, queues.queue]
    for group in groups:
        assert isinstance(group, click.Group) and group.help
        for command in group.commands.values():
            assert command.help, command.name
            for param in command.params:
                if isinstance(param, click.Option):
                    assert param.help, f"{group.name} {command.name} {param.opts}"


async def test_ticket_create_help_reads_well(tmp_path: Path) -> None:
    code, out, err = await fleetmatch(tmp_path, "ticket", "create", "--help")
    assert code == 0, err
    assert "Example: fleetmatch ticket create -q duel -p alice" in out
    assert "--latency REGION=MS" in out and "--wait SECONDS" in out


@pytest.mark.parametrize(
    ("option", "value"),
    [("--wait", "nan"), ("--skill", "nan"), ("--skill", "inf"), ("--attr", "level=1e999"), ("--latency", "local=nan")],
)
async def test_numbers_json_cannot_carry_are_refused_naming_the_option(
    api: Api, tmp_path: Path, option: str, value: str
) -> None:
    """ "nan" passed click's ranges (it compares false): --wait nan waited for the ticket's whole life,
    and --skill nan reached the API as "malformed JSON: NaN is not JSON", which the user never wrote."""
    code, out, err = await fleetmatch(tmp_path, "ticket", "create", "-q", "duel", "-p", "alice", option, value)
    assert code == 2, (out, err)
    assert option in err and "finite number" in err and "Traceback" not in err
    assert not await api.store.pool("duel")


async def test_a_ticket_that_ends_without_a_match_during_the_wait_exits_1(api: Api, tmp_path: Path) -> None:
    """Expired (its queue's time limit shorter than the wait) or cancelled by someone else: the wait
    ended without a match, which is a failure, not exit 0."""
    run = asyncio.create_task(
        fleetmatch(tmp_path, "ticket", "create", "-q", "duel", "-p", "alice", "--skill", "1500", "--wait", "60")
    )

    async def opened() -> bool:
        return bool(await api.store.pool("duel"))

    await eventually(opened, within=30)
    (ticket,) = await api.store.pool("duel")
    await api.store.cancel(ticket.id, reason="the queue was closed")
    async with asyncio.timeout(30):
        code, out, err = await run
    assert code == 1, (out, err)
    assert json.loads(out)["state"] == "cancelled"
    assert f"error: ticket {ticket.id} ended cancelled without a match (the queue was closed)" in err


async def test_an_interrupted_wait_cancels_its_ticket(api: Api, tmp_path: Path) -> None:
    """Ctrl-C during --wait left the ticket queued: still matched, a server allocated for a player who
    left, and the player refused a new ticket (409) until it expired."""
    proc = await start(tmp_path, "ticket", "create", "-q", "duel", "-p", "alice", "--skill", "1500", "--wait", "60")

    async def opened() -> bool:
        return bool(await api.store.pool("duel"))

    await eventually(opened, within=30)
    (ticket,) = await api.store.pool("duel")
    proc.send_signal(signal.SIGINT)
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode == 130, (out, err)
    assert f"interrupted: ticket {ticket.id} was cancelled" in err.decode()
    assert (await api.store.get(ticket.id)).state is TicketState.CANCELLED
    await api.open("alice", player("alice"))  # free to queue again


async def test_an_interrupt_while_the_ticket_is_being_opened_cancels_it_too(tmp_path: Path) -> None:
    """The ticket exists once the API has written it, before its answer reaches the command: an
    interrupt in between left it queued. A stand-in ticket API holds its answer to the POST until
    the command has been interrupted; the command then waits for the answer and cancels the ticket."""
    posted, answer = asyncio.Event(), asyncio.Event()
    deleted: list[str] = []

    async def create(_: web.Request) -> web.Response:
        posted.set()
        await answer.wait()
        return web.json_response({"id": "duel.t1", "queue": "duel", "state": "queued"}, status=201)

    async def cancel(request: web.Request) -> web.Response:
        deleted.append(request.match_info["id"])
        return web.json_response({"id": request.match_info["id"], "queue": "duel", "state": "cancelled"})

    app = web.Application()
    app.router.add_post("/v1/tickets", create)
    app.router.add_delete("/v1/tickets/{id}", cancel)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    write_stack(tmp_path, f"http://127.0.0.1:{port}")
    try:
        proc = await start(tmp_path, "ticket", "create", "-q", "duel", "-p", "alice", "--skill", "1500", "--wait", "60")
        async with asyncio.timeout(30):
            await posted.wait()
        await catches(proc.pid, signal.SIGINT, within=10)
        proc.send_signal(signal.SIGINT)
        await asyncio.sleep(0.3)  # the interrupt lands while the answer is held
        answer.set()
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
        assert proc.returncode == 130, (out, err)
        assert deleted == ["duel.t1"]
        assert "interrupted: ticket duel.t1 was cancelled" in err.decode()
    finally:
        await runner.cleanup()
