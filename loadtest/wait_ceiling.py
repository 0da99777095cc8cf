"""How close can any wait estimate made at ticket creation come to the truth on a scenario?

The target for ``estimatedWaitSeconds`` is a share of tickets within ±25 % of the wait that
followed. Part of every wait is not decided when the ticket is created: it waits for players who
have not arrived yet, and a Poisson arrival is as likely early as late. This measures that part, so
an estimator's figure can be read against what is reachable at all, not only against the target.

It simulates the scenario's day in virtual time with the real match function
(``matchmaker.matching.find_matches``, the queues' own rules and ``tickSeconds``) and a model of the
fleet (``Fleet``: a Buffer autoscaler's ceiling, servers taking ``startup`` seconds to be Ready,
held for the match's longest session and then replaced). The first run (``base``) draws the day
from the seed as the load test does. Then, for a sample of its matched tickets, it takes the day as
it stood the moment the ticket was created (the pool, every server, the director's next pass) and
plays the rest of it ``futures`` times, each with fresh arrivals from the same curve and mix, until
the ticket is matched. The best any create-time estimate can do for that ticket is the one figure
within the tolerance of the most of its futures: an oracle that knows the pool, the rules, the fleet
and the arrival curve exactly, and still cannot know when the players it waits for will come.

The mean of that over the sampled tickets is ``ceilingPercent``. It is optimistic (the figure is
chosen on the same futures it is judged on; ``heldOutPercent`` chooses it on half and judges on the
other half) and it models the fleet, not the real processes; the base run's own time to match is
printed beside it to compare with a real run's::

    python -m loadtest.wait_ceiling --scenario loadtest/scenarios/launch-day.yaml --players 2000 --seed 15

With ``--forecasts N`` it also measures the most a *server* could forecast: for each sampled
ticket it plays the day on from the same moment N times, with arrivals at the rate of the ten
seconds before (``recent_rate``: what a server can have measured; it cannot know where the curve
goes next) instead of the curve itself, and takes the median of those waits as the estimate
(``forecastPercent``). The pool, rules and fleet are known exactly, which no frontend knows at
create time: it bounds a forecasting director from above.

Timings stay out of it: it prints shares of tickets, not durations of its own.
"""

from __future__ import annotations

import heapq
import json
import math
import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from random import Random
from typing import Any

import click

from fleetmatch.errors import ValidationError
from loadtest.collect import ESTIMATE_TARGET_PERCENT, ESTIMATE_TOLERANCE, relative_error
from loadtest.replay_waits import best_figure
from loadtest.scenario import Distribution, Scenario, load_scenario
from matchmaker.estimate import (
    Summary,
    decode_summary,
    depths_of,
    expected_remaining,
    keys_of,
    publish,
    read_again_at,
)
from matchmaker.matching import find_matches
from matchmaker.models import Ticket
from matchmaker.rules import Queue, load_queues
from matchmaker.views import SUMMARY_SECONDS

HERE = Path(__file__).resolve().parent
FORECAST_WINDOW_SECONDS = 10.0
"""How far back the forecast's arrival rate looks (``recent_rate``)."""


@dataclass(frozen=True, slots=True)
class Fleet:
    """The fleet model: ``replicas`` = allocated + ``buffer`` within [``minimum``, ``maximum``],
    looked at every ``sync`` seconds; a new server is Ready ``startup`` seconds after it is asked
    for; an allocated one is held for its match's longest session plus ``startup`` (the game exits,
    the fleet replaces it). ``maximum`` None: servers never run out."""

    buffer: int = 10
    minimum: int = 4
    maximum: int | None = 60
    sync: float = 1.0
    startup: float = 1.5
    initial: int = 10


@dataclass(slots=True)
class Arrival:
    """One ticket of the day: when it is created, and the party behind it."""

    at: float
    ticket: Ticket
    session: float


