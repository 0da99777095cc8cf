"""The fake API server, pinned behaviour by behaviour through the real kubernetes-asyncio client
(``CustomObjectsApi``, ``CoreV1Api``, ``watch.Watch``), as section 2.2 of the Kubernetes testing
reference describes a real apiserver."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from tests.kube.conftest import load_crds
from tests.kube.fakekube import NAME_ALPHABET, FakeKube
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(30)

G, V, NS = "games.example.com", "v1", "games"
MERGE = "application/merge-patch+json"

FLEET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"fleets.{G}"},
    "spec": {
        "group": G,
        "scope": "Namespaced",
        "names": {"plural": "fleets", "singular": "fleet", "kind": "Fleet", "shortNames": ["flt"]},
        "versions": [
            {
                "name": V,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": {
                                "type": "object",
                                "required": ["replicas"],
                                "properties": {
                                    "replicas": {"type": "integer", "minimum": 0},
                                    "scheduling": {
                                        "type": "string",
                                        "default": "Packed",
                                        "enum": ["Packed", "Distributed"],
                                    },
                                    "template": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "readyReplicas": {"type": "integer"},
                                    "observedGeneration": {"type": "integer"},
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}

NOTE_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"notes.{G}"},
    "spec": {
        "group": G,
        "scope": "Namespaced",
        "names": {"plural": "notes", "kind": "Note"},
        "versions": [
            {
                "name": V,
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


@pytest.fixture
def fake(fake_kube: FakeKube) -> FakeKube:
    fake_kube.register_crd(FLEET_CRD)
    fake_kube.register_crd(NOTE_CRD)
    return fake_kube


@pytest.fixture
def co(kube_api: client.ApiClient, fake: FakeKube) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api)


@pytest.fixture
def core(kube_api: client.ApiClient, fake: FakeKube) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api)


def fleet(name: str = "f1", replicas: int = 2, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Fleet",
        "metadata": {"name": name, **meta},
        "spec": {"replicas": replicas},
    }


def pod(name: str, node: str = "", **meta: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "game", "image": "game:1"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **meta}, "spec": spec}


def status_of(error: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body or b"{}")
    return body


async def create_fleet(co: client.CustomObjectsApi, name: str = "f1", **kw: Any) -> dict[str, Any]:
    created: dict[str, Any] = await co.create_namespaced_custom_object(G, V, NS, "fleets", fleet(name, **kw))
    return created


async def events(func: Callable[..., Any], *args: Any, limit: int | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """The events of one watch (pass ``timeout_seconds``), closing the watch's own client."""
    seen: list[dict[str, Any]] = []
    async with watch.Watch().stream(func, *args, **kwargs) as stream:
        async for event in stream:
            seen.append(event)
            if limit is not None and len(seen) >= limit:
                break
    return seen


def summary(seen: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["raw_object"]["metadata"].get("name", "")) for e in seen]


async def watchers(fake: FakeKube, n: int) -> None:
    await eventually(lambda: fake.watch_count >= n, what=lambda: f"{fake.watch_count} watches open, not {n}")


# -- create, get, metadata ----------------------------------------------------------------------------


async def test_create_answers_201_with_stamped_metadata(fake, co):
    f = await create_fleet(co, uid="mine", creationTimestamp="1999-01-01T00:00:00Z")
    meta = f["metadata"]
    assert meta["namespace"] == NS and meta["generation"] == 1
    assert meta["uid"] != "mine" and len(meta["uid"]) == 36
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert meta["creationTimestamp"] != "1999-01-01T00:00:00Z"
    assert meta["resourceVersion"] == fake.resource_version
    assert f["spec"] == {"replicas": 2, "scheduling": "Packed"}  # schema default applied
    assert [(r.method, r.status) for r in fake.requests] == [("POST", 201)]
    assert await co.get_namespaced_custom_object(G, V, NS, "fleets", "f1") == f


async def test_create_rejects_resource_version_foreign_namespace_and_missing_name(co):
    with pytest.raises(ApiException) as rv_set:
        await co.create_namespaced_custom_object(G, V, NS, "fleets", fleet(resourceVersion="7"))
    assert "resourceVersion should not be set on objects to be created" in status_of(rv_set.value)["message"]
    with pytest.raises(ApiException) as elsewhere:
        await co.create_namespaced_custom_object(G, V, NS, "fleets", fleet(namespace="other"))
    assert elsewhere.value.status == 400
    body = fleet()
    del body["metadata"]["name"]
    with pytest.raises(ApiException) as unnamed:
        await co.create_namespaced_custom_object(G, V, NS, "fleets", body)
    assert unnamed.value.status == 422
    assert status_of(unnamed.value)["details"]["causes"][0]["field"] == "metadata.name"


