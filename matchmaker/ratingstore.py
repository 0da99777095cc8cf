"""Ratings and match records on Redis: what ``POST /v1/matches/{id}/result`` reads and writes.

Layout (``RatingKeys`` builds every name; nothing else does)::

    fm:{m:<match id>}:match              STRING JSON {queue, teams: [[player ids]], at}: a match a
                                                director of a queue with a rating rule assigned;
                                                expires after ``MATCH_TTL`` (results come later
                                                than that are refused: 404)
    fm:{q:<queue>}:ratings               HASH   player id -> "mu sigma games"
    fm:{q:<queue>}:ratings:result:<id>   STRING JSON {outcome, answer}: the match's result was applied
                                                (the idempotency marker); expires after ``MATCH_TTL``
                                                too, so it outlives the match record

A result is applied **once**: the player's ratings are read, the new ones computed here
(``matchmaker.ratings``, OpenSkill), then one Lua script (``lua/rate.lua``) writes them and the
marker only if no marker exists and no rating changed since the read (else the caller re-reads:
another match of one of the players was rated meanwhile). The ratings and the marker share the
queue's hash slot, so this works unchanged on Redis Cluster; the match record lives in its match's
slot (written once, never changed). A second POST for a match finds the marker: the same result
gets the first answer again, a different one ``ResultConflictError``.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

from redis.exceptions import RedisError

from fleetmatch.errors import BackendError, NotFoundError
from fleetmatch.tasks import raise_if_cancelling
from matchmaker.auth import Principal
from matchmaker.errors import ResultConflictError
from matchmaker.models import TicketRequest
from matchmaker.ratings import NEW_PLAYER, Outcome, Rating, with_ratings
from matchmaker.rules import Queue
from matchmaker.store import TicketStore
from matchmaker.tickets import Client, RedisTicketStore

MATCH_TTL = 86_400.0
"""Seconds a match may wait for its result (and a result's marker is kept): a day."""
APPLY_ATTEMPTS = 20
"""Re-reads when the players' ratings keep changing under a result (other matches of theirs)."""
MATCH_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}\Z")


@dataclass(frozen=True, slots=True)
class RatingKeys:
    @staticmethod
    def match(match_id: str) -> str:
        return f"fm:{{m:{match_id}}}:match"

    @staticmethod
    def ratings(queue: str) -> str:
        return f"fm:{{q:{queue}}}:ratings"

    @staticmethod
    def result(queue: str, match_id: str) -> str:
        return f"fm:{{q:{queue}}}:ratings:result:{match_id}"


@dataclass(frozen=True, slots=True)
class StoredRating:
    rating: Rating
    games: int = 0
    """Results applied to it (0: a new player's default rating)."""


@dataclass(frozen=True, slots=True)
class MatchRecord:
    match_id: str
    queue: str
    teams: tuple[tuple[str, ...], ...]
    """Player ids per team, in the match's team order (a ticket's ``assignment.team``)."""
    at: float


@dataclass(frozen=True, slots=True)
class Applied:
    answer: dict[str, Any]
    replayed: bool
    """True when the result had been applied before (this call changed nothing)."""


class RatingStore(Protocol):
    async def stored(self, queue: str, players: Sequence[str]) -> dict[str, StoredRating]:
        """The stored ratings of ``players`` in ``queue`` (absent: never rated)."""

    async def record_match(self, queue: str, match_id: str, teams: Sequence[Sequence[str]]) -> None:
        """Remember an assigned match, so that its result may be posted (for ``MATCH_TTL``)."""

    async def match(self, match_id: str) -> MatchRecord:
        """The recorded match; ``NotFoundError`` if there is none (unknown, or too old)."""

    async def apply(self, record: MatchRecord, outcome: Outcome) -> Applied:
        """Rate the match once (see the module docstring)."""


@contextlib.contextmanager
def _backend() -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise_if_cancelling()
        raise BackendError(f"redis: {exc}") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _encode(stored: StoredRating) -> str:
    return f"{stored.rating.mu!r} {stored.rating.sigma!r} {stored.games}"


def _decode(raw: bytes | str | None) -> StoredRating | None:
    if raw is None:
        return None
    mu, sigma, games = _text(raw).split()
    return StoredRating(Rating(float(mu), float(sigma)), int(games))


def rating_json(player: str, queue: str, stored: StoredRating | None) -> dict[str, Any]:
    rating = stored.rating if stored is not None else NEW_PLAYER
    return {
        "player": player,
        "queue": queue,
        "mu": rating.mu,
        "sigma": rating.sigma,
        "ordinal": rating.ordinal,
        "games": stored.games if stored is not None else 0,
    }


