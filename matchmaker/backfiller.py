"""Backfill in the director: open backfills from the game servers' ``players`` Lists, and fill the
open ones from the pool before new matches are formed (the decision is ``matchmaker.backfill``).

**Opening (the Agones way).** The director adds a match's players to the server's ``players``
List in the allocation write (``allocation_extras``), and the game removes a player who leaves
(``SDK.remove_list_value("players", id)``). Each pass ``scan`` reads the queue's Allocated servers:
one whose List holds fewer players than its teams have slots (by ``fleetmatch.dev/player-teams``)
gets a backfill for the missing ones, or its open one updated; a full List closes it.

**Filling.** For each fill ``plan_fills`` proposes: ``claim`` leases the tickets and locks the
backfill (``matchmaker.backfills``); one conditional write of the GameServer (compare-and-set on
its resourceVersion, retried on conflict) adds the newcomers' token hashes to
``fleetmatch.dev/player-tokens``, their teams to ``fleetmatch.dev/player-teams`` (in a queue with
role slots, their roles to ``fleetmatch.dev/player-roles``), the players to the List and the fill's
id to ``fleetmatch.dev/backfill-fills`` (a repeated write adds nothing); then
``commit`` assigns the tickets to the server's address and takes the slots. If the server is gone
or no longer that match's, the backfill is cancelled and the tickets go back; if the commit fails
(a ticket was cancelled), the server write is undone and the tickets go back. A director that
dies mid-fill leaves leases and a lock that run out: the tickets return at their place.

**Sweeping.** A fill whose deadline passed without a commit is swept by the next pass of any
director: its players come off the server if its write is there. Either way the sweep leaves the
fill's id marked swept (``~<fill id>`` in ``fleetmatch.dev/backfill-fills``), in the same
conditional write, so a write of that fill that comes later (its director stalled past the
deadline between claim and write, or between a conflict and its retry) finds the mark and writes
nothing (``SweptFillError``): the slot may be someone else's by then, and the ticket another
server's.

**Roles.** In a queue with role slots, a team's open roles are its roles minus those of its players
still in the ``players`` List (by ``fleetmatch.dev/player-roles``; a server without the List counts
every player it was given as present), read each pass with the server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence

from fleetmatch.codec import evolve
from fleetmatch.errors import NotFoundError, StoreError, ValidationError
from fleetmatch.informer import Informer
from fleetmatch.models import GameServer, GameServerState, ListStatus, stamp
from fleetmatch.store import EventType, Store, WatchEvent, modify
from fleetmatch.tasks import raise_if_cancelling
from matchmaker import metrics
from matchmaker.backfill import (
    BACKFILL_FILLS_ANNOTATION,
    MATCH_PROFILE_ANNOTATION,
    PLAYER_TEAMS_ANNOTATION,
    PLAYERS_LIST,
    Backfill,
    BackfillState,
    Fill,
    MatchProfile,
    Opening,
    open_roles,
    plan_fills,
    slots_from_list,
)
from matchmaker.backfills import RedisBackfillStore
from matchmaker.director import (
    MATCH_ID_ANNOTATION,
    PLAYER_ROLES_ANNOTATION,
    PLAYER_TOKENS_ANNOTATION,
    QUEUE_ANNOTATION,
    token_hash,
)
from matchmaker.models import Assignment, Ticket, new_ticket_id
from matchmaker.rules import Queue

log = logging.getLogger(__name__)

FILLS_KEPT = 32
"""Fill ids ``fleetmatch.dev/backfill-fills`` remembers (the newest)."""


def _json_map(text: str | None) -> dict[str, object]:
    try:
        doc = json.loads(text) if text else {}
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _teams_of(gs: GameServer) -> dict[str, int]:
    found = _json_map(gs.metadata.annotations.get(PLAYER_TEAMS_ANNOTATION))
    return {p: t for p, t in found.items() if isinstance(t, int)}


def _roles_of(gs: GameServer) -> dict[str, str]:
    found = _json_map(gs.metadata.annotations.get(PLAYER_ROLES_ANNOTATION))
    return {p: r for p, r in found.items() if isinstance(r, str)}


def _of_match(gs: GameServer, match_id: str) -> bool:
    return gs.state is GameServerState.ALLOCATED and gs.metadata.annotations.get(MATCH_ID_ANNOTATION) == match_id


class Backfiller:
    """One queue's backfills: ``scan`` opens them from the servers' Lists, ``fill`` fills them."""

    def __init__(
        self,
        backfills: RedisBackfillStore,
        gameservers: Store[GameServer],
        queue: Queue,
        *,
        lease_seconds: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backfills = backfills
        self.gameservers = gameservers
        self.queue = queue
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._ids = {"queue": queue.name}
        self._changed: dict[str, GameServer] | None = None
        """With ``follow``: the queue's servers changed since the last scan (else every scan lists all)."""

    def follow(self, informer: Informer[GameServer]) -> Callable[[], None]:
        """Scan only the servers ``informer`` (the process's shared GameServer watch) saw change,
        instead of listing every server each pass. Returns the function that stops following."""
        changed: dict[str, GameServer] = {}
        self._changed = changed
        name = self.queue.name

        def seen(event: WatchEvent[GameServer]) -> None:
            gs = event.object
            if gs.metadata.annotations.get(QUEUE_ANNOTATION) == name:
                gone = event.type is EventType.DELETED
                changed[gs.name] = gs.with_status(state=GameServerState.SHUTDOWN) if gone else gs

        return informer.add_handler(seen)

    async def scan(self) -> None:
        """Open, update or close backfills from the ``players`` Lists of the queue's Allocated servers."""
        if self._changed is None:
            items, _ = await self.gameservers.list()
        else:
            items = list(self._changed.values())
            self._changed.clear()
        for i, gs in enumerate(items):
            try:
                await self._scan_one(gs)
            except BaseException:
                if self._changed is not None:  # seen again next pass, unless it changed meanwhile
                    for rest in items[i:]:
                        self._changed.setdefault(rest.name, rest)
                raise

    async def _scan_one(self, gs: GameServer) -> None:
        name = self.queue.name
        caps = self.queue.spec.teams.caps
        notes = gs.metadata.annotations
        listed = gs.status.lists.get(PLAYERS_LIST)
        match_id = notes.get(MATCH_ID_ANNOTATION)
        if notes.get(QUEUE_ANNOTATION) != name or not match_id:
            return
        if gs.state is not GameServerState.ALLOCATED:  # the match is over: it wants nobody any more
            if self._changed is not None:  # (a full scan would ask for every finished server each pass)
                nobody = tuple(0 for _ in caps)
                over = Backfill(new_ticket_id(name), name, match_id, gs.name, nobody)
                done, _ = await self.backfills.open(over, closing=BackfillState.CANCELLED)
                if done == "closed":
                    metrics.BACKFILLS.labels(queue=name, event="cancelled").inc()
            return
        if listed is None or PLAYER_TEAMS_ANNOTATION not in notes:
            return
        slots = slots_from_list(listed.values, _teams_of(gs), caps)
        room = max(0, listed.capacity - len(listed.values))
        if room < sum(slots):  # the List's capacity is the last word on how many may play
            slots = _trim(slots, room)
        backfill = Backfill(new_ticket_id(name), name, match_id, gs.name, slots, self._clock(), source="list")
        done, after = await self.backfills.open(backfill)
        if done == "opened":
            metrics.BACKFILLS.labels(queue=name, event="opened").inc()
            log.info("match %s on %s wants %s player(s): backfill %s", match_id, gs.name, sum(slots), after.id,
                     extra={**self._ids, "match_id": match_id, "gameserver": gs.name})  # fmt: skip

    async def fill(self, pool: Sequence[Ticket]) -> list[Ticket]:
        """Fill the open backfills from ``pool``; the pool left for new matches."""
        name = self.queue.name
        await self._sweep()
        backfills = await self.backfills.open_backfills(name)
        metrics.BACKFILLS_OPEN.labels(queue=name).set(len(backfills))
        if not backfills or not pool:
            return list(pool)
        openings = [o for o in await asyncio.gather(*(self._opening(b) for b in backfills)) if o is not None]
        fills = plan_fills(openings, pool, self.queue, self._clock())
        if not fills:
            return list(pool)
        by_id = {t.id: t for t in pool}
        by_backfill = {o.backfill.id: o for o in openings}
        await asyncio.gather(*(self._fill_safely(f, by_backfill[f.backfill_id], by_id) for f in fills))
        taken = {tid for f in fills for tid in f.ticket_ids}
        return [t for t in pool if t.id not in taken]

    async def _sweep(self) -> None:
        """Take the players of lapsed fills (their director died between the server write and the
        commit, or gave up) off their servers, so a slot is never held by someone who never comes."""
        for lapsed in await self.backfills.lapsed(self.queue.name):
            try:
                backfill = await self.backfills.get(lapsed.backfill_id)
            except NotFoundError:
                await self.backfills.forget(self.queue.name, lapsed)
                continue
            if await self._undo(backfill.game_server, backfill.match_id, lapsed.fill_id, lapsed.players):
                await self.backfills.forget(self.queue.name, lapsed)
                metrics.BACKFILLS.labels(queue=self.queue.name, event="swept").inc()

    async def _opening(self, backfill: Backfill) -> Opening | None:
        """The backfill with its server's players and profile; None (and the backfill closed) if
        the server is gone or plays another match now."""
        try:
            gs = await self.gameservers.get(backfill.game_server)
        except NotFoundError:
            gs = None
        if gs is None or not _of_match(gs, backfill.match_id):
            if await self.backfills.close(backfill):
                metrics.BACKFILLS.labels(queue=self.queue.name, event="cancelled").inc()
            return None
        notes = gs.metadata.annotations
        players = set(_json_map(notes.get(PLAYER_TOKENS_ANNOTATION)))
        listed = gs.status.lists.get(PLAYERS_LIST)
        players.update(listed.values if listed is not None else ())
        roles: tuple[dict[str, int], ...] = ()
        teams = self.queue.spec.teams
        if teams.has_roles:
            teams_of = _teams_of(gs)
            present = listed.values if listed is not None else tuple(teams_of)
            roles = open_roles(teams.team_roles, present, teams_of, _roles_of(gs))
        profile = MatchProfile.decode(notes.get(MATCH_PROFILE_ANNOTATION))
        return Opening(backfill, frozenset(players), profile, roles)

    async def _fill_safely(self, fill: Fill, opening: Opening, tickets: Mapping[str, Ticket]) -> None:
        try:
            await self._fill(fill, opening, tickets)
        except (StoreError, ValidationError) as exc:
            raise_if_cancelling()
            log.warning("filling backfill %s failed: %s", fill.backfill_id, exc, extra=self._ids)

    async def _fill(self, fill: Fill, opening: Opening, tickets: Mapping[str, Ticket]) -> None:
        name = self.queue.name
        backfill = opening.backfill
        fill_id = uuid.uuid4().hex
        ids = fill.ticket_ids
        if not await self.backfills.claim(name, backfill.id, fill_id, ids, lease_seconds=self.lease_seconds):
            metrics.BACKFILLS.labels(queue=name, event="conflict").inc()
            return
        tokens = {p.id: secrets.token_urlsafe(18) for tid in ids for p in tickets[tid].players}
        teams = {p.id: team for team, members in enumerate(fill.teams) for tid in members for p in tickets[tid].players}
        try:
            gs = await self._write(backfill, fill_id, tokens, teams, roles=fill.roles)
        except SweptFillError as exc:  # this director stalled past the fill's deadline: it is over
            await self.backfills.release(name, backfill.id, fill_id, ids)
            metrics.BACKFILLS.labels(queue=name, event="lost-lease").inc()
            log.warning("%s: nothing written", exc, extra=self._ids)
            return
        except BaseException:
            await self.backfills.release(name, backfill.id, fill_id, ids)
            raise
        if gs is None:  # the server is gone or plays another match: nothing was written
            await self.backfills.release(name, backfill.id, fill_id, ids)
            if await self.backfills.close(backfill):
                metrics.BACKFILLS.labels(queue=name, event="cancelled").inc()
            return
        port = gs.status.ports[0].port if gs.status.ports else 0
        names = self.queue.spec.teams.names
        assignments = {
            tid: Assignment(
                match_id=backfill.match_id,
                game_server=gs.name,
                address=gs.status.address,
                port=port,
                ports=gs.status.ports,
                team=team,
                region=opening.profile.region,
                tokens={p.id: tokens[p.id] for p in tickets[tid].players},
                team_name=names[team] if names else "",
                backfill_id=backfill.id,
                fill_id=fill_id,
                roles={p.id: fill.roles[p.id] for p in tickets[tid].players if p.id in fill.roles},
            )
            for team, members in enumerate(fill.teams)
            for tid in members
        }
        taken = [sum(tickets[tid].size for tid in members) for members in fill.teams]
        if not await self.backfills.commit(backfill, fill_id, taken, assignments):
            await self._undo(gs.name, backfill.match_id, fill_id, frozenset(tokens))
            await self.backfills.release(name, backfill.id, fill_id, ids)
            metrics.BACKFILLS.labels(queue=name, event="lost-lease").inc()
            return
        now = self._clock()
        metrics.BACKFILLS.labels(queue=name, event="filled").inc()
        metrics.BACKFILL_PLAYERS.labels(queue=name).inc(len(tokens))
        metrics.BACKFILL_SECONDS.labels(queue=name).observe(max(0.0, now - backfill.created_at))
        for tid in ids:
            metrics.TIME_TO_MATCH.labels(queue=name).observe(max(0.0, now - tickets[tid].enqueued_at))
        metrics.TICKETS.labels(queue=name, event="matched").inc(len(ids))
        log.info("backfill %s: %d player(s) to match %s on %s", backfill.id, len(tokens), backfill.match_id, gs.name,
                 extra={**self._ids, "match_id": backfill.match_id, "gameserver": gs.name})  # fmt: skip

    async def _write(
        self,
        backfill: Backfill,
        fill_id: str,
        tokens: Mapping[str, str],
        teams: Mapping[str, int],
        roles: Mapping[str, str] | None = None,
    ) -> GameServer | None:
        """The newcomers onto the server in one conditional write; the server as written (or as it
        was, if this fill was written before), or None if it no longer plays the match.
        ``SweptFillError`` if the fill was swept first (nothing written)."""
        gone = False
        written: GameServer | None = None

        def change(gs: GameServer) -> GameServer | None:
            nonlocal gone, written
            notes = gs.metadata.annotations
            if not _of_match(gs, backfill.match_id):
                gone = True
                return None
            fills = notes.get(BACKFILL_FILLS_ANNOTATION, "").split()
            if fill_id in fills:
                written = gs
                return None
            if SWEPT_MARK + fill_id in fills:
                raise SweptFillError(f"fill {fill_id} of backfill {backfill.id} was swept before its write")
            hashes = {**_json_map(notes.get(PLAYER_TOKENS_ANNOTATION)), **{p: token_hash(t) for p, t in tokens.items()}}
            known = {**_teams_of(gs), **teams}
            changed = {
                **notes,
                PLAYER_TOKENS_ANNOTATION: json.dumps(hashes, sort_keys=True),
                PLAYER_TEAMS_ANNOTATION: json.dumps(known, sort_keys=True),
                BACKFILL_FILLS_ANNOTATION: " ".join([*fills, fill_id][-FILLS_KEPT:]),
            }
            if roles:
                changed[PLAYER_ROLES_ANNOTATION] = json.dumps({**_roles_of(gs), **roles}, sort_keys=True)
            lists = dict(gs.status.lists)
            listed = lists.get(PLAYERS_LIST)
            if listed is not None:
                values = (*listed.values, *(p for p in tokens if p not in listed.values))
                lists[PLAYERS_LIST] = ListStatus(max(listed.capacity, len(values)), values)
            return evolve(stamp(gs, annotations=changed), status=evolve(gs.status, lists=lists))

        try:
            result = await modify(self.gameservers, backfill.game_server, change)
        except NotFoundError:
            return None
        if gone:
            return None
        return result if result is not None else written

    async def _undo(self, server: str, match_id: str, fill_id: str, players: frozenset[str]) -> bool:
        """Take a fill that was not committed off the server again, if it is there: its players out
        of the List and the annotations; the fill marked swept either way (a later write of it is
        refused). False if that failed (logged: tried again when swept)."""
        tokens = players

        def change(gs: GameServer) -> GameServer | None:
            notes = gs.metadata.annotations
            fills = notes.get(BACKFILL_FILLS_ANNOTATION, "").split()
            if not _of_match(gs, match_id) or SWEPT_MARK + fill_id in fills:
                return None  # another match now (a late write checks that too), or swept already
            marked = " ".join([*(f for f in fills if f != fill_id), SWEPT_MARK + fill_id][-FILLS_KEPT:])
            if fill_id not in fills:  # not written (yet): only the mark, so that a late write is refused
                return stamp(gs, annotations={**notes, BACKFILL_FILLS_ANNOTATION: marked})
            hashes = {p: h for p, h in _json_map(notes.get(PLAYER_TOKENS_ANNOTATION)).items() if p not in tokens}
            known = {p: t for p, t in _teams_of(gs).items() if p not in tokens}
            changed = {
                **notes,
                PLAYER_TOKENS_ANNOTATION: json.dumps(hashes, sort_keys=True),
                PLAYER_TEAMS_ANNOTATION: json.dumps(known, sort_keys=True),
                BACKFILL_FILLS_ANNOTATION: marked,
            }
            if PLAYER_ROLES_ANNOTATION in notes:
                kept = {p: r for p, r in _roles_of(gs).items() if p not in tokens}
                changed[PLAYER_ROLES_ANNOTATION] = json.dumps(kept, sort_keys=True)
            lists = dict(gs.status.lists)
            listed = lists.get(PLAYERS_LIST)
            if listed is not None:
                lists[PLAYERS_LIST] = ListStatus(listed.capacity, tuple(v for v in listed.values if v not in tokens))
            return evolve(stamp(gs, annotations=changed), status=evolve(gs.status, lists=lists))

        try:
            await modify(self.gameservers, server, change)
        except NotFoundError:
            return True  # the server is gone, and the fill with it
        except StoreError as exc:
            raise_if_cancelling()
            log.warning("taking fill %s off %s failed: %s", fill_id, server, exc, extra=self._ids)
            return False
        return True


class SweptFillError(Exception):
    """The fill was swept (its deadline passed) before its server write came: nothing was written."""


SWEPT_MARK = "~"
"""Prefix of a swept fill's id in ``fleetmatch.dev/backfill-fills``."""


def _trim(slots: tuple[int, ...], room: int) -> tuple[int, ...]:
    """``slots`` cut down to ``room`` players in all, first teams first."""
    out = []
    for n in slots:
        take = min(n, room)
        out.append(take)
        room -= take
    return tuple(out)