async def test_generate_name_appends_five_characters_from_the_apiserver_alphabet(co):
    body = fleet()
    body["metadata"] = {"generateName": "arena-"}
    names = {(await co.create_namespaced_custom_object(G, V, NS, "fleets", body))["metadata"]["name"] for _ in range(5)}
    assert len(names) == 5
    for name in names:
        assert re.fullmatch(rf"arena-[{NAME_ALPHABET}]{{5}}", name)


async def test_not_found_and_already_exists_carry_the_apiserver_messages(co):
    with pytest.raises(ApiException) as missing:
        await co.get_namespaced_custom_object(G, V, NS, "fleets", "f1")
    assert missing.value.status == 404
    assert status_of(missing.value)["message"] == 'fleets.games.example.com "f1" not found'
    assert status_of(missing.value)["details"] == {"name": "f1", "group": G, "kind": "fleets"}
    await create_fleet(co)
    with pytest.raises(ApiException) as twice:
        await create_fleet(co)
    assert (twice.value.status, status_of(twice.value)["reason"]) == (409, "AlreadyExists")
    assert status_of(twice.value)["message"] == 'fleets.games.example.com "f1" already exists'


async def test_schema_validation_pruning_and_defaults(co):
    with pytest.raises(ApiException) as bad:
        await co.create_namespaced_custom_object(G, V, NS, "fleets", fleet(replicas="lots"))  # type: ignore[arg-type]
    assert bad.value.status == 422
    causes = status_of(bad.value)["details"]["causes"]
    assert [c["field"] for c in causes] == ["spec.replicas"]
    assert "is not of type 'integer'" in causes[0]["message"]
    body = fleet()
    body["spec"]["unknown"] = 1
    body["spec"]["template"] = {"anything": {"goes": True}}
    created = await co.create_namespaced_custom_object(G, V, NS, "fleets", body)
    assert created["spec"] == {"replicas": 2, "scheduling": "Packed", "template": {"anything": {"goes": True}}}


# -- replace, patch, conflicts ------------------------------------------------------------------------


