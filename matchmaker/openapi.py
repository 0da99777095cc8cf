"""The ticket API's OpenAPI 3.1 document (served at ``/openapi.json``).

It says exactly what the API accepts and answers: the request schemas carry the same bounds the
models check (``matchmaker.models``: id and name patterns, party size, attribute and latency
ranges), every status a route can answer is listed with its body, and the response objects admit no
other members. ``tests/fuzz`` drives the API from this document and holds it to that.
"""

from __future__ import annotations

from typing import Any

from fleetmatch.http import ERROR_SCHEMA
from fleetmatch.probes import PROBE_PATHS
from matchmaker import backfills_api, results
from matchmaker.explain import LIMIT as EXPLAIN_LIMIT
from matchmaker.models import (
    MAX_ATTRIBUTE,
    MAX_BLOCKS,
    MAX_LATENCY_MS,
    MAX_PARTY,
    MAX_ROLES,
    NAME_PATTERN,
    PLAYER_ID_PATTERN,
)
from matchmaker.stats import OLDEST, RECENT
from matchmaker.store import OPERATOR_STATES
from matchmaker.views import DEFAULT_LIMIT, MAX_LIMIT

QUEUE_PATTERN = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
"""A queue's name: a DNS-1123 label (``fleetmatch.names.namespace_error``)."""

_ERROR = ERROR_SCHEMA
_PLAYER_ID = {"type": "string", "pattern": PLAYER_ID_PATTERN, "not": {"pattern": "^key:"}}
_NAMES = {"pattern": NAME_PATTERN}
_TICKET_REF = {"$ref": "#/components/schemas/Ticket"}
_BLOCKED = {"type": "array", "maxItems": MAX_BLOCKS, "uniqueItems": True, "items": _PLAYER_ID}
_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The ticket id (``<queue>.<26 characters>``); any other text is a 404",
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _ticket(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _TICKET_REF}}}


_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}, "description": "seconds"}}
_UNAUTHORIZED = {
    "401": {
        **_error(
            "Missing, malformed, forged, expired or too long-lived token, one for another audience or "
            "signed with another algorithm than HS256, or an unknown API key"
        ),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    }
}
_RATE_LIMITED = {"429": {**_error("RateLimited: too many requests from this client"), "headers": _RETRY_AFTER}}
_FOLLOW_LIMITED = {
    "429": {
        **_error(
            "RateLimited: too many requests; or TooManyStreams: the client already follows as many tickets "
            "at once (event streams and long-polls) as it may"
        ),
        "headers": _RETRY_AFTER,
    }
}
_UNAVAILABLE = {"503": {**_error("The ticket store is unreachable: retry shortly"), "headers": _RETRY_AFTER}}
_FORBIDDEN = {"403": _error("Forbidden: a player token asked for an operators' view (needs an API key)")}
_NOT_PROPOSED = {
    "409": _error(
        "NotProposed: no match awaits this ticket's answer (it is queued, matched or ended, its match was "
        "accepted by everyone already, or the time to accept has passed)"
    )
}
_NOT_FOUND = {"404": _error("No such ticket, or not one this caller may see (the same answer either way)")}

