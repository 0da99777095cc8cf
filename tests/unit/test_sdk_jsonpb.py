"""Agones SDK JSON: the GameServer document and the protojson input rules, by tables."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleetmatch.models import (
    GameServer,
    GameServerSpec,
    GameServerState,
    GameServerStatus,
    Health,
    ObjectMeta,
    PortStatus,
)
from sdk_sidecar import jsonpb
from sdk_sidecar.state import GrpcCode, InvalidArgumentError


def test_gameserver_document_matches_agones() -> None:
    gs = GameServer(
        metadata=ObjectMeta(
            name="simple-gs-abc",
            uid="7c1e",
            resource_version="1700000000123-0",
            generation=2,
            creation_timestamp=1700000000.75,
            labels={"agones.dev/fleet": "f"},
            annotations={"agones.dev/sdk-version": "1.57.0"},
        ),
        spec=GameServerSpec(health=Health(period_seconds=5, failure_threshold=3, initial_delay_seconds=5)),
        status=GameServerStatus(state=GameServerState.READY, address="10.0.0.5", ports=(PortStatus("default", 7001),)),
    )
    assert jsonpb.gameserver_json(gs) == {
        "object_meta": {
            "name": "simple-gs-abc",
            "namespace": "default",
            "uid": "7c1e",
            "resource_version": "1700000000123-0",
            "generation": "2",
            "creation_timestamp": "1700000000",
            "deletion_timestamp": "0",
            "annotations": {"agones.dev/sdk-version": "1.57.0"},
            "labels": {"agones.dev/fleet": "f"},
        },
        "spec": {
            "health": {"disabled": False, "period_seconds": 5, "failure_threshold": 3, "initial_delay_seconds": 5}
        },
        "status": {
            "state": "Ready",
            "address": "10.0.0.5",
            "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
            "ports": [{"name": "default", "port": 7001}],
            "players": None,
            "counters": {},
            "lists": {},
        },
    }


def test_unpopulated_fields_are_emitted() -> None:
    doc = jsonpb.gameserver_json(GameServer(metadata=ObjectMeta(name="x", deletion_timestamp=1700000001.2)))
    assert doc["object_meta"]["creation_timestamp"] == "0"
    assert doc["object_meta"]["deletion_timestamp"] == "1700000001"
    assert doc["object_meta"]["labels"] == {} and doc["object_meta"]["annotations"] == {}
    assert doc["status"] == {
        "state": "Creating",
        "address": "",
        "addresses": [],
        "ports": [],
        "players": None,
        "counters": {},
        "lists": {},
    }


def test_watch_line_is_one_compact_json_line() -> None:
    line = jsonpb.watch_line(GameServer(metadata=ObjectMeta(name="x", annotations={"k": "snow ☃\nman"})))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line)["result"]["object_meta"]["annotations"] == {"k": "snow ☃\nman"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", {}),
        (b"  \n", {}),
        (b"{}", {}),
        (b'{"seconds":"5","unknown":[1,{"x":null}]}', {"seconds": "5", "unknown": [1, {"x": None}]}),
    ],
)
def test_parse_message(body: bytes, expected: dict[str, Any]) -> None:
    assert jsonpb.parse_message(body) == expected


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{", "malformed JSON"),
        (b"[]", "expected a JSON object, got an array"),
        (b'"x"', "expected a JSON object, got a string"),
        (b"null", "expected a JSON object, got null"),
        (b"{} {}", "malformed JSON"),
        (b'{"a": NaN}', "malformed JSON"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_parse_message_rejects(body: bytes, why: str) -> None:
    with pytest.raises(InvalidArgumentError, match=why) as info:
        jsonpb.parse_message(body)
    assert info.value.code is GrpcCode.INVALID_ARGUMENT


@pytest.mark.parametrize(("body", "count"), [(b"{}", 1), (b"{}{}", 2), (b' {} \n {"x":1}\n', 2)])
def test_health_body_is_a_stream_of_objects(body: bytes, count: int) -> None:
    assert len(jsonpb.parse_message_stream(body)) == count


@pytest.mark.parametrize(
    ("body", "why"), [(b"", "empty body"), (b"  ", "empty body"), (b"{}[]", "object"), (b"{", "malformed")]
)
def test_health_body_rejects(body: bytes, why: str) -> None:
    with pytest.raises(InvalidArgumentError, match=why):
        jsonpb.parse_message_stream(body)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 0),
        (5, 5),
        ("5", 5),
        ("-5", -5),
        (5.0, 5),
        ("5.0", 5),
        ("5e1", 50),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
    ],
)
def test_int64_accepts_strings_and_numbers(value: Any, expected: int) -> None:
    assert jsonpb.int64_field({"seconds": value}, "seconds") == expected


def test_int64_missing_is_zero() -> None:
    assert jsonpb.int64_field({}, "seconds") == 0


@pytest.mark.parametrize(
    "value", [True, "abc", "", " 5", "05", "1.5", 1.5, [], {}, "9223372036854775808", 2**63, "1e999999999", "0x10"]
)
def test_int64_rejects(value: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="seconds"):
        jsonpb.int64_field({"seconds": value}, "seconds")


@pytest.mark.parametrize(("value", "ok"), [("v", True), ("", True), (None, True), (5, False), (["v"], False)])
def test_string_field(value: Any, ok: bool) -> None:
    if ok:
        assert jsonpb.string_field({"key": value}, "key") == (value or "")
    else:
        with pytest.raises(InvalidArgumentError, match="key: expected a string"):
            jsonpb.string_field({"key": value}, "key")


def test_error_body() -> None:
    assert jsonpb.error_json(GrpcCode.INVALID_ARGUMENT, "bad") == {"code": 3, "message": "bad", "details": []}
