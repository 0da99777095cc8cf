"""Benchmark: seconds per tick of the pure match function on large pools, next to a plain sort.

Run ``python loadtest/bench_match.py``; it prints one JSON document. Pools are random but seeded
(the same pool every run): skill ~ N(1500, 300) per player, parties of 1-4 players (60/20/10/10 %)
for 4v4 and solos for 1v1, latencies to three regions drawn per player (20-200 ms, one region
usually near), enqueue times spread over the last 60 s. One tick is one ``find_matches`` call on
the whole pool, as a director makes it. Beside each figure, in the same run: sorting the same pool
by enqueue time (the least any matcher does), because the machines are shared and noisy: compare
ratios, not absolute numbers across runs. ``leftover`` is a second tick on what the first left
unmatched: the steady state of a queue whose remaining tickets mostly cannot match yet.

The headline keys ``match_seconds_per_tick_10k`` / ``_100k`` are the slower of the two queues
(goal: at most 1 s at 100,000). Each measurement is a function returning a dict; ``main()`` merges
them, so later parts are one more function and one more line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from operator import attrgetter
from typing import Any, TypeVar

from matchmaker.matching import find_matches
from matchmaker.models import Player, Ticket
from matchmaker.rules import Queue, parse_queues

T = TypeVar("T")
NOW = 1_800_000_000.0
REGIONS = ("eu-west", "us-east", "ap-south")

QUEUES = parse_queues(
    """\
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: bench-4v4}
spec:
  teams: {count: 2, minSize: 2, maxSize: 4, waitForFullSeconds: 30}
  rules:
    - {name: skill, type: distance, attribute: skill, maxDistance: 100, widen: {perSecond: 10, max: 800}}
    - {name: ping, type: latency, maxLatencyMs: 80, widen: {perSecond: 2, max: 200}}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: bench, region: "{region}"}}]
---
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: bench-1v1}
spec:
  teams: {count: 2, maxSize: 1}
  rules:
    - {name: skill, type: distance, attribute: skill, maxDistance: 100, widen: {perSecond: 10, max: 800}}
    - {name: ping, type: latency, maxLatencyMs: 80, widen: {perSecond: 2, max: 200}}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: bench, region: "{region}"}}]
""",
    "bench_match.py",
)


def make_pool(queue: Queue, size: int, seed: int = 7) -> list[Ticket]:
    """``size`` random tickets for ``queue`` (parties only where the queue's teams can hold them)."""
    rng = random.Random(seed)
    max_party = min(4, queue.spec.teams.max_size)
    pool = []
    for i in range(size):
        party = rng.choices(range(1, 5), weights=(60, 20, 10, 10))[0] if max_party > 1 else 1
        party = min(party, max_party)
        home = rng.randrange(len(REGIONS))
        players = []
        for j in range(party):
            latencies = {
                r: round(rng.uniform(15, 60) if k == home else rng.uniform(60, 200), 1) for k, r in enumerate(REGIONS)
            }
            players.append(Player(f"p{i}-{j}", {"skill": round(rng.gauss(1500, 300), 1)}, latencies))
        enqueued = NOW - rng.uniform(0, 60)
        pool.append(Ticket(f"{queue.name}.{i:026d}", queue.name, f"p{i}-0", tuple(players), enqueued_at=enqueued))
    rng.shuffle(pool)
    return pool


def _timed(repeat: int, call: Callable[[], T]) -> tuple[float, T]:
    """Median seconds of ``repeat`` calls, and the last result."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _tick_figures(queue: Queue, size: int, repeat: int) -> dict[str, Any]:
    """One queue, one pool size: a tick on the fresh pool, and a second tick on what it left."""
    pool = make_pool(queue, size)
    sort_seconds, _ = _timed(repeat, partial(sorted, pool, key=attrgetter("enqueued_at")))
    seconds, proposals = _timed(repeat, partial(find_matches, pool, queue, NOW))
    matched = {t for p in proposals for t in p.ticket_ids}
    leftover = [t for t in pool if t.id not in matched]
    left_seconds, left_proposals = _timed(repeat, partial(find_matches, leftover, queue, NOW))
    sizes = {t.id: t.size for t in pool}
    players = [sum(sizes[t] for t in p.ticket_ids) for p in proposals]
    return {
        "tickets": size,
        "seconds_per_tick": round(seconds, 4),
        "baseline_sort_by_enqueue_seconds": round(sort_seconds, 4),
        "ratio_to_sort": round(seconds / sort_seconds, 1),
        "matches": len(proposals),
        "full_matches": sum(1 for n in players if n == queue.players_needed),
        "tickets_matched": len(matched),
        "mean_skill_spread": round(statistics.fmean(p.quality.skill_spread for p in proposals), 1) if proposals else 0,
        "leftover_tickets": len(leftover),
        "leftover_seconds_per_tick": round(left_seconds, 4),
        "leftover_matches": len(left_proposals),
    }


def bench_match_function(sizes: tuple[int, ...] = (10_000, 100_000), repeat: int = 3) -> dict[str, Any]:
    """(a) ``find_matches`` on fresh pools of each size, per queue, beside a sort of the same pool."""
    report: dict[str, Any] = {}
    for size in sizes:
        label = f"{size // 1000}k"
        slowest = 0.0
        for queue in QUEUES.values():
            figures = _tick_figures(queue, size, repeat)
            report[f"match_{queue.name.removeprefix('bench-')}_{label}"] = figures
            slowest = max(slowest, figures["seconds_per_tick"], figures["leftover_seconds_per_tick"])
        report[f"match_seconds_per_tick_{label}"] = slowest
    return report


def machine() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per figure, median reported (default 3)")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"machine": machine()}
    report.update(bench_match_function(repeat=args.repeat))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
