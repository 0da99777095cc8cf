"""Benchmark: seconds per tick of the pure match function on large pools, next to a plain sort.

Run ``python -m loadtest.bench_match``; it prints one JSON document. Pools are random but seeded
(the same pool every run): skill ~ N(1500, 300) per player, parties of 1-4 players (60/20/10/10 %)
for 4v4 and solos for 1v1, latencies to three regions drawn per player (20-200 ms, one region
usually near), enqueue times spread over the last 60 s. One tick is one call of the queue's matcher
on the whole pool, as a director makes it (``matchmaker.director.run_match``: with the cyclic garbage
collector paused). Beside each figure, in the same run: sorting the same pool by enqueue time (the
least any matcher does), because the machines are shared and noisy: compare ratios, not absolute
numbers across runs.

A director's matcher (``matchmaker.matching.QueueMatcher``) keeps each ticket's derived rule values
between ticks, so each pool is timed four ways: ``seconds_per_tick`` is a **cold** tick (a fresh
matcher: every ticket derived, the first tick after a start; shuffled pool, as in earlier runs);
``warm_seconds_per_tick`` the same pool again (nothing was claimed: a fleet without room);
``churn_seconds_per_tick`` a tick after 10 % of the pool was replaced by new tickets; and
``previous_seconds_per_tick`` the matcher of ``PREVIOUS`` (the last commit before the cache, read
from git) on the same pool. ``compiled_loop`` says whether the matcher's inner loop ran in C
(``matchmaker/_matchloop.c``); if so ``python_loop_warm_seconds_per_tick`` is the same warm tick
with it in Python (``same_proposals_as_python_loop``: the very same matches). The warm, churn and
previous ticks see the pool in the store's order (by enqueue time, as ``RedisTicketStore.pool``
returns it); ``previous_cold_seconds_per_tick`` is
the previous matcher on the shuffled pool of the cold tick. ``same_proposals_as_previous`` says
whether both made exactly the same matches; the quality figures (skill spread, worst latency, wait)
are the new matcher's. ``leftover`` is a second tick on what the first left unmatched: the steady
state of a queue whose remaining tickets mostly cannot match yet.

The headline keys ``match_seconds_per_tick_10k`` / ``_100k`` are the slower of the two queues'
cold ticks (goal: at most 1 s at 100,000), ``match_warm_seconds_per_tick_100k`` the slower warm
tick (goal: at most 0.5 s), ``match_new_rules_warm_seconds_per_tick_100k`` the slowest warm tick
with roles, ratings or blocks (goal: at most 1 s). Each measurement is a function returning a dict;
``main()`` merges them, so later parts are one more function and one more line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable, Sequence
from functools import partial
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar

from matchmaker import matching
from matchmaker.app import matchers
from matchmaker.composition import assign_roles
from matchmaker.director import Matcher, run_match
from matchmaker.models import Player, Proposal, Ticket
from matchmaker.rules import Queue, parse_queues

T = TypeVar("T")
NOW = 1_800_000_000.0
REGIONS = ("eu-west", "us-east", "ap-south")
PREVIOUS = "6b8f1bbe3b75ed4f7b8f0b6a4d6639e6273e7355"
"""The last commit whose matcher derived every ticket on every tick: the same-run baseline of the
cache (``previous_seconds_per_tick``), read with ``git show`` from this checkout."""
CHURN = 0.1
"""Share of the pool replaced by new tickets between the two ticks of ``churn_seconds_per_tick``."""

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


COMPOSITION_QUEUES = parse_queues(
    """\
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: bench-25x4}
spec:
  teams: {count: 25, maxSize: 4}
  rules:
    - {name: skill, type: distance, attribute: skill, maxDistance: 100, widen: {perSecond: 10, max: 800}}
    - {name: ping, type: latency, maxLatencyMs: 80, widen: {perSecond: 2, max: 200}}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: bench, region: "{region}"}}]
---
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: bench-rated}
spec:
  teams: {count: 2, minSize: 2, maxSize: 4, waitForFullSeconds: 30}
  rules:
    # the 4v4 queue's skill rule on an OpenSkill mu (skill / 60: mu ~ N(25, 5)), teams by win probability
    - {name: rating, type: rating, attribute: mmr, maxDistance: 1.7, widen: {perSecond: 0.17, max: 13}}
    - {name: ping, type: latency, maxLatencyMs: 80, widen: {perSecond: 2, max: 200}}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: bench, region: "{region}"}}]