async def test_replace_needs_the_current_resource_version(co, core):
    f = await create_fleet(co)
    stale = json.loads(json.dumps(f))
    f["spec"]["replicas"] = 3
    updated = await co.replace_namespaced_custom_object(G, V, NS, "fleets", "f1", f)
    assert int(updated["metadata"]["resourceVersion"]) > int(f["metadata"]["resourceVersion"])
    with pytest.raises(ApiException) as conflict:
        await co.replace_namespaced_custom_object(G, V, NS, "fleets", "f1", stale)
    assert (conflict.value.status, conflict.value.reason) == (409, "Conflict")
    assert status_of(conflict.value)["message"] == (
        'Operation cannot be fulfilled on fleets.games.example.com "f1": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    del updated["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as unconditional:
        await co.replace_namespaced_custom_object(G, V, NS, "fleets", "f1", updated)
    assert unconditional.value.status == 422
    assert "must be specified for an update" in status_of(unconditional.value)["message"]
    with pytest.raises(ApiException) as absent:
        await co.replace_namespaced_custom_object(G, V, NS, "fleets", "nope", fleet("nope"))
    assert absent.value.status == 404
    # Pods allow an unconditional update.
    await core.create_namespaced_pod(NS, pod("p1"))
    replaced = await core.replace_namespaced_pod("p1", NS, pod("p1", labels={"a": "b"}))
    assert replaced.metadata.labels == {"a": "b"}


async def test_dict_patch_without_content_type_is_sent_as_json_patch_and_rejected(fake, co):
    await create_fleet(co)
    with pytest.raises(ApiException) as wrong:
        await co.patch_namespaced_custom_object(G, V, NS, "fleets", "f1", {"spec": {"replicas": 5}})
    assert wrong.value.status == 400
    assert fake.requests[-1].content_type == "application/json-patch+json"
    merged = await co.patch_namespaced_custom_object(
        G, V, NS, "fleets", "f1", {"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 5}}, _content_type=MERGE
    )
    assert merged["spec"]["replicas"] == 5 and merged["metadata"]["labels"] == {"a": "1"}
    removed = await co.patch_namespaced_custom_object(
        G, V, NS, "fleets", "f1", {"metadata": {"labels": {"a": None}}}, _content_type=MERGE
    )
    assert removed["metadata"].get("labels", {}) == {}


async def test_json_patch_applies_ops_and_answers_422_when_one_fails(co):
    await create_fleet(co)
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/spec/replicas", "value": 2},
        {"op": "replace", "path": "/spec/replicas", "value": 4},
        {"op": "add", "path": "/metadata/labels", "value": {"x~y/z": "1"}},
        {"op": "copy", "from": "/metadata/labels/x~0y~1z", "path": "/metadata/annotations"},
    ]
    with pytest.raises(ApiException) as bad_label:
        await co.patch_namespaced_custom_object(G, V, NS, "fleets", "f1", ops)
    assert bad_label.value.status == 422  # "x~y/z" is not a valid label key
    ops[2]["value"] = {"tier": "a"}
    ops[3] = {"op": "move", "from": "/metadata/labels/tier", "path": "/metadata/labels/zone"}
    patched = await co.patch_namespaced_custom_object(G, V, NS, "fleets", "f1", ops)
    assert patched["spec"]["replicas"] == 4 and patched["metadata"]["labels"] == {"zone": "a"}
    for failing in ([{"op": "test", "path": "/spec/replicas", "value": 1}], [{"op": "remove", "path": "/spec/nope"}]):
        with pytest.raises(ApiException) as rejected:
            await co.patch_namespaced_custom_object(G, V, NS, "fleets", "f1", failing)
        assert rejected.value.status == 422


async def test_strategic_merge_is_for_pods_only(fake, co, core):
    await core.create_namespaced_pod(NS, pod("p1"))
    patch = {"spec": {"containers": [{"name": "sidecar", "image": "sdk:1"}, {"name": "game", "image": "game:2"}]}}
    patched = await core.patch_namespaced_pod("p1", NS, patch)
    assert fake.requests[-1].content_type == "application/strategic-merge-patch+json"
    assert [(c.name, c.image) for c in patched.spec.containers] == [("game", "game:2"), ("sidecar", "sdk:1")]
    await create_fleet(co)
    for content_type in ("application/strategic-merge-patch+json", "application/apply-patch+yaml"):
        with pytest.raises(ApiException) as unsupported:
            await co.patch_namespaced_custom_object(
                G, V, NS, "fleets", "f1", {"spec": {"replicas": 1}}, _content_type=content_type
            )
        assert (unsupported.value.status, status_of(unsupported.value)["reason"]) == (415, "UnsupportedMediaType")


async def test_other_patch_content_types_are_415(fake, co):
    await create_fleet(co)
    url = f"{fake.url}/apis/{G}/{V}/namespaces/{NS}/fleets/f1"
    async with aiohttp.ClientSession() as session:
        for content_type in ("application/json", "text/plain"):
            async with session.patch(url, data=b"{}", headers={"Content-Type": content_type}) as response:
                assert response.status == 415
                assert (await response.json())["reason"] == "UnsupportedMediaType"


async def test_resource_version_in_a_patch_is_a_precondition(co):
    f = await create_fleet(co)
    rv = f["metadata"]["resourceVersion"]
    first = await co.patch_namespaced_custom_object(
        G, V, NS, "fleets", "f1", {"metadata": {"resourceVersion": rv}, "spec": {"replicas": 3}}, _content_type=MERGE
    )
    with pytest.raises(ApiException) as stale:
        await co.patch_namespaced_custom_object(
            G,
            V,
            NS,
            "fleets",
            "f1",
            {"metadata": {"resourceVersion": rv}, "spec": {"replicas": 4}},
            _content_type=MERGE,
        )
    assert stale.value.status == 409
    latest = await co.patch_namespaced_custom_object(
        G, V, NS, "fleets", "f1", {"spec": {"replicas": 4}}, _content_type=MERGE
    )
    assert int(latest["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])


async def test_no_op_update_keeps_the_resource_version_and_emits_nothing(fake, co):
    f = await create_fleet(co, labels={"a": "1"})
    rv = f["metadata"]["resourceVersion"]
    same = await co.patch_namespaced_custom_object(
        G, V, NS, "fleets", "f1", {"metadata": {"labels": {"a": "1"}}}, _content_type=MERGE
    )
    replaced = await co.replace_namespaced_custom_object(G, V, NS, "fleets", "f1", f)
    assert same["metadata"]["resourceVersion"] == replaced["metadata"]["resourceVersion"] == rv == fake.resource_version
    seen = await events(co.list_namespaced_custom_object, G, V, NS, "fleets", resource_version=rv, timeout_seconds=1)
    assert seen == []


async def test_generation_moves_with_spec_only(co):
    await create_fleet(co)

    async def merge(body: dict[str, Any], *, status: bool = False, plural: str = "fleets") -> dict[str, Any]:
        patch = co.patch_namespaced_custom_object_status if status else co.patch_namespaced_custom_object
        result: dict[str, Any] = await patch(G, V, NS, plural, "f1", body, _content_type=MERGE)
        return result

    assert (await merge({"spec": {"replicas": 3}}))["metadata"]["generation"] == 2
    assert (await merge({"metadata": {"labels": {"a": "b"}, "finalizers": ["x/y"]}}))["metadata"]["generation"] == 2
    assert (await merge({"status": {"readyReplicas": 3}}, status=True))["metadata"]["generation"] == 2
    # Without the status subresource, a status change is a change like any other.
    await co.create_namespaced_custom_object(G, V, NS, "notes", {"metadata": {"name": "f1"}, "spec": {"text": "a"}})
    assert (await merge({"status": {"seen": True}}, plural="notes"))["metadata"]["generation"] == 2


async def test_status_subresource_splits_spec_from_status(co):
    body = fleet()
    body["status"] = {"readyReplicas": 9}
    f = await co.create_namespaced_custom_object(G, V, NS, "fleets", body)
    assert "status" not in f  # dropped on create
    ignored = await co.patch_namespaced_custom_object(
        G, V, NS, "fleets", "f1", {"status": {"readyReplicas": 1}}, _content_type=MERGE
    )
    assert "status" not in ignored and ignored["metadata"]["resourceVersion"] == f["metadata"]["resourceVersion"]
    written = await co.patch_namespaced_custom_object_status(
        G,
        V,
        NS,
        "fleets",
        "f1",
        {"metadata": {"labels": {"no": "pe"}}, "spec": {"replicas": 7}, "status": {"readyReplicas": 2}},
        _content_type=MERGE,
    )
    assert written["status"] == {"readyReplicas": 2} and written["spec"]["replicas"] == 2  # whole object back
    assert "labels" not in written["metadata"]
    written["status"]["observedGeneration"] = 1
    replaced = await co.replace_namespaced_custom_object_status(G, V, NS, "fleets", "f1", written)
    assert replaced["status"] == {"readyReplicas": 2, "observedGeneration": 1}


# -- delete, finalizers, garbage collection ------------------------------------------------------------


async def test_delete_without_finalizers(fake, co, core):
    f = await create_fleet(co)
    gone = await co.delete_namespaced_custom_object(G, V, NS, "fleets", "f1")
    assert gone == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": "f1", "group": G, "kind": "fleets", "uid": f["metadata"]["uid"]},
    }
    seen = await events(
        co.list_namespaced_custom_object,
        G,
        V,
        NS,
        "fleets",
        resource_version=f["metadata"]["resourceVersion"],
        timeout_seconds=1,
    )
    assert summary(seen) == [("DELETED", "f1")]
    assert seen[0]["raw_object"]["metadata"]["resourceVersion"] == fake.resource_version
    await core.create_namespaced_pod(NS, pod("p1"))
    deleted = await core.delete_namespaced_pod("p1", NS)
    assert isinstance(deleted, client.V1Pod) and deleted.metadata.name == "p1"
    assert fake.objects("pods") == []


async def test_finalizers_hold_the_object_until_the_last_one_goes(fake, co):
    f = await create_fleet(co, finalizers=["games.example.com/cleanup"])
    marked = await co.delete_namespaced_custom_object(G, V, NS, "fleets", "f1")
    assert marked["metadata"]["deletionTimestamp"] and marked["metadata"]["deletionGracePeriodSeconds"] == 0
    again = await co.delete_namespaced_custom_object(G, V, NS, "fleets", "f1")
    assert again["metadata"]["resourceVersion"] == marked["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as forbidden:
        await co.patch_namespaced_custom_object(
            G,
            V,
            NS,
            "fleets",
            "f1",
            {"metadata": {"finalizers": ["a/b", "games.example.com/cleanup"]}},
            _content_type=MERGE,
        )
    assert forbidden.value.status == 422
    assert "no new finalizers can be added if the object is being deleted" in status_of(forbidden.value)["message"]
    last = await co.patch_namespaced_custom_object(
        G, V, NS, "fleets", "f1", {"metadata": {"finalizers": None}}, _content_type=MERGE
    )
    assert "finalizers" not in last["metadata"]
    seen = await events(
        co.list_namespaced_custom_object,
        G,
        V,
        NS,
        "fleets",
        resource_version=f["metadata"]["resourceVersion"],
        timeout_seconds=1,
    )
    assert summary(seen) == [("MODIFIED", "f1"), ("DELETED", "f1")]
    assert fake.objects(f"fleets.{G}") == []


async def test_garbage_collector_follows_owner_references(fake, co, core):
    owner = await create_fleet(co)
    other = await create_fleet(co, "f2")

    def ref(obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return {"apiVersion": f"{G}/{V}", "kind": "Fleet", "name": meta["name"], "uid": meta["uid"], "controller": True}

    await core.create_namespaced_pod(NS, pod("only", ownerReferences=[ref(owner)]))
    await core.create_namespaced_pod(
        NS, pod("shared", ownerReferences=[ref(owner), ref(other) | {"controller": False}])
    )
    await core.create_namespaced_pod(NS, pod("held", ownerReferences=[ref(owner)], finalizers=["x/y"]))
    await co.delete_namespaced_custom_object(G, V, NS, "fleets", "f1", propagation_policy="Background")
    pods = {p["metadata"]["name"]: p["metadata"] for p in fake.objects("pods")}
    assert set(pods) == {"shared", "held"}
    assert [r["name"] for r in pods["shared"]["ownerReferences"]] == ["f2"]
    assert pods["held"]["deletionTimestamp"]
    await co.delete_namespaced_custom_object(G, V, NS, "fleets", "f2", propagation_policy="Orphan")
    assert "ownerReferences" not in fake.objects("pods")[1]["metadata"]


async def test_delete_collection_by_label_and_dry_run_refused(fake, co):
    await create_fleet(co, "f1", labels={"pool": "a"})
    await create_fleet(co, "f2", labels={"pool": "b"})
    deleted = await co.delete_collection_namespaced_custom_object(G, V, NS, "fleets", label_selector="pool=a")
    assert [i["metadata"]["name"] for i in deleted["items"]] == ["f1"]
    assert [f["metadata"]["name"] for f in fake.objects(f"fleets.{G}")] == ["f2"]
    with pytest.raises(ApiException) as dry:
        await co.delete_namespaced_custom_object(G, V, NS, "fleets", "f2", dry_run="All")
    assert dry.value.status == 400 and len(fake.objects(f"fleets.{G}")) == 1


# -- list, selectors -----------------------------------------------------------------------------------


async def test_list_always_has_items_and_the_current_resource_version(fake, co, core):
    empty = await core.list_namespaced_pod(NS)
    assert empty.items == [] and empty.metadata.resource_version == fake.resource_version
    await create_fleet(co)
    await create_fleet(co, "f0")
    listed = await co.list_namespaced_custom_object(G, V, NS, "fleets")
    assert listed["kind"] == "FleetList" and listed["metadata"]["resourceVersion"] == fake.resource_version
    assert [i["metadata"]["name"] for i in listed["items"]] == ["f0", "f1"]
    assert (await co.list_cluster_custom_object(G, V, "fleets"))["items"] == listed["items"]
    assert (await co.list_namespaced_custom_object(G, V, "elsewhere", "fleets"))["items"] == []


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=gs", ["a", "b", "c"]),
        ("app==gs,tier=x", ["a"]),
        ("tier!=x", ["b", "c", "d"]),
        ("tier in (x, y)", ["a", "b"]),
        ("tier notin (x)", ["b", "c", "d"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c", "d"]),
        ("app=gs,tier in (a,b),!draining", []),
        ("app=gs , !draining", ["a", "b"]),
        ("draining=", []),
        ("tier!=", ["a", "b", "c", "d"]),
    ],
)
async def test_label_selectors(fake, co, selector, expected):
    labels = {
        "a": {"app": "gs", "tier": "x"},
        "b": {"app": "gs", "tier": "y"},
        "c": {"app": "gs", "draining": "1"},
        "d": {},
    }
    for name, lab in labels.items():
        await create_fleet(co, name, labels=lab)
    listed = await co.list_namespaced_custom_object(G, V, NS, "fleets", label_selector=selector)
    assert [i["metadata"]["name"] for i in listed["items"]] == expected


@pytest.mark.parametrize("selector", ["=x", "tier in x", "tier in ()", "a b", "app=gs,(", "k>x"])
async def test_malformed_label_selector_is_400(co, selector):
    with pytest.raises(ApiException) as bad:
        await co.list_namespaced_custom_object(G, V, NS, "fleets", label_selector=selector)
    assert bad.value.status == 400


async def test_field_selectors(fake, co, core):
    await core.create_namespaced_pod(NS, pod("p1", node="n1"))
    await core.create_namespaced_pod(NS, pod("p2"))
    fake.set_pod_status(NS, "p1", {"phase": "Running"})
    assert [p.metadata.name for p in (await core.list_namespaced_pod(NS, field_selector="spec.nodeName=n1")).items] == [
        "p1"
    ]
    running = await core.list_pod_for_all_namespaces(field_selector="status.phase!=Running")
    assert [p.metadata.name for p in running.items] == ["p2"]
    await create_fleet(co)
    named = await co.list_cluster_custom_object(
        G, V, "fleets", field_selector=f"metadata.name=f1,metadata.namespace={NS}"
    )
    assert len(named["items"]) == 1
    with pytest.raises(ApiException) as unsupported:
        await co.list_namespaced_custom_object(G, V, NS, "fleets", field_selector="spec.replicas=2")
    assert unsupported.value.status == 400
    assert "field label not supported: spec.replicas" in status_of(unsupported.value)["message"]


# -- watch ---------------------------------------------------------------------------------------------


async def test_watch_without_version_replays_current_objects_then_follows(fake, co):
    await create_fleet(co, "f1")
    listed = await co.list_namespaced_custom_object(G, V, NS, "fleets")

    async def later() -> None:
        await watchers(fake, 2)
        await create_fleet(co, "f2")

    task = asyncio.create_task(later())
    from_zero, from_list = await asyncio.gather(
        events(co.list_namespaced_custom_object, G, V, NS, "fleets", resource_version="0", limit=2, timeout_seconds=5),
        events(
            co.list_namespaced_custom_object,
            G,
            V,
            NS,
            "fleets",
            resource_version=listed["metadata"]["resourceVersion"],
            limit=1,
            timeout_seconds=5,
        ),
    )
    await task
    assert summary(from_zero) == [("ADDED", "f1"), ("ADDED", "f2")]
    assert summary(from_list) == [("ADDED", "f2")]
    assert all("watch=True" in r.query for r in fake.requests if "watch" in r.query)


async def test_watch_with_a_label_selector_sees_objects_enter_and_leave(fake, co):
    await create_fleet(co, "f1", labels={"state": "ready"})
    start = fake.resource_version

    async def label(state: str | None) -> None:
        await co.patch_namespaced_custom_object(
            G, V, NS, "fleets", "f1", {"metadata": {"labels": {"state": state}}}, _content_type=MERGE
        )

    await co.patch_namespaced_custom_object(G, V, NS, "fleets", "f1", {"spec": {"replicas": 5}}, _content_type=MERGE)
    await label("allocated")
    allocated_rv = fake.resource_version
    await label(None)  # matched neither before nor after: nothing
    await label("ready")
    await co.delete_namespaced_custom_object(G, V, NS, "fleets", "f1")
    seen = await events(
        co.list_namespaced_custom_object,
        G,
        V,
        NS,
        "fleets",
        label_selector="state=ready",
        resource_version=start,
        timeout_seconds=1,
    )
    assert [e["type"] for e in seen] == ["MODIFIED", "DELETED", "ADDED", "DELETED"]
    left = seen[1]["raw_object"]
    assert left["metadata"]["labels"] == {"state": "ready"} and left["spec"]["replicas"] == 5  # previous content
    assert left["metadata"]["resourceVersion"] == allocated_rv  # ...at the event's version


async def test_watch_from_an_expired_version_raises_410(fake, co):
    f = await create_fleet(co)
    await co.patch_namespaced_custom_object(G, V, NS, "fleets", "f1", {"spec": {"replicas": 3}}, _content_type=MERGE)
    fake.compact()
    with pytest.raises(ApiException) as expired:
        await events(
            co.list_namespaced_custom_object,
            G,
            V,
            NS,
            "fleets",
            resource_version=f["metadata"]["resourceVersion"],
            timeout_seconds=5,
        )
    assert expired.value.status == 410 and "Expired" in str(expired.value.reason)
    # Without timeout_seconds the client retries once with the same version, then raises.
    fake.requests.clear()
    with pytest.raises(ApiException):
        await events(
            co.list_namespaced_custom_object, G, V, NS, "fleets", resource_version=f["metadata"]["resourceVersion"]
        )
    assert [r.status for r in fake.requests] == [200, 200]
    # The current version is still good.
    assert (
        await events(
            co.list_namespaced_custom_object,
            G,
            V,
            NS,
            "fleets",
            resource_version=fake.resource_version,
            timeout_seconds=1,
        )
        == []
    )


async def test_history_is_bounded():
    fake = FakeKube(history_size=3)
    fake.register_crd(FLEET_CRD)
    await fake.start()
    try:
        async with client.ApiClient(client.Configuration(host=fake.url)) as api:
            co = client.CustomObjectsApi(api)
            for i in range(5):
                await create_fleet(co, f"f{i}")
            recent = await events(
                co.list_namespaced_custom_object, G, V, NS, "fleets", resource_version="2", timeout_seconds=1
            )
            assert summary(recent) == [("ADDED", "f2"), ("ADDED", "f3"), ("ADDED", "f4")]
            with pytest.raises(ApiException) as expired:
                await events(
                    co.list_namespaced_custom_object, G, V, NS, "fleets", resource_version="1", timeout_seconds=1
                )
            assert expired.value.status == 410
    finally:
        await fake.stop()


async def test_bookmarks_only_when_allowed(fake, co):
    fake.bookmark_interval = 0.2
    await create_fleet(co)
    rv = fake.resource_version
    w = watch.Watch()
    async with w.stream(
        co.list_namespaced_custom_object,
        G,
        V,
        NS,
        "fleets",
        resource_version=rv,
        allow_watch_bookmarks=True,
        timeout_seconds=5,
    ) as stream:
        async for event in stream:
            assert event["type"] == "BOOKMARK"
            assert event["raw_object"] == {
                "kind": "Fleet",
                "apiVersion": f"{G}/{V}",
                "metadata": {"resourceVersion": rv},
            }
            break
    assert w.resource_version == rv
    assert (
        await events(co.list_namespaced_custom_object, G, V, NS, "fleets", resource_version=rv, timeout_seconds=1) == []
    )


async def test_timeout_seconds_ends_the_stream_cleanly(fake, co):
    await create_fleet(co)
    seen = await events(co.list_namespaced_custom_object, G, V, NS, "fleets", timeout_seconds=1)
    assert summary(seen) == [("ADDED", "f1")]
    assert fake.watch_count == 0


async def test_dropped_watches_reconnect_from_the_last_version(fake, co):
    await create_fleet(co)
    seen: list[dict[str, Any]] = []
    w = watch.Watch()

    async def follow() -> None:
        async with w.stream(co.list_namespaced_custom_object, G, V, NS, "fleets") as stream:
            async for event in stream:
                seen.append(event)
                if len(seen) == 2:
                    w.stop()
                    return

    task = asyncio.create_task(follow())
    await watchers(fake, 1)
    await eventually(lambda: bool(seen))
    rv = fake.resource_version
    fake.drop_watches()
    await asyncio.sleep(0.05)
    await watchers(fake, 1)
    await create_fleet(co, "f2")
    await asyncio.wait_for(task, 5)
    assert summary(seen) == [("ADDED", "f1"), ("ADDED", "f2")]
    queries = [r.query for r in fake.requests if "watch=True" in r.query]
    assert len(queries) == 2 and f"resourceVersion={rv}" in queries[1]


@pytest.mark.parametrize("value", ["true", "True", "1", "t", "TRUE"])
async def test_watch_parameter_is_a_go_bool_and_lines_are_never_blank(fake, co, value):
    await create_fleet(co)
    url = f"{fake.url}/apis/{G}/{V}/namespaces/{NS}/fleets?watch={value}&timeoutSeconds=1&allowWatchBookmarks=1"
    fake.bookmark_interval = 0.3
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200 and response.content_type == "application/json"
        body = await response.text()
    lines = body.split("\n")
    assert lines[-1] == "" and all(lines[:-1])
    kinds = [json.loads(line)["type"] for line in lines[:-1]]
    assert kinds[0] == "ADDED" and set(kinds[1:]) == {"BOOKMARK"}


async def test_watch_pods_across_namespaces_is_typed(fake, core):
    await core.create_namespaced_pod("a", pod("p1"))
    fake.set_pod_status("a", "p1", {"phase": "Running", "podIP": "10.0.0.7"})
    fake.delete_pod("a", "p1")
    seen = await events(core.list_pod_for_all_namespaces, resource_version="0", timeout_seconds=1)
    assert seen == []
    seen = await events(core.list_pod_for_all_namespaces, resource_version="1", timeout_seconds=1)
    assert [e["type"] for e in seen] == ["MODIFIED", "DELETED"]
    assert isinstance(seen[0]["object"], client.V1Pod) and seen[0]["object"].status.pod_ip == "10.0.0.7"


# -- hooks and the rest ------------------------------------------------------------------------------


async def test_injected_conflicts_and_failures(fake, co, core):
    await create_fleet(co)
    fake.inject_conflicts(1)
    with pytest.raises(ApiException) as conflict:
        await co.patch_namespaced_custom_object(
            G, V, NS, "fleets", "f1", {"spec": {"replicas": 3}}, _content_type=MERGE
        )
    assert conflict.value.status == 409
    await co.patch_namespaced_custom_object(G, V, NS, "fleets", "f1", {"spec": {"replicas": 3}}, _content_type=MERGE)
    fake.fail_next(403, method="GET")
    with pytest.raises(ApiException) as denied:
        await core.list_namespaced_pod(NS)
    assert (denied.value.status, status_of(denied.value)["reason"]) == (403, "Forbidden")
    fake.fail_next(503, 2)
    for _ in range(2):
        with pytest.raises(ApiException) as unavailable:
            await co.get_namespaced_custom_object(G, V, NS, "fleets", "f1")
        assert unavailable.value.status == 503
    fake.delay = 0.05
    assert (await co.get_namespaced_custom_object(G, V, NS, "fleets", "f1"))["spec"]["replicas"] == 3
    assert [(r.method, r.path, r.status) for r in fake.requests[-5:-1]] == [
        ("PATCH", f"/apis/{G}/{V}/namespaces/{NS}/fleets/f1", 200),
        ("GET", f"/api/v1/namespaces/{NS}/pods", 403),
        ("GET", f"/apis/{G}/{V}/namespaces/{NS}/fleets/f1", 503),
        ("GET", f"/apis/{G}/{V}/namespaces/{NS}/fleets/f1", 503),
    ]


async def test_pods_need_named_containers_and_start_pending(core):
    with pytest.raises(ApiException) as unnamed:
        await core.create_namespaced_pod(NS, {"metadata": {"name": "p"}, "spec": {"containers": [{"image": "x"}]}})
    assert unnamed.value.status == 422
    created = await core.create_namespaced_pod(NS, pod("p1"))
    assert created.status.phase == "Pending" and created.metadata.namespace == NS


async def test_nodes_are_cluster_scoped(fake, core):
    addresses = [{"type": "InternalIP", "address": "10.0.0.1"}]
    await core.create_node({"metadata": {"name": "n1", "labels": {"pool": "game"}}, "status": {"addresses": addresses}})
    node = await core.read_node("n1")
    assert node.metadata.namespace is None and node.metadata.name == "n1"
    fake.update_object("nodes", None, "n1", lambda n: n.update(status={"addresses": addresses}))
    assert [n.metadata.name for n in (await core.list_node(label_selector="pool=game")).items] == ["n1"]
    seen = await events(core.list_node, timeout_seconds=1)
    assert [(e["type"], e["object"].metadata.name) for e in seen] == [("ADDED", "n1")]


async def test_kubeconfig_points_the_production_loading_path_at_the_fake(kubeconfig: Path):
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    async with client.ApiClient(configuration) as api:
        core = client.CoreV1Api(api)
        await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="games")))
        assert [n.metadata.name for n in (await core.list_namespace()).items] == ["games"]


@pytest.mark.skipif(not load_crds(), reason="no deploy/crds yet")
async def test_fleetmatch_crds_are_served(fake_kube, kube_api):
    co = client.CustomObjectsApi(kube_api)
    for crd in load_crds():
        spec = crd["spec"]
        version = next(v["name"] for v in spec["versions"] if v.get("served", True))
        listed = await co.list_cluster_custom_object(spec["group"], version, spec["names"]["plural"])
        assert listed["items"] == []
