"""The allocation API's OpenAPI 3.1 document (served at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

from fleetmatch.allocation import ALLOCATION, IDEMPOTENCY_HEADER, MAX_KEY_LENGTH
from fleetmatch.codec import INT64_MAX
from fleetmatch.http import ERROR_SCHEMA
from fleetmatch.models import LIST_MAX_CAPACITY
from fleetmatch.probes import PROBE_PATHS

_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_COUNT = {"type": "integer", "minimum": 0, "maximum": INT64_MAX}
_LIST_CAPACITY = {"type": "integer", "minimum": 0, "maximum": LIST_MAX_CAPACITY}


def _named(schema: dict[str, Any]) -> dict[str, Any]:
    """A map from counter or list name to ``schema``."""
    return {"type": "object", "additionalProperties": schema}


def _nullable(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"], "description": description}


def _closed(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": properties}


_VALUES = {"type": "array", "items": {"type": "string"}}
_ERROR = ERROR_SCHEMA

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "fleetmatch allocator",
        "version": "1",
        "description": "Claim a Ready (or Allocated, for high density) game server in one request. "
        "Shaped like Agones' GameServerAllocation.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Selector": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "matchLabels": _LABELS,
                    "matchExpressions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["key", "operator"],
                            "properties": {
                                "key": {"type": "string"},
                                "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                                "values": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                    },
                    "gameServerState": {"enum": ["Ready", "Allocated"], "default": "Ready"},
                    "counters": _named(
                        _closed(minCount=_COUNT, maxCount=_COUNT, minAvailable=_COUNT, maxAvailable=_COUNT)
                    ),
                    "lists": _named(
                        _closed(containsValue={"type": "string"}, minAvailable=_COUNT, maxAvailable=_COUNT)
                    ),
                    "players": {**_closed(minAvailable=_COUNT, maxAvailable=_COUNT), "type": ["object", "null"]},
                },
                "description": "maxCount/maxAvailable 0: no upper bound. Available = capacity - count.",
            },
            "Metadata": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"labels": _LABELS, "annotations": _LABELS},
            },
            "GameServerAllocationRequest": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "apiVersion": {"enum": sorted(ALLOCATION.api_versions), "default": "fleetmatch.dev/v1"},
                    "kind": {"const": "GameServerAllocation"},
                    "metadata": {"type": "object", "description": "Accepted (kubectl-shaped documents) and ignored."},
                    "spec": {"$ref": "#/components/schemas/AllocationSpec"},
                    "status": {"type": "null", "description": "Set by the allocator: leave it out."},
                },
            },
            "GameServerAllocation": {
                "type": "object",
                "required": ["apiVersion", "kind", "spec", "status"],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"const": "GameServerAllocation"},
                    "spec": {"type": "object", "description": "The request's spec, as it was sent."},
                    "status": {"$ref": "#/components/schemas/AllocationStatus"},
                },
            },
            "AllocationSpec": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "selectors": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 16,
                        "items": {"$ref": "#/components/schemas/Selector"},
                        "description": "Tried in order; the first that finds a server wins.",
                    },
                    "scheduling": {"enum": ["Packed", "Distributed"], "default": "Packed"},
                    "metadata": {"$ref": "#/components/schemas/Metadata"},
                    "counters": _named(
                        _closed(
                            action={"enum": ["Increment", "Decrement", None]},
                            amount=_COUNT,
                            capacity=_nullable(_COUNT, "null: keep the counter's capacity"),
                        )
                    ),
                    "lists": _named(
                        _closed(
                            addValues=_VALUES,
                            deleteValues=_VALUES,
                            capacity=_nullable(_LIST_CAPACITY, "null: keep the list's capacity"),
                        )
                    ),
                },
            },
            "AllocationStatus": {
                "type": "object",
                "required": ["state"],
                "properties": {
                    "state": {"enum": ["Allocated", "UnAllocated", "Contention"]},
                    "gameServerName": {"type": "string"},
                    "address": {"type": "string"},
                    "ports": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                        },
                    },
                    "nodeName": {"type": "string"},
                    "metadata": {"$ref": "#/components/schemas/Metadata"},
                    "counters": _named(_closed(count=_COUNT, capacity=_COUNT)),
                    "lists": _named(_closed(capacity=_LIST_CAPACITY, values=_VALUES)),
                },
            },
            "Error": _ERROR,
            "Refused": {
                "description": "UnAllocated (429; 404 FleetNotFound when the fleet asked for does not exist) or "
                "Contention (409): the error, and the allocation with its status.",
                "allOf": [
                    _ERROR,
                    {
                        "type": "object",
                        "required": ["status"],
                        "properties": {"status": {"$ref": "#/components/schemas/AllocationStatus"}},
                    },
                ],
            },
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/allocations": {
            "post": {
                "operationId": "allocate",
                "summary": "Allocate a game server",
                "parameters": [
                    {
                        "name": IDEMPOTENCY_HEADER,
                        "in": "header",
                        "required": False,
                        "description": "Names one logical allocation (e.g. the match it is for): every retry with "
                        "this key gets the server the first attempt got, from any allocator, never a second one. "
                        "Reused with another request body: 422 naming this header. While a request with it is "
                        "in progress elsewhere: 409 IdempotencyKeyInUse (retry with the same key). Honoured while "
                        "its server stays Allocated.",
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_KEY_LENGTH,
                            "pattern": "^[!-~]+$",
                        },
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/GameServerAllocationRequest"}}
                    },
                },
                "responses": {
                    "201": {
                        "description": "Allocated: status names the server, its address and ports",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/GameServerAllocation"}}
                        },
                    },
                    "400": {"description": "Malformed JSON", "content": {"application/json": {"schema": _ERROR}}},
                    "401": {
                        "description": "Missing or wrong token",
                        "content": {"application/json": {"schema": _ERROR}},
                    },
                    "404": {
                        "description": "FleetNotFound: every selector names a fleet (label agones.dev/fleet) that "
                        "does not exist; error.field names the first, status.state is UnAllocated as Agones "
                        "answers (a fleet that exists but has no free server is a 429)",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Refused"}}},
                    },
                    "408": {
                        "description": "The body was not sent in time (the connection is then closed)",
                        "content": {"application/json": {"schema": _ERROR}},
                    },
                    "409": {
                        "description": "Contention (every server tried was taken concurrently; the body has the "
                        "status) or IdempotencyKeyInUse (see Retry-After): retry; AllocationReleased: the key's "
                        "allocation was given back, a new request needs a new key",
                        "content": {"application/json": {"schema": _ERROR}},
                    },
                    "413": {"description": "Body too large", "content": {"application/json": {"schema": _ERROR}}},
                    "422": {
                        "description": "Invalid request: error.field names the field (or the Idempotency-Key header)",
                        "content": {"application/json": {"schema": _ERROR}},
                    },
                    "429": {
                        "description": "UnAllocated: nothing free",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Refused"}}},
                    },
                    "503": {
                        "description": "Starting, or the store is unreachable (see Retry-After)",
                        "content": {"application/json": {"schema": _ERROR}},
                    },
                },
            }
        },
        "/v1/allocations/{key}": {
            "delete": {
                "operationId": "release",
                "summary": "Give back what was allocated under an idempotency key",
                "description": "For a match that was abandoned (its director died, its players went back to "
                "the pool): every server still Allocated under this key with no player connected goes to "
                "Shutdown (the fleet replaces it), and the key is refused from then on (409 AllocationReleased).",
                "parameters": [
                    {
                        "name": "key",
                        "in": "path",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_KEY_LENGTH,
                            "pattern": "^[!-~]+$",
                        },
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The servers given back (none when nothing was left to give back)",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["released"],
                                    "properties": {"released": {"type": "array", "items": {"type": "string"}}},
                                }
                            }
                        },
                    },
                    "401": {
                        "description": "Missing or wrong token",
                        "content": {"application/json": {"schema": _ERROR}},
                    },
                    "422": {"description": "Invalid key", "content": {"application/json": {"schema": _ERROR}}},
                    "503": {
                        "description": "Starting, or the store is unreachable (see Retry-After)",
                        "content": {"application/json": {"schema": _ERROR}},
                    },
                },
            }
        },
        **PROBE_PATHS,
        "/metrics": {
            "get": {"operationId": "metrics", "security": [], "responses": {"200": {"description": "Prometheus"}}}
        },
        "/openapi.json": {
            "get": {"operationId": "openapi", "security": [], "responses": {"200": {"description": "This document"}}}
        },
    },
}
