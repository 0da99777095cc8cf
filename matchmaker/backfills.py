"""The backfill store on Redis, beside the queue's tickets (same hash tag: one slot per queue).

Keys (``BackfillKeys``; the fields in ``lua/backfill_common.lua``)::

    fm:{q:4v4}:backfills:docs|slots|bstate|filled|lock|open|by_server

A fill is crash-safe the way a match is: ``claim`` leases its tickets to the fill (lease expiry
returns them to the pool, at their place) and locks the backfill for it until the same deadline;
``commit`` matches the tickets and takes the slots only while the fill holds both; ``release``
gives both back at once. A director that dies mid-fill loses nothing: the leases run out, the
lock lapses, and the next pass fills the backfill again. One fill per backfill is in flight at a
time, so two directors never add players to one match for the same slot; a ticket is leased to
one match or fill only, so it is never in two.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import msgpack  # type: ignore[import-untyped]

from fleetmatch.codec import load_trusted, to_wire
from fleetmatch.errors import NotFoundError, ValidationError
from matchmaker.backfill import Backfill, BackfillState
from matchmaker.models import Assignment, queue_of
from matchmaker.tickets import Keys, RedisTicketStore, _backend, _script, _text

OPEN_LIMIT = 1000
"""Open backfills one pass reads, at most (oldest first; the rest next pass)."""


def _backfill_script(name: str) -> str:
    """common.lua, backfill_common.lua, then the script itself."""
    own = resources.files(__package__).joinpath("lua").joinpath(f"backfill_{name}.lua").read_text()
    return _script("backfill_common") + "\n" + own


@dataclasses.dataclass(frozen=True, slots=True)
class BackfillKeys:
    """The queue's backfill keys, in the order ``lua/backfill_common.lua`` reads them."""

    docs: str
    slots: str
    bstate: str
    filled: str
    lock: str
    open: str
    by_server: str
    lapsed: str
    commits: str
    closed: str

    @classmethod
    def of(cls, queue: str) -> BackfillKeys:
        base = f"fm:{{q:{queue}}}:backfills"
        return cls(*(f"{base}:{f.name}" for f in dataclasses.fields(cls)))


_STATIC = ("openSlots", "state", "filled")


@dataclasses.dataclass(frozen=True, slots=True)
class Lapsed:
    """A fill that ended without a commit: the players it may have written onto its server."""

    backfill_id: str
    fill_id: str
    players: frozenset[str]


class RedisBackfillStore:
    """Backfills of every queue on the ticket store's Redis client."""

    def __init__(self, tickets: RedisTicketStore) -> None:
        self._tickets = tickets
        client = tickets.client
        self._scripts = {
            name: client.register_script(_backfill_script(name))
            for name in ("open", "claim", "commit", "release", "cancel", "read", "lapsed", "forget")
        }

    def _keys(self, queue: str) -> list[str]:
        return [*Keys.of(queue).all, *dataclasses.astuple(BackfillKeys.of(queue))]

    async def _run(self, name: str, queue: str, *args: str | bytes | float) -> Any:
        await self._tickets._ready()
        with _backend():
            # The ticket scripts' ARGV head: the server's clock, and the event history the queue keeps
            # (a fill's tickets are announced on the queue's stream like any match's).
            return await self._scripts[name](keys=self._keys(queue), args=["", self._tickets.history, *args])

    async def open(self, backfill: Backfill, *, closing: BackfillState = BackfillState.FILLED) -> tuple[str, Backfill]:
        """Open ``backfill``, or set the wanted slots of the open one its server has. What was done
        (``opened``, ``updated``, ``closed``: no slot left, as ``closing``; ``busy``: a fill is in
        flight, left alone; ``none``) and the backfill after."""
        if queue_of(backfill.id) != backfill.queue:
            raise ValidationError("id", f"{backfill.id!r} is not an id of queue {backfill.queue!r}")
        doc = to_wire(backfill)
        for name in _STATIC:
            del doc[name]
        status, current = await self._run(
            "open",
            backfill.queue,
            backfill.id,
            msgpack.packb(doc, use_bin_type=True),
            " ".join(map(str, backfill.open_slots)),
            backfill.game_server,
            closing.value,
        )
        done, bid = _text(status), _text(current)
        return done, (await self.get(bid) if bid else backfill)

    async def get(self, backfill_id: str) -> Backfill:
        queue = queue_of(backfill_id)
        if queue is None:
            raise NotFoundError(Backfill.KIND, backfill_id)
        found = _decode(await self._run("read", queue, "x", 0, backfill_id))
        if not found:
            raise NotFoundError(Backfill.KIND, backfill_id)
        return found[0]

    async def open_backfills(self, queue: str, *, limit: int = OPEN_LIMIT) -> list[Backfill]:
        """The queue's open backfills, oldest first."""
        return _decode(await self._run("read", queue, "", limit))

    async def claim(
        self, queue: str, backfill_id: str, fill_id: str, ticket_ids: Sequence[str], *, lease_seconds: float
    ) -> bool:
        result = await self._run("claim", queue, backfill_id, fill_id, repr(float(lease_seconds)), *ticket_ids)
        if isinstance(result, list):
            raise ValidationError("ticket_ids", f"player {_text(result[1])!r} is in two tickets of fill {fill_id}")
        return bool(result)

    async def commit(
        self,
        backfill: Backfill,
        fill_id: str,
        taken: Sequence[int],
        assignments: Mapping[str, Assignment],
    ) -> bool:
        pairs: list[str | bytes] = []
        for ticket_id, assignment in assignments.items():
            pairs += (ticket_id, msgpack.packb(to_wire(assignment), use_bin_type=True))
        taken_text = " ".join(map(str, taken))
        return bool(
            await self._run(
                "commit",
                backfill.queue,
                backfill.id,
                fill_id,
                backfill.game_server,
                backfill.match_id,
                taken_text,
                *pairs,
            )
        )

    async def release(self, queue: str, backfill_id: str, fill_id: str, ticket_ids: Sequence[str]) -> int:
        return int(await self._run("release", queue, backfill_id, fill_id, *ticket_ids))

    async def lapsed(self, queue: str, *, limit: int = OPEN_LIMIT) -> list[Lapsed]:
        """Fills whose deadline passed without a commit or a release (their director died or
        stalled), or that were given up: their players may be on the server, and must come off.
        Purges backfills closed longer ago than the ticket store's retention on the way."""
        rows = await self._run("lapsed", queue, limit, repr(self._tickets.retention))
        out = []
        for bid, lock in rows:
            fill, _deadline, *players = _text(lock).split()
            out.append(Lapsed(_text(bid), fill, frozenset(players)))
        return out

    async def forget(self, queue: str, lapsed: Lapsed) -> None:
        """``lapsed`` was swept: its players are off the server."""
        await self._run("forget", queue, lapsed.backfill_id, lapsed.fill_id)

    async def close(self, backfill: Backfill, state: BackfillState = BackfillState.CANCELLED) -> bool:
        """Close an open backfill (cancelled, or filled); False if it was not open."""
        return bool(await self._run("cancel", backfill.queue, backfill.id, state.value, backfill.game_server))


def _decode(rows: list[Any]) -> list[Backfill]:
    out = []
    for bid, doc, slots, state, filled, _lock in rows:
        if not doc:
            continue
        base = load_trusted(Backfill, msgpack.unpackb(doc, raw=False))
        out.append(
            dataclasses.replace(
                base,
                id=_text(bid),
                open_slots=tuple(int(n) for n in _text(slots or b"").split()),
                state=BackfillState(_text(state)),
                filled=int(filled or 0),
            )
        )
    return out