@dataclass(slots=True)
class Day:
    """The simulated state: pools by queue, servers, and what is still to come."""

    queues: Mapping[str, Queue]
    fleet: Fleet
    timeout: float
    now: float = 0.0
    pools: dict[str, dict[str, Ticket]] = field(default_factory=dict)
    sessions: dict[str, float] = field(default_factory=dict)
    ready: list[float] = field(default_factory=list)
    """When each server not allocated is (or will be) Ready, a heap."""
    busy: list[tuple[float, float, int]] = field(default_factory=list)
    """Each allocated server (a heap): when it is free again (and replaced), when it was
    allocated, and how many parties its match has."""
    next_sync: float = 0.0

    def copy(self) -> Day:
        return replace(
            self,
            pools={q: dict(p) for q, p in self.pools.items()},
            sessions=dict(self.sessions),
            ready=list(self.ready),
            busy=list(self.busy),
        )

    def redrawn(self, session: Distribution, rng: Random) -> Day:
        """A copy in which every match in progress lasts a fresh draw of its sessions, given that it
        has not ended yet: the server knows when each match began and how sessions are spread, not
        when this one will end."""
        day = self.copy()
        busy = []
        for free, started, parties in day.busy:
            for _ in range(100):
                drawn = max(max(0.0, session.sample_number(rng)) for _ in range(parties))
                if started + drawn + self.fleet.startup > self.now:
                    free = started + drawn + self.fleet.startup
                    break
            busy.append((free, started, parties))
        heapq.heapify(busy)
        day.busy = busy
        return day

    def add(self, arrival: Arrival) -> None:
        self.pools.setdefault(arrival.ticket.queue, {})[arrival.ticket.id] = arrival.ticket
        self.sessions[arrival.ticket.id] = arrival.session

    def _scale(self) -> None:
        """The autoscaler's sync: returns freed servers as Ready later, asks for the buffer."""
        fleet = self.fleet
        while self.busy and self.busy[0][0] <= self.now:
            heapq.heappop(self.busy)
            heapq.heappush(self.ready, self.now + fleet.startup)  # the replacement
        if fleet.maximum is None:
            return
        want = min(fleet.maximum, max(fleet.minimum, len(self.busy) + fleet.buffer))
        for _ in range(want - len(self.busy) - len(self.ready)):
            heapq.heappush(self.ready, self.now + fleet.startup)

    def _allocate(self) -> bool:
        if self.fleet.maximum is None:
            return True
        if not self.ready or self.ready[0] > self.now:
            return False
        heapq.heappop(self.ready)
        return True

    def tick(self) -> dict[str, tuple[Ticket, float]]:
        """One director pass of every queue at ``now``: the tickets matched, with their waits."""
        while self.now >= self.next_sync:
            self._scale()
            self.next_sync += self.fleet.sync
        matched: dict[str, tuple[Ticket, float]] = {}
        for name, queue in self.queues.items():
            pool = self.pools.get(name, {})
            for tid in [t for t, ticket in pool.items() if self.now - ticket.enqueued_at > self.timeout]:
                del pool[tid]  # the client gave up
            for proposal in find_matches(list(pool.values()), queue, self.now):
                if not self._allocate():
                    break  # no Ready server: the proposals go back to the pool, as the director's do
                session = max(self.sessions[t] for t in proposal.ticket_ids)
                heapq.heappush(self.busy, (self.now + session + self.fleet.startup, self.now, len(proposal.ticket_ids)))
                for tid in proposal.ticket_ids:
                    ticket = pool.pop(tid)
                    matched[tid] = (ticket, self.now - ticket.enqueued_at)
        return matched


def arrivals(
    scenario: Scenario, times_rng: Random, party_rng: Random, run: str, *, after: float = -1.0
) -> Iterator[Arrival]:
    """The scenario's tickets in order, drawn as the load test draws them (``loadtest.runner``);
    with ``after``, only those created later (the others are not drawn)."""
    for index, at in enumerate(scenario.arrival_times(times_rng)):
        if at > after:
            yield _arrival(scenario, party_rng, index, run, at)


def recent_rate(scenario: Scenario, at: float, window: float = FORECAST_WINDOW_SECONDS) -> float:
    """Tickets per second over the ``window`` seconds before ``at`` (fewer at the start), from the
    scenario's curve: the rate a server could have measured by then, exactly (which flatters it)."""
    start = max(0.0, at - window)
    if at <= start:
        return 0.0
    curve = scenario.spec.arrival.curve()
    players = curve.area_until(at) - curve.area_until(start)
    return players / (at - start) / scenario.spec.mix().mean_size


