"""The store contract run against ``KubeStore`` (real ``kubernetes_asyncio`` client) on the fake API
server, plus Kubernetes-only checks; and the same contract against a real cluster (``k8s_real``).

Each store the harness hands out has its own ``ApiClient`` reaching the server through its own small
TCP proxy: an outage cuts that store's connections and refuses new ones until it ends, so writes
made meanwhile (through other stores) really happen while its watch is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from fleetmatch.backends.kube.client import api_client, kube_stores
from fleetmatch.backends.kube.errors import ForbiddenError
from fleetmatch.backends.kube.store import KubeStore
from fleetmatch.errors import (
    BackendError,
    ConflictError,
    ExpiredError,
    NotFoundError,
)
from fleetmatch.informer import Informer
from fleetmatch.models import (
    Fleet,
    FleetStatus,
    GameServer,
    GameServerSpec,
    GameServerState,
    Health,
    ObjectMeta,
    with_meta,
)
from fleetmatch.settings import KubeSettings
from fleetmatch.store import EventType, Store, WatchEvent, modify
from tests.contract.store_contract import (
    EVENT_TIMEOUT,
    StoreContract,
    StoreHarness,
    fleet,
    gameserver,
    relabel,
    summary,
    watching,
)
from tests.kube.conftest import load_crds
from tests.kube.fakekube import FakeKube, RecordedRequest

FAST = {"retry_max_seconds": 0.3, "watch_timeout": 30}
"""Store options for tests: quick reconnects after an outage."""


class TcpProxy:
    """Forwards TCP connections to ``host:port``; ``cut()`` drops them all, ``refusing`` turns new ones away."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.target_port = host, port
        self.port = 0
        self.refusing = False
        self._server: asyncio.Server | None = None
        self._links: dict[asyncio.StreamWriter, asyncio.StreamWriter | None] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.linked = asyncio.Event()
        """Set whenever a connection is forwarded (clear it, then wait, to see the next one)."""

    @property
    def open(self) -> int:
        return len(self._links)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_writer: asyncio.StreamWriter | None = None
        self._links[writer] = None
        self._idle.clear()
        try:
            if self.refusing:
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
            except OSError:
                return
            self._links[writer] = up_writer
            self.linked.set()
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    w.close()
                    with contextlib.suppress(ConnectionError):
                        await w.wait_closed()
            del self._links[writer]
            if not self._links:
                self._idle.set()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        if not writer.is_closing():
            writer.transport.abort()  # one side ended: end the other (a proxy does not half-close)

    async def cut(self) -> int:
        """Drop every open connection (both sides, abruptly); returns how many there were."""
        count = len(self._links)
        for writer, up_writer in list(self._links.items()):
            writer.transport.abort()
            if up_writer is not None:
                up_writer.transport.abort()
        async with asyncio.timeout(5):
            await self._idle.wait()
        return count

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self.cut()
        if self._server is not None:
            await self._server.wait_closed()


