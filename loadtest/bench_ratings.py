"""Benchmark: rating a 10-player (5v5) match, next to baselines measured in the same run.

Run ``python -m loadtest.bench_ratings`` (or ``make bench``); it prints one JSON document (a few
seconds). Figures, each p50/p99 over ``--runs`` calls, in milliseconds:

- ``rating_update_10_players_ms``: what ``POST /v1/matches/{id}/result`` computes: the body parsed
  against the match (``matchmaker.ratings.parse_result``) and every player's new rating
  (``Outcome.rated``: OpenSkill Plackett-Luce); the goal is under 1 ms.
- ``baseline_openskill_rate_ms``: openskill's own ``PlackettLuce.rate`` on ratings built beforehand:
  the floor this module wraps.
- ``baseline_dict_copy_10_players_ms``: a copy of a dict of 10 players' ratings: the cost of
  touching the data at all.
- ``rating_apply_10_players_redis_ms``: the whole store step (``RedisRatingStore.apply``: read the
  ratings, compute, the Lua script writing ratings and the once-per-match marker), each call a new
  match, beside ``baseline_redis_ping_ms`` (one round trip on the same client). A private embedded
  Redis unless ``REDIS_URL`` is set (then only throw-away keys, deleted afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from openskill.models import PlackettLuce

from fleetmatch.backends.redis.client import connect
from fleetmatch.backends.redis.embedded import EmbeddedRedis
from fleetmatch.settings import Settings
from matchmaker.ratings import Rating, parse_result
from matchmaker.ratingstore import RatingKeys, RedisRatingStore

TEAMS = (tuple(f"a{i}" for i in range(5)), tuple(f"b{i}" for i in range(5)))
BODY = {"teams": [{"rank": 2}, {"rank": 1}]}
BEFORE = {p: Rating(20.0 + i, 3.0 + i / 10) for i, p in enumerate(TEAMS[0] + TEAMS[1])}


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": round(ordered[len(ordered) // 2] * 1000, 4),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 4),
        "runs": len(ordered),
    }


def _timed(runs: int, step: Callable[[], object]) -> dict[str, float]:
    for _ in range(min(100, runs)):  # warm up
        step()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    return _percentiles(samples)


async def _timed_async(runs: int, step: Callable[[], Awaitable[object]]) -> dict[str, float]:
    for _ in range(min(50, runs)):
        await step()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await step()
        samples.append(time.perf_counter() - start)
    return _percentiles(samples)


def pure(runs: int) -> dict[str, Any]:
    def update() -> object:
        return parse_result(BODY, TEAMS).rated(BEFORE)

    model = PlackettLuce()
    teams = [[model.rating(mu=BEFORE[p].mu, sigma=BEFORE[p].sigma) for p in team] for team in TEAMS]

    def raw() -> object:
        return model.rate(teams, ranks=[2, 1])

    return {
        "rating_update_10_players_ms": _timed(runs, update),
        "baseline_openskill_rate_ms": _timed(runs, raw),
        "baseline_dict_copy_10_players_ms": _timed(runs, lambda: dict(BEFORE)),
    }


async def redis_figures(url: str, runs: int) -> dict[str, Any]:
    client = connect(url, name="bench-ratings")
    store = RedisRatingStore(client, match_ttl=600)
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    outcome = parse_result(BODY, TEAMS)
    matches: list[str] = []
    try:
        for _ in range(runs + 50):
            match_id = uuid.uuid4().hex
            await store.record_match(queue, match_id, TEAMS)
            matches.append(match_id)
        records = iter([await store.match(m) for m in matches])

        async def apply() -> object:
            return await store.apply(next(records), outcome)

        return {
            "rating_apply_10_players_redis_ms": await _timed_async(runs, apply),
            "baseline_redis_ping_ms": await _timed_async(runs, client.ping),
        }
    finally:
        keys = [RatingKeys.match(m) for m in matches] + [RatingKeys.result(queue, m) for m in matches]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
        await client.delete(RatingKeys.ratings(queue))
        await client.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5000, help="calls per figure (default 5000)")
    parser.add_argument("--no-redis", action="store_true", help="only the pure figures")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(), **pure(args.runs)}
    if not args.no_redis:
        settings = Settings.from_env()
        runs = min(args.runs, 2000)
        if settings.redis.url:
            report.update(asyncio.run(redis_figures(settings.redis.url, runs)))
        else:
            with tempfile.TemporaryDirectory(prefix="fleetmatch-bench-") as tmp:
                server = EmbeddedRedis(Path(tmp), binary=settings.redis.server_binary, persist=False)
                with server:
                    report.update(asyncio.run(redis_figures(server.url, runs)))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
