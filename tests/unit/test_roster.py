"""Separate allocators find their shares of the servers by slot leases (``allocator.roster``), here
on the memory engine's leases (the same ``Lease`` contract as Redis keys and Kubernetes Leases)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from allocator.index import Share
from allocator.roster import SLOT_LEASE_PREFIX, Roster, share_of
from fleetmatch.backends.memory import MemoryLease, MemoryServer
from fleetmatch.errors import BackendError
from fleetmatch.lease import Lease


@pytest.mark.parametrize(
    ("mine", "held", "share"),
    [
        pytest.param(None, {0, 1}, None, id="no-slot"),
        pytest.param(0, set(), None, id="alone"),
        pytest.param(0, {0}, None, id="alone-seen"),
        pytest.param(1, {0, 1, 2}, Share(1, 3), id="middle"),
        pytest.param(5, {0, 2}, Share(2, 3), id="rank-not-slot"),
        pytest.param(2, {0, 1}, Share(2, 3), id="own-slot-counted"),
    ],
)
def test_share_of(mine: int | None, held: set[int], share: Share | None) -> None:
    assert share_of(mine, held) == share


class Member:
    """One allocator process's roster on a shared memory server, recording the shares it was given."""

    def __init__(self, server: MemoryServer, holder: str, ttl: float = 5.0) -> None:
        self.given: list[Share | None] = []
        self.roster = Roster(lambda name, t: MemoryLease(server, name, holder, ttl=t), self.given.append, ttl=ttl)

    @property
    def share(self) -> Share | None:
        return self.roster.share


async def rounds(members: list[Member], n: int = 2) -> None:
    for _ in range(n):
        for member in members:
            await member.roster.step()


def a_partition(members: list[Member]) -> bool:
    shares = [m.share for m in members]
    return all(s is not None and s.of == len(members) for s in shares) and sorted(
        s.slot for s in shares if s is not None
    ) == list(range(len(members)))


async def test_allocators_take_the_lowest_free_slots_and_split_the_servers() -> None:
    server = MemoryServer()
    members = [Member(server, f"host/{pid}") for pid in (11, 12, 13)]
    await members[0].roster.step()
    assert members[0].roster.slot == 0 and members[0].share is None  # alone so far: nothing to split
    await rounds(members)
    assert [m.roster.slot for m in members] == [0, 1, 2]
    assert a_partition(members)
    assert members[0].given == [Share(0, 3)]  # published once per change, not every round
    assert members[1].given == [Share(1, 2), Share(1, 3)]
    assert set(server.leases) == {f"{SLOT_LEASE_PREFIX}{i}" for i in range(3)}


async def test_one_that_leaves_is_closed_over_and_the_highest_moves_down() -> None:
    server = MemoryServer()
    members = [Member(server, f"host/{pid}") for pid in (11, 12, 13)]
    await rounds(members)
    await members[1].roster.leave()
    rest = [members[0], members[2]]
    await rounds(rest)
    assert a_partition(rest)
    assert members[2].roster.slot == 1  # moved into the freed slot: slots stay dense
    assert f"{SLOT_LEASE_PREFIX}2" not in server.leases
    newcomer = Member(server, "host/14")
    await rounds([*rest, newcomer])
    assert newcomer.roster.slot == 2 and a_partition([*rest, newcomer])


async def test_a_dead_allocators_slot_expires_and_the_rest_close_ranks() -> None:
    server = MemoryServer()
    members = [Member(server, f"host/{pid}", ttl=0.2) for pid in (11, 12)]
    await rounds(members)
    assert a_partition(members)
    await asyncio.sleep(0.3)  # member 0 stops renewing (SIGKILL): its lease runs out
    await members[1].roster.step()
    assert members[1].roster.slot == 0 and members[1].share is None


async def test_an_allocator_above_free_slots_moves_down_into_the_lowest() -> None:
    """After deaths an allocator may hold a slot far above the others (beyond ``LOOK_PAST`` free
    ones, where they stop looking): its own rounds move it down, so the others see it again."""
    server = MemoryServer()
    low, high = Member(server, "host/1"), Member(server, "host/2")
    await low.roster.step()
    assert await high.roster._lease(9).acquire()
    high.roster.slot = 9
    await low.roster.step()
    assert low.roster.share is None  # slot 9 is past where it looks
    await high.roster.step()
    assert high.roster.slot == 1 and f"{SLOT_LEASE_PREFIX}9" not in server.leases
    await low.roster.step()
    assert (low.share, high.share) == (Share(0, 2), Share(1, 2))


