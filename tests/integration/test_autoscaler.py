"""The autoscaler controller in-process on the real embedded Redis, against synthetic GameServer
records (no game processes): allocations refill the buffer at once, the interval catches what no
event announces (a cool-off running out), clamping and status are reported, a missing fleet or a
second autoscaler cannot scale, and two controllers sharing a lease never both write."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from allocator.controllers.autoscaler import AutoscalerController
from allocator.fleetops import apply_autoscaler, apply_fleet
from fleetmatch.backends.base import Backend
from fleetmatch.backends.redis.lease import RedisLease
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.errors import NotFoundError
from fleetmatch.lease import Leadership, Lease
from fleetmatch.models import (
    FLEET_LABEL,
    AutoscalerPolicy,
    AutoscalerSync,
    BufferPolicy,
    FixedInterval,
    Fleet,
    FleetAutoscaler,
    FleetAutoscalerSpec,
    FleetSpec,
    FleetStatus,
    GameServer,
    GameServerSpec,
    GameServerState,
    GameServerTemplate,
    ObjectMeta,
    ProcessTemplate,
)
from fleetmatch.store import R, Store, WatchEvent
from fleetmatch.tasks import cancel_and_wait
from tests.waiting import eventually

S = GameServerState
T0 = 1_700_000_000.0
T = TypeVar("T")
_names = itertools.count()


class Clock:
    """Wall clock the test moves by hand: cool-offs expire without the test waiting for them."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def shifted(self, offset: float) -> Callable[[], float]:
        return lambda: self.now + offset


def make_fleet(name: str = "arena", replicas: int = 2) -> Fleet:
    template = GameServerTemplate(spec=GameServerSpec(process=ProcessTemplate(("python", "-m", "game"))))
    return Fleet(metadata=ObjectMeta(name=name), spec=FleetSpec(replicas=replicas, template=template))


def make_fas(
    name: str,
    fleet: str = "arena",
    buffer: int | str = 2,
    lo: int = 0,
    hi: int = 20,
    interval: float = 30.0,
    cooloff: float = 0.0,
) -> FleetAutoscaler:
    return FleetAutoscaler(
        metadata=ObjectMeta(name=name),
        spec=FleetAutoscalerSpec(
            fleet_name=fleet,
            policy=AutoscalerPolicy(buffer=BufferPolicy(buffer_size=buffer, min_replicas=lo, max_replicas=hi)),
            sync=AutoscalerSync(fixed_interval=FixedInterval(seconds=interval)),
            scale_down_cooloff_seconds=cooloff,
        ),
    )


def decisions(autoscaler: str, fleet: str, decision: str) -> float:
    labels = {"autoscaler": autoscaler, "fleet": fleet, "decision": decision}
    return REGISTRY.get_sample_value("fleetmatch_autoscaler_decisions_total", labels) or 0.0


def gauge(metric: str, autoscaler: str, fleet: str) -> float | None:
    return REGISTRY.get_sample_value(
        f"fleetmatch_autoscaler_{metric}_replicas", {"autoscaler": autoscaler, "fleet": fleet}
    )