def steady_arrivals(
    scenario: Scenario, rng: Random, run: str, *, after: float, rate: float, horizon: float
) -> Iterator[Arrival]:
    """Tickets arriving at a constant ``rate`` per second (Poisson) from ``after`` for ``horizon``
    seconds, parties drawn as the scenario draws them: the future a server that knows only the
    recent rate would forecast."""
    at, index = after, 0
    while rate > 0:
        at += rng.expovariate(rate)
        if at > after + horizon:
            return
        yield _arrival(scenario, rng, index, run, at)
        index += 1


def _arrival(scenario: Scenario, rng: Random, index: int, run: str, at: float) -> Arrival:
    spec = scenario.party(rng, index, run)
    ticket = Ticket(
        id=f"{spec.queue}.{run}-{index}",
        queue=spec.queue,
        owner="sim",
        players=spec.players,
        created_at=at,
        enqueued_at=at,
        expires_at=math.inf,
    )
    return Arrival(at, ticket, spec.session_seconds)


Snapshot = tuple[Arrival, Day]


@dataclass(slots=True)
class Estimator:
    """The server's own estimator (``matchmaker.estimate``) run on the simulated day, as a director
    and a frontend run it: each pass publishes the summary of what it matched and the pool it left,
    each new ticket is estimated from the summary as a frontend holds it (read at most once a
    second, and again once the next pass is due: ``read_again_at``). Its figures are the same-run
    baseline the ceiling is read against."""

    queues: Mapping[str, Queue]
    stored: dict[str, dict[str, str]] = field(default_factory=dict)
    figures: dict[str, float | None] = field(default_factory=dict)
    read: dict[str, tuple[float, Summary]] = field(default_factory=dict)
    """Per queue, the summary a frontend holds and until when (``SUMMARY_SECONDS``)."""

    def _summary(self, queue: str, now: float) -> Summary:
        held = self.read.get(queue)
        if held is None or held[0] <= now:
            summary = decode_summary(self.stored.get(queue, {}))
            tick = self.queues[queue].tick_seconds
            held = self.read[queue] = (read_again_at(summary, now, ttl=SUMMARY_SECONDS, tick=tick), summary)
        return held[1]

    def arrived(self, arrival: Arrival) -> None:
        ticket = arrival.ticket
        queue = self.queues[ticket.queue]
        self.figures[ticket.id] = expected_remaining(
            self._summary(ticket.queue, arrival.at),
            keys_of(ticket, queue),
            size=ticket.size,
            needed=queue.players_needed,
            enqueued_at=ticket.enqueued_at,
            now=arrival.at,
            tick=queue.tick_seconds,
        )

    def passed(self, day: Day, matched: Mapping[str, tuple[Ticket, float]]) -> None:
        for name, queue in self.queues.items():
            stored = self.stored.setdefault(name, {})
            waiting = [(keys_of(t, queue), t.size, t.enqueued_at) for t in day.pools.get(name, {}).values()]
            done = [(keys_of(t, queue), wait, t.size) for t, wait in matched.values() if t.queue == name]
            stored.update(publish(decode_summary(stored), done, depths_of(waiting, day.now), day.now))


def play(
    day: Day,
    coming: Iterator[Arrival],
    tick: float,
    *,
    until: Ticket | None = None,
    snap: frozenset[str] = frozenset(),
    snaps: list[Snapshot] | None = None,
    estimator: Estimator | None = None,
) -> dict[str, float]:
    """Run ``day`` pass by pass (one every ``tick`` seconds from its ``now``), adding ``coming`` as
    their times pass; the waits of the tickets matched. With ``until``: stop once that ticket is
    matched or gone. Each arrival named in ``snap`` appends the day as it stood when it was created
    (before the pass to come) to ``snaps``. ``estimator`` sees every arrival and pass."""
    waits: dict[str, float] = {}
    pending = next(coming, None)
    while True:
        while pending is not None and pending.at <= day.now:
            day.add(pending)
            if estimator is not None:
                estimator.arrived(pending)
            if pending.ticket.id in snap and snaps is not None:
                snaps.append((pending, day.copy()))
            pending = next(coming, None)
        matched = day.tick()
        waits.update((tid, wait) for tid, (_, wait) in matched.items())
        if estimator is not None:
            estimator.passed(day, matched)
        if until is not None and (until.id in waits or until.id not in day.pools[until.queue]):
            return waits
        if until is None and pending is None and not any(day.pools.values()):
            return waits
        day.now += tick