class RedisRatingStore:
    """``RatingStore`` on the ticket store's Redis client (standalone or ``RedisCluster``)."""

    def __init__(self, client: Client, *, match_ttl: float = MATCH_TTL) -> None:
        self._redis = client
        self._ttl = int(match_ttl)
        script = resources.files(__package__).joinpath("lua", "rate.lua").read_text()
        self._rate = client.register_script(script)

    async def stored(self, queue: str, players: Sequence[str]) -> dict[str, StoredRating]:
        if not players:
            return {}
        with _backend():
            raw: list[Any] = await self._redis.hmget(RatingKeys.ratings(queue), list(players))
        return {p: s for p, value in zip(players, raw, strict=True) if (s := _decode(value)) is not None}

    async def record_match(self, queue: str, match_id: str, teams: Sequence[Sequence[str]]) -> None:
        doc = {"queue": queue, "teams": [list(team) for team in teams], "at": time.time()}
        with _backend():
            await self._redis.set(RatingKeys.match(match_id), json.dumps(doc), ex=self._ttl)

    async def match(self, match_id: str) -> MatchRecord:
        if not MATCH_ID.match(match_id):
            raise NotFoundError("Match", match_id[:100])
        with _backend():
            raw = await self._redis.get(RatingKeys.match(match_id))
        if raw is None:
            raise NotFoundError("Match", match_id)
        doc = json.loads(raw)
        return MatchRecord(match_id, doc["queue"], tuple(tuple(team) for team in doc["teams"]), float(doc["at"]))

    async def apply(self, record: MatchRecord, outcome: Outcome) -> Applied:
        players = outcome.players
        keys = [RatingKeys.ratings(record.queue), RatingKeys.result(record.queue, record.match_id)]
        for _ in range(APPLY_ATTEMPTS):
            with _backend():
                raw: list[Any] = await self._redis.hmget(keys[0], list(players))
            before = {p: s for p, value in zip(players, raw, strict=True) if (s := _decode(value)) is not None}
            after = outcome.rated({p: s.rating for p, s in before.items()})
            answer = _answer(record, before, after)
            args: list[str | int] = [
                self._ttl,
                json.dumps({"outcome": outcome.canonical(), "answer": answer}),
                len(players),
            ]
            for p, value in zip(players, raw, strict=True):
                games = before[p].games + 1 if p in before else 1
                args += [p, _text(value) if value is not None else "", _encode(StoredRating(after[p], games))]
            with _backend():
                reply: Any = await self._rate(keys=keys, args=args)
            status = _text(reply[0])
            if status == "applied":
                return Applied(answer, replayed=False)
            if status == "done":
                first = json.loads(reply[1])
                if first["outcome"] != outcome.canonical():
                    raise ResultConflictError(record.match_id)
                return Applied(first["answer"], replayed=True)
        raise BackendError(f"the ratings of match {record.match_id} kept changing; retry")


def _answer(record: MatchRecord, before: Mapping[str, StoredRating], after: Mapping[str, Rating]) -> dict[str, Any]:
    def pair(rating: Rating) -> dict[str, float]:
        return {"mu": rating.mu, "sigma": rating.sigma}

    return {
        "matchId": record.match_id,
        "queue": record.queue,
        "players": [
            {
                "id": p,
                "team": team,
                "before": pair(before[p].rating if p in before else NEW_PLAYER),
                "after": pair(after[p]),
            }
            for team, members in enumerate(record.teams)
            for p in members
        ],
    }


def rating_store_for(store: TicketStore) -> RedisRatingStore | None:
    """The ratings beside a ticket store on Redis (the same client); None for any other store."""
    return RedisRatingStore(store.client) if isinstance(store, RedisTicketStore) else None


async def with_stored_ratings(
    ratings: RatingStore | None, request: TicketRequest, queue: object, principal: Principal
) -> TicketRequest:
    """``request`` with its players' stored ratings filled in, when ``queue`` has a rating rule
    (``matchmaker.ratings.with_ratings``); unchanged otherwise. One read for the whole party."""
    rule = queue.spec.rating_rule if isinstance(queue, Queue) else None
    if rule is None:
        return request
    if principal.trusted and all(rule.attribute in p.attributes for p in request.players):
        return with_ratings(request, rule.attribute, {}, trusted=True)
    if ratings is None:
        raise BackendError(f"queue {request.queue!r} has a rating rule, but this matchmaker keeps no ratings")
    stored = await ratings.stored(request.queue, [p.id for p in request.players])
    return with_ratings(request, rule.attribute, {p: s.rating for p, s in stored.items()}, trusted=principal.trusted)