@dataclass
class Env:
    client: aioredis.Redis
    gameservers: RedisStore[GameServer]
    fleets: RedisStore[Fleet]
    autoscalers: RedisStore[FleetAutoscaler]
    clock: Clock = field(default_factory=Clock)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(
        self,
        *,
        gameservers: Store[GameServer] | None = None,
        fleets: Store[Fleet] | None = None,
        autoscalers: Store[FleetAutoscaler] | None = None,
        lease: Lease | None = None,
        clock: Callable[[], float] | None = None,
    ) -> Leadership:
        """An autoscaler on its own backend (own informers: another process), run while it leads."""
        backend = Backend(
            "redis",
            gameservers=gameservers or self.gameservers,
            fleets=fleets or self.fleets,
            autoscalers=autoscalers or self.autoscalers,
            leases=lambda name, holder, ttl: RedisLease(self.client, name, holder, ttl=ttl),
        )
        controller = AutoscalerController(backend, clock=clock or self.clock)
        leadership = Leadership(lease, "autoscaler")

        async def run() -> None:
            try:
                await leadership.run([("autoscaler", controller.run)])
            finally:
                await backend.aclose()

        self.tasks.append(asyncio.create_task(run(), name=f"test.autoscaler{len(self.tasks)}"))
        return leadership

    async def servers(self, n: int, state: GameServerState = S.ALLOCATED, fleet: str = "arena") -> list[str]:
        names = []
        for _ in range(n):
            gs = GameServer(metadata=ObjectMeta(name=f"{fleet}-{next(_names)}", labels={FLEET_LABEL: fleet}))
            created = await self.gameservers.create(gs.with_status(state=state))
            names.append(created.name)
        return names

    async def set_state(self, names: list[str], state: GameServerState) -> None:
        for name in names:
            gs = await self.gameservers.get(name)
            await self.gameservers.update(gs.with_status(state=state))

    async def replicas(self, fleet: str = "arena") -> int:
        return (await self.fleets.get(fleet)).spec.replicas

    async def scaled_to(self, n: int, within: float = 10.0) -> int:
        """The fleet's replicas once they are ``n`` (``within`` is generous: no speed is asserted)."""
        return await until(self.replicas, lambda got: got == n, within=within)

    async def fas(self, name: str) -> FleetAutoscaler:
        return await self.autoscalers.get(name)

    async def desired(self, name: str, n: int) -> FleetAutoscaler:
        """The autoscaler once its status says it wants ``n`` replicas."""
        return await until(lambda: self.fas(name), lambda f: f.status.desired_replicas == n)

    async def status(self, name: str, **fields: object) -> FleetAutoscaler:
        """The autoscaler once its status has these field values."""
        return await until(lambda: self.fas(name), lambda f: all(getattr(f.status, k) == v for k, v in fields.items()))


async def until(probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], within: float = 10.0) -> T:
    """Poll ``probe`` until ``check`` holds; fail with the last value seen after ``within`` seconds."""
    last: T | None = None
    try:
        async with asyncio.timeout(within):
            while True:
                last = await probe()
                if check(last):
                    return last
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"still {last!r} after {within}s") from None


