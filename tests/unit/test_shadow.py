"""Shadow match functions: the queue field (validated with field and line), the pure comparison,
and the runner's bounds (a failing, slow or stuck shadow costs the live path nothing)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from fleetmatch.errors import ValidationError
from matchmaker import metrics
from matchmaker.app import shadows
from matchmaker.models import MatchQuality, Player, Proposal, Ticket
from matchmaker.rules import parse_queues
from matchmaker.shadow import compare
from matchmaker.shadowrun import ShadowRunner

NOW = 1_800_000_000.0
QUEUE = """\
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: duel}
spec:
  teams: {count: 2, maxSize: 1}
  rules:
    - {name: skill, type: distance, attribute: skill, maxDistance: 100}
  allocation: {selectors: [{matchLabels: {agones.dev/fleet: demo}}]}
"""


def ticket(tid: str, waited: float, size: int = 1) -> Ticket:
    players = tuple(Player(f"{tid}p{i}", attributes={"skill": 1500}) for i in range(size))
    return Ticket(id=tid, queue="duel", owner=players[0].id, players=players, enqueued_at=NOW - waited)


def proposal(*teams: tuple[str, ...], spread: float = 0.0) -> Proposal:
    return Proposal(teams=teams, quality=MatchQuality(skill_spread=spread))


POOL = [ticket("a", 10), ticket("b", 4), ticket("c", 2, size=2), ticket("d", 1)]


@pytest.mark.parametrize(
    ("live", "shadow", "agreed", "agreement"),
    [
        pytest.param([proposal(("a",), ("b",))], [proposal(("b",), ("a",))], 1, 1.0, id="same-tickets-other-teams"),
        pytest.param(
            [proposal(("a",), ("b",)), proposal(("c",), ("d",))], [proposal(("a",), ("c",))], 0, 0.0, id="disagree"
        ),
        pytest.param(
            [proposal(("a",), ("b",)), proposal(("c",), ("d",))], [proposal(("c",), ("d",))], 1, 0.5, id="half"
        ),
        pytest.param([], [proposal(("a",), ("b",))], 0, None, id="live-proposed-none"),
    ],
)
def test_agreement_is_the_share_of_live_matches_the_shadow_proposed(
    live: list[Proposal], shadow: list[Proposal], agreed: int, agreement: float | None
) -> None:
    result = compare(POOL, live, shadow, NOW)
    assert (result.agreed, result.agreement) == (agreed, agreement)


def test_each_side_counts_matches_players_waits_and_quality() -> None:
    result = compare(POOL, [proposal(("a",), ("b",), spread=30)], [proposal(("c",), ("d",), ("ghost",), spread=5)], NOW)
    assert (result.live.matches, result.live.players, result.live.waits, result.live.skill_spreads) == (
        1,
        2,
        (10.0, 4.0),
        (30.0,),
    )
    # a ticket id not in the pool (a broken plug-in) counts for nothing
    assert (result.shadow.matches, result.shadow.players, result.shadow.waits) == (1, 3, (2.0, 1.0))


def test_a_shadow_takes_its_own_function_and_rules_and_keeps_the_rest() -> None:
    text = QUEUE + "  shadow:\n    rules: [{name: skill, type: distance, attribute: skill, maxDistance: 10}]\n"
    queue = parse_queues(text)["duel"]
    shadow = queue.shadow_queue()
    assert shadow is not None
    assert shadow.spec.rules[0].max_distance == 10.0 and queue.spec.rules[0].max_distance == 100.0
    assert (shadow.spec.teams, shadow.spec.shadow, shadow.spec.match_function) == (queue.spec.teams, None, "default")
    assert parse_queues(QUEUE)["duel"].shadow_queue() is None


@pytest.mark.parametrize(
    ("shadow", "field", "line"),
    [
        pytest.param("{timeoutSeconds: 0}", "spec.shadow.timeoutSeconds", 9, id="timeout"),
        pytest.param('{matchFunction: " "}', "spec.shadow.matchFunction", 9, id="empty-function"),
        pytest.param(
            "\n    rules: [{name: a, type: latency, maxLatencyMs: 50}, {name: b, type: latency, maxLatencyMs: 60}]",
            "spec.shadow.rules[1]",
            10,
            id="rules-checked-as-a-queue's",
        ),
    ],
)
def test_a_bad_shadow_is_refused_naming_field_and_line(shadow: str, field: str, line: int) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_queues(QUEUE + f"  shadow: {shadow}\n", "queues.yaml")
    assert (caught.value.field, caught.value.line) == (field, line)


def test_an_unknown_shadow_function_fails_when_the_directors_start() -> None:
    queues = parse_queues(QUEUE + "  shadow: {matchFunction: nowhere_to_be_found}\n")
    with pytest.raises(ValidationError) as caught:
        shadows(queues)
    assert caught.value.field == "spec.shadow.matchFunction"
    assert "queue 'duel'" in caught.value.message


def runs(outcome: str) -> float:
    value = metrics.SHADOW_RUNS.labels(queue="unit", outcome=outcome)._value.get()
    return float(value)


async def test_a_failing_shadow_is_counted_and_nothing_else() -> None:
    def broken(pool: Sequence[Ticket], now: float) -> list[Proposal]:
        raise RuntimeError("plug-in bug")

    runner = ShadowRunner("unit", broken, timeout=1.0)
    before = runs("error")
    runner.observe(POOL, [], NOW)
    assert await runner.last() is None
    assert runs("error") == before + 1


async def test_a_stuck_shadow_times_out_and_later_passes_skip_it_until_it_ends() -> None:
    release = threading.Event()

    def stuck(pool: Sequence[Ticket], now: float) -> list[Proposal]:
        release.wait(10)
        return []

    runner = ShadowRunner("unit", stuck, timeout=0.05)
    timeouts, skipped = runs("timeout"), runs("skipped")
    runner.observe(POOL, [], NOW)
    await asyncio.sleep(0.2)
    assert runs("timeout") == timeouts + 1
    assert runner.running  # its thread still runs: no second thread is started
    runner.observe(POOL, [], NOW)
    assert runs("skipped") == skipped + 1
    release.set()
    assert await runner.last() is None
    assert not runner.running


async def test_a_finished_shadow_is_compared_with_the_live_proposals() -> None:
    def pairs(pool: Sequence[Ticket], now: float) -> list[Proposal]:
        return [proposal(("a",), ("b",))]

    runner = ShadowRunner("unit", pairs, timeout=1.0)
    runner.observe(POOL, [proposal(("a",), ("b",)), proposal(("c",), ("d",))], NOW)
    result = await runner.last()
    assert result is not None and result.agreement == 0.5
    assert metrics.SHADOW_AGREEMENT.labels(queue="unit")._value.get() == 0.5


async def test_closing_does_not_wait_for_a_stuck_shadow() -> None:
    release = threading.Event()

    def stuck(pool: Sequence[Ticket], now: float) -> list[Proposal]:
        release.wait(10)
        return []

    runner = ShadowRunner("unit", stuck, timeout=5.0)
    runner.observe(POOL, [], NOW)
    await asyncio.sleep(0.05)
    async with asyncio.timeout(2):
        await runner.close()  # the director stopping: its shadow's task ends, the thread is a daemon
    assert not runner.running
    thread = next(t for t in threading.enumerate() if t.name == "shadow[unit]")
    assert thread.daemon
    release.set()