class KubeHarness(StoreHarness):
    """Stores over one API server; each with its own ApiClient behind its own proxy."""

    def __init__(self, configuration: client.Configuration, **options: Any) -> None:
        self.configuration = configuration
        self.fake: FakeKube | None = None
        self.options = {**FAST, **options}
        self.clients: list[client.ApiClient] = []
        self.proxies: dict[int, TcpProxy] = {}  # id(store) -> its proxy
        self.extra_servers: list[FakeKube] = []

    async def _client(self, configuration: client.Configuration) -> tuple[client.ApiClient, TcpProxy]:
        url = urlsplit(str(configuration.host))
        default_port = 443 if url.scheme == "https" else 80
        proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or default_port)
        await proxy.start()
        proxied = client.Configuration()
        for name, value in vars(configuration).items():
            setattr(proxied, name, value)  # credentials, CA, ... (a shallow copy keeps hooks working)
        proxied.host = f"{url.scheme}://127.0.0.1:{proxy.port}{url.path}"
        if url.scheme == "https" and not proxied.tls_server_name:
            proxied.tls_server_name = url.hostname  # verify the certificate against the real name
        api = client.ApiClient(configuration=proxied)
        self.clients.append(api)
        return api, proxy

    async def _store(self, kind: type[Any], namespace: str, configuration: client.Configuration) -> Store[Any]:
        api, proxy = await self._client(configuration)
        store: KubeStore[Any] = KubeStore(api, kind, namespace, **self.options)
        self.proxies[id(store)] = proxy
        return store

    async def gameservers(self, namespace: str = "default", *, history: int | None = None) -> Store[GameServer]:
        configuration = self.configuration
        if history is not None:
            configuration = await self._server_with_history(history)
        return await self._store(GameServer, namespace, configuration)

    async def _server_with_history(self, history: int) -> client.Configuration:
        """The API server's event history is its own business: a separate fake that keeps ``history``."""
        server = FakeKube(history_size=history)
        for crd in load_crds():
            server.register_crd(crd)
        await server.start()
        prime(server)
        self.extra_servers.append(server)
        return client.Configuration(host=server.url)

    async def fleets(self, namespace: str = "default") -> Store[Fleet]:
        return await self._store(Fleet, namespace, self.configuration)

    @contextlib.asynccontextmanager
    async def outage(self, store: Store[Any]) -> AsyncIterator[None]:
        proxy = self.proxies[id(store)]
        async with asyncio.timeout(10):  # until the watch is connected (its list connection may idle too)
            while proxy.open < 1:
                proxy.linked.clear()
                await proxy.linked.wait()
        proxy.refusing = True
        assert await proxy.cut() >= 1, "the outage dropped no connection"
        try:
            yield
        finally:
            proxy.refusing = False

    async def close(self) -> None:
        for api in self.clients:
            await api.close()
        for proxy in self.proxies.values():
            await proxy.close()
        for server in self.extra_servers:
            await server.stop()


class TestKubeStore(StoreContract):
    @pytest.fixture
    async def harness(self, fake_kube: FakeKube) -> AsyncIterator[StoreHarness]:
        harness = KubeHarness(client.Configuration(host=fake_kube.url))
        harness.fake = fake_kube
        try:
            yield harness
        finally:
            await harness.close()

    async def test_generation_increases_on_spec_changes_only(self, harness: StoreHarness) -> None:
        """With a status subresource: the contract's rule. Without one (GameServers, as in Agones, so
        that a claim is one atomic write), Kubernetes bumps the generation on status changes too."""
        fake = _fake_of(harness)
        if fake.resource("gameservers").status_subresource:
            await super().test_generation_increases_on_spec_changes_only(harness)
            return
        store = await harness.gameservers()
        gs = await store.create(gameserver("gs-1"))
        assert gs.metadata.generation == 1
        gs = await store.update(relabel(gs, tier="gold"))
        assert gs.metadata.generation == 1  # metadata only
        gs = await store.update(gs.with_status(state=GameServerState.READY, address="10.0.0.1"))
        assert gs.metadata.generation == 2  # status is part of the object without the subresource
        gs = await store.update(dataclasses.replace(gs, spec=GameServerSpec(health=Health(period_seconds=9))))
        assert gs.metadata.generation == 3
        gs = await store.update(with_meta(relabel(gs, tier="silver"), generation=40))
        assert gs.metadata.generation == 3
        assert (await store.get("gs-1")).metadata.generation == 3


def _fake_of(harness: StoreHarness) -> FakeKube:
    fake = getattr(harness, "fake", None)
    assert isinstance(fake, FakeKube)
    return fake


