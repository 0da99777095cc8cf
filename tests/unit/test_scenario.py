"""Load-test scenarios: the loader names field and line; schedules follow the curve within the caps;
parties follow the mix; the shipped scenarios load and fit the demo stack; targets stay local unless named."""

from __future__ import annotations

import bisect
import itertools
import math
from collections import Counter
from pathlib import Path
from random import Random

import pytest

from fleetmatch.errors import ValidationError
from fleetmatch.manifests import load_resources
from fleetmatch.models import Fleet, FleetAutoscaler
from loadtest.scenario import (
    MAX_PLAYERS,
    SCENARIOS,
    Scenario,
    check_target,
    is_loopback,
    load_scenario,
    parse_scenario,
)
from matchmaker.models import TicketRequest
from matchmaker.rules import load_queues

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
apiVersion: fleetmatch.dev/v1
kind: LoadTest
metadata:
  name: test
spec:
  players: 200
  durationSeconds: 40
  hardStopSeconds: 90
  matchTimeoutSeconds: 30
  arrival:
    phases:
      - {type: ramp, from: 2, to: 10, seconds: 20}
      - {type: constant, rate: 10}
  parties: {1: 0.7, 2: 0.2, 4: 0.1}
  queues:
    duel: {weight: 1, parties: {1: 1}}
    4v4: 2
  attributes:
    skill: {distribution: normal, mean: 1500, stddev: 200, min: 0}
    mode: {distribution: choice, values: [ranked, casual], weights: [3, 1]}
  regions:
    eu: {distribution: normal, mean: 30, stddev: 10, min: 0}
    us: {distribution: uniform, low: 80, high: 120}
  sessionSeconds: {distribution: uniform, low: 5, high: 10}
  clients: {sse: 0.6, websocket: 0.2, longpoll: 0.2}
  limits: {maxPlayers: 1000, maxRate: 50}
