"""Backfill over HTTP (API keys only: a game's backend, or an operator).

- ``POST /v1/backfills`` with ``{"queue", "matchId", "gameServer", "openSlots": {team: players}}``
  (team by index, ``"1"``, or by name in a queue of named teams) -> 201 and the backfill; a server
  that has an open backfill already gets it updated to these slots (200). In a queue with role
  slots the caller still names players per team, not roles: the directors derive the open roles
  from the server (``fleetmatch.dev/player-roles`` and the ``players`` List), so a caller cannot
  name a role somebody still plays; a role mapping as a count is 422 naming ``openSlots.<team>``. The directors fill it
  from the pool before forming new matches (``matchmaker.backfiller``); the new players' tickets are
  assigned the server's address, and their connection tokens are added to the server's
  ``fleetmatch.dev/player-tokens`` annotation in the same write.
- ``GET /v1/backfills/{id}`` -> the backfill (``openSlots`` left, ``filled`` so far, ``state``).
- ``DELETE /v1/backfills/{id}`` -> the backfill, cancelled (a fill in flight is undone).

A player token gets 403 ``Forbidden``; a body that does not fit the queue 422 naming the field.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from fleetmatch.codec import to_wire
from fleetmatch.errors import BackendError, ValidationError
from fleetmatch.http import read_json
from fleetmatch.names import object_name_error
from matchmaker.auth import Principal
from matchmaker.backfill import Backfill, BackfillState, slots_by_name
from matchmaker.backfills import RedisBackfillStore
from matchmaker.errors import OperatorsOnlyError
from matchmaker.models import new_ticket_id
from matchmaker.rules import Queue
from matchmaker.store import TicketStore
from matchmaker.tickets import RedisTicketStore

_FIELDS = ("queue", "matchId", "gameServer", "openSlots")
ROLES_DERIVED = (
    "in a queue with role slots the open roles are not named: the director reads them off the server"
    " (the team's roles minus those of its players still in the players List)"
)
MAX_MATCH_ID = 128


def backfill_store_for(store: TicketStore) -> RedisBackfillStore | None:
    """The backfills beside a ticket store on Redis (the same client); None for any other store."""
    return RedisBackfillStore(store) if isinstance(store, RedisTicketStore) else None


def backfill_json(backfill: Backfill) -> dict[str, Any]:
    return to_wire(backfill)


class BackfillsApi:
    def __init__(
        self,
        backfills: RedisBackfillStore | None,
        queues: Mapping[str, object],
        principal: Callable[[web.Request], Principal],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backfills, self.queues, self.principal, self.clock = backfills, queues, principal, clock

    def _store(self, request: web.Request, what: str) -> RedisBackfillStore:
        if not self.principal(request).trusted:
            raise OperatorsOnlyError(what)
        if self.backfills is None:
            raise BackendError("this matchmaker keeps no backfills (its ticket store is not on Redis)")
        return self.backfills

    async def create(self, request: web.Request) -> web.Response:
        store = self._store(request, "opening a backfill")
        backfill = self._parse(await read_json(request))
        done, stored = await store.open(backfill)
        return web.json_response(backfill_json(stored), status=201 if done == "opened" else 200)

    def _parse(self, doc: Any) -> Backfill:
        if not isinstance(doc, dict):
            raise ValidationError("", "expected a JSON object with queue, matchId, gameServer and openSlots")
        for key in doc:
            if key not in _FIELDS:
                raise ValidationError(str(key)[:100], f"unknown field; expected {', '.join(_FIELDS)}")
        name = doc.get("queue")
        queue = self.queues.get(name) if isinstance(name, str) else None
        if queue is not None and not isinstance(queue, Queue):
            raise ValidationError("queue", f"queue {name!r} has no rules a director can backfill by")
        if not isinstance(queue, Queue):
            known = ", ".join(sorted(self.queues)) or "none"
            raise ValidationError("queue", f"unknown queue {str(name)[:100]!r}; queues served here: {known}")
        match_id = doc.get("matchId")
        if not isinstance(match_id, str) or not 1 <= len(match_id) <= MAX_MATCH_ID or not match_id.isprintable():
            why = f"required: the match's id (a ticket's assignment.matchId), 1-{MAX_MATCH_ID} characters"
            raise ValidationError("matchId", why)
        server = doc.get("gameServer")
        err = object_name_error(server) if isinstance(server, str) else "is required: the match's GameServer name"
        if err:
            raise ValidationError("gameServer", f"{str(server)[:100]!r} {err}")
        slots = doc.get("openSlots")
        if not isinstance(slots, dict):
            raise ValidationError("openSlots", 'required: players wanted per team, e.g. {"1": 1}')
        assert isinstance(server, str)
        if queue.spec.teams.has_roles:
            for key, count in slots.items():
                if not isinstance(count, int) or isinstance(count, bool):
                    why = ROLES_DERIVED + ": give the number of players the team wants"
                    raise ValidationError(f"openSlots.{str(key)[:100]}", why)
        wanted = slots_by_name(slots, queue)
        return Backfill(new_ticket_id(queue.name), queue.name, match_id, server, wanted, self.clock())

    async def get(self, request: web.Request) -> web.Response:
        store = self._store(request, "reading a backfill")
        return web.json_response(backfill_json(await store.get(request.match_info["id"])))

    async def cancel(self, request: web.Request) -> web.Response:
        store = self._store(request, "cancelling a backfill")
        backfill = await store.get(request.match_info["id"])
        await store.close(backfill, BackfillState.CANCELLED)
        return web.json_response(backfill_json(await store.get(backfill.id)))


def add_backfill_routes(app: web.Application, api: BackfillsApi) -> None:
    app.router.add_post("/v1/backfills", api.create)
    app.router.add_get("/v1/backfills/{id}", api.get)
    app.router.add_delete("/v1/backfills/{id}", api.cancel)


# -- the OpenAPI document's part (``matchmaker.openapi`` merges it) ---------------------------------


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_COMMON = {
    "401": _error("Missing, malformed, forged or expired credentials"),
    "403": _error("Forbidden: a player token (backfills need an API key)"),
    "429": {
        **_error("RateLimited: too many requests from this client"),
        "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}, "description": "seconds"}},
    },
    "503": _error("The store is unreachable: retry shortly"),
}
_REQUEST = {"application/json": {"schema": {"$ref": "#/components/schemas/BackfillRequest"}}}
_ANSWER = {"application/json": {"schema": {"$ref": "#/components/schemas/Backfill"}}}

SCHEMAS: dict[str, Any] = {
    "BackfillRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["queue", "matchId", "gameServer", "openSlots"],
        "properties": {
            "queue": {"type": "string"},
            "matchId": {"type": "string", "minLength": 1, "maxLength": MAX_MATCH_ID},
            "gameServer": {"type": "string", "minLength": 1, "maxLength": 253},
            "openSlots": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": {"type": "integer", "minimum": 1},
                "description": (
                    "Players wanted per team: by team index ('0', '1') or by name in a queue of named teams."
                    " In a queue with role slots the open roles are derived from the server's"
                    " fleetmatch.dev/player-roles annotation and players List, not named here"
                ),
            },
        },
    },
    "Backfill": {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "queue", "matchId", "gameServer", "openSlots", "createdAt", "source", "state", "filled"],
        "properties": {
            "id": {"type": "string"},
            "queue": {"type": "string"},
            "matchId": {"type": "string"},
            "gameServer": {"type": "string"},
            "openSlots": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0},
                "description": "Players still wanted, per team in the match's team order",
            },
            "createdAt": {"type": "number", "description": "epoch seconds"},
            "source": {"type": "string", "enum": ["api", "list"]},
            "state": {"type": "string", "enum": [s.value for s in BackfillState]},
            "filled": {"type": "integer", "minimum": 0, "description": "Players added so far"},
        },
    },
}

_NOT_FOUND = {**_COMMON, "404": _error("No such backfill")}
_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
PATHS: dict[str, Any] = {
    "/v1/backfills": {
        "post": {
            "operationId": "openBackfill",
            "summary": "Ask for players for a running match (API keys only)",
            "requestBody": {"required": True, "content": _REQUEST},
            "responses": {
                "201": {"description": "Opened", "content": _ANSWER},
                "200": {"description": "The server's open backfill, updated to these slots", "content": _ANSWER},
                "400": _error("Empty or malformed JSON"),
                **_COMMON,
                "413": _error("Body larger than the server's limit"),
                "422": _error(
                    "A field that does not fit the queue, named: unknown queue, team or field, a count out of range"
                ),
            },
        }
    },
    "/v1/backfills/{id}": {
        "parameters": _ID,
        "get": {
            "operationId": "getBackfill",
            "summary": "A backfill (API keys only)",
            "responses": {"200": {"description": "The backfill", "content": _ANSWER}, **_NOT_FOUND},
        },
        "delete": {
            "operationId": "cancelBackfill",
            "summary": "Stop asking for players (API keys only)",
            "responses": {
                "200": {"description": "The backfill, cancelled (or as it ended)", "content": _ANSWER},
                **_NOT_FOUND,
            },
        },
    },
}