async def steady(probe: Callable[[], Awaitable[int]], expected: int, seconds: float = 1.0) -> None:
    """``probe`` keeps returning ``expected`` for ``seconds`` (several 0.2 s ticks)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        assert await probe() == expected
        await asyncio.sleep(0.05)


@pytest.fixture
async def env(redis_client: aioredis.Redis) -> AsyncIterator[Env]:
    e = Env(
        redis_client,
        RedisStore(redis_client, GameServer),
        RedisStore(redis_client, Fleet),
        RedisStore(redis_client, FleetAutoscaler),
    )
    try:
        yield e
    finally:
        await cancel_and_wait(*e.tasks)


async def test_allocations_refill_the_buffer_at_once_not_at_the_tick(env: Env) -> None:
    fleet, _ = await apply_fleet(env.fleets, make_fleet(replicas=2))
    await env.fleets.update(replace(fleet, status=FleetStatus(replicas=2, ready_replicas=2)))
    await apply_autoscaler(env.autoscalers, make_fas("arena-fas", interval=30.0))
    env.start()
    held = await until(lambda: env.fas("arena-fas"), lambda f: f.status.able_to_scale)
    assert held.status.desired_replicas == 2 and held.status.current_replicas == 2
    assert held.status.last_scale_time is None and not held.status.scaling_limited
    await env.servers(2, S.READY)  # Ready servers are the buffer itself: nothing to do
    await steady(env.replicas, 2, seconds=0.3)

    env.clock.now = T0 + 5
    burst = await env.servers(3)  # three matches took servers; the next tick is 30 s away
    await env.scaled_to(5, within=10)
    await env.status("arena-fas", desired_replicas=5, last_scale_time=T0 + 5, able_to_scale=True)
    assert decisions("arena-fas", "arena", "up") >= 1
    assert gauge("desired", "arena-fas", "arena") == 5

    await env.set_state(burst[:1], S.SHUTDOWN)  # a match ended (no cool-off configured)
    await env.scaled_to(4)
    await env.gameservers.delete(burst[1])  # an Allocated record removed outright also stops counting
    await env.scaled_to(3)
    await env.servers(1, S.RESERVED)  # Reserved servers never make the fleet grow
    await steady(env.replicas, 3, seconds=0.3)


@pytest.mark.parametrize(
    ("buffer", "lo", "hi", "steps"),
    [
        # (allocated, expected replicas, scalingLimited)
        pytest.param(2, 3, 5, [(0, 3, True), (2, 4, False), (3, 5, False), (5, 5, True)], id="int"),
        pytest.param("50%", 1, 4, [(0, 1, True), (1, 2, False), (2, 4, False), (3, 4, True)], id="percent"),
    ],
)
async def test_clamping_sets_scaling_limited(
    env: Env, buffer: int | str, lo: int, hi: int, steps: list[tuple[int, int, bool]]
) -> None:
    await apply_fleet(env.fleets, make_fleet(replicas=0))
    await apply_autoscaler(env.autoscalers, make_fas("clamp", buffer=buffer, lo=lo, hi=hi))
    env.start()
    allocated = 0
    for want_allocated, replicas, limited in steps:
        await env.servers(want_allocated - allocated)
        allocated = want_allocated
        await env.scaled_to(replicas)
        await env.status("clamp", desired_replicas=replicas, scaling_limited=limited, able_to_scale=True)


async def test_interval_ends_a_cooloff_that_no_event_announces(env: Env) -> None:
    await apply_fleet(env.fleets, make_fleet(replicas=2))
    await apply_autoscaler(env.autoscalers, make_fas("cool", interval=0.2, cooloff=60))
    env.start()
    matches = await env.servers(4)
    await env.scaled_to(6)  # up at T0
    await env.status("cool", desired_replicas=6, last_scale_time=T0)

    deferred = decisions("cool", "arena", "cooloff")
    await env.set_state(matches[:3], S.SHUTDOWN)  # the burst is over: the policy wants 1 + 2
    await env.desired("cool", 3)
    await steady(env.replicas, 6, seconds=1.0)  # ~5 ticks, all inside the cool-off
    assert decisions("cool", "arena", "cooloff") > deferred
    assert gauge("desired", "cool", "arena") == 3

    env.clock.now = T0 + 10  # still cooling off, yet a scale-up is never delayed
    await env.servers(6)  # 7 allocated: wants 9
    await env.scaled_to(9, within=10)
    await env.status("cool", desired_replicas=9, last_scale_time=T0 + 10)

    await env.set_state(matches[3:], S.SHUTDOWN)  # 6 allocated: wants 8, cool-off counts from T0 + 10
    env.clock.now = T0 + 69  # 59 s after the scale-up
    await env.desired("cool", 8)
    await steady(env.replicas, 9, seconds=0.6)
    env.clock.now = T0 + 71  # nothing in the store changes: only the interval can notice this
    await env.scaled_to(8, within=10)
    await env.status("cool", desired_replicas=8, last_scale_time=T0 + 71)


async def test_missing_fleet_means_unable_to_scale(env: Env) -> None:
    await apply_autoscaler(env.autoscalers, make_fas("orphan", fleet="ghost"))
    await apply_fleet(env.fleets, make_fleet(replicas=7))
    await apply_autoscaler(env.autoscalers, make_fas("arena-fas"))
    env.start()
    await env.scaled_to(2)
    await until(lambda: env.fas("arena-fas"), lambda f: f.status.able_to_scale)
    await steady(lambda: _able(env, "orphan"), 0, seconds=0.3)
    ghost = await env.fas("orphan")
    assert (ghost.status.desired_replicas, ghost.status.current_replicas) == (0, 0)

    await env.fleets.delete("arena")
    gone = await until(lambda: env.fas("arena-fas"), lambda f: not f.status.able_to_scale)
    assert (gone.status.desired_replicas, gone.status.scaling_limited) == (0, False)
    assert gauge("desired", "arena-fas", "arena") is None  # a fleet it cannot scale is not graphed

    await apply_fleet(env.fleets, make_fleet(replicas=0))  # back: scaled at once
    await env.scaled_to(2)
    await until(lambda: env.fas("arena-fas"), lambda f: f.status.able_to_scale)


async def _able(env: Env, name: str) -> int:
    return int((await env.fas(name)).status.able_to_scale)


async def test_oldest_autoscaler_of_a_fleet_wins(env: Env) -> None:
    await apply_fleet(env.fleets, make_fleet(replicas=0))
    await apply_autoscaler(env.autoscalers, make_fas("first", buffer=2))
    await asyncio.sleep(0.01)  # creation timestamps are milliseconds
    await apply_autoscaler(env.autoscalers, make_fas("second", buffer=5))
    env.start()
    await until(lambda: env.fas("first"), lambda f: f.status.able_to_scale)
    await env.servers(1)
    await env.scaled_to(3)
    await steady(env.replicas, 3, seconds=0.3)
    second = await env.fas("second")
    assert not second.status.able_to_scale and second.status.last_scale_time is None

    await env.autoscalers.delete("first")  # the standby takes over
    await env.scaled_to(6)
    await until(lambda: env.fas("second"), lambda f: f.status.able_to_scale)


class Recording(Store[R]):
    """A store that notes every write, to tell which controller wrote."""

    def __init__(self, inner: RedisStore[R], who: str, log: list[tuple[str, str, str]]) -> None:
        self.inner, self.who, self.log = inner, who, log

    @property
    def kind(self) -> type[R]:
        return self.inner.kind

    @property
    def namespace(self) -> str:
        return self.inner.namespace

    async def get(self, name: str) -> R:
        return await self.inner.get(name)

    async def list(self) -> tuple[list[R], str]:
        return await self.inner.list()

    def watch(self, since: str) -> AsyncIterator[WatchEvent[R]]:
        return self.inner.watch(since)

    async def create(self, obj: R) -> R:
        self.log.append((self.who, "create", obj.metadata.name))
        return await self.inner.create(obj)

    async def update(self, obj: R) -> R:
        self.log.append((self.who, f"update {self.kind.KIND}", obj.metadata.name))
        return await self.inner.update(obj)

    async def delete(self, name: str, *, version: str | None = None) -> None:
        self.log.append((self.who, "delete", name))
        await self.inner.delete(name, version=version)


async def test_two_controllers_sharing_a_lease_do_not_fight(env: Env) -> None:
    writes: list[tuple[str, str, str]] = []
    controllers = {}
    for who, offset in (("one", 0.0), ("two", 1000.0)):
        controllers[who] = env.start(
            fleets=Recording(env.fleets, who, writes),
            autoscalers=Recording(env.autoscalers, who, writes),
            lease=RedisLease(env.client, "autoscaler", who, ttl=1.0),
            clock=env.clock.shifted(offset),
        )
        if who == "one":
            await until(lambda: _leading(controllers["one"]), bool)
    await apply_fleet(env.fleets, make_fleet(replicas=0))
    await apply_autoscaler(env.autoscalers, make_fas("shared", interval=0.2))
    for allocated in (1, 2, 3):
        await env.servers(1)
        await env.scaled_to(allocated + 2)
    await env.status("shared", desired_replicas=5, last_scale_time=T0)  # the leader's clock
    await steady(env.replicas, 5, seconds=0.5)
    assert {w[0] for w in writes} == {"one"}, writes
    assert controllers["one"].leading and not controllers["two"].leading

    await cancel_and_wait(env.tasks[0])  # the leader stops (and releases the lease)
    before = len(writes)
    await env.servers(2)
    await env.scaled_to(7, within=10)
    await env.status("shared", desired_replicas=7, last_scale_time=T0 + 1000)  # the new leader's clock
    assert {w[0] for w in writes[before:]} == {"two"}, writes[before:]


async def _leading(leadership: Leadership) -> int:
    return int(leadership.leading)


async def test_deleting_an_autoscaler_leaves_the_fleet_alone(env: Env) -> None:
    await apply_fleet(env.fleets, make_fleet(replicas=0))
    await apply_autoscaler(env.autoscalers, make_fas("temp", buffer=3))
    env.start()
    await env.scaled_to(3)
    await eventually(lambda: gauge("desired", "temp", "arena") == 3, within=10)
    await env.autoscalers.delete("temp")
    # Once the controller has seen the deletion (its gauges go with it): a change made before that
    # may still be acted on, as a deleted Agones FleetAutoscaler's last in-flight sync is.
    await eventually(lambda: gauge("desired", "temp", "arena") is None, within=10)
    await env.servers(4)
    await steady(env.replicas, 3, seconds=0.5)
    with pytest.raises(NotFoundError):
        await env.fas("temp")
    assert gauge("desired", "temp", "arena") is None