"""


def scenario(body: str, name: str = "t") -> Scenario:
    """A scenario from a compact spec (YAML flow style, one field per line)."""
    lines = "\n".join("  " + line for line in body.strip().splitlines())
    return parse_scenario(
        f"apiVersion: fleetmatch.dev/v1\nkind: LoadTest\nmetadata: {{name: {name}}}\nspec:\n{lines}\n"
    )


def base(arrival: str, *, extra: str = "", players: str = "", duration: str = "durationSeconds: 100") -> Scenario:
    return scenario(
        f"""
        {players}
        {duration}
        hardStopSeconds: 300
        arrival: {arrival}
        queues: {{q: {{weight: 1}}}}
        regions: {{local: {{distribution: constant, value: 5}}}}
        limits: {{maxPlayers: 100000, maxRate: 200}}
        {extra}
        """.replace("        ", "")
    )


def test_good_scenario() -> None:
    sc = parse_scenario(GOOD, "good.yaml")
    assert sc.name == "test" and sc.KIND == "LoadTest"
    spec = sc.spec
    assert (spec.players, spec.duration_seconds, spec.hard_stop_seconds, sc.match_timeout_seconds) == (200, 40, 90, 30)
    assert spec.queues["4v4"].weight == 2 and spec.queues["duel"].parties == {"1": 1.0}
    assert spec.parties == {"1": 0.7, "2": 0.2, "4": 0.1}
    assert spec.attributes["mode"].values == ("ranked", "casual")
    assert sc.arrivals_end == 40


# -- the loader: errors name the field and the line ----------------------------------------------


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


BAD = [
    # (replace this, with this, error field, a word of the message, the line holding ...)
    pytest.param("  arrival:\n", "  arrivals:\n", "spec.arrivals", "unknown field", "arrivals:", id="unknown-field"),
    pytest.param("rate: 10}", "rate: -5}", "spec.arrival.phases[1].rate", "negative", "rate: -5", id="negative-rate"),
    pytest.param("rate: 10}", "rate: 0}", "spec.arrival.phases[1].rate", "positive", "rate: 0", id="zero-rate"),
    pytest.param("from: 2,", "from: -1,", "spec.arrival.phases[0].from", "negative", "from: -1", id="negative-from"),
    pytest.param(
        "  regions:\n    eu: {distribution: normal, mean: 30, stddev: 10, min: 0}\n"
        "    us: {distribution: uniform, low: 80, high: 120}\n",
        "  regions: {}\n",
        "spec.regions",
        "at least one region",
        "regions: {}",
        id="empty-regions",
    ),
    pytest.param(
        "distribution: normal, mean: 1500",
        "distribution: gaussian, mean: 1500",
        "spec.attributes.skill.distribution",
        "must be one of",
        "gaussian",
        id="unknown-distribution",
    ),
    pytest.param("stddev: 200", "stddev: -1", "spec.attributes.skill.stddev", "negative", "stddev: -1", id="stddev"),
    pytest.param(
        "stddev: 200, min: 0}",
        "stddev: 200, low: 0}",
        "spec.attributes.skill.low",
        "does not apply",
        "low: 0",
        id="field-of-another-distribution",
    ),
    pytest.param(
        "low: 80, high: 120", "low: 80, high: 20", "spec.regions.us.high", "below low", "high: 20", id="low>high"
    ),
    pytest.param(
        "eu: {distribution: normal, mean: 30, stddev: 10, min: 0}",
        "eu: {distribution: constant, value: far}",
        "spec.regions.eu",
        "numbers",
        "value: far",
        id="latency-word",
    ),
    pytest.param("{1: 0.7,", "{0: 0.7,", "spec.parties.0", "party size", "{0: 0.7", id="party-size-0"),
    pytest.param("{1: 0.7,", "{17: 0.7,", "spec.parties.17", "party size", "{17: 0.7", id="party-too-big"),
    pytest.param("2: 0.2,", "2: 0,", "spec.parties.2", "positive", "2: 0,", id="party-weight-0"),
    pytest.param(
        "weights: [3, 1]",
        "weights: [3, -1]",
        "spec.attributes.mode.weights[1]",
        "positive",
        "[3, -1]",
        id="choice-weight",
    ),
    pytest.param("4v4: 2\n", "4v4: -2\n", "spec.queues.4v4.weight", "positive", "4v4: -2", id="queue-weight"),
    pytest.param(
        "4v4: 2\n", "Four_v_Four: 2\n", "spec.queues.Four_v_Four", "queue name", "Four_v_Four", id="queue-name"
    ),
    pytest.param(
        "  queues:\n    duel: {weight: 1, parties: {1: 1}}\n    4v4: 2\n",
        "  queues: {}\n",
        "spec.queues",
        "at least one",
        "queues: {}",
        id="no-queues",
    ),
    pytest.param(
        "longpoll: 0.2", "carrier-pigeon: 0.2", "spec.clients.carrier-pigeon", "unknown client", "pigeon", id="client"
    ),
    pytest.param(
        "hardStopSeconds: 90",
        "hardStopSeconds: 30",
        "spec.hardStopSeconds",
        "before the end",
        "hardStopSeconds",
        id="hardstop<duration",
    ),
    pytest.param(
        "hardStopSeconds: 90",
        "hardStopSeconds: 90000",
        "spec.hardStopSeconds",
        "within",
        "hardStopSeconds",
        id="hardstop-cap",
    ),
    pytest.param(
        "players: 200", "players: 2000", "spec.players", "limits.maxPlayers", "players: 2000", id="players>limit"
    ),
    pytest.param(
        "maxPlayers: 1000",
        "maxPlayers: 1000000",
        "spec.limits.maxPlayers",
        f"{MAX_PLAYERS}",
        "maxPlayers",
        id="players-cap",
    ),
    pytest.param("maxRate: 50", "maxRate: 9000", "spec.limits.maxRate", "5000", "maxRate", id="rate-cap"),
    pytest.param("maxRate: 50", "maxRate: 5", "spec.arrival.phases[0].to", "limits.maxRate", "to: 10", id="rate>limit"),
    pytest.param(
        "  players: 200\n  durationSeconds: 40\n", "", "spec.players", "durationSeconds", "spec:", id="never-stops"
    ),
    pytest.param(
        "- {type: ramp, from: 2, to: 10, seconds: 20}",
        "- {type: constant, rate: 2}",
        "spec.arrival.phases[0].seconds",
        "every phase but the last",
        "rate: 2}",
        id="open-phase-not-last",
    ),
    pytest.param(
        "- {type: ramp, from: 2, to: 10, seconds: 20}",
        "- {type: ramp, from: 2, to: 10}",
        "spec.arrival.phases[0].seconds",
        "required",
        "to: 10}",
        id="ramp-without-seconds",
    ),
    pytest.param(
        "- {type: ramp, from: 2, to: 10, seconds: 20}",
        "- {type: spike, base: 5, peak: 4, atSeconds: 1, forSeconds: 2}",
        "spec.arrival.phases[0].peak",
        "above base",
        "spike",
        id="spike-below-base",
    ),
    pytest.param("kind: LoadTest", "kind: Scenario", "kind", "must be LoadTest", "kind:", id="kind"),
]


@pytest.mark.parametrize(("old", "new", "field", "words", "marker"), BAD)
def test_bad_scenarios_name_field_and_line(old: str, new: str, field: str, words: str, marker: str) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    with pytest.raises(ValidationError) as info:
        parse_scenario(text, "bad.yaml")
    error = info.value
    assert error.field == field, str(error)
    assert words in error.message, str(error)
    assert "bad.yaml" in error.message
    assert error.line == line_of(text, marker), str(error)


def test_party_larger_than_max_rate_is_refused() -> None:
    text = (
        GOOD.replace("maxRate: 50", "maxRate: 3")
        .replace("from: 2, to: 10", "from: 1, to: 2")
        .replace("rate: 10}", "rate: 2}")
    )
    with pytest.raises(ValidationError, match="largest party") as info:
        parse_scenario(text)
    assert info.value.field == "spec.limits.maxRate"


def test_file_errors() -> None:
    with pytest.raises(ValidationError, match="cannot read"):
        load_scenario(REPO / "no-such-scenario.yaml")
    with pytest.raises(ValidationError, match="exactly one"):
        parse_scenario(GOOD + "---\n" + GOOD)
    with pytest.raises(ValidationError, match="invalid YAML") as info:
        parse_scenario(GOOD.replace("players: 200", "players: [200"))
    assert info.value.line is not None


# -- arrival schedules -----------------------------------------------------------------------------


def counts(times: list[float], start: float, end: float) -> int:
    return sum(start <= t < end for t in times)


def test_even_constant_schedule_is_exact() -> None:
    sc = base("{process: even, phases: [{type: constant, rate: 10}]}", duration="durationSeconds: 10")
    times = list(sc.arrival_times(Random(1)))
    assert len(times) == 100
    assert times == pytest.approx([(k + 0.5) / 10 for k in range(100)])
    assert list(sc.arrival_times(Random(2))) == times  # even draws nothing from rng


def test_poisson_constant_schedule() -> None:
    sc = base("{phases: [{type: constant, rate: 50}]}", duration="durationSeconds: 100")
    times = list(sc.arrival_times(Random(7)))
    assert abs(len(times) - 5000) < 5 * math.sqrt(5000)  # ±5 sigma
    assert times == sorted(times) and 0 <= times[0] and times[-1] < 100
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert 0.9 / 50 < sum(gaps) / len(gaps) < 1.1 / 50
    assert max(gaps) > 3 / 50  # random gaps, not a metronome


def test_schedule_is_deterministic_with_a_seed() -> None:
    sc = parse_scenario(GOOD)
    assert list(sc.arrival_times(Random(42))) == list(sc.arrival_times(Random(42)))
    assert list(sc.arrival_times(Random(42))) != list(sc.arrival_times(Random(43)))


def test_ramp_follows_the_curve() -> None:
    sc = base("{process: even, phases: [{type: ramp, from: 0, to: 20, seconds: 100}]}")
    times = list(sc.arrival_times(Random(0)))
    assert len(times) == 1000  # the area: 20 / 2 * 100
    assert counts(times, 0, 50) == 250 and counts(times, 50, 100) == 750
    assert sc.rate_at(25) == pytest.approx(5) and sc.rate_at(-1) == 0 and sc.rate_at(100) == 0


def test_poisson_ramp_follows_the_curve() -> None:
    sc = base("{phases: [{type: ramp, from: 0, to: 40, seconds: 100}]}")
    times = list(sc.arrival_times(Random(5)))
    first, second = counts(times, 0, 50), counts(times, 50, 100)
    assert abs(first - 500) < 5 * math.sqrt(500) and abs(second - 1500) < 5 * math.sqrt(1500)


def test_spike() -> None:
    sc = base(
        "{process: even, phases: [{type: spike, base: 2, peak: 50, atSeconds: 10, forSeconds: 5, seconds: 30}]}",
        duration="durationSeconds: 40",
    )
    times = list(sc.arrival_times(Random(0)))
    assert counts(times, 0, 10) == 20 and counts(times, 10, 15) == 250 and counts(times, 15, 30) == 30
    assert counts(times, 30, 40) == 20  # the base holds after the last phase
    assert [sc.rate_at(t) for t in (9.9, 10, 14.9, 15, 35)] == [2, 50, 50, 2, 2]


def test_phases_follow_one_another() -> None:
    sc = base(
        "{process: even, phases: [{type: constant, rate: 5, seconds: 10}, {type: ramp, from: 5, to: 15, seconds: 10},"
        " {type: constant, rate: 1}]}",
        duration="durationSeconds: 30",
    )
    times = list(sc.arrival_times(Random(0)))
    assert (counts(times, 0, 10), counts(times, 10, 20), counts(times, 20, 30)) == (50, 100, 10)
    assert sc.expected_players() == pytest.approx(160)
    assert sc.rate_at(15) == pytest.approx(10)


def test_stops_at_players_without_overshooting() -> None:
    sc = base(
        "{phases: [{type: constant, rate: 20}]}",
        players="players: 37",
        duration="",
        extra="parties: {1: 1, 2: 1, 4: 1}",
    )
    mix = sc.spec.mix()
    for seed in range(5):
        times = list(sc.arrival_times(Random(seed)))
        players = sum(mix.pick(i)[1] for i in range(len(times)))
        assert 37 - 4 < players <= 37
        assert players == sc.planned_players()


def test_stops_at_duration_and_hard_stop() -> None:
    sc = base("{phases: [{type: constant, rate: 20}]}", duration="durationSeconds: 7")
    assert max(sc.arrival_times(Random(3))) < 7
    # players only: the hard stop bounds arrivals, even when the curve would go on
    only_players = base("{phases: [{type: constant, rate: 1}]}", players="players: 100000", duration="")
    assert max(only_players.arrival_times(Random(3))) < only_players.hard_stop_seconds == 300


def test_stops_when_the_curve_ends_at_zero() -> None:
    sc = base("{phases: [{type: ramp, from: 10, to: 0, seconds: 10}]}", players="players: 1000", duration="")
    times = list(sc.arrival_times(Random(0)))
    assert 20 < len(times) < 90 and times[-1] < 10  # about 50, then the curve stays at 0


def test_zero_base_spike_resumes_at_the_peak() -> None:
    sc = base(
        "{process: even, phases: [{type: spike, base: 0, peak: 10, atSeconds: 5, forSeconds: 2}]}",
        duration="durationSeconds: 60",
    )
    times = list(sc.arrival_times(Random(0)))
    assert len(times) == 20 and 5 <= times[0] and times[-1] < 7


@pytest.mark.parametrize("parties", ["{1: 1}", "{1: 1, 2: 1, 4: 1}"])
def test_never_more_than_max_rate_in_any_second(parties: str) -> None:
    sc = parse_scenario(
        f"""
