"""``loadtest.wait_ceiling``: the share of tickets any create-time wait estimate could get right."""

from __future__ import annotations

import json
from random import Random

from click.testing import CliRunner

from loadtest.replay_waits import best_figure
from loadtest.scenario import Scenario, parse_scenario
from loadtest.wait_ceiling import Fleet, Judged, ceiling, main, recent_rate, steady_arrivals, within
from matchmaker.rules import Queue, parse_queues


def day(
    queue: str,
    rate: float,
    *,
    players: int = 60,
    session: float = 5.0,
    process: str = "poisson",
    phases: str = "",
    parties: str = "{1: 1}",
) -> Scenario:
    phases = phases or f"[{{type: constant, rate: {rate}}}]"
    return parse_scenario(f"""
apiVersion: fleetmatch.dev/v1
kind: LoadTest
metadata: {{name: tiny}}
spec:
  players: {players}
  durationSeconds: 120
  hardStopSeconds: 200
  matchTimeoutSeconds: 60
  arrival:
    process: {process}
    phases: {phases}
  queues:
    {queue}: {{weight: 1, parties: {parties}}}
  attributes:
    skill: {{distribution: normal, mean: 1500, stddev: 100, min: 0}}
  regions:
    local: {{distribution: constant, value: 10}}
  sessionSeconds: {{distribution: constant, value: {session}}}
  clients: {{sse: 1}}
""")


QUEUES = parse_queues("""
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: duel}
spec:
  teams: {count: 2, maxSize: 1}
  tickSeconds: 0.5
  allocation: {selectors: [{matchLabels: {agones.dev/fleet: f}}]}
""")


def run(
    scenario: Scenario, queues: dict[str, Queue], fleet: Fleet, seed: int = 7, forecasts: int = 0
) -> dict[str, object]:
    return ceiling(scenario, queues, seed=seed, fleet=fleet, samples=12, futures=12, timeout=60, forecasts=forecasts)


def test_a_day_left_to_no_chance_is_always_predictable() -> None:
    # players arrive evenly and pair with anyone: every future is the day itself
    result = run(day("duel", 2.0, process="even"), QUEUES, Fleet(maximum=None))
    assert result["sampled"] == 12 and result["futuresPerTicket"] == 12
    assert result["ceilingPercent"] == result["heldOutPercent"] == 100.0


def test_a_ticket_waiting_for_the_next_player_is_not() -> None:
    # a 1v1 of anyone: a ticket alone waits for the next arrival, which a Poisson process draws
    # anywhere; the best figure is within 25 % of few of its futures
    result = run(day("duel", 0.3, players=30), QUEUES, Fleet(maximum=None))
    assert result["sampled"] == 12
    assert isinstance(result["ceilingPercent"], float) and 10 < result["ceilingPercent"] < 75
    assert isinstance(result["heldOutPercent"], float) and result["heldOutPercent"] <= result["ceilingPercent"] + 10


def test_the_same_seed_gives_the_same_day() -> None:
    scenario = day("duel", 2.0)
    assert run(scenario, QUEUES, Fleet()) == run(scenario, QUEUES, Fleet())
    assert run(scenario, QUEUES, Fleet())["base"] != run(scenario, QUEUES, Fleet(), seed=8)["base"]


def test_a_full_fleet_makes_tickets_wait_for_servers() -> None:
    # one server, 20-second matches: the queue waits for it, however fast players pair up
    scenario = day("duel", 2.0, players=20, session=20.0, process="even")
    roomy = run(scenario, QUEUES, Fleet(maximum=None))
    one = run(scenario, QUEUES, Fleet(buffer=0, minimum=1, maximum=1, initial=1))
    assert roomy["base"]["timeToMatchP95"] <= 1  # type: ignore[index]
    assert one["base"]["timeToMatchP95"] > 20  # type: ignore[index]


def test_the_servers_own_estimator_is_judged_on_the_same_day() -> None:
    result = run(day("duel", 2.0), QUEUES, Fleet())
    assert isinstance(result["serverEstimatorPercent"], float)
    assert 0 <= result["serverEstimatorPercent"] <= 100


