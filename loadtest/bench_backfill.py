"""Benchmark: what backfill adds to a director pass, next to the pass's own match function.

Run ``python -m loadtest.bench_backfill``; it prints one JSON document. On the seeded pools of
``loadtest.bench_match`` (queue ``bench-4v4``, in enqueue order as the store returns them), open
backfills of two slots each (one per team) on matches of random skill (N(1500, 300)) and region:
seconds of one ``plan_fills`` call (the fill decision a pass makes before matching), beside the same
run's ``find_matches`` tick on the same pool and a sort of the pool by enqueue time (the machines are
shared and noisy: compare ratios, not absolute numbers across runs).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from functools import partial
from operator import attrgetter
from typing import Any, TypeVar

from loadtest.bench_match import NOW, QUEUES, REGIONS, machine, make_pool
from matchmaker.app import matchers
from matchmaker.backfill import Backfill, MatchProfile, Opening, plan_fills
from matchmaker.director import run_match

T = TypeVar("T")
QUEUE = QUEUES["bench-4v4"]


def _median_seconds(repeat: int, call: Callable[[], T]) -> tuple[float, T]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    assert result is not None
    return statistics.median(times), result


def openings(count: int, seed: int = 11) -> list[Opening]:
    rng = random.Random(seed)
    return [
        Opening(
            Backfill(f"bench-4v4.bf{i}", QUEUE.name, f"m{i}", f"gs-{i}", (1, 1), NOW - rng.uniform(0, 30)),
            frozenset(f"in-{i}-{k}" for k in range(6)),
            MatchProfile(rng.choice(REGIONS), {"skill": round(rng.gauss(1500, 300), 1)}),
        )
        for i in range(count)
    ]


def bench(
    sizes: tuple[int, ...] = (10_000, 100_000), counts: tuple[int, ...] = (10, 100), repeat: int = 3
) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": machine()}
    match = matchers({QUEUE.name: QUEUE})[QUEUE.name]
    for size in sizes:
        pool = sorted(make_pool(QUEUE, size), key=attrgetter("enqueued_at"))
        sort_seconds, _ = _median_seconds(repeat, partial(sorted, pool, key=attrgetter("enqueued_at")))
        tick_seconds, _ = _median_seconds(repeat, partial(run_match, match, pool, NOW))
        for count in counts:
            seconds, fills = _median_seconds(repeat, partial(plan_fills, openings(count), pool, QUEUE, NOW))
            report[f"backfill_{count}_open_{size // 1000}k"] = {
                "tickets": size,
                "open_backfills": count,
                "plan_fills_seconds": round(seconds, 5),
                "baseline_match_tick_seconds": round(tick_seconds, 4),
                "baseline_sort_by_enqueue_seconds": round(sort_seconds, 4),
                "share_of_match_tick": round(seconds / tick_seconds, 4),
                "backfills_filled": len(fills),
                "players_added": sum(t.size for f in fills for t in pool if t.id in set(f.ticket_ids)),
            }
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per figure, median reported (default 3)")
    args = parser.parse_args(argv)
    print(json.dumps(bench(repeat=args.repeat), indent=2))


if __name__ == "__main__":
    main()
