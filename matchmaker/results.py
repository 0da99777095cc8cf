"""Match results and ratings over HTTP (API keys only: a game's backend, or an operator).

- ``POST /v1/matches/{id}/result`` with ``{"teams": [{"rank": 1}, {"rank": 2}]}`` (or ``score``
  per team, or ``{"players": [{"id", "rank"}]}`` for a free-for-all) -> 200 and every player's
  rating before and after (``matchmaker.ratingstore``). Once per match: the same result posted
  again gets the same answer (``"replayed": true``), a different one 409 ``ResultConflict``.
  404 for a match this matchmaker did not assign in a queue with a rating rule (or longer ago than
  ``matchmaker.ratingstore.MATCH_TTL``); 422 naming the field for a body that does not fit the
  match (team count, players not in it).
- ``GET /v1/ratings/{player}?queue=Q`` -> the player's rating in the queue (a new player's default
  when never rated, ``games: 0``).

A player token gets 403 ``Forbidden`` on both: results come from the game server's backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from fleetmatch.errors import BackendError, ValidationError
from fleetmatch.http import read_json
from matchmaker.auth import Principal
from matchmaker.errors import OperatorsOnlyError, ResultConflictError
from matchmaker.metrics import MATCH_RESULTS
from matchmaker.models import player_id_error
from matchmaker.ratings import parse_result
from matchmaker.ratingstore import RatingStore, rating_json


class ResultsApi:
    def __init__(
        self,
        ratings: RatingStore | None,
        queues: Mapping[str, object],
        principal: Callable[[web.Request], Principal],
    ) -> None:
        self.ratings, self.queues, self.principal = ratings, queues, principal

    def _operator(self, request: web.Request, what: str) -> RatingStore:
        if not self.principal(request).trusted:
            raise OperatorsOnlyError(what)
        if self.ratings is None:
            raise BackendError("this matchmaker keeps no ratings (its ticket store is not on Redis)")
        return self.ratings

    async def post_result(self, request: web.Request) -> web.Response:
        ratings = self._operator(request, "posting a match result")
        doc = await read_json(request)
        record = await ratings.match(request.match_info["id"])
        outcome = parse_result(doc, record.teams)
        try:
            applied = await ratings.apply(record, outcome)
        except ResultConflictError:
            MATCH_RESULTS.labels(record.queue, "conflict").inc()
            raise
        MATCH_RESULTS.labels(record.queue, "replayed" if applied.replayed else "applied").inc()
        return web.json_response({**applied.answer, "replayed": applied.replayed})

    async def get_rating(self, request: web.Request) -> web.Response:
        ratings = self._operator(request, "reading ratings")
        player = request.match_info["player"]
        err = player_id_error(player)
        if err:
            raise ValidationError("player", f"{player[:100]!r} {err}")
        queue = request.query.get("queue")
        if not queue:
            raise ValidationError("queue", "required: the queue whose rating to read")
        if queue not in self.queues:
            known = ", ".join(sorted(self.queues)) or "none"
            raise ValidationError("queue", f"unknown queue {queue[:100]!r}; queues served here: {known}")
        stored = await ratings.stored(queue, [player])
        return web.json_response(rating_json(player, queue, stored.get(player)))


def add_routes(app: web.Application, api: ResultsApi) -> None:
    app.router.add_post("/v1/matches/{id}/result", api.post_result)
    app.router.add_get("/v1/ratings/{player}", api.get_rating)


# -- the OpenAPI document's part (``matchmaker.openapi`` merges it) ---------------------------------


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_RATING_PAIR = {
    "type": "object",
    "additionalProperties": False,
    "required": ["mu", "sigma"],
    "properties": {"mu": {"type": "number"}, "sigma": {"type": "number", "minimum": 0}},
}
_COMMON = {
    "401": _error("Missing, malformed, forged or expired credentials"),
    "403": _error("Forbidden: a player token (results and ratings need an API key)"),
    "429": {
        **_error("RateLimited: too many requests from this client"),
        "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}, "description": "seconds"}},
    },
    "503": _error("The store is unreachable: retry shortly"),
}

SCHEMAS: dict[str, Any] = {
    "MatchResult": {
        "type": "object",
        "additionalProperties": False,
        "description": "Either teams (a rank or a score per team of the match, in its team order: a ticket's "
        "assignment.team) or players (every player of the match with a rank: a free-for-all)",
        "properties": {
            "teams": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "oneOf": [
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["rank"],
                            "properties": {"rank": {"type": "integer", "minimum": 1, "maximum": 1_000_000}},
                        },
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["score"],
                            "properties": {"score": {"type": "number"}},
                        },
                    ]
                },
                "description": "1 = first; equal ranks are a draw. Scores: higher is better",
            },
            "players": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["id", "rank"],
                    "properties": {
                        "id": {"type": "string"},
                        "rank": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
                    },
                },
            },
        },
    },
    "RatedMatch": {
        "type": "object",
        "additionalProperties": False,
        "required": ["matchId", "queue", "players", "replayed"],
        "properties": {
            "matchId": {"type": "string"},
            "queue": {"type": "string"},
            "replayed": {
                "type": "boolean",
                "description": "True: this result had been applied before; nothing changed now",
            },
            "players": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["id", "team", "before", "after"],
                    "properties": {
                        "id": {"type": "string"},
                        "team": {"type": "integer", "minimum": 0},
                        "before": _RATING_PAIR,
                        "after": _RATING_PAIR,
                    },
                },
            },
        },
    },
    "Rating": {
        "type": "object",
        "additionalProperties": False,
        "required": ["player", "queue", "mu", "sigma", "ordinal", "games"],
        "properties": {
            "player": {"type": "string"},
            "queue": {"type": "string"},
            "mu": {"type": "number"},
            "sigma": {"type": "number", "minimum": 0},
            "ordinal": {"type": "number", "description": "mu - 3 sigma"},
            "games": {"type": "integer", "minimum": 0, "description": "Results applied (0: a new player's default)"},
        },
    },
}

PATHS: dict[str, Any] = {
    "/v1/matches/{id}/result": {
        "parameters": [
            {
                "name": "id",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "The match id (a ticket's assignment.matchId)",
            }
        ],
        "post": {
            "operationId": "postMatchResult",
            "summary": "Rate a match from its result (API keys only; once per match)",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MatchResult"}}},
            },
            "responses": {
                "200": {
                    "description": "Every player's rating before and after (the first answer again for a repeat)",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RatedMatch"}}},
                },
                "400": _error("Empty or malformed JSON"),
                **_COMMON,
                "404": _error(
                    "No such match: not assigned here in a queue with a rating rule, or too long ago for a result"
                ),
                "409": _error("ResultConflict: a different result was applied to this match already"),
                "413": _error("Body larger than the server's limit"),
                "422": _error(
                    "A result that does not fit the match, naming the field: team count, a rank that is not a whole "
                    "number from 1, a player not in the match or missing"
                ),
            },
        },
    },
    "/v1/ratings/{player}": {
        "parameters": [{"name": "player", "in": "path", "required": True, "schema": {"type": "string"}}],
        "get": {
            "operationId": "getRating",
            "summary": "A player's rating in a queue (API keys only)",
            "parameters": [{"name": "queue", "in": "query", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {
                    "description": "The rating (a new player's default when never rated)",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Rating"}}},
                },
                **_COMMON,
                "422": _error("Missing or unknown queue, or not a player id"),
            },
        },
    },
}
