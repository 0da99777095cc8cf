"""The estimated wait through an arrival spike, in virtual time: the queue term beats recent waits.

A queue of 8-player matches is served at most 8 players a second (the fleet's room), players
arrive at 4 a second, then 15 a second for 20 s (a raid), then 4 again: the queue grows during the
spike and drains after it. Each pass publishes the summary as a director does (``publish``, through
the stored text) and each arrival is estimated as a frontend does, both the old way (recent time
to match alone) and ``expected_remaining``; each is judged, as the load test judges it, by the
share of matched tickets whose estimate at creation was within +-25 % of the wait that followed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from matchmaker.estimate import decode_summary, depths_of, estimate, expected_remaining, publish, remaining

KEYS = ("-|-", "-|*", "*|*")
NEEDED = 8
TICK = 0.5
TOLERANCE = 0.25


@dataclass
class Outcome:
    old: float
    new: float
    tickets: int


def arrivals(phases: list[tuple[float, float]], rng: random.Random) -> list[float]:
    """Poisson arrival times: (players per second, seconds) per phase."""
    times: list[float] = []
    start = 0.0
    for rate, seconds in phases:
        at = start
        while (at := at + rng.expovariate(rate)) < start + seconds:
            times.append(at)
        start += seconds
    return times


def simulate(phases: list[tuple[float, float]], capacity: float, seed: int) -> Outcome:
    """Share of tickets within the tolerance, old estimator and new, over one simulated queue."""
    times = arrivals(phases, random.Random(seed))
    stored: dict[str, str] = {}  # the Redis hash, as text
    waiting: list[tuple[float, int]] = []
    estimates: dict[int, tuple[float | None, float | None]] = {}
    errors: list[tuple[float, float]] = []
    room, now, i = 0.0, 0.0, 0
    while now < times[-1] + 120:
        now += TICK
        summary = decode_summary(stored)
        while i < len(times) and times[i] <= now:
            at = times[i]
            old = remaining(estimate(summary.waits, KEYS, at), 0.0)
            new = expected_remaining(summary, KEYS, size=1, needed=NEEDED, enqueued_at=at, now=at)
            estimates[i] = (old, new)
            waiting.append((at, i))
            i += 1
        room = min(room + capacity * TICK, 2 * NEEDED)
        matched = []
        while len(waiting) >= NEEDED and room >= NEEDED:
            room -= NEEDED
            batch, waiting = waiting[:NEEDED], waiting[NEEDED:]
            for at, ticket in batch:
                matched.append((KEYS, now - at, 1))
                old, new = estimates.pop(ticket)
                if old is not None and new is not None:
                    truth = now - at
                    errors.append(((old - truth) / truth, (new - truth) / truth))
        stored.update(publish(summary, matched, depths_of(((KEYS, 1, at) for at, _ in waiting), now), now))

    def share(values: list[float]) -> float:
        return sum(1 for e in values if abs(e) <= TOLERANCE) / len(values)

    return Outcome(share([o for o, _ in errors]), share([n for _, n in errors]), len(errors))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_through_a_spike_the_queue_term_beats_recent_waits(seed: int) -> None:
    outcome = simulate([(4, 60), (15, 20), (4, 60)], capacity=8, seed=seed)
    assert outcome.tickets > 500
    assert outcome.new >= outcome.old + 0.3, outcome


def test_a_steady_queue_is_estimated_no_worse() -> None:
    outcome = simulate([(4, 140)], capacity=8, seed=4)
    assert outcome.new >= outcome.old, outcome
