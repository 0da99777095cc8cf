"""Custom-resource documents <-> models (``fleetmatch.backends.kube.wire``): what the model does not
know survives a read-modify-write, nulls never reach the wire."""

from __future__ import annotations

from typing import Any

import pytest

from fleetmatch.backends.kube.wire import decode, encode, encode_status
from fleetmatch.errors import ValidationError
from fleetmatch.models import GameServer, GameServerState, GameServerStatus, with_meta


def stored() -> dict[str, Any]:
    return {
        "apiVersion": "fleetmatch.dev/v1",
        "kind": "GameServer",
        "metadata": {
            "name": "gs-1",
            "namespace": "games",
            "resourceVersion": "12",
            "uid": "u-1",
            "labels": {"game": "demo"},
            "finalizers": ["fleetmatch.dev/pod-cleanup"],
            "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "x", "uid": "1"}],
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {
            "ports": [{"name": "default", "containerPort": 7654}],
            "futureKnob": {"on": True},
            "template": {"spec": {"containers": [{"name": "game", "image": "demo:1"}]}},
        },
        "status": {"state": "Ready", "address": "10.0.0.1", "reservedUntil": None, "conditions": [{"type": "X"}]},
    }


def test_a_round_trip_keeps_what_the_model_does_not_know() -> None:
    gs, kept = decode(GameServer, stored())
    assert gs.state is GameServerState.READY and gs.metadata.resource_version == "12"
    assert kept is not None and set(kept.metadata) == {"finalizers"}
    (owner,) = gs.metadata.owner_references  # modelled: a fleet's servers are owned by it
    assert (owner.kind, owner.name, owner.uid, owner.controller) == ("X", "x", "1", None)
    changed = with_meta(gs.with_status(state=GameServerState.ALLOCATED), labels={"game": "demo", "a": "b"})
    doc = encode(changed, "games", version="12", kept=kept)
    meta = doc["metadata"]
    assert meta["resourceVersion"] == "12" and meta["labels"] == {"game": "demo", "a": "b"}
    assert meta["finalizers"] == ["fleetmatch.dev/pod-cleanup"] and "managedFields" not in meta and "uid" not in meta
    assert meta["ownerReferences"] == stored()["metadata"]["ownerReferences"]  # as read, no nulls added
    assert doc["spec"]["template"] == stored()["spec"]["template"]
    assert doc["spec"]["futureKnob"] == {"on": True}
    assert doc["status"]["state"] == "Allocated" and doc["status"]["conditions"] == [{"type": "X"}]
    assert "reservedUntil" not in doc["status"]


def test_a_new_object_has_no_version_and_no_nulls() -> None:
    gs, kept = decode(GameServer, {"metadata": {"name": "gs-2"}})
    assert kept is None
    doc = encode(gs, "default")
    assert "resourceVersion" not in doc["metadata"] and doc["metadata"]["namespace"] == "default"
    assert None not in doc["status"].values()


def test_status_alone_keeps_unknown_members() -> None:
    wire = encode_status(GameServerStatus(state=GameServerState.SHUTDOWN), {"state": "Ready", "conditions": []})
    assert wire["state"] == "Shutdown" and wire["conditions"] == []


def test_a_document_that_does_not_fit_is_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        decode(GameServer, {"metadata": {"name": "gs-3"}, "status": {"state": "Sleeping"}})