---
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: bench-roles}
spec:
  teams: {count: 2, roles: {tank: 1, healer: 1, dps: 3}, minSize: 4, waitForFullSeconds: 30}
  rules:
    - {name: skill, type: distance, attribute: skill, maxDistance: 100, widen: {perSecond: 10, max: 800}}
    - {name: ping, type: latency, maxLatencyMs: 80, widen: {perSecond: 2, max: 200}}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: bench, region: "{region}"}}]
""",
    "bench_match.py",
)
ROLE_OFFERS = (
    (("tank",), 15),
    (("healer",), 15),
    (("dps",), 45),
    (("tank", "dps"), 10),
    (("healer", "dps"), 10),
    ((), 5),
)
"""Roles a player offers, with weights (percent): dps-heavy, as in most games."""


def make_pool(queue: Queue, size: int, seed: int = 7, *, blocking: float = 0.0, prefix: str = "") -> list[Ticket]:
    """``size`` random tickets for ``queue`` (parties only where the queue's teams can hold them;
    roles where the queue has them; a rating (skill / 60) where the queue rates; ``blocking``: the
    share of tickets that block 3 random players; ``prefix`` starts every ticket and player id)."""
    rng = random.Random(seed)
    rating = queue.spec.rating_rule
    has_roles = queue.spec.teams.has_roles
    offers, weights = zip(*ROLE_OFFERS, strict=True)
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
            roles = rng.choices(offers, weights)[0] if has_roles else ()
            skill = round(rng.gauss(1500, 300), 1)
            attributes = (
                {"skill": skill} if rating is None else {"skill": skill, rating.attribute: round(skill / 60, 3)}
            )
            players.append(Player(f"{prefix}p{i}-{j}", attributes, latencies, roles))
        if has_roles and assign_roles([p.roles for p in players], queue.spec.teams.roles) is None:
            players = [Player(p.id, p.attributes, p.latencies) for p in players]  # a party that fits no slots: any role
        enqueued = NOW - rng.uniform(0, 60)
        blocking_now = blocking and rng.random() < blocking  # no draw without blocks: the same pools as before
        blocks = tuple(f"{prefix}p{rng.randrange(size)}-0" for _ in range(3)) if blocking_now else ()
        blocks = tuple(b for b in dict.fromkeys(blocks) if b not in {p.id for p in players})
        pool.append(
            Ticket(
                f"{queue.name}.{prefix}{i:026d}",
                queue.name,
                f"{prefix}p{i}-0",
                tuple(players),
                enqueued_at=enqueued,
                blocked_players=blocks,
            )
        )
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


def previous_function() -> Callable[[Sequence[Ticket], Queue, float], list[Proposal]] | None:
    """``find_matches`` as of ``PREVIOUS``, read from git; None without git or that commit."""
    root = Path(__file__).resolve().parent.parent
    try:
        source = subprocess.run(
            ["git", "show", f"{PREVIOUS}:matchmaker/matching.py"], cwd=root, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("matchmaker_previous_matching")
    exec(compile(source, f"{PREVIOUS[:7]}:matchmaker/matching.py", "exec"), module.__dict__)
    function: Callable[[Sequence[Ticket], Queue, float], list[Proposal]] = module.find_matches
    return function


def _bind(function: Callable[[Sequence[Ticket], Queue, float], list[Proposal]], queue: Queue) -> Matcher:
    def match(pool: Sequence[Ticket], now: float) -> list[Proposal]:
        return function(pool, queue, now)

    return match


def _matcher(queue: Queue) -> Matcher:
    """A fresh matcher for ``queue``, as the directors get it (``QueueMatcher`` for the default)."""
    return matchers({queue.name: queue})[queue.name]


def store_order(pool: list[Ticket]) -> list[Ticket]:
    """The pool as ``RedisTicketStore.pool`` returns it: by enqueue time (the score), then id."""
    return sorted(pool, key=lambda t: (t.enqueued_at, t.id))


def _churned(queue: Queue, pool: list[Ticket], blocking: float) -> list[Ticket]:
    """``pool`` with ``CHURN`` of its tickets (seeded pick) replaced by as many new ones."""
    rng = random.Random(11)
    gone = set(rng.sample(range(len(pool)), int(len(pool) * CHURN)))
    new = make_pool(queue, len(gone), seed=8, blocking=blocking, prefix="n")
    return store_order([t for i, t in enumerate(pool) if i not in gone] + new)


def _warm_figures(
    queue: Queue, pool: list[Ticket], repeat: int, blocking: float
) -> tuple[dict[str, Any], list[Proposal]]:
    """Warm and churn ticks of a primed matcher, and the previous matcher, on ``pool`` in store order."""
    ordered = store_order(pool)
    matcher = _matcher(queue)
    run_match(matcher, ordered, NOW)  # the tick before: every ticket derived
    warm_seconds, warm = _timed(repeat, partial(run_match, matcher, ordered, NOW))
    churned = _churned(queue, ordered, blocking)

    def churn_tick() -> float:
        run_match(matcher, ordered, NOW)  # untimed: back to the tick before
        start = time.perf_counter()
        run_match(matcher, churned, NOW)
        return time.perf_counter() - start

    churn_seconds = statistics.median(churn_tick() for _ in range(repeat))
    figures: dict[str, Any] = {
        "warm_seconds_per_tick": round(warm_seconds, 4),
        "churn_seconds_per_tick": round(churn_seconds, 4),
        "compiled_loop": matching.COMPILED,
    }
    if matching.COMPILED:  # the same matcher with its inner loop in Python: what the C loop saves
        matching.COMPILED = False
        try:
            python = _matcher(queue)
            run_match(python, ordered, NOW)
            python_seconds, in_python = _timed(repeat, partial(run_match, python, ordered, NOW))
        finally:
            matching.COMPILED = True
        figures["python_loop_warm_seconds_per_tick"] = round(python_seconds, 4)
        figures["same_proposals_as_python_loop"] = in_python == warm
    previous = previous_function()
    if previous is None:
        figures["previous_seconds_per_tick"] = None  # no git here: compare with an earlier run instead
        return figures, warm
    previous_seconds, before = _timed(repeat, partial(run_match, _bind(previous, queue), ordered, NOW))
    figures["previous_seconds_per_tick"] = round(previous_seconds, 4)
    figures["warm_ratio_to_previous"] = round(warm_seconds / previous_seconds, 2)
    figures["same_proposals_as_previous"] = before == warm
    return figures, warm


def _tick_figures(queue: Queue, size: int, repeat: int, *, blocking: float = 0.0, warm: bool = True) -> dict[str, Any]:
    """One queue, one pool size: a cold tick on the fresh pool (a fresh matcher each time), the warm
    figures (``warm``), and a second tick on what the first left."""
    pool = make_pool(queue, size, blocking=blocking)
    sort_seconds, _ = _timed(repeat, partial(sorted, pool, key=attrgetter("enqueued_at")))
    seconds, proposals = _timed(repeat, lambda: run_match(_matcher(queue), pool, NOW))
    matched = {t for p in proposals for t in p.ticket_ids}
    leftover = [t for t in pool if t.id not in matched]
    after = _matcher(queue)
    run_match(after, pool, NOW)  # the first tick: the leftover tickets are known
    left_seconds, left_proposals = _timed(repeat, partial(run_match, after, leftover, NOW))
    sizes = {t.id: t.size for t in pool}
    players = [sum(sizes[t] for t in p.ticket_ids) for p in proposals]
    figures = {
        "tickets": size,
        "seconds_per_tick": round(seconds, 4),
        "baseline_sort_by_enqueue_seconds": round(sort_seconds, 4),
        "ratio_to_sort": round(seconds / sort_seconds, 1),
    }
    if warm:
        previous = previous_function()
        if previous is not None:
            cold_before, _ = _timed(repeat, partial(run_match, _bind(previous, queue), pool, NOW))
            figures["previous_cold_seconds_per_tick"] = round(cold_before, 4)
            figures["cold_ratio_to_previous"] = round(seconds / cold_before, 2)
        more, again = _warm_figures(queue, pool, repeat, blocking)
        figures.update(more)
        assert again == proposals, "the pool's order or a cache changed the matches"
    return {
        **figures,
        "matches": len(proposals),
        "full_matches": sum(1 for n in players if n == queue.players_needed),
        "tickets_matched": len(matched),
        **_quality(proposals),
        "leftover_tickets": len(leftover),
        "leftover_seconds_per_tick": round(left_seconds, 4),
        "leftover_matches": len(left_proposals),
    }


def _quality(proposals: list[Proposal]) -> dict[str, Any]:
    """Mean match quality: what a change of the chosen matches would show."""
    if not proposals:
        return {}
    latencies = [p.quality.worst_latency_ms for p in proposals if p.quality.worst_latency_ms is not None]
    draws = [p.quality.draw_probability for p in proposals if p.quality.draw_probability is not None]
    out = {
        "mean_skill_spread": round(statistics.fmean(p.quality.skill_spread for p in proposals), 1),
        "mean_worst_latency_ms": round(statistics.fmean(latencies), 1) if latencies else None,
        "mean_longest_wait_seconds": round(statistics.fmean(p.quality.longest_wait_seconds for p in proposals), 2),
    }
    if draws:
        out["mean_draw_probability"] = round(statistics.fmean(draws), 3)
    return out


def bench_match_function(sizes: tuple[int, ...] = (10_000, 100_000), repeat: int = 3) -> dict[str, Any]:
    """(a) the matcher on fresh pools of each size, per queue, beside a sort of the same pool, and
    its warm ticks beside the previous matcher's."""
    report: dict[str, Any] = {}
    for size in sizes:
        label = f"{size // 1000}k"
        slowest = warmest = previous = 0.0
        for queue in QUEUES.values():
            figures = _tick_figures(queue, size, repeat)
            report[f"match_{queue.name.removeprefix('bench-')}_{label}"] = figures
            slowest = max(slowest, figures["seconds_per_tick"], figures["leftover_seconds_per_tick"])
            warmest = max(warmest, figures["warm_seconds_per_tick"])
            previous = max(previous, figures["previous_seconds_per_tick"] or 0.0)
        report[f"match_seconds_per_tick_{label}"] = slowest
        report[f"match_warm_seconds_per_tick_{label}"] = warmest
        report[f"match_previous_seconds_per_tick_{label}"] = previous or None
    return report


