"""Replay a finished run's tickets through two wait estimators: the same arrivals, the same truth.

A load test measures only the estimator the server ran. To put another beside it on the *same*
run, this reads every ticket a run left in its Redis (the ticket store keeps finished tickets for
its retention: enqueue time, players, state, and when each finished) and replays the queue in
virtual time: a director pass every ``tick`` seconds publishes the summary (``publish``, as
``matchmaker.waits`` does, from the tickets that finished matched in that tick and the pool then),
and each ticket is estimated at its enqueue time as a frontend does, the old way (recent times to
match alone: ``estimate`` then ``remaining``) and the new (``expected_remaining``). The truth is the
server's (enqueue to match), not the client's (which adds ticket creation and the assignment push),
so the figures sit close to, not exactly on, the load test's. Its passes are virtual, not the
run's: the next-pass estimate (``matchmaker.estimate.next_pass``, a fraction of a second, judged
within tens of milliseconds) falls between them, and only the load test itself judges it::

    python -m loadtest.replay_waits --redis unix:///path/to/redis.sock --queues fleetmatch/demo/queues.yaml

The finished tickets last only the store's retention (10 minutes): ``--save FILE`` also writes the
records read as JSON, and ``--records FILE`` replays such a file instead of a Redis, as often as
one likes (iterating on an estimator against one run).

Beside the two estimators it prints ``bounds``: what no create-time estimate can beat on the run,
each found *after* seeing the waits. ``sliceBest``: one figure per ``SLICE_SECONDS`` of arrivals,
the one within the tolerance of the most of them. ``firstPassExact``: every ticket matched at the
first pass after it arrived estimated exactly (knowing it would be, and when that pass came), the
others as the current estimator had them; ``firstPassExactRestSliceBest``: those exact, the others
by their slice's best figure. They say how far the target is from what arrival-time knowledge
can reach.
"""

from __future__ import annotations

import asyncio
import bisect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from fleetmatch.codec import from_wire, to_wire
from loadtest.collect import ESTIMATE_TOLERANCE, relative_error, wait_estimate_summary
from matchmaker.estimate import decode_summary, depths_of, estimate, expected_remaining, keys_of, publish, remaining
from matchmaker.models import Ticket
from matchmaker.rules import Queue, load_queues


@dataclass(frozen=True, slots=True)
class Record:
    """One ticket as the run left it: ``finished`` is when it was matched (None: it never was)."""

    ticket: Ticket
    finished: float | None
    left: float | None = None
    """When a ticket never matched left the queue (cancelled, expired; None: still there at the
    end): until then it counts in the depth a director sees, not after."""

    def waiting_at(self, now: float) -> bool:
        """Whether it was in the pool at ``now``."""
        gone = self.finished if self.finished is not None else self.left
        return self.ticket.enqueued_at <= now and (gone is None or gone > now)


SLICE_SECONDS = 10.0
"""Arrivals judged together by ``bounds``' single best figure."""
FLOOR_SECONDS = 0.05
"""A wait under this counts as this (``relative_error``)."""


def best_single_figure(waits: Sequence[float], tolerance: float = ESTIMATE_TOLERANCE) -> int:
    """How many of ``waits`` one figure could be within ``tolerance`` of, at best."""
    return best_figure(waits, tolerance)[0]


def best_figure(waits: Sequence[float], tolerance: float = ESTIMATE_TOLERANCE) -> tuple[int, float]:
    """The most of ``waits`` one figure can be within ``tolerance`` of, and that figure: the most of
    the intervals [w(1 - tolerance), w(1 + tolerance)] that share a point (a sweep, starts before
    ends). No waits: (0, 0.0)."""
    edges = sorted(
        (max(FLOOR_SECONDS, w) * (1 + sign * tolerance), sign) for w in waits for sign in (-1, 1)
    )  # (point, -1) opens an interval, (point, +1) closes one: at a tie the opening sorts first
    best, count, figure = 0, 0, 0.0
    for point, sign in edges:
        count -= sign
        if count > best:
            best, figure = count, point
    return best, figure


