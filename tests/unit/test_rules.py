"""Queue rules: YAML errors name field and line; windows widen on schedule; tickets are checked at the door."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from fleetmatch.codec import load_trusted
from fleetmatch.errors import ValidationError
from fleetmatch.models import FLEET_LABEL
from matchmaker.models import Player, TicketRequest
from matchmaker.rules import Queue, Rule, RuleType, Widen, WidenStep, decode_queue, load_queues, parse_queues

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata:
  name: arena
spec:
  teams: {count: 2, minSize: 2, maxSize: 4, waitForFullSeconds: 20}
  ticketTTLSeconds: 300
  tickSeconds: 0.25
  rules:
    - {name: skill, type: distance, attribute: skill, maxDistance: 100, widen: {perSecond: 10, max: 800}}
    - {name: ping, type: latency, maxLatencyMs: 80, regions: [eu, us], widen: {perSecond: 2, max: 200}}
    - {name: mode, type: equal, attribute: mode}
  allocation:
    selectors:
      - matchLabels: {agones.dev/fleet: arena, region: "{region}"}
    metadata:
      labels: {queue: arena}
"""


def test_acceptance_is_optional_and_read() -> None:
    (plain,) = parse_queues(GOOD).values()
    assert plain.acceptance_seconds is None
    (ready,) = parse_queues(
        GOOD.replace("tickSeconds: 0.25", "tickSeconds: 0.25\n  acceptance: {timeoutSeconds: 20}")
    ).values()
    assert ready.acceptance_seconds == 20


def test_good_queue() -> None:
    (queue,) = parse_queues(GOOD).values()
    assert queue.name == "arena"
    assert (queue.players_needed, queue.min_players) == (8, 4)
    assert (queue.tick_seconds, queue.ticket_ttl_seconds) == (0.25, 300)
    assert [r.type for r in queue.spec.rules] == [RuleType.DISTANCE, RuleType.LATENCY, RuleType.EQUAL]
    assert queue.spec.balance_by == "skill"
    assert queue.spec.match_function == "default"


def test_demo_queues_work_with_the_demo_fleet() -> None:
    """The demo fleet's servers carry no region label: the demo queues must not select on one."""
    queues = load_queues(REPO / "fleetmatch" / "demo" / "queues.yaml")
    assert list(queues) == ["duel", "4v4"]
    assert queues["duel"].players_needed == 2
    assert queues["4v4"].players_needed == 8 and queues["4v4"].min_players == 2
    latency = queues["4v4"].spec.latency_rule
    assert latency is not None and latency.regions == ("local",)
    for queue in queues.values():
        spec = queue.allocation_spec("local")
        demo_server_labels = {FLEET_LABEL: "demo", "game": "udp-demo"}
        assert all(selector.matches(demo_server_labels) for selector in spec.selectors)


def test_allocation_is_rendered_with_the_region() -> None:
    (queue,) = parse_queues(GOOD).values()
    eu = queue.allocation_spec("eu")
    assert eu.selectors[0].match_labels == {FLEET_LABEL: "arena", "region": "eu"}
    assert eu.metadata.labels == {"queue": "arena"}
    assert queue.allocation_spec("us").selectors[0].match_labels["region"] == "us"
    assert queue.allocation_spec("eu") is eu  # validated once per region
    with pytest.raises(ValidationError) as info:
        queue.allocation_spec("eu-")  # not a valid label value
    assert info.value.field == "allocation.selectors[0].matchLabels.region"


def _swap(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new)


SKILL_RULE = "{name: skill, type: distance, attribute: skill, maxDistance: 100, widen: {perSecond: 10, max: 800}}"
PING_RULE = "{name: ping, type: latency, maxLatencyMs: 80, regions: [eu, us], widen: {perSecond: 2, max: 200}}"