def bench_composition(size: int = 10_000, repeat: int = 3) -> dict[str, Any]:
    """(a') the features of issue 15 at ``size`` tickets: a battle royale (25 teams of 4), teams with
    role slots, a rating queue, and the 4v4 queue with 10 % of tickets blocking 3 random players
    each. Not part of the first headline: the rows above are the queues that use none of them."""
    label = f"{size // 1000}k"
    report = {
        f"match_{queue.name.removeprefix('bench-')}_{label}": _tick_figures(queue, size, repeat, warm=False)
        for queue in COMPOSITION_QUEUES.values()
    }
    report[f"match_4v4_blocks_{label}"] = _tick_figures(QUEUES["bench-4v4"], size, repeat, blocking=0.1, warm=False)
    return report


def bench_new_rules(size: int = 100_000, repeat: int = 3) -> dict[str, Any]:
    """(a'') "the new rules enabled" at ``size``: roles, a rating rule, blocks; the headline is the
    slowest warm tick of the three (goal: at most 1 s at 100,000)."""
    label = f"{size // 1000}k"
    cases = {
        "roles": (COMPOSITION_QUEUES["bench-roles"], 0.0),
        "rated": (COMPOSITION_QUEUES["bench-rated"], 0.0),
        "4v4_blocks": (QUEUES["bench-4v4"], 0.1),
    }
    report: dict[str, Any] = {}
    warmest = 0.0
    for name, (queue, blocking) in cases.items():
        figures = _tick_figures(queue, size, repeat, blocking=blocking)
        report[f"match_new_rules_{name}_{label}"] = figures
        warmest = max(warmest, figures["warm_seconds_per_tick"])
    report[f"match_new_rules_warm_seconds_per_tick_{label}"] = warmest
    return report


