"""Template changes on a live fleet of real UDP games: a RollingUpdate keeps ``replicas -
maxUnavailable`` servers Ready and stays within ``replicas + maxSurge``; Recreate clears the old
servers before making new ones; in both, an Allocated server on the old template keeps its match
(same process, still answering UDP) and is replaced on the new template only once it ends.

Invariants are checked on the recorded watch stream: every change the store made, in order, so a
dip that lasted a millisecond is seen."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from allocator.fleetops import apply_fleet
from allocator.fleetplan import TEMPLATE_HASH_LABEL, is_current, template_hash
from fleetmatch.models import (
    PROTECTED_STATES,
    TERMINAL_STATES,
    FleetStrategy,
    FleetStrategyType,
    GameServer,
    GameServerState,
    GameServerTemplate,
    RollingUpdate,
)
from fleetmatch.store import EventType, WatchEvent, modify
from tests.integration.fleetenv import Stack, example_game, make_fleet, running_stack, udp_ask

S = GameServerState
pytestmark = pytest.mark.timeout(60)
FIRST_PORT = 7850
"""Game ports 7850-7899; no other test module uses them."""


@pytest.fixture
async def stack(redis_client, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(redis_client, tmp_path, first_port=FIRST_PORT) as running:
        yield running


def history(
    events: Sequence[WatchEvent[GameServer]], fleet: str, since: str
) -> Iterator[tuple[WatchEvent[GameServer], dict[str, GameServer]]]:
    """Each change to ``fleet``'s servers after version ``since``, with the servers live just after it."""
    live: dict[str, GameServer] = {}
    started = False
    for event in events:
        gs = event.object
        if gs.fleet != fleet:
            continue
        if event.type is EventType.DELETED:
            live.pop(gs.name, None)
        else:
            live[gs.name] = gs
        if started:
            yield event, live
        started = started or gs.metadata.resource_version == since
    assert started, f"version {since} was never recorded"


async def allocate(stack: Stack, gs: GameServer) -> GameServer:
    allocated = await modify(stack.gameservers, gs.name, lambda g: g.with_status(state=S.ALLOCATED))
    assert allocated is not None
    return allocated


async def change_template(stack: Stack, name: str, release: str) -> GameServerTemplate:
    fleet = await stack.fleets.get(name)
    template = replace(
        fleet.spec.template, spec=replace(fleet.spec.template.spec, process=example_game(RELEASE=release))
    )
    await apply_fleet(stack.fleets, replace(fleet, spec=replace(fleet.spec, template=template)))
    return template


def rolled(fleet: str, digest: str, match: str, current: int) -> Callable[[list[GameServer]], bool]:
    """The predicate: ``current`` Ready servers on the new template, plus the old match, Allocated."""

    def check(items: list[GameServer]) -> bool:
        mine = [g for g in items if g.fleet == fleet]
        new = [g for g in mine if is_current(g, digest)]
        kept = any(g.name == match and g.state is S.ALLOCATED for g in mine)
        return kept and len(mine) == current + 1 and len(new) == current and all(g.state is S.READY for g in new)

    return check


async def assert_match_still_plays(stack: Stack, match: GameServer, pid: int) -> None:
    assert stack.pid_of(match.name) == pid  # the same game process, never restarted
    reply = await asyncio.to_thread(udp_ask, match.status.ports[0].port, {"t": "ping"})
    assert reply["t"] == "pong" and reply["server"] == match.name


ROLLING = FleetStrategy(rolling_update=RollingUpdate(max_surge=1, max_unavailable=1))


async def test_rolling_update_keeps_ready_servers_and_the_match(stack: Stack) -> None:
    replicas, surge, unavailable = 4, 1, 1
    await apply_fleet(stack.fleets, make_fleet("roll", replicas, example_game(RELEASE="1"), strategy=ROLLING))
    before = await stack.ready("roll", replicas)
    match = before[0]
    pid = stack.pid_of(match.name)
    allocated = await allocate(stack, match)

    template = await change_template(stack, "roll", "2")
    digest = template_hash(template)
    assert digest != before[0].metadata.labels[TEMPLATE_HASH_LABEL]
    items = await stack.wait(rolled("roll", digest, match.name, replicas - 1))
    for gs in items:
        if gs.name != match.name:
            assert gs.spec.process is not None and gs.spec.process.env["RELEASE"] == "2"
            stack.pid_of(gs.name)  # each new server runs
    assert not {g.name for g in before[1:]} & {g.name for g in items}
    await assert_match_still_plays(stack, match, pid)
    status = await stack.fleet_status(
        "roll", lambda st: st.updated_replicas == replicas - 1 and st.replicas == replicas
    )
    assert (status.ready_replicas, status.allocated_replicas) == (replicas - 1, 1)
    assert dict(status.states) == {"Ready": replicas - 1, "Allocated": 1}

    # The match ends: its server is replaced on the new template.
    await modify(stack.gameservers, match.name, lambda g: g.with_status(state=S.SHUTDOWN))
    await stack.wait(
        lambda gs: (
            match.name not in {g.name for g in gs}
            and sum(g.state is S.READY and is_current(g, digest) for g in gs) == replicas
        )
    )
    await stack.caught_up()

    lowest, highest = replicas, 0
    for _, live in history(stack.events, "roll", allocated.metadata.resource_version):
        ready = sum(g.state is S.READY for g in live.values())
        active = sum(g.state not in TERMINAL_STATES for g in live.values())
        lowest, highest = min(lowest, ready), max(highest, active)
    assert lowest >= replicas - unavailable, f"Ready fell to {lowest}"
    assert highest <= replicas + surge, f"{highest} servers at once"
    assert highest == replicas + surge  # it did surge: the first step was a new server, not a deletion


async def test_recreate_clears_old_servers_before_creating_but_keeps_the_match(stack: Stack) -> None:
    recreate = FleetStrategy(type=FleetStrategyType.RECREATE)
    await apply_fleet(stack.fleets, make_fleet("redo", 3, example_game(RELEASE="1"), strategy=recreate))
    before = await stack.ready("redo", 3)
    match = before[0]
    pid = stack.pid_of(match.name)
    allocated = await allocate(stack, match)

    digest = template_hash(await change_template(stack, "redo", "2"))
    await stack.wait(rolled("redo", digest, match.name, 2))
    await stack.caught_up()
    await assert_match_still_plays(stack, match, pid)

    created = 0
    for event, live in history(stack.events, "redo", allocated.metadata.resource_version):
        if event.type is EventType.ADDED:
            created += 1
            leftovers = [g.name for g in live.values() if not is_current(g, digest) and g.state not in PROTECTED_STATES]
            assert leftovers == [], f"{event.object.name} was created while {leftovers} still existed"
    assert created == 2