def first_pass(records: Sequence[Record]) -> set[str]:
    """Tickets matched at the first pass after they arrived: the earliest time any ticket of the
    queue was matched at or after their enqueue time (times to 10 ms: one pass's matches)."""
    passes = sorted({round(r.finished, 2) for r in records if r.finished is not None})
    out = set()
    for r in records:
        if r.finished is None:
            continue
        i = bisect.bisect_left(passes, round(r.ticket.enqueued_at, 2))
        if i < len(passes) and passes[i] == round(r.finished, 2):
            out.add(r.ticket.id)
    return out


def bounds(judged: Sequence[tuple[Record, float | None]]) -> dict[str, int]:
    """``sliceBest``, ``firstPassExact`` and ``firstPassExactRestSliceBest`` (module docstring):
    of ``judged`` (each matched record with the current estimator's figure, None: unestimated, not
    judged, as for the estimators), how many are within the tolerance; and ``estimated``."""
    estimated = [(r, e) for r, e in judged if e is not None and r.finished is not None]
    if not estimated:
        return {"estimated": 0, "sliceBest": 0, "firstPassExact": 0, "firstPassExactRestSliceBest": 0}
    start = min(r.ticket.enqueued_at for r, _ in estimated)
    first = first_pass([r for r, _ in judged])
    slices: dict[int, list[float]] = {}
    rest: dict[int, list[float]] = {}
    exact = current = 0
    for r, e in estimated:
        assert r.finished is not None and e is not None
        waited = r.finished - r.ticket.enqueued_at
        key = int((r.ticket.enqueued_at - start) // SLICE_SECONDS)
        slices.setdefault(key, []).append(waited)
        if r.ticket.id in first:
            exact += 1
        else:
            rest.setdefault(key, []).append(waited)
            current += abs(relative_error(e, waited)) <= ESTIMATE_TOLERANCE
    return {
        "estimated": len(estimated),
        "sliceBest": sum(map(best_single_figure, slices.values())),
        "firstPassExact": exact + current,
        "firstPassExactRestSliceBest": exact + sum(map(best_single_figure, rest.values())),
    }


def replay(records: Sequence[Record], queue: Queue | None, *, tick: float = 0.5) -> dict[str, dict[str, Any]]:
    """``{"old": ..., "new": ..., "bounds": ...}``: the estimators each as the load test's
    ``waitEstimate`` (``wait_estimate_summary``), and ``bounds`` on the same tickets."""
    if not records:
        return {name: wait_estimate_summary([], 0) for name in ("old", "new")} | {"bounds": bounds([])}
    needed = queue.players_needed if queue is not None else 0
    keyed = sorted(((r, keys_of(r.ticket, queue)) for r in records), key=lambda rk: rk[0].ticket.enqueued_at)
    stored: dict[str, str] = {}
    errors: dict[str, list[float]] = {"old": [], "new": []}
    unestimated = {"old": 0, "new": 0}
    judged: list[tuple[Record, float | None]] = []
    now = keyed[0][0].ticket.enqueued_at
    end = max(r.finished or r.ticket.enqueued_at for r, _ in keyed) + tick
    arrived = 0
    while now < end:
        now += tick
        summary = decode_summary(stored)
        while arrived < len(keyed) and keyed[arrived][0].ticket.enqueued_at <= now:
            record, keys = keyed[arrived]
            arrived += 1
            if record.finished is None:
                continue
            at, waited = record.ticket.enqueued_at, record.finished - record.ticket.enqueued_at
            old = remaining(estimate(summary.waits, keys, at), 0.0)
            new = expected_remaining(
                summary, keys, size=record.ticket.size, needed=needed, enqueued_at=at, now=at, tick=tick
            )
            judged.append((record, new))
            for name, value in (("old", old), ("new", new)):
                if value is None:
                    unestimated[name] += 1
                else:
                    errors[name].append(relative_error(value, waited))
        matched = [
            (keys, r.finished - r.ticket.enqueued_at, r.ticket.size)
            for r, keys in keyed[:arrived]
            if r.finished is not None and now - tick < r.finished <= now
        ]
        waiting = [(keys, r.ticket.size, r.ticket.enqueued_at) for r, keys in keyed[:arrived] if r.waiting_at(now)]
        stored.update(publish(summary, matched, depths_of(waiting, now), now))
    summaries = {name: wait_estimate_summary(errors[name], unestimated[name]) for name in ("old", "new")}
    return summaries | {"bounds": bounds(judged)}


async def read_records(url: str, queue: str) -> list[Record]:
    """Every ticket of ``queue`` still in the store at ``url``, with when it finished matched."""
    import redis.asyncio as aioredis

    from matchmaker.tickets import Keys, RedisTicketStore

    client = aioredis.Redis.from_url(url)
    try:
        store = RedisTicketStore(client)
        keys = Keys.of(queue)
        bodies: Any = await client.hkeys(keys.bodies)
        finished: Any = await client.zrange(keys.done, 0, -1, withscores=True)
        ids = [i.decode() for i in bodies]
        done: dict[str, float] = {i.decode(): float(score) for i, score in finished}
        records = []
        for tid in ids:
            ticket = await store.get(tid)
            matched = ticket.state == "matched" and tid in done
            records.append(Record(ticket, done[tid] if matched else None, None if matched else done.get(tid)))
        return records
    finally:
        await client.aclose()


def dump_records(records_by_queue: Mapping[str, Sequence[Record]]) -> str:
    """The records as JSON (``--save``): per queue, each ticket on the wire and when it finished."""
    return json.dumps(
        {
            name: [{"ticket": to_wire(r.ticket), "finished": r.finished, "left": r.left} for r in records]
            for name, records in records_by_queue.items()
        }
    )


def load_records(text: str) -> dict[str, list[Record]]:
    """Records ``dump_records`` wrote (``--records``)."""
    return {
        name: [Record(from_wire(Ticket, item["ticket"]), item["finished"], item.get("left")) for item in items]
        for name, items in json.loads(text).items()
    }


def compare(records_by_queue: Mapping[str, Sequence[Record]], queues: Mapping[str, Queue]) -> dict[str, Any]:
    """Both estimators over every queue's tickets, and per queue."""
    per_queue = {name: replay(records, queues.get(name)) for name, records in records_by_queue.items()}
    merged: dict[str, Any] = {}
    for name in ("old", "new"):
        estimated = sum(q[name]["estimated"] for q in per_queue.values())
        within = sum(q[name]["within"] for q in per_queue.values())
        merged[name] = {
            "estimated": estimated,
            "within": within,
            "withinPercent": round(100 * within / estimated, 1) if estimated else None,
        }
    estimated = sum(q["bounds"]["estimated"] for q in per_queue.values())
    merged["bounds"] = {
        name: {
            "within": (within := sum(q["bounds"][name] for q in per_queue.values())),
            "withinPercent": round(100 * within / estimated, 1) if estimated else None,
        }
        for name in ("sliceBest", "firstPassExact", "firstPassExactRestSliceBest")
    }
    return {"all": merged, "queues": per_queue}


@click.command()
@click.option("--redis", "url", help="The run's Redis (redis:// or unix://).")
@click.option(
    "--records",
    "records_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Replay the records --save wrote instead of reading a Redis.",
)
@click.option(
    "--save", "save_file", type=click.Path(path_type=Path, dir_okay=False), help="Also write the records read here."
)
@click.option("--queues", "queues_file", type=click.Path(path_type=Path), required=True, help="The run's queue rules.")
def main(url: str | None, records_file: Path | None, save_file: Path | None, queues_file: Path) -> None:
    """Print both estimators' figures for the run's tickets, as JSON."""
    if (url is None) == (records_file is None):
        raise click.UsageError("give exactly one of --redis and --records")
    queues = load_queues(queues_file)
    if records_file is not None:
        records = load_records(records_file.read_text())
    else:
        assert url is not None
        records = {name: asyncio.run(read_records(url, name)) for name in queues}
    if save_file is not None:
        save_file.write_text(dump_records(records))
    click.echo(json.dumps(compare(records, queues), indent=1))


if __name__ == "__main__":
    main()