def test_a_ticket_is_judged_by_its_futures() -> None:
    steady = Judged("q.1", 0.0, 2.0, (2.0,) * 10, 0)
    assert steady.ceiling == steady.held_out == 1.0
    split = Judged("q.2", 0.0, 2.0, (1.0, 10.0) * 5, 0)
    assert split.ceiling == 0.5  # no figure is within 25 % of both 1 and 10
    spread = Judged("q.3", 0.0, 2.0, (1.0, 1.0, 1.0, 1.0, 1.0, 9.0, 9.0, 9.0, 9.0, 9.0), 2)
    assert spread.ceiling == 0.5
    assert spread.held_out == 0.0  # chosen on the 1s, judged on the 9s
    assert Judged("q.4", 0.0, 2.0, (), 10).ceiling == 0.0


def test_the_best_figure_is_within_the_tolerance_of_the_waits_it_counts() -> None:
    count, figure = best_figure([4.0, 5.0, 6.0, 20.0])
    assert count == 3
    assert all(within(figure, w) for w in (4.0, 5.0, 6.0)) and not within(figure, 20.0)
    assert best_figure([]) == (0, 0.0)


def test_the_command_prints_json_and_refuses_bad_input_with_2() -> None:
    runner = CliRunner()
    done = runner.invoke(main, ["--samples", "3", "--futures", "2"])
    assert done.exit_code == 0, done.output
    printed = json.loads(done.output)
    assert printed["scenario"] == "launch-day" and printed["sampled"] == 3 and printed["targetPercent"] == 80
    too_many = runner.invoke(main, ["--players", "99999"])
    assert too_many.exit_code == 2 and "spec.players" in too_many.output


def test_the_recent_rate_is_the_last_ten_seconds_of_the_curve_in_tickets() -> None:
    assert recent_rate(day("duel", 2.0), 30.0) == 2.0
    assert recent_rate(day("duel", 2.0), 4.0) == 2.0  # fewer than ten seconds yet: those there were
    assert recent_rate(day("duel", 2.0), 0.0) == 0.0
    ramp = day("4v4", 0.0, players=500, phases="[{type: ramp, from: 1, to: 4, seconds: 60}]", parties="{2: 1}")
    # players 1/s rising to 4/s over 60 s; at 60 s the last ten seconds averaged 3.75 players/s,
    # in parties of two: 1.875 tickets/s, behind the curve's 4 players/s (2 tickets/s) at that moment
    assert abs(recent_rate(ramp, 60.0) - 1.875) < 1e-9


def test_steady_arrivals_come_at_the_rate_within_the_horizon() -> None:
    scenario = day("duel", 2.0)
    coming = list(steady_arrivals(scenario, Random(3), "s0", after=10.0, rate=2.0, horizon=100.0))
    assert 150 <= len(coming) <= 250  # 200 expected; Poisson, seeded
    assert all(10.0 < a.at <= 110.0 for a in coming)
    assert [a.at for a in coming] == sorted(a.at for a in coming)
    assert len({a.ticket.id for a in coming}) == len(coming)
    assert {a.ticket.queue for a in coming} == {"duel"}
    assert list(steady_arrivals(scenario, Random(3), "s0", after=10.0, rate=0.0, horizon=100.0)) == []


def test_a_forecast_knows_the_rate_not_the_arrivals() -> None:
    # players arrive evenly: the oracle, which draws from the curve, is always right; a forecast at
    # the same rate draws Poisson arrivals and falls short. Its own random stream: asking for
    # forecasts leaves the futures, and so the ceiling, as they were
    scenario = day("duel", 2.0, process="even")
    plain = run(scenario, QUEUES, Fleet(maximum=None))
    forecast = run(scenario, QUEUES, Fleet(maximum=None), forecasts=4)
    assert plain["forecastPercent"] is None and plain["forecastsPerTicket"] == 0
    assert forecast["forecastsPerTicket"] == 4
    assert isinstance(forecast["forecastPercent"], float) and forecast["forecastPercent"] < 100.0
    assert forecast["ceilingPercent"] == plain["ceilingPercent"] == 100.0
    chancy = day("duel", 0.3, players=30)  # Poisson arrivals: every future draws from the stream

    def unforecast(result: dict[str, object]) -> dict[str, object]:
        return {k: v for k, v in result.items() if not k.startswith("forecast")}

    fleet = Fleet(maximum=None)
    assert unforecast(run(chancy, QUEUES, fleet, forecasts=3)) == unforecast(run(chancy, QUEUES, fleet))