def prime(fake: FakeKube) -> None:
    """One unrelated write, so versions start above "0" as on any real server ("0" means "any" to a watch)."""
    fake.create_object("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "primed"}})


@pytest.fixture(autouse=True)
def _primed(request: pytest.FixtureRequest) -> None:
    """Every fake server a test here uses starts with one write behind it (see ``prime``)."""
    if "fake_kube" in request.fixturenames:
        prime(request.getfixturevalue("fake_kube"))


# -- Kubernetes-only behaviour ---------------------------------------------------------------------


def _store(api: client.ApiClient, kind: type[Any] = GameServer, namespace: str = "default") -> KubeStore[Any]:
    return KubeStore(api, kind, namespace, **FAST)  # type: ignore[arg-type]


def _requests(fake: FakeKube, since: int = 0) -> list[RecordedRequest]:
    return fake.requests[since:]


async def test_the_requests_on_the_wire(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    """Exact verbs, paths, content types and query parameters: what a real API server will see."""
    store = _store(kube_api)
    base = "/apis/fleetmatch.dev/v1/namespaces/default/gameservers"
    mark = len(fake_kube.requests)
    created = await store.create(gameserver("gs-1"))
    updated = await store.update(relabel(created, a="b"))
    await store.get("gs-1")
    _, version = await store.list()
    await store.delete("gs-1", version=updated.metadata.resource_version)
    seen = [(r.method, r.path, r.content_type, r.status) for r in _requests(fake_kube, mark)]
    assert seen == [
        ("POST", base, "application/json", 201),
        ("PUT", f"{base}/gs-1", "application/json", 200),
        ("GET", f"{base}/gs-1", "application/json", 200),
        ("GET", base, "application/json", 200),
        ("DELETE", f"{base}/gs-1", "application/json", 200),
    ]
    assert "limit=" in fake_kube.requests[mark + 3].query

    _, version = await store.list()
    mark = len(fake_kube.requests)
    async with watching(store, version) as watcher:
        again = await store.create(gameserver("gs-2"))
        assert (await watcher.next()).object == again
    watch = next(r for r in _requests(fake_kube, mark) if "watch=" in r.query)
    query = dict(part.split("=", 1) for part in watch.query.split("&"))
    assert query["watch"] == "True"
    assert query["allowWatchBookmarks"] == "True"
    assert query["resourceVersion"] == version
    assert query["timeoutSeconds"] == "30"


async def test_a_conditional_delete_sends_preconditions(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    store = _store(kube_api)
    created = await store.create(gameserver("gs-1"))
    await store.update(relabel(created, a="b"))
    with pytest.raises(ConflictError):
        await store.delete("gs-1", version=created.metadata.resource_version)
    assert fake_kube.get_object("gameservers", "default", "gs-1") is not None


async def test_expired_watch_makes_the_informer_relist(fake_kube: FakeKube) -> None:
    """410 (history compacted while the watch was away) -> ExpiredError -> the informer lists again
    and turns the difference into events."""
    harness = KubeHarness(client.Configuration(host=fake_kube.url))
    try:
        watched = await harness.gameservers()
        writer = await harness.gameservers()
        gone = await writer.create(gameserver("gone"))
        informer: Informer[GameServer] = Informer(watched, retry_seconds=0.05)
        seen: list[tuple[EventType, str]] = []
        changed = asyncio.Event()

        def record(event: WatchEvent[GameServer]) -> None:
            seen.append((event.type, event.object.metadata.name))
            changed.set()

        informer.add_handler(record)
        task = asyncio.create_task(informer.run())
        try:
            async with asyncio.timeout(EVENT_TIMEOUT):
                await informer.synced.wait()
            lists_before = sum(1 for r in fake_kube.requests if r.method == "GET" and "watch=" not in r.query)
            async with harness.outage(watched):
                await writer.delete("gone")
                fresh = await writer.create(gameserver("fresh"))
                fake_kube.compact()  # the watch's version is now older than the history
            async with asyncio.timeout(EVENT_TIMEOUT):
                while "fresh" not in informer.cache or "gone" in informer.cache:
                    await changed.wait()
                    changed.clear()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert informer.cache == {"fresh": fresh}
        assert (EventType.DELETED, "gone") in seen and (EventType.ADDED, "fresh") in seen
        lists_after = sum(1 for r in fake_kube.requests if r.method == "GET" and "watch=" not in r.query)
        assert lists_after > lists_before
        assert gone.metadata.name == "gone"
    finally:
        await harness.close()


async def test_watch_from_a_compacted_version_is_expired(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    store = _store(kube_api)
    _, version = await store.list()
    await store.create(gameserver("gs-1"))
    fake_kube.compact()
    with pytest.raises(ExpiredError):
        async with asyncio.timeout(EVENT_TIMEOUT):
            async for _ in store.watch(version):
                pass


async def test_dropped_watch_streams_resume_without_loss(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    """The server closing every stream (as it does after its own timeout) loses and repeats nothing."""
    store = _store(kube_api)
    _, version = await store.list()
    expected = []
    async with watching(store, version) as watcher:
        current = await store.create(gameserver("gs-1"))
        expected.append(WatchEvent(EventType.ADDED, current))
        assert await watcher.next() == expected[0]
        for n in range(4):
            fake_kube.drop_watches()
            current = await store.update(relabel(current, n=str(n)))
            expected.append(WatchEvent(EventType.MODIFIED, current))
        sentinel = await store.create(gameserver("sentinel"))
        expected.append(WatchEvent(EventType.ADDED, sentinel))
        await watcher.until(sentinel.metadata.resource_version)
    assert summary(watcher.delivered) == summary(expected)
    assert watcher.delivered == expected
    watches = [r for r in fake_kube.requests if "watch=" in r.query]
    assert len(watches) >= 2


async def test_watch_resumes_from_a_bookmark(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    """Bookmarks move the resume point forward even when nothing of ours changes."""
    fake_kube.bookmark_interval = 0.05
    store = _store(kube_api)
    fleets = _store(kube_api, Fleet)
    _, version = await store.list()
    async with watching(store, version) as watcher:
        await fleets.create(fleet("f-1"))  # moves the global version, not a GameServer event
        await asyncio.sleep(0.3)  # a few bookmarks
        fake_kube.drop_watches()
        created = await store.create(gameserver("gs-1"))
        assert (await watcher.next()).object == created
    resumed = [r for r in fake_kube.requests if "watch=" in r.query][1:]
    assert resumed and all(f"resourceVersion={version}&" not in r.query + "&" for r in resumed)


async def test_watch_retries_server_errors(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    store = _store(kube_api)
    _, version = await store.list()
    async with watching(store, version) as watcher:
        first = await store.create(gameserver("gs-1"))
        assert (await watcher.next()).object == first
        fake_kube.fail_next(503, 3, method="GET")
        fake_kube.drop_watches()
        await asyncio.sleep(0.1)
        second = await store.create(gameserver("gs-2"))
        assert (await watcher.next()).object == second


async def test_injected_conflicts(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    store = _store(kube_api)
    created = await store.create(gameserver("gs-1", count="0"))
    fake_kube.inject_conflicts(1)
    with pytest.raises(ConflictError):
        await store.update(relabel(created, count="1"))
    fake_kube.inject_conflicts(3)
    result = await modify(store, "gs-1", lambda gs: relabel(gs, count=str(int(gs.metadata.labels["count"]) + 1)))
    assert result is not None and result.metadata.labels["count"] == "1"


async def test_status_subresource_round_trip(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    """Fleets have ``/status``: a status-only change is one PUT there; spec + status is the main PUT
    then the status PUT (each conditional); the generation follows the spec only."""
    assert fake_kube.resource("fleets").status_subresource
    store: KubeStore[Fleet] = KubeStore(kube_api, Fleet, status_subresource=True)
    base = "/apis/fleetmatch.dev/v1/namespaces/default/fleets/f-1"
    f = await store.create(fleet("f-1", replicas=2))

    mark = len(fake_kube.requests)
    f = await store.update(dataclasses.replace(f, status=FleetStatus(replicas=2, ready_replicas=1)))
    assert [(r.method, r.path) for r in _requests(fake_kube, mark)] == [("PUT", f"{base}/status")]
    assert f.status.ready_replicas == 1 and f.metadata.generation == 1
    assert fake_kube.get_object("fleets", "default", "f-1")["status"]["readyReplicas"] == 1  # type: ignore[index]

    mark = len(fake_kube.requests)
    both = dataclasses.replace(f, spec=dataclasses.replace(f.spec, replicas=5), status=FleetStatus(replicas=5))
    f = await store.update(relabel(both, touched="yes"))
    assert [(r.method, r.path) for r in _requests(fake_kube, mark)] == [("PUT", base), ("PUT", f"{base}/status")]
    assert (f.spec.replicas, f.status.replicas, f.metadata.generation, f.metadata.labels) == (
        5,
        5,
        2,
        {"touched": "yes"},
    )
    assert await store.get("f-1") == f

    # A fresh store (nothing remembered) finds out by itself that the main PUT ignored the status.
    other = _store(kube_api, Fleet)
    f = await other.update(dataclasses.replace(f, status=FleetStatus(replicas=5, ready_replicas=5)))
    assert f.status.ready_replicas == 5


async def test_a_status_conflict_after_the_main_write_is_a_conflict(
    fake_kube: FakeKube, kube_api: client.ApiClient
) -> None:
    store = _store(kube_api, Fleet)
    f = await store.create(fleet("f-1", replicas=1))
    both = dataclasses.replace(f, spec=dataclasses.replace(f.spec, replicas=3), status=FleetStatus(replicas=3))
    original_put = fake_kube._update

    def main_then_interfere(target: Any, key: Any, body: Any, *, require_rv: bool) -> Any:
        result = original_put(target, key, body, require_rv=require_rv)
        if not target.status:
            fake_kube.inject_conflicts(1)  # someone wrote right after our main PUT
        return result

    fake_kube._update = main_then_interfere  # type: ignore[method-assign]
    with pytest.raises(ConflictError):
        await store.update(both)
    fake_kube._update = original_put  # type: ignore[method-assign]
    stored = await store.get("f-1")
    assert (stored.spec.replicas, stored.status.replicas) == (3, 0)  # documented: not atomic
    result = await modify(store, "f-1", lambda cur: dataclasses.replace(cur, status=FleetStatus(replicas=3)))
    assert result is not None and result.status.replicas == 3


async def test_gameserver_claim_is_one_write_without_the_subresource(
    fake_kube: FakeKube, kube_api: client.ApiClient
) -> None:
    """The GameServer CRD has no ``/status`` (as in Agones): labels and state land in one PUT."""
    assert not fake_kube.resource("gameservers").status_subresource, "deploy/crds: a claim would be two writes"
    store = _store(kube_api)
    gs = await store.create(gameserver("gs-1").with_status(state=GameServerState.READY))
    assert gs.state is GameServerState.READY  # stored by the POST itself
    mark = len(fake_kube.requests)
    claimed = await store.update(relabel(gs, match="m1").with_status(state=GameServerState.ALLOCATED))
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in _requests(fake_kube, mark)] == [("PUT", "gs-1")]
    assert claimed.state is GameServerState.ALLOCATED and claimed.metadata.labels == {"match": "m1"}


async def test_unmodelled_fields_survive_an_update(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    """A pod template, finalizers and owner references set by others are kept by a replace."""
    template = {"spec": {"containers": [{"name": "game", "image": "example/game:1"}]}}
    owner = {"apiVersion": "fleetmatch.dev/v1", "kind": "Fleet", "name": "f", "uid": "1234"}
    fake_kube.gc_enabled = False
    fake_kube.create_object(
        "gameservers",
        {
            "apiVersion": "fleetmatch.dev/v1",
            "kind": "GameServer",
            "metadata": {"name": "gs-1", "finalizers": ["example.com/keep"], "ownerReferences": [owner]},
            "spec": {"template": template},
        },
        namespace="default",
    )
    store = _store(kube_api)
    gs = await store.get("gs-1")
    await store.update(relabel(gs, a="b"))
    stored = fake_kube.get_object("gameservers", "default", "gs-1")
    assert stored is not None
    assert stored["spec"]["template"] == template
    assert stored["metadata"]["finalizers"] == ["example.com/keep"]
    assert stored["metadata"]["ownerReferences"][0]["uid"] == "1234"
    assert stored["metadata"]["labels"] == {"a": "b"}


async def test_generate_name_is_the_servers(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    store = _store(kube_api)
    created = await store.create(GameServer(metadata=ObjectMeta(generate_name="pool-")))
    sent = [r for r in fake_kube.requests if r.method == "POST"][-1]
    assert sent.status == 201
    assert created.metadata.name.startswith("pool-") and len(created.metadata.name) == len("pool-") + 5


@pytest.mark.parametrize(
    ("code", "method", "error", "words"),
    [
        (403, "GET", ForbiddenError, ("list", "gameservers", "fleetmatch.dev", "RBAC")),
        (401, "GET", ForbiddenError, ("credentials",)),
        (503, "GET", BackendError, ("503",)),
        (500, "POST", BackendError, ("500",)),
    ],
)
async def test_refusals_are_typed(
    fake_kube: FakeKube,
    kube_api: client.ApiClient,
    code: int,
    method: str,
    error: type[Exception],
    words: tuple[str, ...],
) -> None:
    store = _store(kube_api)
    fake_kube.fail_next(code, method=method)
    with pytest.raises(error) as caught:
        if method == "GET":
            await store.list()
        else:
            await store.create(gameserver("gs-1"))
    for word in words:
        assert word in str(caught.value)


async def test_forbidden_names_the_status_subresource(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    store: KubeStore[Fleet] = KubeStore(kube_api, Fleet, status_subresource=True)
    f = await store.create(fleet("f-1"))
    fake_kube.fail_next(403, method="PUT")
    with pytest.raises(ForbiddenError) as caught:
        await store.update(dataclasses.replace(f, status=FleetStatus(replicas=1)))
    assert (caught.value.verb, caught.value.resource) == ("update", "fleets/status")


async def test_unreachable_server_is_a_backend_error() -> None:
    async with client.ApiClient(configuration=client.Configuration(host="http://127.0.0.1:9")) as api:
        store = _store(api)
        with pytest.raises(BackendError, match="unreachable"):
            await store.get("gs-1")


async def test_kube_stores_from_a_kubeconfig(fake_kube: FakeKube, kubeconfig: Any) -> None:
    """The production loading path: a kubeconfig file, then all three stores on one client."""
    api = await api_client(KubeSettings(kubeconfig=str(kubeconfig)))
    try:
        stores = kube_stores(api, "default", **FAST)
        created = await stores.fleets.create(fleet("f-1"))
        assert (await stores.fleets.list())[0] == [created]
        assert (await stores.gameservers.list())[0] == []
        assert (await stores.autoscalers.list())[0] == []
    finally:
        await api.close()


# -- the contract on a real cluster ----------------------------------------------------------------

REAL_NAMESPACES = ("default", "team-a", "team-b", "history")


@pytest.mark.k8s_real
@pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="KUBECONFIG is not set: no real cluster to test")
class TestKubeStoreOnRealCluster(StoreContract):
    """The contract against the cluster ``$KUBECONFIG`` points at, with fleetmatch's CRDs installed.

    Use a throw-away cluster (kind, k3d). The namespaces above must hold no fleetmatch objects when
    a test starts (the test is skipped otherwise); everything of our kinds in them is deleted after.
    """

    @pytest.fixture
    async def harness(self) -> AsyncIterator[StoreHarness]:
        configuration = client.Configuration()
        from kubernetes_asyncio import config

        await config.load_kube_config(client_configuration=configuration, persist_config=False)
        async with client.ApiClient(configuration=configuration) as admin:
            await _prepare_namespaces(admin)
            harness = KubeHarness(configuration)
            try:
                yield harness
            finally:
                await harness.close()
                await _clean_namespaces(admin)

    @pytest.mark.xfail(reason="list's version is the cluster-wide etcd revision: other writes move it", strict=False)
    async def test_watch_yields_added_modified_deleted_in_order(self, harness: StoreHarness) -> None:
        await super().test_watch_yields_added_modified_deleted_in_order(harness)

    @pytest.mark.xfail(reason="list's version is the cluster-wide etcd revision: other writes move it", strict=False)
    async def test_noop_update_writes_nothing_and_emits_no_event(self, harness: StoreHarness) -> None:
        await super().test_noop_update_writes_nothing_and_emits_no_event(harness)

    @pytest.mark.skip(reason="the API server's watch history cannot be sized from a test")
    async def test_watch_older_than_the_kept_history_is_expired(self, harness: StoreHarness) -> None:
        raise AssertionError("skipped")


async def _prepare_namespaces(admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    for namespace in REAL_NAMESPACES:
        try:
            await core.read_namespace(namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
        for kind in (GameServer, Fleet):
            items, _ = await _store(admin, kind, namespace).list()
            if items:
                pytest.skip(f"namespace {namespace!r} holds {kind.PLURAL}: the real-cluster contract needs it empty")


async def _clean_namespaces(admin: client.ApiClient) -> None:
    for namespace in REAL_NAMESPACES:
        for kind in (GameServer, Fleet):
            store = _store(admin, kind, namespace)
            for obj in (await store.list())[0]:
                with contextlib.suppress(NotFoundError):
                    await store.delete(obj.metadata.name)