# -- (b) ticket creates through HTTP, (c) time to match ---------------------------------------

SERVICE_QUEUES = """\
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: duel}
spec:
  teams: {count: 2, maxSize: 1}
  ticketTTLSeconds: 600
  tickSeconds: 0.5
  rules:
    - {name: skill, type: distance, attribute: skill, maxDistance: 100}
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: bench}}]
"""
SECRET = "bench-player-token-secret-0123456789"
ALLOCATOR_TOKEN = "bench-allocator-token-0123456789"


def _create_payloads(url: str, count: int, start: int = 0) -> list[bytes]:
    """One ticket per player (each with its own token), all compatible: the duel queue's skill rule."""
    from loadtest.httpload import post
    from matchmaker.auth import mint_player_token

    now = time.time()
    payloads = []
    for i in range(start, start + count):
        player = f"bench-{i}"
        body = {"queue": "duel", "players": [{"id": player, "attributes": {"skill": 1500}}]}
        payloads.append(post(url, mint_player_token(SECRET, player, 3600, now), json.dumps(body).encode()))
    return payloads


def _load_process(url: str, payload_file: str, seconds: float, concurrency: int, rate: float | None) -> list[str]:
    argv = [sys.executable, "-m", "loadtest.bench_match", "--load", url, "--payloads", payload_file]
    argv += ["--seconds", str(seconds), "--concurrency", str(concurrency)] + (["--rate", str(rate)] if rate else [])
    return argv


