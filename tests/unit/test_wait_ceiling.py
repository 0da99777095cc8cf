"""``loadtest.wait_ceiling``: the share of tickets any create-time wait estimate could get right."""

from __future__ import annotations

import json

from click.testing import CliRunner

from loadtest.replay_waits import best_figure
from loadtest.scenario import Scenario, parse_scenario
from loadtest.wait_ceiling import Fleet, Judged, ceiling, main, within
from matchmaker.rules import Queue, parse_queues


def day(queue: str, rate: float, *, players: int = 60, session: float = 5.0, process: str = "poisson") -> Scenario:
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
    phases:
      - {{type: constant, rate: {rate}}}
  queues:
    {queue}: {{weight: 1, parties: {{1: 1}}}}
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


def run(scenario: Scenario, queues: dict[str, Queue], fleet: Fleet, seed: int = 7) -> dict[str, object]:
    return ceiling(scenario, queues, seed=seed, fleet=fleet, samples=12, futures=12, timeout=60)


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
