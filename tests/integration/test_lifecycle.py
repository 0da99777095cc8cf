"""The local fleet on a real Redis, in-process: node agent + SDK host + fleet controller, running
real game processes. Health failure, SIGKILL, Shutdown and exits each end in a replacement;
scaling up adds servers and scaling down never touches an Allocated one; two agents never run one server twice."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from allocator.fleetops import apply_fleet
from fleetmatch.models import ERROR_ANNOTATION, GameServer, GameServerState, Health
from fleetmatch.store import modify
from fleetmatch.tasks import cancel_and_wait
from tests.integration.fleetenv import Stack, example_game, make_fleet, misbehaving, running_stack, udp_ask
from tests.waiting import eventually

S = GameServerState
pytestmark = pytest.mark.timeout(90)
FIRST_PORT = 7700
"""Game ports 7700-7799 (two nodes of 50); no other test module uses them."""


@pytest.fixture
async def stack(redis_client, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    async with running_stack(
        redis_client, tmp_path, first_port=FIRST_PORT, nodes=getattr(request, "param", 1)
    ) as running:
        yield running


async def test_fleet_of_example_games_becomes_ready_and_answers(stack: Stack) -> None:
    await apply_fleet(stack.fleets, make_fleet("arena", 2, example_game()))
    ready = await stack.ready("arena", 2)
    for gs in ready:
        assert gs.status.node_name == "node-0" and gs.status.address == "127.0.0.1"
        reply = await asyncio.to_thread(udp_ask, gs.status.ports[0].port, {"t": "ping"})
        assert reply["t"] == "pong" and reply["server"] == gs.name
        # The game went through the real lifecycle: Creating → Scheduled → RequestReady → Ready.
        assert stack.states_of(gs.name)[:4] == [S.CREATING, S.SCHEDULED, S.REQUEST_READY, S.READY]
    assert len({g.status.ports[0].port for g in ready}) == 2
    fleet = await stack.fleets.get("arena")
    assert (fleet.status.replicas, fleet.status.ready_replicas) == (2, 2)


async def test_sigkilled_game_turns_unhealthy_and_is_replaced(stack: Stack) -> None:
    await apply_fleet(stack.fleets, make_fleet("arena", 2, example_game()))
    victim = (await stack.ready("arena", 2))[0]
    os.kill(stack.pid_of(victim.name), signal.SIGKILL)
    items = await stack.wait(
        lambda gs: victim.name not in {g.name for g in gs} and sum(g.state is S.READY for g in gs) == 2
    )
    assert stack.states_of(victim.name)[-2:] == [S.UNHEALTHY, "DELETED"]
    unhealthy = next(e.object for e in stack.events if e.object.name == victim.name and e.object.state is S.UNHEALTHY)
    assert "killed by SIGKILL" in unhealthy.metadata.annotations[ERROR_ANNOTATION]
    assert len(items) == 2
    # The reason outlives the server: the agent's event record survives the deletion racing it.
    log = stack.agents[0].events
    assert log is not None

    async def recorded() -> bool:
        return [r.reason for r in await log.list(GameServer.KIND, victim.name)] == ["Unhealthy"]

    # The record lands just after the mark that lets the controller replace the server: wait for it.
    await eventually(recorded, within=5)
    (record,) = await log.list(GameServer.KIND, victim.name)
    assert "killed by SIGKILL" in record.message


async def test_health_failure_turns_unhealthy_and_is_replaced(stack: Stack) -> None:
    health = Health(period_seconds=1, failure_threshold=2, initial_delay_seconds=1)
    await apply_fleet(stack.fleets, make_fleet("quiet", 1, misbehaving("silent"), health))
    first = await stack.wait(lambda gs: any(g.state is S.READY for g in gs))
    name = next(g.name for g in first if g.state is S.READY)
    await stack.wait(lambda gs: name not in {g.name for g in gs} and len(gs) == 1)
    assert S.UNHEALTHY in stack.states_of(name)
    assert stack.states_of(name)[-1] == "DELETED"


@pytest.mark.parametrize(
    ("mode", "final"),
    [("shutdown", S.SHUTDOWN), ("exit-before-shutdown-lands", S.SHUTDOWN), ("exit", S.UNHEALTHY)],
)
async def test_game_ending_is_recorded_and_replaced(stack: Stack, mode: str, final: GameServerState) -> None:
    await apply_fleet(stack.fleets, make_fleet("ends", 1, misbehaving(mode, delay=0.3)))
    first = await stack.wait(lambda gs: any(g.state is S.READY for g in gs))
    name = next(g.name for g in first if g.state is S.READY)
    await stack.wait(lambda gs: name not in {g.name for g in gs} and any(g.state is S.READY for g in gs))
    states = stack.states_of(name)
    assert final in states and S.UNHEALTHY not in states[: states.index(final)]
    if final is S.SHUTDOWN:
        assert S.UNHEALTHY not in states  # a game that asked to stop is not reported as failed


async def test_scale_up_then_down_keeps_allocated_servers_running(stack: Stack) -> None:
    await apply_fleet(stack.fleets, make_fleet("arena", 1, example_game()))
    (first,) = await stack.ready("arena", 1)
    fleet = await stack.fleets.get("arena")
    await apply_fleet(stack.fleets, replace(fleet, spec=replace(fleet.spec, replicas=4)))
    ready = await stack.ready("arena", 4)
    assert first.name in {g.name for g in ready}  # scaling up adds, it does not replace

    chosen = sorted(g.name for g in ready)[1:3]
    for name in chosen:
        await modify(stack.gameservers, name, lambda g: g.with_status(state=S.ALLOCATED))
    others = [stack.pid_of(g.name) for g in ready if g.name not in chosen]
    fleet = await stack.fleets.get("arena")
    await apply_fleet(stack.fleets, replace(fleet, spec=replace(fleet.spec, replicas=1)))
    # Allocated servers count toward replicas but are never deleted: both stay, though replicas is 1.
    items = await stack.wait(lambda gs: len(gs) == 2)
    assert sorted(g.name for g in items) == chosen and {g.state for g in items} == {S.ALLOCATED}
    for _ in range(200):  # deleted servers' processes stop (SIGTERM, then the agent lets go)
        if sorted(stack.agents[0].local) == chosen:
            break
        await asyncio.sleep(0.05)
    assert sorted(stack.agents[0].local) == chosen
    for pid in others:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    for gs in items:
        reply = await asyncio.to_thread(udp_ask, gs.status.ports[0].port, {"t": "ping"})
        assert reply["server"] == gs.name
    status = await stack.fleet_status("arena", lambda st: st.replicas == 2)
    assert (status.allocated_replicas, status.ready_replicas, dict(status.states)) == (2, 0, {"Allocated": 2})


@pytest.mark.parametrize("stack", [2], indirect=True)
async def test_two_agents_never_run_one_server_twice(stack: Stack) -> None:
    await apply_fleet(stack.fleets, make_fleet("wide", 6, example_game()))
    ready = await stack.ready("wide", 6)
    running = [name for agent in stack.agents for name in agent.local]
    assert sorted(running) == sorted(g.name for g in ready)  # each server runs on exactly one node
    for gs in ready:
        assert gs.name in stack.agents[int(gs.status.node_name[-1])].local
    endpoints = [(g.status.node_name, g.status.ports[0].port) for g in ready]
    assert len(set(endpoints)) == 6
    scheduled = [e for e in stack.events if e.object.state is S.SCHEDULED]
    assert len(scheduled) == 6  # one successful claim per server


async def test_agent_stop_marks_its_servers_unhealthy(stack: Stack) -> None:
    await apply_fleet(stack.fleets, make_fleet("arena", 1, example_game()))
    (gs,) = await stack.ready("arena", 1)
    pid = stack.pid_of(gs.name)
    agent_task = next(t for t in asyncio.all_tasks() if t.get_name() == "test.agent0")
    await cancel_and_wait(agent_task)
    await asyncio.sleep(0.2)  # let the recorder see the last write
    marked = [e.object for e in stack.events if e.object.name == gs.name and e.object.state is S.UNHEALTHY]
    assert marked and marked[0].metadata.annotations[ERROR_ANNOTATION] == "node agent stopped"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