async def _run_load(
    url: str, payloads: list[bytes], tmp: str, seconds: float, concurrency: int, rate: float | None = None
) -> dict[str, Any]:
    import pickle
    from pathlib import Path

    path = os.path.join(tmp, f"payloads-{time.monotonic_ns()}.pickle")
    await asyncio.to_thread(Path(path).write_bytes, pickle.dumps(payloads))
    proc = await asyncio.create_subprocess_exec(
        *_load_process(url, path, seconds, concurrency, rate), stdout=asyncio.subprocess.PIPE
    )
    out_bytes, _ = await proc.communicate()
    result: dict[str, Any] = json.loads(out_bytes)
    return result


async def bench_service(seconds: float = 2.0, steady_seconds: float = 5.0, rate: float = 1000.0) -> dict[str, Any]:
    """(b) ticket creates per second into Redis through one frontend process, beside the trivial
    aiohttp JSON handler; (c) time to match at a steady ``rate`` of tickets with servers free."""
    import tempfile
    from pathlib import Path

    from fleetmatch.backends.redis.client import connect
    from fleetmatch.backends.redis.embedded import EmbeddedRedis, free_port
    from loadtest.bench_allocate import cpu_seconds, populate, start, stop, wait_http
    from matchmaker.tickets import RedisTicketStore

    report: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="fleetmatch-bench-") as tmp,
        EmbeddedRedis(Path(tmp), persist=False) as redis,
    ):
        queues = Path(tmp) / "queues.yaml"
        queues.write_text(SERVICE_QUEUES)
        matchmaker_port, allocator_port, baseline_port = free_port(), free_port(), free_port()
        env = {
            **os.environ,
            "REDIS_URL": redis.url,
            "FLEETMATCH_DATA_DIR": tmp,
            "FLEETMATCH_PLAYER_TOKEN_SECRET": SECRET,
            "FLEETMATCH_ALLOCATOR_TOKEN": ALLOCATOR_TOKEN,
            "FLEETMATCH_ALLOCATOR_URL": f"http://127.0.0.1:{allocator_port}",
            "FLEETMATCH_METRICS_PORT": "0",
            "FLEETMATCH_LOG_LEVEL": "WARNING",
        }
        procs = []
        try:
            # (b) the create path alone: no directors, so the pool only grows.
            baseline = await start(
                [sys.executable, "-m", "loadtest.bench_allocate", "--serve-baseline", str(baseline_port)], env
            )
            procs.append(baseline)
            frontend = await start(
                [
                    sys.executable,
                    "-m",
                    "fleetmatch",
                    "matchmaker",
                    "--no-directors",
                    "--queues",
                    str(queues),
                    "--port",
                    str(matchmaker_port),
                ],
                env,
            )
            procs.append(frontend)
            url = f"http://127.0.0.1:{matchmaker_port}/v1/tickets"
            base_url = f"http://127.0.0.1:{baseline_port}/v1/allocations"  # the trivial handler's one route
            await wait_http(f"http://127.0.0.1:{matchmaker_port}/healthz")
            await wait_http(base_url)
            budget = int(seconds * 20_000)
            await _run_load(url, _create_payloads(url, 2000, start=10_000_000), tmp, 0.3, 64)  # warm-up
            payloads = _create_payloads(url, budget)
            cpu_before = cpu_seconds(frontend.pid)
            creates = await _run_load(url, payloads, tmp, seconds, 64)
            if creates["ok"]:
                creates["server_cpu_us_per_request"] = round(
                    1e6 * (cpu_seconds(frontend.pid) - cpu_before) / creates["ok"], 1
                )
            payloads = _create_payloads(base_url, budget)
            cpu_before = cpu_seconds(baseline.pid)
            baseline_run = await _run_load(base_url, payloads, tmp, seconds, 64)
            if baseline_run["ok"]:
                used = cpu_seconds(baseline.pid) - cpu_before
                baseline_run["server_cpu_us_per_request"] = round(1e6 * used / baseline_run["ok"], 1)
            report["ticket_creates"] = creates
            report["ticket_creates_per_second"] = creates["ok_per_second"]
            report["baseline"] = baseline_run
            report["baseline_requests_per_second"] = baseline_run["ok_per_second"]
            report["frontend_cpu_us_per_create"] = creates.get("server_cpu_us_per_request")
            report["baseline_cpu_us_per_request"] = baseline_run.get("server_cpu_us_per_request")
            await stop(frontend)
            procs.remove(frontend)

            # (c) the whole path: tickets at a steady rate, an allocator with plenty of Ready servers,
            # the matchmaker with its director; time from a ticket's creation to its push.
            client = connect(redis.url, name="bench-match")
            await client.flushall()
            matches = int(rate * steady_seconds) // 2 + 500
            await populate(redis.url, "default", matches)
            procs.append(
                await start([sys.executable, "-m", "fleetmatch", "allocator", "--port", str(allocator_port)], env)
            )
            await wait_http(f"http://127.0.0.1:{allocator_port}/healthz")
            procs.append(
                await start(
                    [
                        sys.executable,
                        "-m",
                        "fleetmatch",
                        "matchmaker",
                        "--queues",
                        str(queues),
                        "--port",
                        str(matchmaker_port),
                    ],
                    env,
                )
            )
            await wait_http(f"http://127.0.0.1:{matchmaker_port}/healthz")
            store = RedisTicketStore(client)
            seen: dict[str, float] = {}
            subscribed = asyncio.Event()

            async def follow() -> None:
                async for ticket_id in store.updates("duel"):
                    if ticket_id:
                        seen.setdefault(ticket_id, time.time())
                    else:
                        subscribed.set()

            follower = asyncio.create_task(follow())
            await subscribed.wait()
            payloads = _create_payloads(url, int(rate * steady_seconds) + 100, start=20_000_000)
            steady = await _run_load(url, payloads, tmp, steady_seconds, 64, rate=rate)
            await asyncio.sleep(2.0)  # the last tickets' match
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
            waits = []
            for ticket_id, when in seen.items():
                ticket = await store.get(ticket_id)
                if ticket.state.value == "matched":
                    waits.append(when - ticket.created_at)
            waits.sort()
            report["steady"] = {**steady, "tickets_matched": len(waits), "tick_seconds": 0.5}
            report["time_to_match_p50_ms"] = round(percentile(waits, 0.50) * 1000, 1)
            report["time_to_match_p99_ms"] = round(percentile(waits, 0.99) * 1000, 1)
            report["time_to_match_max_ms"] = round(waits[-1] * 1000, 1) if waits else None
            await client.aclose()
        finally:
            for proc in procs:
                await stop(proc)
    return report


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def machine() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per figure, median reported (default 3)")
    parser.add_argument("--only", choices=["function", "composition", "new-rules", "service"], help="run one part only")
    parser.add_argument("--sizes", help="pool sizes for the function part, comma-separated (default 10000,100000)")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--payloads", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=2.0, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load:
        import pickle

        from loadtest.httpload import load

        with open(args.payloads, "rb") as source:
            payloads = pickle.load(source)
        print(json.dumps(asyncio.run(load(args.load, payloads, args.seconds, args.concurrency, args.rate))))
        return
    report: dict[str, Any] = {"machine": machine()}
    if args.only in (None, "function"):
        sizes = tuple(int(n) for n in args.sizes.split(",")) if args.sizes else (10_000, 100_000)
        report.update(bench_match_function(sizes, repeat=args.repeat))
    if args.only in (None, "composition"):
        report.update(bench_composition(repeat=args.repeat))
    if args.only in (None, "new-rules"):
        report.update(bench_new_rules(repeat=args.repeat))
    if args.only in (None, "service"):
        report.update(asyncio.run(bench_service()))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