class Failing:
    """A lease whose store is down."""

    ttl = 1.0

    async def acquire(self) -> bool:
        raise BackendError("redis: connection refused")

    async def release(self) -> None:
        raise BackendError("redis: connection refused")

    async def taken(self) -> bool:
        raise BackendError("redis: connection refused")


async def test_a_store_error_keeps_the_share_and_the_rounds_go_on(caplog: pytest.LogCaptureFixture) -> None:
    server = MemoryServer()
    members = [Member(server, f"host/{pid}") for pid in (11, 12)]
    await rounds(members)
    share = members[0].share
    down = True

    def lease(name: str, ttl: float) -> Lease:
        return Failing() if down else MemoryLease(server, name, "host/11", ttl=ttl)

    roster = members[0].roster
    roster._leases.clear()
    roster._make = lease
    with pytest.raises(BackendError):
        await roster.step()
    assert roster.share == share
    with caplog.at_level(logging.INFO, logger="allocator.roster"):
        roster.ttl = 0.03
        task = asyncio.create_task(roster.run())
        await asyncio.sleep(0.1)  # several rounds, all failing
        assert roster.share == share
        assert caplog.text.count("connection refused") == 1  # logged once, not every round
        down = False
        roster._leases.clear()
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert "answer again" in caplog.text
    assert roster.share == share  # renewed after the store came back
    assert f"{SLOT_LEASE_PREFIX}0" not in server.leases  # released on the way out


async def test_a_worker_keeps_its_supervisors_share_until_it_sees_other_allocators() -> None:
    """Workers of ``--workers N`` start with their supervisor's slot (``fallback``) and take slot
    leases too: workers of two hosts then split the servers all together, and a worker that finds
    itself alone again goes back to its supervisor's slot."""
    server = MemoryServer()
    given: list[Share | None] = []
    worker = Roster(lambda name, t: MemoryLease(server, name, "host-a/1", ttl=t), given.append, fallback=Share(1, 2))
    assert worker.share == Share(1, 2)
    await worker.step()
    assert worker.share == Share(1, 2) and given == []  # alone: nothing new to publish
    others = [Member(server, f"host-{h}/{pid}") for h, pid in (("a", 2), ("b", 3), ("b", 4))]
    await rounds(others, 1)
    await worker.step()
    assert worker.slot == 1  # its supervisor's slot, tried first
    assert worker.share == Share(1, 4) and given == [Share(1, 4)]
    await rounds(others, 1)
    assert sorted(m.share.slot for m in others if m.share is not None) == [0, 2, 3]
    for member in others:
        await member.roster.leave()
    await worker.step()
    assert worker.share == Share(1, 2) and given == [Share(1, 4), Share(1, 2)]


async def test_workers_of_one_host_hold_their_supervisors_slots_from_the_first_round() -> None:
    """Workers start in any order; each tries its supervisor's slot first and does not move below
    it, so no two workers of one host ever publish the same share (which would race them)."""
    server = MemoryServer()
    given: dict[int, list[Share | None]] = {0: [], 1: [], 2: []}

    def leases(holder: str) -> Callable[[str, float], Lease]:
        return lambda name, ttl: MemoryLease(server, name, holder, ttl=ttl)

    workers = {slot: Roster(leases(f"host/{slot}"), given[slot].append, fallback=Share(slot, 3)) for slot in (0, 1, 2)}
    for slot in (2, 0, 1):  # worker 2 starts first: it takes slot 2, not 0
        await workers[slot].step()
        assert [w.share for w in workers.values()] == [Share(0, 3), Share(1, 3), Share(2, 3)]
    assert {slot: w.slot for slot, w in workers.items()} == {0: 0, 1: 1, 2: 2}
    await rounds_of(list(workers.values()))
    assert [w.share for w in workers.values()] == [Share(0, 3), Share(1, 3), Share(2, 3)]
    assert given == {0: [], 1: [], 2: []}  # the supervisor's shares held throughout


async def rounds_of(rosters: list[Roster]) -> None:
    for roster in rosters:
        await roster.step()
