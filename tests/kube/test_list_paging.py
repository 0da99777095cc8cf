"""List paging (``limit``/``continue``) as the API server serves it, and every list fleetmatch's
Kubernetes caches make going through it: ``KubeStore.list`` (what the informers list first and re-list
after an expired watch) and the Pod controller's Pod/Node watcher.

The fake serves pages the way the apiserver's etcd store does: all pages of one list show the
collection as it was at the first page's resourceVersion, a token whose snapshot was compacted away
is 410 Expired (with an inconsistent token to finish with), ``remainingItemCount`` only without
selectors (kubernetes.io, "Retrieving large results sets in chunks"; ListMeta)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from allocator.controllers.pods import ObjectWatcher
from fleetmatch.backends.kube.client import kube_backend
from fleetmatch.backends.kube.errors import ApiTarget
from fleetmatch.backends.kube.store import KubeStore
from fleetmatch.backends.kube.wire import GROUP, VERSION
from fleetmatch.informer import Informer
from fleetmatch.models import GameServer, ObjectMeta
from fleetmatch.settings import Settings
from fleetmatch.tasks import cancel_and_wait
from tests.kube.fakekube import FakeKube, RecordedRequest
from tests.waiting import eventually

NS = "default"
PLURAL = GameServer.PLURAL
pytestmark = pytest.mark.timeout(60)


def store(api: client.ApiClient, page: int) -> KubeStore[GameServer]:
    return KubeStore(api, GameServer, NS, list_page=page, retry_max_seconds=0.3, watch_timeout=30)


async def create(api: client.ApiClient, *names: str, **labels: str) -> None:
    gameservers = store(api, 500)
    for name in names:
        await gameservers.create(GameServer(metadata=ObjectMeta(name=name, labels=labels)))


def lists(fake: FakeKube, path_end: str = f"/{PLURAL}") -> list[dict[str, list[str]]]:
    """The queries of the list requests (not watches) made so far on the collection."""
    return [
        query
        for r in fake.requests
        if r.method == "GET" and r.path.endswith(path_end) and "watch" not in (query := parse_qs(r.query))
    ]


async def page(api: client.ApiClient, **params: Any) -> dict[str, Any]:
    doc: dict[str, Any] = await client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, **params
    )
    return doc


def names(doc: dict[str, Any]) -> list[str]:
    return [item["metadata"]["name"] for item in doc["items"]]


def when(
    condition: Callable[[RecordedRequest], bool], action: Callable[[], object]
) -> Callable[[RecordedRequest], None]:
    """An ``on_request`` hook doing ``action`` once, at the first request meeting ``condition``."""
    done = False

    def hook(request: RecordedRequest) -> None:
        nonlocal done
        if not done and condition(request):
            done = True
            action()

    return hook


def continued(request: RecordedRequest) -> bool:
    return request.method == "GET" and "continue=" in request.query


# -- the fake API server ----------------------------------------------------------------------------


async def test_pages_show_the_collection_as_it_was_at_the_first_pages_version(
    fake_kube: FakeKube, kube_api: client.ApiClient
) -> None:
    await create(kube_api, *(f"gs-{i}" for i in range(7)))
    first = await page(kube_api, limit=3)
    version = first["metadata"]["resourceVersion"]
    assert names(first) == ["gs-0", "gs-1", "gs-2"]
    assert first["metadata"]["remainingItemCount"] == 4 and first["metadata"]["continue"]

    def relabel(obj: dict[str, Any]) -> None:
        obj["metadata"]["labels"] = {"changed": "yes"}

    fake_kube.delete_object(PLURAL, NS, "gs-1")  # on a page already read
    fake_kube.delete_object(PLURAL, NS, "gs-4")  # on a page not read yet
    fake_kube.update_object(PLURAL, NS, "gs-5", relabel)
    await create(kube_api, "gs-3a", "gs-9")

    second = await page(kube_api, limit=3, _continue=first["metadata"]["continue"])
    assert names(second) == ["gs-3", "gs-4", "gs-5"]  # gs-4 still there, gs-3a not yet
    assert second["metadata"]["resourceVersion"] == version
    assert "labels" not in second["items"][2]["metadata"]  # gs-5 as it was
    assert second["metadata"]["remainingItemCount"] == 1
    last = await page(kube_api, limit=3, _continue=second["metadata"]["continue"])
    assert names(last) == ["gs-6"] and last["metadata"]["resourceVersion"] == version
    assert "continue" not in last["metadata"] and "remainingItemCount" not in last["metadata"]

    whole = await page(kube_api)  # no limit: everything, now
    assert names(whole) == ["gs-0", "gs-2", "gs-3", "gs-3a", "gs-5", "gs-6", "gs-9"]
    assert int(whole["metadata"]["resourceVersion"]) > int(version)


async def test_a_selector_pages_without_a_remaining_count(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    await create(kube_api, "a-1", "a-2", "a-3", pool="a")
    await create(kube_api, "b-1", pool="b")
    first = await page(kube_api, limit=2, label_selector="pool=a")
    assert names(first) == ["a-1", "a-2"] and first["metadata"]["continue"]
    assert "remainingItemCount" not in first["metadata"]  # unknown: the rest is not counted through the filter
    rest = await page(kube_api, limit=2, label_selector="pool=a", _continue=first["metadata"]["continue"])
    assert names(rest) == ["a-3"] and "continue" not in rest["metadata"]


async def test_a_continue_token_older_than_the_history_is_expired_with_an_inconsistent_one(
    fake_kube: FakeKube, kube_api: client.ApiClient
) -> None:
    await create(kube_api, "gs-1", "gs-2", "gs-3")
    first = await page(kube_api, limit=1)
    await create(kube_api, "gs-4")
    fake_kube.compact()  # the apiserver compacted etcd past the list's revision
    with pytest.raises(ApiException) as expired:
        await page(kube_api, limit=1, _continue=first["metadata"]["continue"])
    status = json.loads(expired.value.body or b"")
    assert (expired.value.status, status["reason"], status["code"]) == (410, "Expired", 410)
    assert status["message"].startswith("The provided continue parameter is too old")
    rest = await page(kube_api, _continue=status["metadata"]["continue"])  # finish, inconsistently
    assert names(rest) == ["gs-2", "gs-3", "gs-4"]
    assert rest["metadata"]["resourceVersion"] == fake_kube.resource_version


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param({"_continue": "not-a-token"}, "continue key is not valid", id="garbage"),
        pytest.param({"_continue": "eyJ2IjoieCJ9"}, "does not recognize this encoded version", id="other-version"),
        pytest.param({"resource_version": "5", "limit": 1}, "not allowed when using continue", id="with-version"),
    ],
)
async def test_bad_continue_requests_are_400(
    fake_kube: FakeKube, kube_api: client.ApiClient, params: dict[str, Any], message: str
) -> None:
    await create(kube_api, "gs-1", "gs-2")
    if "resource_version" in params:
        params["_continue"] = (await page(kube_api, limit=1))["metadata"]["continue"]
    with pytest.raises(ApiException) as bad:
        await page(kube_api, **params)
    assert bad.value.status == 400 and message in json.loads(bad.value.body or b"")["message"]


# -- fleetmatch's lists -----------------------------------------------------------------------------


async def test_the_store_lists_every_object_exactly_once_across_pages(
    fake_kube: FakeKube, kube_api: client.ApiClient
) -> None:
    await create(kube_api, *(f"gs-{i:02}" for i in range(10)))
    before = len(lists(fake_kube))
    # Writes while the list is half read neither duplicate nor skip anything: pages are one snapshot.
    fake_kube.on_request = when(continued, lambda: fake_kube.delete_object(PLURAL, NS, "gs-09"))
    items, version = await store(kube_api, 3).list()
    assert sorted(g.name for g in items) == [f"gs-{i:02}" for i in range(10)]
    requested = lists(fake_kube)[before:]
    assert [q["limit"] for q in requested] == [["3"]] * 4
    assert ["continue" in q for q in requested] == [False, True, True, True]
    assert int(version) < int(fake_kube.resource_version)  # the first page's version: the delete is after it


async def test_the_store_lists_again_when_a_continue_token_expired(
    fake_kube: FakeKube, kube_api: client.ApiClient
) -> None:
    await create(kube_api, *(f"gs-{i}" for i in range(5)))
    before = len(lists(fake_kube))

    def write_and_compact() -> None:  # the list's snapshot is no longer kept
        fake_kube.delete_object(PLURAL, NS, "gs-4")
        fake_kube.compact()

    fake_kube.on_request = when(continued, write_and_compact)
    items, version = await store(kube_api, 2).list()
    assert sorted(g.name for g in items) == [f"gs-{i}" for i in range(4)]
    requested = lists(fake_kube)[before:]
    assert ["continue" in q for q in requested] == [False, True, False, True]  # 410, then from the top
    assert version == fake_kube.resource_version


async def test_the_informer_syncs_and_relists_in_pages(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    await create(kube_api, *(f"gs-{i}" for i in range(5)))
    informer = Informer(store(kube_api, 2), retry_seconds=0.05)
    before = len(lists(fake_kube))
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), 10)
        assert sorted(informer.cache) == [f"gs-{i}" for i in range(5)]
        initial = lists(fake_kube)[before:]
        assert [q["limit"] for q in initial] == [["2"]] * 3  # three pages, not one whole list

        await eventually(lambda: fake_kube.watch_count == 1)

        def write_and_compact() -> None:  # while the watch is away: its version is gone, 410
            for name in ("gs-5", "gs-6"):
                fake_kube.create_object(PLURAL, {"metadata": {"name": name}, "spec": {}}, NS)
            fake_kube.compact()

        fake_kube.on_request = when(lambda r: "watch=" in r.query, write_and_compact)
        fake_kube.drop_watches()
        await eventually(lambda: len(informer.cache) == 7, within=15)
        relist = lists(fake_kube)[before + len(initial) :]
        assert len(relist) >= 4 and all(q["limit"] == ["2"] for q in relist)
    finally:
        await cancel_and_wait(task)


async def test_the_pod_controllers_watcher_lists_pods_in_pages(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    for i in range(5):
        body = {"metadata": {"name": f"pod-{i}", "labels": {"app": "game"}}, "spec": {"containers": [{"name": "g"}]}}
        fake_kube.create_object("pods", body, NS)
    fake_kube.create_object("pods", {"metadata": {"name": "other"}, "spec": {"containers": [{"name": "g"}]}}, NS)
    pods = ObjectWatcher(
        kube_api,
        client.CoreV1Api(kube_api).list_namespaced_pod,
        target=ApiTarget("list", "pods", namespace=NS, kind="Pod"),
        on_change=lambda _: None,
        list_page=2,
        namespace=NS,
        label_selector="app",
    )
    fake_kube.on_request = when(continued, lambda: fake_kube.delete_pod(NS, "pod-4"))
    task = asyncio.create_task(pods.run())
    try:
        await asyncio.wait_for(pods.synced.wait(), 10)
        requested = lists(fake_kube, "/pods")
        assert [q["limit"] for q in requested] == [["2"]] * 3
        assert all(q["labelSelector"] == ["app"] for q in requested)
        # The list is the snapshot (pod-4 included); the watch from its version then removes pod-4.
        await eventually(lambda: sorted(pods.cache) == [f"pod-{i}" for i in range(4)])
    finally:
        await cancel_and_wait(task)


async def test_the_page_size_comes_from_the_settings(fake_kube: FakeKube, kube_api: client.ApiClient) -> None:
    await create(kube_api, "gs-1", "gs-2", "gs-3")
    env = {
        "FLEETMATCH_BACKEND": "kubernetes",
        "FLEETMATCH_KUBE_SERVER": fake_kube.url,
        "FLEETMATCH_KUBE_LIST_PAGE": "2",
    }
    backend = await kube_backend(Settings.from_env(env))
    try:
        before = len(lists(fake_kube))
        assert len((await backend.gameservers.list())[0]) == 3
        assert [q["limit"] for q in lists(fake_kube)[before:]] == [["2"], ["2"]]
        assert backend.list_page == 2  # and the Pod controller's watchers
    finally:
        await backend.aclose()
