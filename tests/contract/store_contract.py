"""The contract every ``fleetmatch.store.Store`` engine must honour, as one reusable test class.

A runner subclasses ``StoreContract`` and overrides the ``harness`` fixture with a ``StoreHarness``
for its engine (``tests/unit/test_store_memory.py``, ``tests/integration/test_store_redis.py``; the
Kubernetes engine later). Everything engine-specific (connections, how an outage is staged, key
layout) lives in the harness or the runner, never here, so the same assertions hold every engine to
the Kubernetes API semantics that ``fleetmatch.store`` promises.

Watch tests never sleep to prove that nothing arrived: after the writes under test they write a
*sentinel* change and require it to be the very next event, so a missing, duplicated, reordered or
spurious event fails deterministically.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic

import pytest

from fleetmatch.errors import (
    AlreadyExistsError,
    ConflictError,
    ExpiredError,
    NotFoundError,
    ValidationError,
)
from fleetmatch.models import (
    Fleet,
    FleetSpec,
    FleetStatus,
    GameServer,
    GameServerSpec,
    GameServerState,
    GameServerTemplate,
    Health,
    ObjectMeta,
    ProcessTemplate,
    with_meta,
)
from fleetmatch.store import EventType, R, Store, WatchEvent, modify

EVENT_TIMEOUT = 15.0
"""Seconds to wait for one expected watch event (generous: it includes an engine's reconnect back-off)."""
CANCEL_GRACE = 3.0
"""Seconds a cancelled watch may take to stop (it should stop at once)."""


class StoreHarness(abc.ABC):
    """What a runner provides: stores over one shared backend, and ways to stress them.

    Every ``gameservers()``/``fleets()`` call returns a store that sees the same data as the others
    of the same namespace. Engines with connections must give each call *its own* connections, so
    that concurrency tests race separate clients, not one pipelined socket.
    """

    @abc.abstractmethod
    async def gameservers(self, namespace: str = "default", *, history: int | None = None) -> Store[GameServer]:
        """A GameServer store; ``history`` (if given) bounds the changes it keeps for watches."""

    @abc.abstractmethod
    async def fleets(self, namespace: str = "default") -> Store[Fleet]:
        """A Fleet store over the same backend."""

    @abc.abstractmethod
    def outage(self, store: Store[Any]) -> AbstractAsyncContextManager[None]:
        """While inside, ``store``'s connections are dropped (server-side) and cannot come back.

        Other stores keep working, so the test can write while ``store`` is cut off. Engines
        without connections make this a no-op; engines with connections must check that they
        really dropped one (a watch that was never cut proves nothing).
        """


def gameserver(name: str = "gs-1", **labels: str) -> GameServer:
    return GameServer(metadata=ObjectMeta(name=name, labels=labels))


def fleet(name: str = "f-1", replicas: int = 1) -> Fleet:
    template = GameServerTemplate(spec=GameServerSpec(process=ProcessTemplate(command=("true",))))
    return Fleet(metadata=ObjectMeta(name=name), spec=FleetSpec(replicas=replicas, template=template))


def relabel(obj: R, **labels: str) -> R:
    return with_meta(obj, labels={**obj.metadata.labels, **labels})


def summary(events: list[WatchEvent[R]]) -> list[tuple[str, str, str]]:
    """What must match exactly between expected and observed event sequences."""
    return [(e.type.value, e.object.metadata.name, e.object.metadata.resource_version) for e in events]


class Watcher(Generic[R]):
    """Runs ``store.watch(since)`` in a task so a test can write, then await the events it caused."""

    def __init__(self, store: Store[R], since: str) -> None:
        self._queue: asyncio.Queue[WatchEvent[R] | BaseException] = asyncio.Queue()
        self.delivered: list[WatchEvent[R]] = []
        self.task = asyncio.create_task(self._run(store, since), name=f"watch-{since}")

    async def _run(self, store: Store[R], since: str) -> None:
        try:
            async for event in store.watch(since):
                self._queue.put_nowait(event)
        except Exception as exc:
            self._queue.put_nowait(exc)

    async def next(self, within: float = EVENT_TIMEOUT) -> WatchEvent[R]:
        async with asyncio.timeout(within):
            item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        self.delivered.append(item)
        return item

    async def take(self, n: int) -> list[WatchEvent[R]]:
        return [await self.next() for _ in range(n)]

    async def until(self, version: str) -> list[WatchEvent[R]]:
        """Every event up to and including the one at ``version`` (the sentinel)."""
        out = []
        while True:
            event = await self.next()
            out.append(event)
            if event.object.metadata.resource_version == version:
                return out

    async def close(self) -> None:
        """Cancel the watch; fail (after stopping it anyway) if it ignored the cancellation."""
        stubborn = await stop(self.task)
        assert not stubborn, "the watch kept running after it was cancelled"


async def stop(task: asyncio.Task[Any], grace: float = CANCEL_GRACE) -> bool:
    """Cancel ``task`` and wait for it; True if it swallowed the cancellation (it is then cancelled
    again until it stops, so a broken engine fails its test instead of hanging the run)."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=grace)
    stubborn = not done
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    if not task.cancelled():
        error = task.exception()
        if error is not None:
            raise error
    return stubborn


@contextlib.asynccontextmanager
async def watching(store: Store[R], since: str) -> AsyncIterator[Watcher[R]]:
    """A running ``Watcher``, closed on exit (a watch that ignores the cancel fails the test)."""
    watcher = Watcher(store, since)
    try:
        yield watcher
    except BaseException:
        await stop(watcher.task)  # the body's failure is the one to report
        raise
    await watcher.close()


async def first_event(store: Store[R], since: str) -> WatchEvent[R]:
    """The first event of a fresh watch (or the error the watch raises)."""
    async with watching(store, since) as watcher:
        return await watcher.next()


class StoreContract:
    """Subclass as ``Test<Engine>Store`` and override the ``harness`` fixture."""

    @pytest.fixture
    def harness(self) -> StoreHarness:
        raise NotImplementedError("a store contract runner must override the `harness` fixture")

    # -- create ------------------------------------------------------------------------------

    async def test_create_stamps_server_owned_metadata(self, harness: StoreHarness) -> None:
        store = await harness.gameservers()
        before = time.time()
        forged = ObjectMeta(name="gs-1", uid="forged", generation=7, creation_timestamp=1.0, labels={"a": "b"})
        created = await store.create(GameServer(metadata=forged))
        other = await store.create(gameserver("gs-2"))

        meta = created.metadata
        assert meta.name == "gs-1"
        assert meta.namespace == store.namespace
        assert meta.uid not in ("", "forged")
        assert meta.uid != other.metadata.uid
        assert meta.generation == 1
        assert meta.creation_timestamp is not None
        assert before - 5 <= meta.creation_timestamp <= time.time() + 5
        assert meta.resource_version != ""
        assert meta.resource_version != other.metadata.resource_version
        assert meta.labels == {"a": "b"}
        assert await store.get("gs-1") == created

    async def test_create_uses_generate_name(self, harness: StoreHarness) -> None:
        store = await harness.gameservers()
        template = GameServer(metadata=ObjectMeta(generate_name="pool-"))
        first = await store.create(template)
        second = await store.create(template)

        for obj in (first, second):
            assert obj.metadata.name.startswith("pool-")
            assert len(obj.metadata.name) == len("pool-") + 5
            assert await store.get(obj.metadata.name) == obj
        assert first.metadata.name != second.metadata.name

    async def test_create_refuses_a_taken_name(self, harness: StoreHarness) -> None:
        store = await harness.gameservers()
        original = await store.create(gameserver("gs-1", owner="first"))

        with pytest.raises(AlreadyExistsError):
            await store.create(gameserver("gs-1", owner="second"))
        assert await store.get("gs-1") == original

    async def test_create_refuses_a_resource_version_or_no_name(self, harness: StoreHarness) -> None:
        store = await harness.gameservers()
        with pytest.raises(ValidationError):
            await store.create(with_meta(gameserver("gs-1"), resource_version="12"))
        with pytest.raises(ValidationError):
            await store.create(GameServer(metadata=ObjectMeta()))
        items, _ = await store.list()
        assert items == []

    # -- get / list --------------------------------------------------------------------------

    async def test_get_of_a_missing_object_is_not_found(self, harness: StoreHarness) -> None:
        store = await harness.gameservers()
        await store.create(gameserver("gs-1"))
        with pytest.raises(NotFoundError):
            await store.get("gs-2")

    async def test_list_returns_current_objects_and_a_version(self, harness: StoreHarness) -> None:
        store = await harness.gameservers()
        empty, empty_version = await store.list()
        assert empty == []
        assert empty_version != ""

        a = await store.create(gameserver("gs-a"))
        b = await store.create(gameserver("gs-b"))
        b = await store.update(relabel(b, step="2"))
        c = await store.create(gameserver("gs-c"))
        await store.delete("gs-c", version=c.metadata.resource_version)

        items, version = await store.list()
        assert sorted(items, key=lambda o: o.metadata.name) == [a, b]
        assert version not in ("", empty_version)

    async def test_list_then_watch_misses_nothing(self, harness: StoreHarness) -> None:
        store = await harness.gameservers()
        writer = await harness.gameservers()
        for i in range(3):
            await store.create(gameserver(f"old-{i}"))
        _, version = await store.list()

        async with watching(store, version) as watcher:
            expected = [await writer.create(gameserver("new-1"))]
            expected.append(await writer.update(relabel(expected[0], seen="yes")))
            await writer.delete("old-0")
            sentinel = await writer.create(gameserver("sentinel"))
            events = await watcher.until(sentinel.metadata.resource_version)

        assert [(e.type, e.object.metadata.name) for e in events] == [
            (EventType.ADDED, "new-1"),
            (EventType.MODIFIED, "new-1"),
            (EventType.DELETED, "old-0"),
            (EventType.ADDED, "sentinel"),
        ]
        assert [e.object for e in events[:2]] == expected

    async def test_watch_from_an_empty_list_sees_the_first_create(self, harness: StoreHarness) -> None:
        store = await harness.gameservers()
        _, version = await store.list()
        async with watching(store, version) as watcher:
            created = await store.create(gameserver("gs-1"))
            event = await watcher.next()
        assert event == WatchEvent(EventType.ADDED, created)

    # -- watch -------------------------------------------------------------------------------

    async def test_watch_yields_added_modified_deleted_in_order(self, harness: StoreHarness) -> None:
        store = await harness.gameservers()
        _, version = await store.list()
        async with watching(store, version) as watcher:
            created = await store.create(gameserver("gs-1", phase="one"))
            updated = await store.update(relabel(created, phase="two"))
            await store.delete("gs-1")
            events = await watcher.take(3)

        assert events[0] == WatchEvent(EventType.ADDED, created)
        assert events[1] == WatchEvent(EventType.MODIFIED, updated)
        deleted = events[2]
        assert deleted.type is EventType.DELETED
        # DELETED carries the last state, at a new version of its own.
        assert deleted.object.metadata.labels == {"phase": "two"}
        assert deleted.object.metadata.uid == created.metadata.uid
        assert deleted.object.metadata.resource_version not in (
            created.metadata.resource_version,
            updated.metadata.resource_version,
            "",
        )
        _, after = await store.list()
        assert after == deleted.object.metadata.resource_version

    async def test_watch_resumes_from_the_last_delivered_version(self, harness: StoreHarness) -> None:
        store = await harness.gameservers()
        _, version = await store.list()
        async with watching(store, version) as watcher:
            a = await store.create(gameserver("gs-a"))
            a = await store.update(relabel(a, n="1"))
            seen = await watcher.take(2)
        resume_from = seen[-1].object.metadata.resource_version

        later = [await store.create(gameserver("gs-b"))]
        later.append(await store.update(relabel(a, n="2")))
        async with watching(store, resume_from) as watcher:
            sentinel = await store.create(gameserver("sentinel"))
            events = await watcher.until(sentinel.metadata.resource_version)

        assert [e.object for e in events[:-1]] == later
        assert [e.type for e in events] == [EventType.ADDED, EventType.MODIFIED, EventType.ADDED]

    async def test_watch_resumes_after_a_dropped_connection(self, harness: StoreHarness) -> None:
        watched = await harness.gameservers()
        writer = await harness.gameservers()
        _, version = await watched.list()
        async with watching(watched, version) as watcher:
            first = await writer.create(gameserver("gs-1", n="0"))
            assert (await watcher.next()).object == first

            expected = [first]
            async with harness.outage(watched):
                current = first
                for n in range(1, 6):
                    current = await writer.update(relabel(current, n=str(n)))
                    expected.append(current)
                expected.append(await writer.create(gameserver("gs-2")))
            sentinel = await writer.create(gameserver("sentinel"))
            await watcher.until(sentinel.metadata.resource_version)

        # Every change exactly once, in write order, each at the version the write returned.
        types = [EventType.ADDED] + [EventType.MODIFIED] * 5 + [EventType.ADDED, EventType.ADDED]
        wanted = [WatchEvent(t, o) for t, o in zip(types, [*expected, sentinel], strict=True)]
        assert summary(watcher.delivered) == summary(wanted)
        assert watcher.delivered == wanted

    async def test_watch_older_than_the_kept_history_is_expired(self, harness: StoreHarness) -> None:
        store = await harness.gameservers("history", history=3)
        _, start = await store.list()
        obj = await store.create(gameserver("gs-1"))
        versions = [obj.metadata.resource_version]
        for n in range(9):
            obj = await store.update(relabel(obj, n=str(n)))
            versions.append(obj.metadata.resource_version)

        for too_old in (start, versions[0]):
            with pytest.raises(ExpiredError):
                await first_event(store, too_old)
        # Within the kept window a watch still works, and a fresh list gives a usable version.
        recent = await first_event(store, versions[-2])
        assert recent.object == obj
        _, now = await store.list()
        async with watching(store, now) as watcher:
            nxt = await store.update(relabel(obj, n="last"))
            assert (await watcher.next()).object == nxt

    async def test_a_cancelled_watch_stops(self, harness: StoreHarness) -> None:
        """Shutdown cancels informers: a watch must stop even when cancelled right after an event,
        while it is already asking for the next one."""
        store = await harness.gameservers()
        _, version = await store.list()

        async def consume(since: str, delivered: asyncio.Event) -> None:
            async for _ in store.watch(since):
                delivered.set()

        for n in range(5):
            delivered = asyncio.Event()
            task = asyncio.create_task(consume(version, delivered))
            created = await store.create(gameserver(f"gs-{n}"))
            version = created.metadata.resource_version
            async with asyncio.timeout(EVENT_TIMEOUT):
                await delivered.wait()
            assert not await stop(task), f"watch {n} kept running after it was cancelled"

    # -- update ------------------------------------------------------------------------------

    async def test_update_is_conditional_on_the_version(self, harness: StoreHarness) -> None:
        store = await harness.gameservers()
        created = await store.create(gameserver("gs-1"))
        updated = await store.update(relabel(created, n="1"))
        assert updated.metadata.resource_version != created.metadata.resource_version
        assert await store.get("gs-1") == updated

        with pytest.raises(ConflictError):
            await store.update(relabel(created, n="stale"))
        with pytest.raises((ConflictError, ValidationError)):
            await store.update(with_meta(relabel(created, n="unversioned"), resource_version=""))
        assert await store.get("gs-1") == updated

    async def test_update_of_a_missing_object_is_not_found(self, harness: StoreHarness) -> None:
        store = await harness.gameservers()
        created = await store.create(gameserver("gs-1"))
        await store.delete("gs-1")
        with pytest.raises(NotFoundError):
            await store.update(relabel(created, n="1"))

    async def test_concurrent_conditional_updates_exactly_one_wins(self, harness: StoreHarness) -> None:
        contenders = 12
        stores = [await harness.gameservers() for _ in range(contenders)]
        base = await stores[0].create(gameserver("gs-1"))
        _, version = await stores[0].list()
        start = asyncio.Event()

        async def contend(i: int) -> GameServer | ConflictError:
            await start.wait()
            try:
                return await stores[i].update(relabel(base, winner=str(i)))
            except ConflictError as exc:
                return exc

        async with watching(stores[0], version) as watcher:
            tasks = [asyncio.create_task(contend(i)) for i in range(contenders)]
            await asyncio.sleep(0)
            start.set()
            results = await asyncio.gather(*tasks)
            wins = [r for r in results if isinstance(r, GameServer)]
            assert len(wins) == 1, results
            assert sum(isinstance(r, ConflictError) for r in results) == contenders - 1
            sentinel = await stores[0].create(gameserver("sentinel"))
            events = await watcher.until(sentinel.metadata.resource_version)

        assert await stores[0].get("gs-1") == wins[0]
        assert [e.object for e in events] == [wins[0], sentinel]

    async def test_modify_converges_under_contention(self, harness: StoreHarness) -> None:
        increments = 20
        stores = [await harness.gameservers() for _ in range(increments)]
        await stores[0].create(gameserver("gs-1", count="0"))

        def increment(gs: GameServer) -> GameServer:
            return relabel(gs, count=str(int(gs.metadata.labels["count"]) + 1))

        results = await asyncio.gather(*(modify(s, "gs-1", increment) for s in stores))
        final = await stores[0].get("gs-1")
        assert final.metadata.labels["count"] == str(increments)
        counts = sorted(int(r.metadata.labels["count"]) for r in results if r is not None)
        assert counts == list(range(1, increments + 1))

    async def test_modify_returning_none_writes_nothing(self, harness: StoreHarness) -> None:
        store = await harness.gameservers()
        created = await store.create(gameserver("gs-1"))
        assert await modify(store, "gs-1", lambda gs: None) is None
        assert await store.get("gs-1") == created
        with pytest.raises(NotFoundError):
            await modify(store, "missing", lambda gs: gs)

    async def test_noop_update_writes_nothing_and_emits_no_event(self, harness: StoreHarness) -> None:
        store = await harness.gameservers()
        created = await store.create(gameserver("gs-1", a="1"))
        _, version = await store.list()
        async with watching(store, version) as watcher:
            same = await store.update(created)
            assert same.metadata.resource_version == created.metadata.resource_version
            assert same == created
            assert (await store.list())[1] == version
            # The no-op left the version current: a conditional write from it still succeeds.
            changed = await store.update(relabel(created, a="2"))
            event = await watcher.next()
        assert event == WatchEvent(EventType.MODIFIED, changed)

    async def test_generation_increases_on_spec_changes_only(self, harness: StoreHarness) -> None:
        store = await harness.gameservers()
        gs = await store.create(gameserver("gs-1"))
        assert gs.metadata.generation == 1

        gs = await store.update(relabel(gs, tier="gold"))
        assert gs.metadata.generation == 1
        gs = await store.update(gs.with_status(state=GameServerState.READY, address="10.0.0.1"))
        assert gs.metadata.generation == 1

        gs = await store.update(dataclasses.replace(gs, spec=GameServerSpec(health=Health(period_seconds=9))))
        assert gs.metadata.generation == 2
        assert (await store.get("gs-1")).metadata.generation == 2
        # A client cannot set the generation itself.
        gs = await store.update(with_meta(relabel(gs, tier="silver"), generation=40))
        assert gs.metadata.generation == 2
        assert (await store.get("gs-1")).metadata.generation == 2

    async def test_update_keeps_identity_fields(self, harness: StoreHarness) -> None:
        """uid and creationTimestamp belong to the server: an update cannot rewrite them."""
        store = await harness.gameservers()
        created = await store.create(gameserver("gs-1"))
        try:
            updated = await store.update(with_meta(created, uid="forged", creation_timestamp=1.0, labels={"x": "y"}))
        except (ConflictError, ValidationError):
            updated = None  # refusing the change outright is also acceptable (Kubernetes: 422)
        current = await store.get("gs-1")
        assert current.metadata.uid == created.metadata.uid
        assert current.metadata.creation_timestamp == created.metadata.creation_timestamp
        if updated is not None:
            assert updated == current

    # -- delete ------------------------------------------------------------------------------

    async def test_delete_is_conditional_on_the_version(self, harness: StoreHarness) -> None:
        store = await harness.gameservers()
        created = await store.create(gameserver("gs-1"))
        updated = await store.update(relabel(created, state="allocated"))

        with pytest.raises(ConflictError):
            await store.delete("gs-1", version=created.metadata.resource_version)
        assert await store.get("gs-1") == updated

        await store.delete("gs-1", version=updated.metadata.resource_version)
        with pytest.raises(NotFoundError):
            await store.get("gs-1")
        with pytest.raises(NotFoundError):
            await store.delete("gs-1")

    async def test_a_deleted_name_can_be_created_again_as_a_new_object(self, harness: StoreHarness) -> None:
        store = await harness.gameservers()
        first = await store.create(gameserver("gs-1"))
        await store.delete("gs-1")
        second = await store.create(gameserver("gs-1"))
        assert second.metadata.uid != first.metadata.uid
        assert second.metadata.generation == 1
        with pytest.raises(ConflictError):
            await store.update(relabel(first, stale="yes"))

    # -- namespaces and kinds ----------------------------------------------------------------

    async def test_namespaces_are_isolated(self, harness: StoreHarness) -> None:
        team_a = await harness.gameservers("team-a")
        team_b = await harness.gameservers("team-b")
        _, version_b = await team_b.list()

        async with watching(team_b, version_b) as watcher:
            a = await team_a.create(gameserver("gs-1", team="a"))
            await team_a.update(relabel(a, n="1"))
            b = await team_b.create(gameserver("gs-1", team="b"))
            assert await watcher.next() == WatchEvent(EventType.ADDED, b)

        assert a.metadata.namespace == "team-a"
        assert b.metadata.namespace == "team-b"
        assert (await team_b.get("gs-1")).metadata.labels == {"team": "b"}
        await team_a.delete("gs-1")
        assert await team_b.get("gs-1") == b
        assert (await team_a.list())[0] == []
        assert (await team_b.list())[0] == [b]

    async def test_fleets_are_stored_apart_from_gameservers(self, harness: StoreHarness) -> None:
        fleets = await harness.fleets()
        servers = await harness.gameservers()
        _, gs_version = await servers.list()
        _, fleet_version = await fleets.list()

        async with watching(fleets, fleet_version) as fleet_watch, watching(servers, gs_version) as gs_watch:
            f = first = await fleets.create(fleet("same-name", replicas=2))
            g = await servers.create(gameserver("same-name"))
            assert await fleet_watch.next() == WatchEvent(EventType.ADDED, f)
            assert await gs_watch.next() == WatchEvent(EventType.ADDED, g)

        assert await fleets.get("same-name") == f
        assert await servers.get("same-name") == g
        assert (await fleets.list())[0] == [f]

        # Fleets follow the same generation rule: spec (replicas) bumps it, status does not.
        f = await fleets.update(dataclasses.replace(f, status=FleetStatus(replicas=2, ready_replicas=2)))
        assert f.metadata.generation == 1
        f = await fleets.update(dataclasses.replace(f, spec=dataclasses.replace(f.spec, replicas=5)))
        assert f.metadata.generation == 2
        with pytest.raises(ConflictError):
            await fleets.delete("same-name", version=first.metadata.resource_version)
        await fleets.delete("same-name", version=f.metadata.resource_version)
        assert await servers.get("same-name") == g
