"""The Agones SDK's JSON, as its grpc-gateway speaks it.

Output follows protojson with ``UseProtoNames`` and ``EmitUnpopulated``, the marshaler options of
Agones' sidecar: snake_case proto names, every field present (``""``, ``0``, ``false``, ``[]``, ``{}``,
``null`` for unset messages), int64 as JSON strings and int32 as numbers. It is written by hand, not
printed from the gRPC door's messages with ``json_format``, because the REST door is hot and this is
about five times cheaper; ``tests/unit/test_sdk_jsonpb_parity.py`` proves the two equal.

Input follows protojson with ``DiscardUnknown``: unknown fields are ignored, ``null`` means the
default, int64 accepts a string or a number (integral, in range), and anything else wrong is
``InvalidArgumentError`` (HTTP 400, never a crash).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from fleetmatch.models import CounterStatus, GameServer, ListStatus, PlayerStatus
from sdk_sidecar.codes import GrpcCode
from sdk_sidecar.state import InvalidArgumentError, reported_health

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_DECODER = json.JSONDecoder()


# -- output ----------------------------------------------------------------------------------------


def _epoch(value: float | None) -> str:
    return str(int(value)) if value is not None else "0"


def counter_status_json(counter: CounterStatus) -> dict[str, Any]:
    return {"count": str(counter.count), "capacity": str(counter.capacity)}


def list_status_json(found: ListStatus) -> dict[str, Any]:
    return {"capacity": str(found.capacity), "values": list(found.values)}


def player_status_json(players: PlayerStatus | None) -> dict[str, Any] | None:
    if players is None:
        return None
    return {"count": str(players.count), "capacity": str(players.capacity), "ids": list(players.ids)}


def counter_json(name: str, counter: CounterStatus) -> dict[str, Any]:
    """The beta ``Counter`` message."""
    return {"name": name, **counter_status_json(counter)}


def list_json(name: str, found: ListStatus) -> dict[str, Any]:
    """The beta ``List`` message."""
    return {"name": name, **list_status_json(found)}


def gameserver_json(gs: GameServer) -> dict[str, Any]:
    """The SDK's ``GameServer`` message as JSON (CountsAndLists on; ``players`` null unless the
    GameServer declares or uses player tracking)."""
    meta, status = gs.metadata, gs.counts
    period, threshold, delay = reported_health(gs.spec.health)
    return {
        "object_meta": {
            "name": meta.name,
            "namespace": meta.namespace,
            "uid": meta.uid,
            "resource_version": meta.resource_version,
            "generation": str(meta.generation),
            "creation_timestamp": _epoch(meta.creation_timestamp),
            "deletion_timestamp": _epoch(meta.deletion_timestamp),
            "annotations": dict(meta.annotations),
            "labels": dict(meta.labels),
        },
        "spec": {
            "health": {
                "disabled": gs.spec.health.disabled,
                "period_seconds": period,
                "failure_threshold": threshold,
                "initial_delay_seconds": delay,
            }
        },
        "status": {
            "state": status.state.value,
            "address": status.address,
            "addresses": [{"type": "InternalIP", "address": status.address}] if status.address else [],
            "ports": [{"name": p.name, "port": p.port} for p in status.ports],
            "players": player_status_json(status.players),
            "counters": {name: counter_status_json(c) for name, c in status.counters.items()},
            "lists": {name: list_status_json(found) for name, found in status.lists.items()},
        },
    }


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def watch_line(gs: GameServer) -> bytes:
    """One line of the ``/watch/gameserver`` stream."""
    return dumps({"result": gameserver_json(gs)}) + b"\n"


def error_json(code: GrpcCode, message: str) -> dict[str, Any]:
    """grpc-gateway's error body."""
    return {"code": int(code), "message": message, "details": []}


# -- input -----------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _load(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def _decode_text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgumentError(f"request body is not UTF-8: {exc}") from None


def parse_message(body: bytes) -> dict[str, Any]:
    """A request message; an empty body is the empty message (grpc-gateway tolerates EOF)."""
    text = _decode_text(body)
    if not text.strip():
        return {}
    try:
        doc = _load(text)
    except ValueError as exc:
        raise InvalidArgumentError(f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidArgumentError(f"expected a JSON object, got {_json_kind(doc)}")
    return doc


def parse_message_stream(body: bytes) -> list[dict[str, Any]]:
    """Concatenated JSON objects, as the gateway reads a client stream (``POST /health``): at least one."""
    text = _decode_text(body)
    docs: list[dict[str, Any]] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            break
        try:
            doc, pos = _DECODER.raw_decode(text, pos)
        except ValueError as exc:
            raise InvalidArgumentError(f"malformed JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise InvalidArgumentError(f"expected a JSON object, got {_json_kind(doc)}")
        docs.append(doc)
    if not docs:
        raise InvalidArgumentError("empty body: send {} with each health ping")
    return docs


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def int64_field(message: dict[str, Any], name: str) -> int:
    """An int64 field: a JSON number or string holding an integer (``5``, ``"5"``, ``5.0``, ``"5e0"``)."""
    value = message.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidArgumentError(f"{name}: expected an integer or a string holding one, got {_json_kind(value)}")
    if isinstance(value, int):
        number: Decimal | int = value
    elif isinstance(value, float):
        if not value.is_integer():
            raise InvalidArgumentError(f"{name}: expected an integer, got {value!r}")
        number = Decimal(value)
    else:
        if not _JSON_NUMBER.fullmatch(value):
            raise InvalidArgumentError(f"{name}: expected an integer, got {value!r}")
        number = Decimal(value)
    if not INT64_MIN <= number <= INT64_MAX:
        raise InvalidArgumentError(f"{name}: {value!r} is out of the int64 range")
    if isinstance(number, Decimal) and number != number.to_integral_value():
        raise InvalidArgumentError(f"{name}: expected an integer, got {value!r}")
    return int(number)


def optional_int64_field(message: dict[str, Any], name: str) -> int | None:
    """An int64 wrapper (``google.protobuf.Int64Value``): None when absent or null."""
    return None if message.get(name) is None else int64_field(message, name)


def string_list_field(message: dict[str, Any], name: str) -> list[str]:
    """A ``repeated string`` field (null: empty)."""
    value = message.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidArgumentError(f"{name}: expected an array of strings, got {_json_kind(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise InvalidArgumentError(f"{name}[{i}]: expected a string, got {_json_kind(item)}")
    return value


def string_field(message: dict[str, Any], name: str) -> str:
    value = message.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{name}: expected a string, got {_json_kind(value)}")
    return value