_BLOCKS_ANSWER = {
    "description": "The player's list",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["player", "players"],
                "properties": {"player": {"type": "string"}, "players": _BLOCKED},
            }
        }
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "fleetmatch tickets",
        "version": "1",
        "description": "Open a matchmaking ticket, follow it until it is matched (Server-Sent Events, "
        "WebSocket or long-poll), cancel it. Players authenticate with a player token, an HS256 JWT "
        "the game backend mints (sub, aud, iat, exp, optional party; the deprecated fmp1 format is still "
        "accepted), and see only tickets they opened or play in; a trusted game backend uses an API key, "
        "opens tickets for any players and sees every ticket.",
    },
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "A player token (an HS256 JWT; deprecated: fmp1.…) or a backend's API key",
            }
        },
        "schemas": {
            "Player": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id"],
                "properties": {
                    "id": {**_PLAYER_ID, "description": "Unique in the ticket; never starting with key:"},
                    "attributes": {
                        "type": "object",
                        "propertyNames": _NAMES,
                        "additionalProperties": {
                            "oneOf": [
                                {"type": "number", "minimum": -MAX_ATTRIBUTE, "maximum": MAX_ATTRIBUTE},
                                {"type": "string"},
                            ]
                        },
                        "description": "Numbers (skill) and words (mode) the queue's rules look at; the "
                        "queue says which it requires",
                    },
                    "latencies": {
                        "type": "object",
                        "propertyNames": _NAMES,
                        "additionalProperties": {"type": "number", "minimum": 0, "maximum": MAX_LATENCY_MS},
                        "description": "Region -> round-trip milliseconds",
                    },
                    "roles": {
                        "type": "array",
                        "maxItems": MAX_ROLES,
                        "uniqueItems": True,
                        "items": {"type": "string", **_NAMES},
                        "description": "Roles the player offers in a queue whose teams have role slots (none or "
                        "empty: any); each must be one of the queue's roles",
                    },
                },
            },
            "BlockList": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "players": {
                        **_BLOCKED,
                        "description": "Players never to be matched with, in any queue (the player themself "
                        "not among them); applies to tickets opened afterwards",
                    }
                },
            },
            "TicketRequest": {
                "type": "object",
                "additionalProperties": False,
                "required": ["queue", "players"],
                "properties": {
                    "queue": {"type": "string", "pattern": QUEUE_PATTERN, "description": "A queue served here"},
                    "players": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_PARTY,
                        "items": {"$ref": "#/components/schemas/Player"},
                        "description": "One player, or a party that is matched together on one team (no "
                        "larger than the queue's team). With a player token, the token's player must be one of "
                        "them and the others listed in its party claim.",
                    },
                    "blockedPlayers": {
                        **_BLOCKED,
                        "description": "Players none of this ticket's players is matched with (either team, "
                        "whoever blocks whom); not players of the ticket. Not shown back.",
                    },
                },
            },
            "Port": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "port"],
                "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
            },
            "Assignment": {
                "type": "object",
                "additionalProperties": False,
                "required": ["matchId", "gameServer", "address", "port", "ports", "team", "region", "tokens"],
                "properties": {
                    "matchId": {"type": "string"},
                    "gameServer": {"type": "string"},
                    "address": {"type": "string"},
                    "port": {"type": "integer"},
                    "ports": {"type": "array", "items": {"$ref": "#/components/schemas/Port"}},
                    "team": {"type": "integer", "minimum": 0},
                    "region": {"type": "string"},
                    "tokens": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "Player id -> connection token to present to the game server: "
                        "a player sees only their own, an API key every player's of the ticket",
                    },
                    "teamName": {"type": "string", "description": "The team's name, in a queue of named teams"},
                    "roles": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "Player id -> the role slot they fill (every player of the ticket), in a "
                        "queue whose teams have roles",
                    },
                    "backfillId": {
                        "type": "string",
                        "description": "The backfill this ticket filled: it joins a match already running "
                        "(GET /v1/backfills/{id}); absent for a ticket matched with the match's first players",
                    },
                    "fillId": {
                        "type": "string",
                        "description": "The fill of that backfill that brought this ticket (a backfill is filled "
                        "again as players leave): the tickets told together share it; absent with backfillId",
                    },
                },
            },
            "MatchProposal": {
                "type": "object",
                "additionalProperties": False,
                "required": ["matchId", "deadline", "team", "teamSizes", "tickets", "acceptedTickets", "accepted"],
                "properties": {
                    "matchId": {"type": "string"},
                    "deadline": {
                        "type": "string",
                        "format": "date-time",
                        "description": "Accept before then; who has not is cancelled, the others go back to the pool",
                    },
                    "team": {"type": "integer", "minimum": 0, "description": "This ticket's team"},
                    "teamSizes": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                    "tickets": {"type": "integer", "minimum": 1, "description": "Tickets in the match"},
                    "acceptedTickets": {"type": "integer", "minimum": 0},
                    "accepted": {
                        "type": "boolean",
                        "description": "Whether this ticket accepted (a party's: once every one of its players has)",
                    },
                    "acceptedPlayers": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "This ticket's players who accepted so far: each member of a party accepts "
                        "with their own token; an API key accepts for all of them",
                    },
                },
            },
            "Ticket": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "queue", "state", "players", "createdAt", "expiresAt", "assignment", "reason"],
                "properties": {
                    "id": {"type": "string"},
                    "queue": {"type": "string"},
                    "state": {"enum": ["queued", "proposed", "matched", "cancelled", "expired"]},
                    "players": {"type": "array", "items": {"$ref": "#/components/schemas/Player"}},
                    "createdAt": {"type": "string", "format": "date-time"},
                    "expiresAt": {"type": "string", "format": "date-time"},
                    "assignment": {
                        "oneOf": [{"$ref": "#/components/schemas/Assignment"}, {"type": "null"}],
                        "description": "Where to play, once matched",
                    },
                    "reason": {"type": "string", "description": "Why it was cancelled or expired"},
                    "proposal": {
                        "oneOf": [{"$ref": "#/components/schemas/MatchProposal"}, {"type": "null"}],
                        "description": "The match awaiting this ticket's acceptance (state proposed; queues "
                        "with acceptance only)",
                    },
                    "owner": {"type": "string", "description": "Who opened it (shown to API keys only)"},
                    "estimatedWaitSeconds": {
                        "type": ["number", "null"],
                        "minimum": 0,
                        "description": "While queued: the seconds it may still wait (the players ahead of it in "
                        "its region over the recent match rate, blended with how long recent tickets of its queue, "
                        "region and skill band took, minus what it waited already; at least 0); null without "
                        "recent data, and once it is no longer queued",
                    },
                    "explain": {
                        "oneOf": [{"$ref": "#/components/schemas/Explanation"}, {"type": "null"}],
                        "description": "Only with ?explain=1: why it still waits (null: not queued)",
                    },
                },
            },
            "Explanation": {
                "type": "object",
                "additionalProperties": False,
                "required": [
                    "waitingTickets",
                    "waitSeconds",
                    "sampled",
                    "playersNeeded",
                    "compatiblePlayers",
                    "compatibleTickets",
                    "byRegion",
                    "blockedBy",
                    "reason",
                    "rules",
                    "best",
                ],
                "properties": {
                    "waitingTickets": {"type": "integer", "minimum": 0, "description": "Queued tickets (exact)"},
                    "waitSeconds": {"type": "number", "minimum": 0},
                    "sampled": {
                        "type": "integer",
                        "minimum": 0,
                        "description": f"Other waiting tickets judged: the longest-waiting, at most {EXPLAIN_LIMIT}",
                    },
                    "playersNeeded": {"type": "integer", "minimum": 1},
                    "compatiblePlayers": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Players of this ticket and of every sampled ticket passing every rule "
                        "against it (an upper bound: a match must also fit together)",
                    },
                    "compatibleTickets": {"type": "integer", "minimum": 0},
                    "byRegion": {
                        "type": "object",
                        "additionalProperties": {"type": "integer", "minimum": 0},
                        "description": "With a latency rule: compatible players who can play in each region",
                    },
                    "blockedBy": {
                        "type": ["string", "null"],
                        "description": "The rule holding it back, 'players' (too few players), or null (enough "
                        "compatible players wait)",
                    },
                    "reason": {"type": "string"},
                    "rules": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["name", "type", "window", "widest", "passed", "failed"],
                            "properties": {
                                "name": {"type": "string"},
                                "type": {"type": "string"},
                                "window": {"type": ["number", "null"]},
                                "widest": {"type": ["number", "null"]},
                                "passed": {"type": "integer", "minimum": 0},
                                "failed": {"type": "integer", "minimum": 0},
                            },
                        },
                    },
                    "best": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["players", "failedRule", "detail"],
                            "properties": {
                                "ticket": {"type": "string", "description": "API keys only"},
                                "players": {"type": "integer", "minimum": 1},
                                "failedRule": {"type": ["string", "null"]},
                                "detail": {"type": "string"},
                            },
                        },
                    },
                },
            },
            "QueueStats": {
                "type": "object",
                "additionalProperties": False,
                "required": [
                    "name",
                    "waitingTickets",
                    "waitingPlayers",
                    "byRegion",
                    "oldestWaitSeconds",
                    "lastTick",
                    "timeToMatchSeconds",
                ],
                "properties": {
                    "name": {"type": "string"},
                    "waitingTickets": {"type": "integer", "minimum": 0, "description": "Queued tickets (exact)"},
                    "waitingPlayers": {
                        "type": "integer",
                        "minimum": 0,
                        "description": f"Players of the {OLDEST} longest-waiting tickets (all, unless more wait)",
                    },
                    "byRegion": {
                        "type": "object",
                        "additionalProperties": {"type": "integer", "minimum": 0},
                        "description": "Region -> waiting players (the same tickets), each ticket in the region of "
                        "its lowest worst-player latency; '-' for tickets without latencies",
                    },
                    "oldestWaitSeconds": {"type": "number", "minimum": 0},
                    "lastTick": {
                        "oneOf": [
                            {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["at", "seconds", "matches"],
                                "properties": {
                                    "at": {"type": "string", "format": "date-time"},
                                    "seconds": {"type": "number", "minimum": 0},
                                    "matches": {"type": "integer", "minimum": 0},
                                },
                            },
                            {"type": "null"},
                        ],
                        "description": "The last director pass on the queue (null: no director ran)",
                    },
                    "timeToMatchSeconds": {
                        "oneOf": [
                            {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["p50", "p95"],
                                "properties": {"p50": {"type": "number"}, "p95": {"type": "number"}},
                            },
                            {"type": "null"},
                        ],
                        "description": f"Enqueue to match of the matched tickets among the {RECENT} most recently "
                        "finished (nearest-rank percentiles); null when none",
                    },
                },
            },
            "Error": _ERROR,
            **results.SCHEMAS,
            **backfills_api.SCHEMAS,
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/tickets": {
            "get": {
                "operationId": "listTickets",
                "summary": "List a queue's tickets (API keys only)",
                "description": "Queued tickets oldest first, then finished ones newest first (looked for among "
                "the most recently finished only). Capped, not paged: truncated says more were left out.",
                "parameters": [
                    {"name": "queue", "in": "query", "required": True, "schema": {"type": "string"}},
                    {"name": "state", "in": "query", "required": False, "schema": {"enum": list(OPERATOR_STATES)}},
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The tickets",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["kind", "items", "truncated"],
                                    "properties": {
                                        "kind": {"const": "List"},
                                        "items": {"type": "array", "items": _TICKET_REF},
                                        "truncated": {"type": "boolean"},
                                    },
                                }
                            }
                        },
                    },
                    **_UNAUTHORIZED,
                    **_FORBIDDEN,
                    "422": _error("Missing or unknown queue, bad state or limit (field names it)"),
                    **_RATE_LIMITED,
                    **_UNAVAILABLE,
                },
            },
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
                    "400": _error("Empty or malformed JSON"),
                    **_UNAUTHORIZED,
                    "403": _error(
                        "NotInParty: a player token named a player its party claim does not list (field names it)"
                    ),
                    "409": _error(
                        "AlreadyQueued: a player of the ticket is already in an open ticket of this queue "
                        "(field names the player; the message names that ticket if the caller may see it)"
                    ),
                    "413": _error("Body larger than the server's limit"),
                    "422": _error(
                        "Invalid ticket, naming the field: not the schema above, an unknown queue, a player "
                        "twice, attributes the queue's rules need missing or of the wrong type, a party larger "
                        "than a team, no region within the queue's latency, a player token without its player, "
                        "roles the queue does not have or a party that cannot take role slots of one team, a "
                        "party that blocks one of its own players (blockedPlayers, or a stored block list)"
                    ),
                    **_RATE_LIMITED,
                    **_UNAVAILABLE,
                },
            },
        },
        "/v1/queues": {
            "get": {
                "operationId": "listQueues",
                "summary": "Statistics of every queue served here (API keys only)",
                "responses": {
                    "200": {
                        "description": "One item per queue",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["kind", "items"],
                                    "properties": {
                                        "kind": {"const": "List"},
                                        "items": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/QueueStats"},
                                        },
                                    },
                                }
                            }
                        },
                    },
                    **_UNAUTHORIZED,
                    **_FORBIDDEN,
                    **_RATE_LIMITED,
                    **_UNAVAILABLE,
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
                    },
                    {
                        "name": "explain",
                        "in": "query",
                        "required": False,
                        "schema": {"enum": ["1", "true", "0", "false"]},
                        "description": "1: add `explain`, why the ticket still waits (not with wait)",
                    },
                ],
                "responses": {
                    "200": _ticket("The ticket"),
                    **_UNAUTHORIZED,
                    **_NOT_FOUND,
                    "422": _error("Bad wait or explain, or both given"),
                    **_FOLLOW_LIMITED,
                    **_UNAVAILABLE,
                },
            },
            "delete": {
                "operationId": "cancelTicket",
                "summary": "Cancel a ticket (one already matched, cancelled or expired is returned unchanged)",
                "responses": {
                    "200": _ticket("The ticket after cancelling"),
                    **_UNAUTHORIZED,
                    **_NOT_FOUND,
                    **_RATE_LIMITED,
                    **_UNAVAILABLE,
                },
            },
        },
        "/v1/tickets/{id}/accept": {
            "parameters": [_ID],
            "post": {
                "operationId": "acceptMatch",
                "summary": "Accept the match proposed to the ticket (queues with acceptance)",
                "description": "Once every ticket of the match accepted, a server is allocated and the "
                "tickets are matched. Accepting again is answered the same. No request body.",
                "responses": {
                    "200": _ticket("The ticket after accepting"),
                    **_UNAUTHORIZED,
                    **_NOT_FOUND,
                    **_NOT_PROPOSED,
                    **_RATE_LIMITED,
                    **_UNAVAILABLE,
                },
            },
        },
        "/v1/tickets/{id}/decline": {
            "parameters": [_ID],
            "post": {
                "operationId": "declineMatch",
                "summary": "Decline the match proposed to the ticket: the ticket is cancelled, the match's "
                "other tickets go back to the pool at their place",
                "description": "Declining again is answered the same. No request body.",
                "responses": {
                    "200": _ticket("The ticket after declining (cancelled)"),
                    **_UNAUTHORIZED,
                    **_NOT_FOUND,
                    **_NOT_PROPOSED,
                    **_RATE_LIMITED,
                    **_UNAVAILABLE,
                },
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
                "then the server closes (1000; 1001 when it shuts down). Messages from the client are "
                "ignored; one larger than 4 KiB closes the socket (1009).",
                "responses": {
                    "200": {
                        "description": "The event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "101": {"description": "Switching to WebSocket"},
                    **_UNAUTHORIZED,
                    **_NOT_FOUND,
                    **_FOLLOW_LIMITED,
                    **_UNAVAILABLE,
                },
            },
        },
        "/v1/players/{id}/blocks": {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "A player"}
            ],
            "get": {
                "operationId": "getBlocks",
                "summary": "A player's stored block list (the player themself, or an API key)",
                "responses": {
                    "200": _BLOCKS_ANSWER,
                    **_UNAUTHORIZED,
                    "403": _error("Forbidden: a player token asked for another player's list"),
                    "422": _error("Not a player id (field: id)"),
                    **_RATE_LIMITED,
                    **_UNAVAILABLE,
                },
            },
            "put": {
                "operationId": "putBlocks",
                "summary": "Replace a player's stored block list (the player themself, or an API key)",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BlockList"}}},
                },
                "responses": {
                    "200": _BLOCKS_ANSWER,
                    "400": _error("Empty or malformed JSON"),
                    **_UNAUTHORIZED,
                    "403": _error("Forbidden: a player token asked for another player's list"),
                    "413": _error("Body larger than the server's limit"),
                    "422": _error(
                        f"Invalid list, naming the field: not a player id, one twice, more than {MAX_BLOCKS}, "
                        "the player themself"
                    ),
                    **_RATE_LIMITED,
                    **_UNAVAILABLE,
                },
            },
        },
        **results.PATHS,
        **backfills_api.PATHS,
        **PROBE_PATHS,
        "/metrics": {
            "get": {"operationId": "metrics", "security": [], "responses": {"200": {"description": "Prometheus"}}}
        },
        "/openapi.json": {
            "get": {"operationId": "openapi", "security": [], "responses": {"200": {"description": "This document"}}}
        },
    },
}