apiVersion: fleetmatch.dev/v1
kind: LoadTest
metadata: {{name: capped}}
spec:
  durationSeconds: 200
  hardStopSeconds: 300
  arrival: {{phases: [{{type: constant, rate: 20}}]}}
  parties: {parties}
  queues: {{q: 1}}
  regions: {{local: {{distribution: constant, value: 5}}}}
  limits: {{maxRate: 20}}
"""
    )
    mix = sc.spec.mix()
    times = list(sc.arrival_times(Random(11)))
    sizes = [mix.pick(i)[1] for i in range(len(times))]
    prefix = list(itertools.accumulate(sizes, initial=0))
    for i, t in enumerate(times):  # every window (t - 1, t] ending at an arrival (give or take rounding)
        first = bisect.bisect_right(times, t - 1 + 1e-9)
        assert prefix[i + 1] - prefix[first] <= 20, t
    # the cap only trims bursts: the run still sends roughly what the curve asks for
    assert sum(sizes) > 0.8 * sc.expected_players()


# -- parties -------------------------------------------------------------------------------------


def test_party_mix_follows_the_weights() -> None:
    sc = parse_scenario(GOOD)
    kinds = Counter(sc.spec.mix().pick(i) for i in range(9000))
    # duel: 1/3 of the tickets, solo; 4v4: 2/3, sizes 70/20/10
    expected = {("duel", 1): 3000, ("4v4", 1): 4200, ("4v4", 2): 1200, ("4v4", 4): 600}
    assert set(kinds) == set(expected)
    for kind, n in expected.items():
        assert abs(kinds[kind] - n) <= 0.01 * 9000, (kind, kinds[kind])


def test_parties() -> None:
    sc = parse_scenario(GOOD)
    rng = Random(9)
    parties = [sc.party(rng, i, "r1") for i in range(3000)]
    ids = [p.id for party in parties for p in party.players]
    assert len(ids) == len(set(ids))
    assert parties[3].players[0].id == "lt-r1-3-0"
    for i, party in enumerate(parties):
        assert (party.queue, len(party.players)) == sc.spec.mix().pick(i)
        assert party.client in ("sse", "websocket", "longpoll")
        assert 5 <= party.session_seconds <= 10
        for player in party.players:
            assert set(player.latencies) == {"eu", "us"}
            assert player.latencies["eu"] >= 0 and 80 <= player.latencies["us"] <= 120
            skill = player.attributes["skill"]
            assert isinstance(skill, float) and skill >= 0
            assert player.attributes["mode"] in ("ranked", "casual")
    skills = [p.attributes["skill"] for party in parties for p in party.players]
    mean = sum(float(s) for s in skills) / len(skills)
    assert 1480 < mean < 1520
    clients = Counter(p.client for p in parties)
    assert abs(clients["sse"] / len(parties) - 0.6) < 0.05
    modes = Counter(p.attributes["mode"] for party in parties for p in party.players)
    assert abs(modes["ranked"] / sum(modes.values()) - 0.75) < 0.05


def test_party_sampling_is_deterministic_and_checks_the_run_id() -> None:
    sc = parse_scenario(GOOD)
    assert sc.party(Random(1), 5, "a") == sc.party(Random(1), 5, "a")
    assert sc.party(Random(1), 5, "a") != sc.party(Random(2), 5, "a")
    with pytest.raises(ValueError, match="run id"):
        sc.party(Random(1), 0, "Not OK")


def test_latencies_are_clamped() -> None:
    sc = parse_scenario(GOOD.replace("mean: 30, stddev: 10, min: 0", "mean: 0, stddev: 50"))
    rng = Random(4)
    latencies = [p.latencies["eu"] for i in range(500) for p in sc.party(rng, i).players]
    assert min(latencies) == 0 and max(latencies) > 0


# -- scaling -------------------------------------------------------------------------------------


def test_with_players_scales_the_curve() -> None:
    sc = base(
        "{process: even, phases: [{type: constant, rate: 10}]}", players="players: 500", duration="durationSeconds: 50"
    )
    bigger = sc.with_players(2000)
    assert bigger.spec.players == 2000 and bigger.rate_at(10) == pytest.approx(40)
    assert len(list(bigger.arrival_times(Random(0)))) == 2000
    same_rate = sc.with_players(100, scale_rate=False)
    assert same_rate.rate_at(10) == 10 and len(list(same_rate.arrival_times(Random(0)))) == 100


def test_with_players_respects_the_limits() -> None:
    sc = base("{phases: [{type: constant, rate: 10}]}", players="players: 500")
    with pytest.raises(ValidationError) as info:
        sc.with_players(100_000)  # 2,000 players/s: above limits.maxRate (200)
    assert info.value.field == "spec.players" and "maxRate" in info.value.message
    with pytest.raises(ValidationError, match="maxPlayers"):
        base("{phases: [{type: constant, rate: 1}]}", players="players: 5").with_players(200_000, scale_rate=False)


# -- the shipped scenarios -----------------------------------------------------------------------


def test_shipped_scenarios_load() -> None:
    assert {p.name for p in SCENARIOS.glob("*.yaml")} >= {"smoke.yaml", "launch-day.yaml", "launch-day-fleet.yaml"}
    smoke = load_scenario(SCENARIOS / "smoke.yaml")
    assert smoke.name == "smoke" and smoke.hard_stop_seconds < 60
    assert 80 <= smoke.planned_players() <= 120
    launch = load_scenario(SCENARIOS / "launch-day.yaml")
    types = [p.type.value for p in launch.spec.arrival.phases]
    assert types.index("ramp") < types.index("spike")
    assert launch.planned_players() == 500
    scaled = launch.with_players(2000)
    assert max(scaled.rate_at(t) for t in range(120)) == pytest.approx(4 * max(launch.rate_at(t) for t in range(120)))
    launch.with_players(10_000)  # what the file promises


@pytest.mark.parametrize("name", ["smoke.yaml", "launch-day.yaml"])
def test_shipped_scenarios_fit_the_demo_queues(name: str) -> None:
    """Every party the scenario sends is a ticket the demo queues accept (sizes, skill, latencies)."""
    queues = load_queues(REPO / "fleetmatch" / "demo" / "queues.yaml")
    sc = load_scenario(SCENARIOS / name)
    assert set(sc.spec.queues) <= set(queues)
    rng = Random(1)
    for index in range(400):
        party = sc.party(rng, index, "check")
        queues[party.queue].check_ticket(TicketRequest(party.queue, party.players))


def test_launch_day_fleet() -> None:
    """The fleet the launch-day scenario expects: the demo queues' fleet, with a bigger autoscaler."""
    resources = load_resources(SCENARIOS / "launch-day-fleet.yaml")
    (fleet,) = [r for r in resources if isinstance(r, Fleet)]
    (autoscaler,) = [r for r in resources if isinstance(r, FleetAutoscaler)]
    assert fleet.name == "demo" and autoscaler.spec.fleet_name == "demo"
    assert autoscaler.spec.policy.buffer is not None and autoscaler.spec.policy.buffer.max_replicas == 60
    process = fleet.spec.template.spec.process
    assert process is not None and Path(process.working_dir or "") == REPO
    launch = load_scenario(SCENARIOS / "launch-day.yaml")
    session = launch.spec.session_seconds
    assert session.high is not None and session.high < float(process.env["MATCH_TIME_LIMIT"])