@pytest.mark.parametrize(
    ("text", "field", "line", "message"),
    [
        pytest.param(
            _swap("ticketTTLSeconds", "ticketTtlSeconds"), "spec.ticketTtlSeconds", 7, "unknown field", id="typo"
        ),
        pytest.param(
            _swap("maxDistance: 100", "maxDistance: far"), "spec.rules[0].maxDistance", 10, "a number", id="type"
        ),
        pytest.param(
            _swap("type: distance", "type: distanse"), "spec.rules[0].type", 10, "must be one of", id="type-enum"
        ),
        pytest.param(
            _swap("type: distance, attribute: skill,", "type: distance,"), "spec.rules[0].attribute", 10, "required"
        ),
        pytest.param(
            _swap("type: latency,", "type: latency, attribute: ping,"),
            "spec.rules[1].attribute",
            11,
            "does not apply to a latency rule",
            id="latency-attribute",
        ),
        pytest.param(
            _swap("type: latency,", "type: latency, partyAggregation: max,"),
            "spec.rules[1].partyAggregation",
            11,
            "does not apply",
            id="latency-aggregation",
        ),
        pytest.param(_swap("{perSecond: 10, max: 800}", "{perSecond: 10}"), "spec.rules[0].widen.max", 10, "required"),
        pytest.param(
            _swap("{perSecond: 10, max: 800}", "{perSecond: 10, max: 50}"),
            "spec.rules[0].widen.max",
            10,
            "must not be below maxDistance",
            id="cap-below-base",
        ),
        pytest.param(
            _swap("{perSecond: 10, max: 800}", "{perSecond: 10, max: 800, steps: [{afterSeconds: 5, value: 200}]}"),
            "spec.rules[0].widen.steps",
            10,
            "not both",
            id="linear-and-steps",
        ),
        pytest.param(
            _swap(
                "{perSecond: 10, max: 800}",
                "{steps: [{afterSeconds: 5, value: 200}, {afterSeconds: 9, value: 150}]}",
            ),
            "spec.rules[0].widen.steps[1].value",
            10,
            "only widen",
            id="steps-narrow",
        ),
        pytest.param(
            _swap("{perSecond: 10, max: 800}", "{steps: [{afterSeconds: 5, value: 50}]}"),
            "spec.rules[0].widen.steps[0].value",
            10,
            "must not be below maxDistance",
            id="first-step-below-base",
        ),
        pytest.param(
            _swap("{perSecond: 10, max: 800}", "{}"), "spec.rules[0].widen", 10, "perSecond", id="empty-widen"
        ),
        pytest.param(_swap("name: mode", "name: skill"), "spec.rules[2].name", 12, "appears twice", id="dup-rule"),
        pytest.param(
            _swap("- {name: mode, type: equal, attribute: mode}", "- " + PING_RULE.replace("ping", "ping2")),
            "spec.rules[2]",
            12,
            "at most one latency rule",
            id="two-latency-rules",
        ),
        pytest.param(_swap("regions: [eu, us]", "regions: [eu, eu]"), "spec.rules[1].regions[1]", 11, "twice"),
        pytest.param(_swap("minSize: 2", "minSize: 5"), "spec.teams.minSize", 6, "maxSize", id="min-above-max"),
        pytest.param(_swap("count: 2", "count: 60"), "spec.teams.maxSize", 6, "at most 200 players", id="too-many"),
        pytest.param(_swap("tickSeconds: 0.25", "tickSeconds: 0"), "spec.tickSeconds", 8, "0.01..60", id="tick"),
        pytest.param(
            _swap("tickSeconds: 0.25", "tickSeconds: 0.25\n  acceptance: {timeoutSeconds: 0.5}"),
            "spec.acceptance.timeoutSeconds",
            9,
            "1..600",
            id="acceptance-too-short",
        ),
        pytest.param(
            _swap("tickSeconds: 0.25", "tickSeconds: 0.25\n  acceptance: {timeoutSeconds: 601}"),
            "spec.acceptance.timeoutSeconds",
            9,
            "1..600",
            id="acceptance-too-long",
        ),
        pytest.param(
            _swap("tickSeconds: 0.25", "tickSeconds: 0.25\n  acceptance: {timeout: 20}"),
            "spec.acceptance.timeout",
            9,
            "unknown field",
            id="acceptance-typo",
        ),
        pytest.param(
            _swap("tickSeconds: 0.25", "tickSeconds: 0.25\n  acceptance: {}"),
            "spec.acceptance.timeoutSeconds",
            9,
            "",
            id="acceptance-without-timeout",
        ),
        pytest.param(
            _swap("tickSeconds: 0.25", "tickSeconds: 0.25\n  matchFunction: ' '"),
            "spec.matchFunction",
            9,
            "must name a match function",
            id="blank-function",
        ),
        pytest.param(
            _swap("- matchLabels:", "- matchLabel:"),
            "spec.allocation.selectors[0].matchLabel",
            15,
            "unknown field",
            id="allocation-typo",
        ),
        pytest.param(
            _swap('region: "{region}"', 'region: "{zone}"'),
            "spec.allocation.selectors[0].matchLabels.region",
            15,
            "unknown placeholder {zone}",
            id="placeholder",
        ),
        pytest.param(
            _swap("    - " + PING_RULE + "\n", ""),
            "spec.allocation",
            12,
            "only a latency rule chooses",
            id="region-without-latency-rule",
        ),
        pytest.param(
            _swap('    selectors:\n      - matchLabels: {agones.dev/fleet: arena, region: "{region}"}\n', ""),
            "spec.allocation.selectors",
            13,
            "is required",
            id="no-selectors",
        ),
        pytest.param(
            _swap("labels: {queue: arena}", "labels: {queue: -bad-}"),
            "spec.allocation.metadata.labels.queue",
            17,
            "label value",
        ),
        pytest.param(_swap("name: arena\n", "name: ar.ena\n"), "metadata.name", 4, "DNS-1123 label", id="dotted-name"),
        pytest.param(_swap("kind: Queue", "kind: Fleet"), "kind", 2, "must be Queue", id="kind"),
        pytest.param(GOOD + "---\n" + GOOD, "metadata.name", 22, "declared twice", id="duplicate-queue"),
    ],
)
def test_errors_name_field_and_line(text: str, field: str, line: int, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_queues(text, "queues.yaml")
    assert (info.value.field, info.value.line) == (field, line), str(info.value)
    assert message in info.value.message
    assert "queues.yaml" in str(info.value)


def test_empty_file_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no Queue document"):
        parse_queues("# nothing\n")
    with pytest.raises(ValidationError, match="cannot read"):
        load_queues(tmp_path / "absent.yaml")


LINEAR = Widen(per_second=10, cap=300)
STEPS = Widen(steps=(WidenStep(10, 200), WidenStep(30, 400)))


@pytest.mark.parametrize(
    ("widen", "wait", "window"),
    [
        (None, 0, 100),
        (None, 1000, 100),
        (LINEAR, 0, 100),
        (LINEAR, 5, 150),
        (LINEAR, 19.9, 299),
        (LINEAR, 20, 300),
        (LINEAR, 1000, 300),
        (LINEAR, -5, 100),  # a clock step backwards does not narrow the base
        (STEPS, 0, 100),
        (STEPS, 9.99, 100),
        (STEPS, 10, 200),
        (STEPS, 29.9, 200),
        (STEPS, 30, 400),
        (STEPS, 1e6, 400),
    ],
)
def test_windows_widen_on_schedule(widen: Widen | None, wait: float, window: float) -> None:
    rule = Rule("skill", RuleType.DISTANCE, attribute="skill", max_distance=100, widen=widen)
    assert rule.window(wait) == pytest.approx(window)
    assert rule.widest == (100 if widen is None else 300 if widen is LINEAR else 400)


# -- tickets at the door ---------------------------------------------------------------------------


def _queue() -> Queue:
    (queue,) = parse_queues(GOOD).values()
    return queue


def _player(i: int, skill: Any = 1500.0, mode: Any = "ranked", **latencies: float) -> Player:
    attributes = {k: v for k, v in (("skill", skill), ("mode", mode)) if v is not None}
    return Player(f"p{i}", attributes, latencies or {"eu": 30.0})


@pytest.mark.parametrize(
    ("players", "field", "message"),
    [
        pytest.param([_player(0)], None, "", id="solo"),
        pytest.param([_player(i) for i in range(4)], None, "", id="party-of-max"),
        pytest.param([_player(i) for i in range(5)], "players", "party of 5 cannot be split", id="party-too-big"),
        pytest.param([_player(0), _player(1, skill="high")], "players[1].attributes.skill", "must be a number"),
        pytest.param([_player(0, skill=None)], "players[0].attributes.skill", "required by rule 'skill'"),
        pytest.param([_player(0, skill=True)], "players[0].attributes.skill", "must be a number", id="bool"),
        pytest.param(  # refused by Player itself; a ticket read back from the store is not checked again
            [load_trusted(Player, {"id": "p0", "attributes": {"skill": math.nan, "mode": "ranked"}})],
            "players[0].attributes.skill",
            "must be a number",
            id="nan",
        ),
        pytest.param([_player(0, mode=None)], "players[0].attributes.mode", "required by rule 'mode'"),
        pytest.param([_player(0), _player(1, mode="casual")], "players[1].attributes.mode", "must equal"),
        pytest.param([Player("p0", {"skill": 1.0, "mode": "x"})], "players[0].latencies", "required by rule 'ping'"),
        pytest.param([_player(0, ap=10.0)], "players[0].latencies", "none of the queue's regions (eu, us)"),
        pytest.param([_player(0, eu=10.0), _player(1, us=10.0)], "players", "no region in common", id="no-shared"),
        pytest.param(
            [_player(0, eu=10.0, us=250.0), _player(1, eu=201.0, us=20.0)],
            "players[1].latencies",
            "the best, eu, is 201 ms",
            id="too-far",
        ),
        pytest.param([_player(0, eu=200.0)], None, "", id="at-the-widest"),
    ],
)
def test_check_ticket(players: list[Player], field: str | None, message: str) -> None:
    request = TicketRequest("arena", tuple(players))
    if field is None:
        _queue().check_ticket(request)
        return
    with pytest.raises(ValidationError) as info:
        _queue().check_ticket(request)
    assert info.value.field == field
    assert message in info.value.message


def test_check_ticket_refuses_another_queue() -> None:
    with pytest.raises(ValidationError) as info:
        _queue().check_ticket(TicketRequest("duel", (_player(0),)))
    assert info.value.field == "queue"


def test_balance_attribute_must_be_a_number_too() -> None:
    doc: dict[str, Any] = {
        "metadata": {"name": "casual"},
        "spec": {
            "teams": {"count": 2, "maxSize": 2},
            "balanceAttribute": "rank",
            "allocation": {"selectors": [{"matchLabels": {FLEET_LABEL: "f"}}]},
        },
    }
    queue = decode_queue(doc)
    queue.check_ticket(TicketRequest("casual", (Player("a", {"rank": 3.0}),)))
    with pytest.raises(ValidationError) as info:
        queue.check_ticket(TicketRequest("casual", (Player("a", {"rank": "gold"}),)))
    assert info.value.field == "players[0].attributes.rank" and "balanceAttribute" in info.value.message
