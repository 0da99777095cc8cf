"""The ticket API's OpenAPI 3.1 document (served at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

from fleetmatch.http import ERROR_SCHEMA
from fleetmatch.probes import PROBE_PATHS

_ERROR = ERROR_SCHEMA
_NAME_MAP = {"type": "object", "additionalProperties": {"type": "number"}}
_TICKET_REF = {"$ref": "#/components/schemas/Ticket"}
_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The ticket id (``<queue>.<26 characters>``)",
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _ticket(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _TICKET_REF}}}


_AUTH_ERRORS = {
    "401": _error("Missing, malformed, forged or expired token, or unknown API key (WWW-Authenticate: Bearer)"),
    "429": {
        "description": "RateLimited: too many requests from this client (see Retry-After)",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    },
}
_NOT_FOUND = {"404": _error("No such ticket, or not one this caller may see (the same answer either way)")}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "fleetmatch tickets",
        "version": "1",
        "description": "Open a matchmaking ticket, follow it until it is matched (Server-Sent Events, "
        "WebSocket or long-poll), cancel it. Players authenticate with a signed player token "
        "(fmp1.<payload>.<signature>) and see only tickets they opened or play in; a trusted game "
        "backend uses an API key, opens tickets for any players and sees every ticket.",
    },
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A player token (fmp1.…) or a backend's API key",
            }
        },
        "schemas": {
            "Player": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id"],
                "properties": {
                    "id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$"},
                    "attributes": {
                        "type": "object",
                        "additionalProperties": {"type": ["number", "string"]},
                        "description": "Numbers (skill) and words (mode) the queue's rules look at",
                    },
                    "latencies": {**_NAME_MAP, "description": "Region -> round-trip milliseconds (0..60000)"},
                },
            },
            "TicketRequest": {
                "type": "object",
                "additionalProperties": False,
                "required": ["queue", "players"],
                "properties": {
                    "queue": {"type": "string"},
                    "players": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 16,
                        "items": {"$ref": "#/components/schemas/Player"},
                        "description": "One player, or a party that is matched together on one team. With "
                        "a player token, the token's player must be one of them.",
                    },
                },
            },
            "Assignment": {
                "type": "object",
                "properties": {
                    "matchId": {"type": "string"},
                    "gameServer": {"type": "string"},
                    "address": {"type": "string"},
                    "port": {"type": "integer"},
                    "ports": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                        },
                    },
                    "team": {"type": "integer"},
                    "region": {"type": "string"},
                    "tokens": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "Player id -> connection token to present to the game server: "
                        "a player sees only their own, an API key every player's of the ticket",
                    },
                },
            },
            "Ticket": {
                "type": "object",
                "required": ["id", "queue", "state", "players", "createdAt", "expiresAt", "assignment", "reason"],
                "properties": {
                    "id": {"type": "string"},
                    "queue": {"type": "string"},
                    "state": {"enum": ["queued", "matched", "cancelled", "expired"]},
                    "players": {"type": "array", "items": {"$ref": "#/components/schemas/Player"}},
                    "createdAt": {"type": "string", "format": "date-time"},
                    "expiresAt": {"type": "string", "format": "date-time"},
                    "assignment": {
                        "oneOf": [{"$ref": "#/components/schemas/Assignment"}, {"type": "null"}],
                        "description": "Where to play, once matched",
                    },
                    "reason": {"type": "string", "description": "Why it was cancelled or expired"},
                    "owner": {"type": "string", "description": "Who opened it (shown to API keys only)"},
                },
            },
            "Error": _ERROR,
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/tickets": {
            "post": {
                "operationId": "createTicket",
                "summary": "Open a ticket",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TicketRequest"}}},
                },
                "responses": {
                    "201": {
                        **_ticket("Queued"),
                        "headers": {"Location": {"schema": {"type": "string"}, "description": "/v1/tickets/<id>"}},
                    },
                    "400": _error("Malformed JSON"),
                    **_AUTH_ERRORS,
                    "413": _error("Body larger than the server's limit"),
                    "422": _error(
                        "Invalid ticket: unknown queue, wrong attribute type, party too big... (names field)"
                    ),
                    "409": _error(
                        "AlreadyQueued: a player of the ticket is already in an open ticket of this queue "
                        "(field names the player; the message names that ticket if the caller may see it)"
                    ),
                },
            }
        },
        "/v1/tickets/{id}": {
            "parameters": [_ID],
            "get": {
                "operationId": "getTicket",
                "summary": "Read a ticket, or long-poll for its change",
                "parameters": [
                    {
                        "name": "wait",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "number", "minimum": 0, "maximum": 60},
                        "description": "Seconds to wait while the ticket is queued: the answer comes at its "
                        "first change or when they run out",
                    }
                ],
                "responses": {
                    "200": _ticket("The ticket"),
                    **_AUTH_ERRORS,
                    **_NOT_FOUND,
                    "422": _error("Bad wait"),
                },
            },
            "delete": {
                "operationId": "cancelTicket",
                "summary": "Cancel a ticket (one already matched, cancelled or expired is returned unchanged)",
                "responses": {"200": _ticket("The ticket after cancelling"), **_AUTH_ERRORS, **_NOT_FOUND},
            },
        },
        "/v1/tickets/{id}/events": {
            "parameters": [_ID],
            "get": {
                "operationId": "ticketEvents",
                "summary": "Follow a ticket until it is final",
                "description": "Server-Sent Events: `event: ticket` with the ticket JSON at once and at each "
                "change, `: keep-alive` comments while nothing happens, and the end of the stream after a "
                "final state. Sent with `Upgrade: websocket`, the same tickets arrive as JSON text messages, "
                "then the server closes (1000; 1001 when it shuts down).",
                "responses": {
                    "200": {
                        "description": "The event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "101": {"description": "Switching to WebSocket"},
                    **_AUTH_ERRORS,
                    **_NOT_FOUND,
                },
            },
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