def within(figure: float, wait: float) -> bool:
    """Whether ``figure`` is within the tolerance of ``wait``, as the load test judges it."""
    return abs(relative_error(figure, wait)) <= ESTIMATE_TOLERANCE


@dataclass(frozen=True, slots=True)
class Judged:
    """One sampled ticket: its wait in the base run and in each future that matched it."""

    ticket: str
    created: float
    wait: float
    futures: tuple[float, ...]
    gave_up: int
    """Futures in which it was not matched before the client's timeout."""
    forecast: float | None = None
    """The median wait of its recent-rate forecasts (None: none made, or none matched it)."""

    @property
    def ceiling(self) -> float:
        """The share of its futures the best single figure is within the tolerance of."""
        return best_figure(self.futures)[0] / len(self.futures) if self.futures else 0.0

    @property
    def held_out(self) -> float:
        """The figure chosen on the first half of the futures, judged on the second."""
        half = len(self.futures) // 2
        if half == 0:
            return 0.0
        figure = best_figure(self.futures[:half])[1]
        rest = self.futures[half:]
        return sum(within(figure, w) for w in rest) / len(rest)


def ceiling(
    scenario: Scenario,
    queues: Mapping[str, Queue],
    *,
    seed: int,
    fleet: Fleet,
    samples: int,
    futures: int,
    timeout: float,
    forecasts: int = 0,
) -> dict[str, Any]:
    """The base day and the sampled tickets' futures (module docstring), as a JSON-able report;
    with ``forecasts``, that many recent-rate forecasts per sampled ticket too."""
    tick = min(q.tick_seconds for q in queues.values())
    master = Random(seed)
    times_rng, party_rng = Random(master.getrandbits(64)), Random(master.getrandbits(64))
    base = Day(queues, fleet, timeout, ready=[0.0] * fleet.initial)
    everyone = list(arrivals(scenario, times_rng, party_rng, "base"))
    estimator = Estimator(queues)
    waits = play(base.copy(), iter(everyone), tick, estimator=estimator)
    matched = [a for a in everyone if a.ticket.id in waits]
    # evenly through the day, as the load test judges every ticket: a busy minute weighs more
    chosen = frozenset(matched[i * len(matched) // samples].ticket.id for i in range(min(samples, len(matched))))
    snaps: list[Snapshot] = []
    play(base.copy(), iter(everyone), tick, snap=chosen, snaps=snaps)
    judged = []
    forecaster = Random(f"{seed}-forecast")  # its own stream: the futures are the same with or without
    for arrival, day in snaps:
        seen, gave_up = [], 0
        for k in range(futures):
            rng = Random(master.getrandbits(64))
            fresh = arrivals(
                scenario, Random(rng.getrandbits(64)), Random(rng.getrandbits(64)), f"f{k}", after=arrival.at
            )
            now = day.redrawn(scenario.spec.session_seconds, rng)
            got = play(now, fresh, tick, until=arrival.ticket)
            if arrival.ticket.id in got:
                seen.append(got[arrival.ticket.id])
            else:
                gave_up += 1
        forecast = _forecast(scenario, day, arrival, forecaster, forecasts, tick, timeout)
        judged.append(Judged(arrival.ticket.id, arrival.at, waits[arrival.ticket.id], tuple(seen), gave_up, forecast))
    return report(scenario, fleet, seed, everyone, waits, estimator.figures, judged, forecasts)


def _forecast(
    scenario: Scenario, day: Day, arrival: Arrival, rng: Random, count: int, tick: float, timeout: float
) -> float | None:
    """The median wait of ``count`` plays of ``day`` with arrivals at the recent rate (None: none
    matched the ticket, or ``count`` is 0)."""
    rate = recent_rate(scenario, arrival.at)
    seen = []
    for k in range(count):
        coming = steady_arrivals(scenario, rng, f"s{k}", after=arrival.at, rate=rate, horizon=timeout)
        got = play(day.redrawn(scenario.spec.session_seconds, rng), coming, tick, until=arrival.ticket)
        if arrival.ticket.id in got:
            seen.append(got[arrival.ticket.id])
    return statistics.median(seen) if seen else None


def _percentile(values: Sequence[float], q: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3) if ordered else None


def report(
    scenario: Scenario,
    fleet: Fleet,
    seed: int,
    everyone: Sequence[Arrival],
    waits: Mapping[str, float],
    figures: Mapping[str, float | None],
    judged: Sequence[Judged],
    forecasts: int = 0,
) -> dict[str, Any]:
    with_futures = [j for j in judged if j.futures]

    def share(values: Sequence[float]) -> float | None:
        return round(100 * sum(values) / len(values), 1) if values else None

    def forecasted(tickets: Sequence[Judged]) -> list[float]:  # a ticket no forecast matched is a miss
        return [float(j.forecast is not None and within(j.forecast, j.wait)) for j in tickets]

    def server(ids: Sequence[str]) -> list[float]:
        return [float(within(f, waits[i])) for i in ids if (f := figures.get(i)) is not None]

    return {
        "scenario": scenario.name,
        "players": sum(a.ticket.size for a in everyone),
        "seed": seed,
        "fleet": {"buffer": fleet.buffer, "maximum": fleet.maximum, "startup": fleet.startup},
        "base": {
            "tickets": len(everyone),
            "matched": len(waits),
            "timeToMatchP50": _percentile(list(waits.values()), 0.5),
            "timeToMatchP95": _percentile(list(waits.values()), 0.95),
        },
        "sampled": len(judged),
        "futuresPerTicket": max((len(j.futures) + j.gave_up for j in judged), default=0),
        "serverEstimatorPercent": share(server(list(waits))),
        "serverEstimatorSampledPercent": share(server([j.ticket for j in with_futures])),
        "ceilingPercent": share([j.ceiling for j in with_futures]),
        "heldOutPercent": share([j.held_out for j in with_futures]),
        "forecastsPerTicket": forecasts,
        "forecastPercent": share(forecasted(with_futures)) if forecasts else None,
        "targetPercent": ESTIMATE_TARGET_PERCENT,
        "tolerancePercent": round(100 * ESTIMATE_TOLERANCE),
    }


@click.command()
@click.option(
    "--scenario",
    "scenario_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=HERE / "scenarios" / "launch-day.yaml",
    show_default=True,
    help="The load-test scenario whose day is simulated.",
)
@click.option(
    "--players", type=click.IntRange(min=1), help="Scale the scenario to N players, as the load test's --players."
)
@click.option("--seed", type=int, default=15, show_default=True, help="The load test's seed: the same day.")
@click.option(
    "--queues",
    "queues_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=HERE.parent / "fleetmatch" / "demo" / "queues.yaml",
    show_default=True,
    help="The queue rules the stack ran.",
)
@click.option("--samples", type=click.IntRange(min=1), default=150, show_default=True, help="Tickets judged.")
@click.option("--futures", type=click.IntRange(min=2), default=40, show_default=True, help="Futures per ticket.")
@click.option(
    "--forecasts",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Recent-rate forecasts per sampled ticket (0: none): what a forecasting server could get.",
)
@click.option(
    "--max-servers",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="The autoscaler's maxReplicas (launch-day-fleet.yaml's).",
)
@click.option("--buffer", type=click.IntRange(min=0), default=10, show_default=True, help="Its bufferSize.")
@click.option("--unlimited", is_flag=True, help="A fleet that never runs out of servers.")
def main(
    scenario_file: Path,
    players: int | None,
    seed: int,
    queues_file: Path,
    samples: int,
    futures: int,
    forecasts: int,
    max_servers: int,
    buffer: int,
    unlimited: bool,
) -> None:
    """Print, as JSON, the share of tickets the best create-time estimate could get within ±25 %."""
    try:
        scenario = load_scenario(scenario_file)
        if players is not None:
            scenario = scenario.with_players(players)
        queues = load_queues(queues_file)
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from None
    fleet = Fleet(buffer=buffer, maximum=None if unlimited else max_servers)
    result = ceiling(
        scenario,
        queues,
        seed=seed,
        fleet=fleet,
        samples=samples,
        futures=futures,
        timeout=scenario.spec.match_timeout_seconds,
        forecasts=forecasts,
    )
    click.echo(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