# -- targets -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:9190", True),
        ("http://127.8.9.10", True),
        ("http://localhost:9190/", True),
        ("http://LOCALHOST.:9190", True),
        ("http://stack.localhost", True),
        ("http://[::1]:9190", True),
        ("http://0.0.0.0:9190", True),
        ("http://10.0.0.5:9190", False),
        ("https://matchmaker.example.com", False),
        ("http://localhost.example.com", False),
        ("http://127.0.0.1.nip.io", False),
        ("http://[2001:db8::1]", False),
        ("not a url", False),
    ],
)
def test_is_loopback(url: str, local: bool) -> None:
    assert is_loopback(url) is local


def test_check_target() -> None:
    assert check_target("http://127.0.0.1:9190/", explicit=False) == "http://127.0.0.1:9190"
    assert check_target("https://mm.example.com/api/", explicit=True) == "https://mm.example.com/api"
    with pytest.raises(ValidationError, match="--target") as info:
        check_target("https://mm.example.com", explicit=False)
    assert info.value.field == "target"
    for bad in ("ftp://127.0.0.1", "127.0.0.1:9190", "http://u:p@127.0.0.1", "http://127.0.0.1:99999", "http://h/?q=1"):
        with pytest.raises(ValidationError):
            check_target(bad, explicit=True)
