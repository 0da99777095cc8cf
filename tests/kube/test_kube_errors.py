"""The one mapping of Kubernetes API refusals to fleetmatch errors (``fleetmatch.backends.kube.errors``),
as a table, and through the kubernetes-asyncio adapter against the fake API server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from fleetmatch.backends.kube.calls import call
from fleetmatch.backends.kube.errors import (
    ApiTarget,
    ForbiddenError,
    KubeApiError,
    Status,
    api_error,
    status_code,
    unreachable,
)
from fleetmatch.errors import (
    AlreadyExistsError,
    BackendError,
    ConflictError,
    ExpiredError,
    NotFoundError,
    StoreError,
    ValidationError,
)
from tests.kube.fakekube import FakeKube

GS = ApiTarget("get", "gameservers", "fleetmatch.dev", "games", "GameServer", "gs-1", "41")


@pytest.mark.parametrize(
    ("code", "body", "target", "expected"),
    [
        pytest.param(404, {"reason": "NotFound", "details": {"name": "gs-1"}}, GS, NotFoundError, id="404-object"),
        pytest.param(
            404,
            {"reason": "NotFound", "message": "the server could not find the requested resource"},
            GS,
            KubeApiError,
            id="404-resource",
        ),
        pytest.param(404, None, GS, NotFoundError, id="404-no-body"),
        pytest.param(409, {"reason": "AlreadyExists"}, GS, AlreadyExistsError, id="409-exists"),
        pytest.param(409, None, GS.about("gs-1", verb="create"), AlreadyExistsError, id="409-create-no-body"),
        pytest.param(409, {"reason": "Conflict"}, GS, ConflictError, id="409-conflict"),
        pytest.param(410, {"reason": "Expired"}, GS, ExpiredError, id="410-expired"),
        pytest.param(410, {"reason": "Gone"}, GS, ExpiredError, id="410-gone"),
        pytest.param(400, {"reason": "BadRequest", "message": "bad"}, GS, ValidationError, id="400"),
        pytest.param(401, {"reason": "Unauthorized"}, GS, ForbiddenError, id="401"),
        pytest.param(403, {"reason": "Forbidden"}, GS, ForbiddenError, id="403"),
        pytest.param(429, {"reason": "TooManyRequests"}, GS, KubeApiError, id="429"),
        pytest.param(503, "<html>proxy</html>", GS, KubeApiError, id="503-not-json"),
        pytest.param(0, {"code": 409, "reason": "Conflict"}, GS, ConflictError, id="code-from-the-body"),
    ],
)
def test_each_refusal_becomes_one_error_type(
    code: int, body: dict[str, Any] | str | None, target: ApiTarget, expected: type[Exception]
) -> None:
    raw = json.dumps(body) if isinstance(body, dict) else body
    error = api_error(code, raw, target)
    assert type(error) is expected
    assert isinstance(error, StoreError | ValidationError)


def test_an_invalid_object_names_its_field() -> None:
    causes = [{"field": "spec.ports[0].hostPort", "message": "too big"}, {"field": "spec.x", "message": "bad"}]
    error = api_error(422, json.dumps({"reason": "Invalid", "details": {"causes": causes}}), GS)
    assert isinstance(error, ValidationError)
    assert error.field == "spec.ports[0].hostPort" and error.message == "too big; bad"


def test_conflicts_and_expiry_carry_kind_name_and_version() -> None:
    conflict = api_error(409, json.dumps({"reason": "Conflict"}), GS)
    assert isinstance(conflict, ConflictError)
    assert (conflict.kind, conflict.name, conflict.expected) == ("GameServer", "gs-1", "41")
    expired = api_error(410, None, GS)
    assert isinstance(expired, ExpiredError) and expired.version == "41"


def test_forbidden_names_what_rbac_must_grant() -> None:
    target = ApiTarget("update", "fleets/status", "fleetmatch.dev", "games", "Fleet", "f")
    error = api_error(403, json.dumps({"reason": "Forbidden", "message": "nope"}), target)
    assert isinstance(error, ForbiddenError) and isinstance(error, BackendError)
    assert (error.verb, error.resource, error.namespace, error.code) == ("update", "fleets/status", "games", 403)
    text = str(error)
    for word in ("forbidden", "RBAC", "'update'", "'fleets/status'", "'fleetmatch.dev'", "'games'", "nope"):
        assert word in text
    nodes = api_error(403, None, ApiTarget("watch", "nodes", kind="Node"))
    assert "core" in str(nodes) and "cluster-wide" in str(nodes)
    assert "credentials" in str(api_error(401, None, GS))


def test_the_raw_status_is_kept_typed() -> None:
    body: Status = {"kind": "Status", "code": 503, "reason": "ServiceUnavailable", "message": "etcd is down"}
    error = api_error(503, json.dumps(body), GS)
    assert isinstance(error, KubeApiError)
    assert error.status["reason"] == "ServiceUnavailable" and error.code == 503 and error.transient
    assert "etcd is down" in str(error)


def test_transient_and_codes() -> None:
    lost = unreachable(ConnectionResetError("reset"), GS)
    assert lost.code == 0 and lost.transient and "unreachable" in str(lost)
    forbidden = api_error(403, None, GS)
    assert isinstance(forbidden, KubeApiError) and not forbidden.transient
    assert status_code(api_error(404, None, GS)) == 404
    assert status_code(api_error(409, json.dumps({"reason": "Conflict"}), GS)) == 409
    assert status_code(api_error(410, None, GS)) == 410
    assert status_code(api_error(422, None, GS)) == 422
    assert status_code(lost) == 0
    assert status_code(forbidden) == 403


async def test_kubernetes_asyncio_failures_are_mapped_with_the_cause_chained(
    fake_kube: FakeKube, kube_api: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube_api)
    target = ApiTarget("get", "pods", namespace="default", kind="Pod", name="ghost")
    with pytest.raises(NotFoundError) as missing:
        await call(core.read_namespaced_pod("ghost", "default"), target)
    assert isinstance(missing.value.__cause__, ApiException) and missing.value.__cause__.status == 404
    fake_kube.fail_next(403)
    with pytest.raises(ForbiddenError) as denied:
        await call(core.list_namespaced_pod("default"), target.about(verb="list"))
    assert denied.value.status["reason"] == "Forbidden" and "'pods'" in str(denied.value)
    async with client.ApiClient(configuration=client.Configuration(host="http://127.0.0.1:9")) as nowhere:
        with pytest.raises(KubeApiError) as lost:
            await call(client.CoreV1Api(nowhere).list_namespaced_pod("default"), target.about(verb="list"))
    assert lost.value.code == 0 and lost.value.__cause__ is not None
