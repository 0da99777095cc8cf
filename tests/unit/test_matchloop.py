"""The match function's inner loop in C (``matchmaker/_matchloop.c``) proposes exactly what the
Python loop proposes: the same pools through both, compared whole (teams, order, quality)."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import random
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fleetmatch.codec import load_trusted
from matchmaker import matching
from matchmaker.matching import QueueMatcher, find_matches
from matchmaker.models import Player, Proposal, Ticket, TicketState
from matchmaker.rules import Queue
from matchmaker.tickcache import TicketCache
from tests.unit.test_composition import queue as role_queue
from tests.unit.test_matching import MODE, NOW, PING, QUEUES, SKILL, check_invariants, make_queue, random_pool

LOOP_QUEUES = {
    **QUEUES,
    "4v4-no-equal": make_queue(max_size=4, min_size=2, wait_for_full=20, rules=[SKILL, PING]),
    "5x4-parties": make_queue(count=5, max_size=4, min_size=2, wait_for_full=10, rules=[{**SKILL, "maxDistance": 400}]),
    "2v2-no-rules": make_queue(max_size=2, rules=[]),
    "ffa-latency-only": make_queue(count=1, max_size=8, min_size=4, wait_for_full=5, rules=[PING]),
    "wide-latency": make_queue(
        max_size=3, rules=[SKILL, {**PING, "maxLatencyMs": 40, "widen": {"perSecond": 5, "max": 300}}]
    ),
    "4v4-mode": make_queue(max_size=4, rules=[SKILL, PING, MODE]),
}


@pytest.fixture
def compiled() -> Iterator[Callable[[bool], None]]:
    """Switch the C loop on or off for the calls that follow; back as it was afterwards."""
    was = matching.COMPILED

    def switch(on: bool) -> None:
        matching.COMPILED = on

    yield switch
    matching.COMPILED = was


def both(switch: Callable[[bool], None], call: Callable[[], list[Proposal]]) -> tuple[list[Proposal], list[Proposal]]:
    """The proposals of the Python loop and of the C loop; equal down to their types (an integer
    latency stays an integer: ``repr`` tells 80 from 80.0, which ``==`` does not)."""
    switch(False)
    python = call()
    switch(True)
    c = call()
    assert list(map(repr, c)) == list(map(repr, python))
    return python, c


def _with_blocks(rng: random.Random, pool: list[Ticket]) -> list[Ticket]:
    """``pool`` with one ticket in twenty blocking a random player of the pool."""
    everyone = [p.id for t in pool for p in t.players]
    return [dataclasses.replace(t, blocked_players=(rng.choice(everyone),)) if rng.random() < 0.05 else t for t in pool]


def test_the_c_loop_is_built_here() -> None:
    """The development install compiles it (``pip install -e .`` with a C compiler): without it every
    other test here would compare the Python loop with itself."""
    assert importlib.util.find_spec("matchmaker._matchloop"), "it did not build: is a C compiler installed?"
    assert matching.COMPILED is (sys.version_info < (3, 12)), "on 3.12+ sum() adds floats otherwise: Python loop"


@pytest.mark.parametrize("name", sorted(LOOP_QUEUES))
@pytest.mark.parametrize("seed", range(6))
def test_the_c_loop_proposes_what_the_python_loop_proposes(
    compiled: Callable[[bool], None], name: str, seed: int
) -> None:
    queue = LOOP_QUEUES[name]
    rng = random.Random(seed)
    pool = random_pool(rng, queue, 400, reuse=0.03 if seed % 3 == 0 else 0.0)
    if seed % 2:
        pool = _with_blocks(rng, pool)
    for now in (NOW, NOW + 15, NOW + 45):
        python, c = both(compiled, lambda: find_matches(pool, queue, now))  # noqa: B023 - called at once
        assert c == python
        check_invariants(queue, pool, c, now)


@pytest.mark.parametrize("name", ["4v4", "5x4-parties", "duel"])
def test_tick_after_tick_with_the_c_loop(compiled: Callable[[bool], None], name: str) -> None:
    """A director's matcher (rule values kept between ticks, the C indexes made anew each tick)."""
    queue = LOOP_QUEUES[name]
    rng = random.Random(5)
    pool = random_pool(rng, queue, 300)
    matcher = QueueMatcher(queue)
    compiled(True)
    for tick in range(5):
        now = NOW + 5 * tick
        proposals = matcher(pool, now)
        compiled(False)
        assert proposals == find_matches(pool, queue, now), f"tick {tick}"
        compiled(True)
        matched = {t for p in proposals for t in p.ticket_ids}
        pool = [t for t in pool if t.id not in matched] + [
            dataclasses.replace(t, id=f"{t.id}-{tick}") for t in random_pool(rng, queue, 80)
        ]


def test_parties_that_first_fit_cannot_place_are_repacked_alike(
    compiled: Callable[[bool], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exact packing (``_pack``, in C ``pack``) runs in these pools: the Python loop is seen to
    call it, and the C loop, packing on its own, agrees."""
    calls = 0
    pack = matching._pack

    def counted(*args: Any) -> list[int] | None:
        nonlocal calls
        calls += 1
        return pack(*args)

    monkeypatch.setattr(matching, "_pack", counted)
    queue = LOOP_QUEUES["5x4-parties"]
    for seed in range(3):
        pool = random_pool(random.Random(100 + seed), queue, 600)
        python, c = both(compiled, lambda: find_matches(pool, queue, NOW + 30))  # noqa: B023 - called at once
        assert c == python
    assert calls > 50, "the pools should make first fit fail often"


def _ticket(tid: str, skill: Any, lat: dict[str, Any], wait: float = 10.0) -> Ticket:
    """Its player unchecked (as read back from the store), so that a value ``Player`` refuses gets in."""
    player = load_trusted(Player, {"id": f"{tid}-0", "attributes": {"skill": skill}, "latencies": lat})
    return Ticket(tid, "q", f"{tid}-0", (player,), enqueued_at=NOW - wait)


@pytest.mark.parametrize(
    ("queue", "pool", "reason"),
    [
        pytest.param(
            make_queue(rules=[{**SKILL, "maxDistance": 10}]),
            [_ticket("a", 2**60, {}), _ticket("b", 2**60 + 3, {}), _ticket("c", 2**60 + 99, {})],
            "an integer skill past 2**53 is not exact in a double",
            id="huge-integers",
        ),
        pytest.param(
            make_queue(rules=[SKILL, {**PING, "maxLatencyMs": 1000}]),
            [_ticket(f"t{i}", 1500, {f"r{j}": 50 + (i * j) % 7 for j in range(70)}) for i in range(6)],
            "more regions than a 62-bit mask holds",
            id="seventy-regions",
        ),
    ],
)
def test_what_c_cannot_hold_exactly_runs_in_python(
    compiled: Callable[[bool], None], queue: Queue, pool: list[Ticket], reason: str
) -> None:
    compiled(True)
    tick = matching._Tick(queue, NOW, TicketCache())
    proposals = tick.run(pool)
    assert tick.loop is None, reason
    compiled(False)
    assert proposals == find_matches(pool, queue, NOW)
    assert proposals, "the pool still matches"


def test_tickets_not_eligible_are_never_walked(compiled: Callable[[bool], None]) -> None:
    """Tickets the C loop holds no values for (a word for a skill, leased, expired) stay out."""
    queue = make_queue(rules=[SKILL, PING])
    pool = [
        _ticket("word", "high", {"eu": 10}, wait=30),
        dataclasses.replace(_ticket("leased", 1500, {"eu": 10}, wait=29), state=TicketState.LEASED),
        dataclasses.replace(_ticket("expired", 1500, {"eu": 10}, wait=28), expires_at=NOW),
        _ticket("a", 1500, {"eu": 10}, wait=5),
        _ticket("b", 1510, {"eu": 20.5}, wait=4),
    ]
    python, c = both(compiled, lambda: find_matches(pool, queue, NOW))
    assert c == python
    assert [p.ticket_ids for p in c] == [("a", "b")]


@pytest.mark.parametrize(
    ("widen", "wait", "matched"),
    [
        pytest.param({"steps": [{"afterSeconds": 10, "value": 200}]}, 10.0, True, id="step-reached-at-its-second"),
        pytest.param({"steps": [{"afterSeconds": 10, "value": 200}]}, 9.5, False, id="step-not-yet"),
        pytest.param({"perSecond": 5, "max": 150}, 10.0, True, id="linear-to-its-cap"),
        pytest.param({"perSecond": 5, "max": 149}, 60.0, False, id="capped-below-the-gap"),
        pytest.param({"perSecond": 4.9, "max": 400}, 10.0, False, id="linear-not-yet"),
    ],
)
def test_windows_widen_alike_in_both_loops(
    compiled: Callable[[bool], None], widen: dict[str, Any], wait: float, matched: bool
) -> None:
    """The seed loop's windows (in C) at the edges: a partner 150 away, the base window 100."""
    queue = make_queue(rules=[{**SKILL, "widen": widen}])
    pool = [_ticket("seed", 1500, {}, wait=wait), _ticket("partner", 1650, {}, wait=0.0)]
    python, c = both(compiled, lambda: find_matches(pool, queue, NOW))
    assert c == python
    assert bool(c) is matched


# -- role slots: the C selection places tickets as _Placer does ----------------------------------------

TEN_ROLES = {f"r{i}": 3 if i == 0 else 1 for i in range(10)}
"""As many roles as a team of the C selection may have (``MAX_TEAM_ROLES``): 12 slots."""
ROLE_QUEUES = {
    "5v5-roles": role_queue(
        {"count": 2, "roles": {"tank": 1, "healer": 1, "dps": 3}, "minSize": 4, "waitForFullSeconds": 20}, [SKILL, PING]
    ),
    "3x4-roles-smaller": role_queue(
        {"count": 3, "roles": {"tank": 1, "healer": 1, "dps": 2}, "minSize": 3, "waitForFullSeconds": 10}, [SKILL]
    ),
    "2v2-roles-no-rules": role_queue({"count": 2, "roles": {"tank": 1, "dps": 1}}),
    "named-roles": role_queue(
        {"named": [{"name": "a", "size": 2, "roles": {"tank": 1, "dps": 1}}, {"name": "b", "size": 3}]}, [SKILL, PING]
    ),
    "named-both-roles": role_queue(
        {
            "named": [
                {"name": "attack", "size": 3, "roles": {"sniper": 1, "assault": 2}},
                {"name": "defend", "size": 4, "roles": {"tank": 1, "dps": 3}},
            ]
        },
        [SKILL],
    ),
    "ten-roles": role_queue({"count": 2, "roles": TEN_ROLES, "minSize": 10, "waitForFullSeconds": 5}, [SKILL]),
}


def _roles_pool(queue: Queue, seed: int, size: int) -> list[Ticket]:
    """``random_pool`` with role offers: none (any role), one to three of the queue's roles, or a
    role no team has."""
    rng = random.Random(seed)
    names = [*sorted({role for roles in queue.spec.teams.team_roles for role in roles}), "bard"]
    pool = random_pool(rng, queue, size)
    if seed % 2:
        pool = _with_blocks(rng, pool)

    def offers() -> tuple[str, ...]:
        return tuple(rng.sample(names, rng.choice((0, 1, 1, 1, 2, 3))))

    return [
        dataclasses.replace(t, players=tuple(dataclasses.replace(p, roles=offers()) for p in t.players)) for t in pool
    ]


def _placed_in_c(queue: Queue, pool: list[Ticket]) -> bool:
    tick = matching._Tick(queue, NOW, TicketCache())
    tick.run(pool)
    return tick.placing


@pytest.mark.parametrize("name", sorted(ROLE_QUEUES))
@pytest.mark.parametrize("seed", range(4))
def test_the_c_loop_places_role_slots_as_the_python_loop(
    compiled: Callable[[bool], None], name: str, seed: int
) -> None:
    queue = ROLE_QUEUES[name]
    pool = _roles_pool(queue, seed, 400)
    compiled(True)
    assert _placed_in_c(queue, pool), "the C loop should place this queue's role slots"
    matched = 0
    for now in (NOW, NOW + 15, NOW + 45):
        python, c = both(compiled, lambda: find_matches(pool, queue, now))  # noqa: B023 - called at once
        assert c == python
        if not queue.spec.teams.named:  # teams of one size: check_invariants' shape
            check_invariants(queue, pool, c, now)
        matched += len(c)
    assert matched, "the pools should form matches"


def test_a_team_of_more_roles_than_c_counts_is_placed_in_python(compiled: Callable[[bool], None]) -> None:
    queue = role_queue({"count": 2, "roles": {f"r{i}": 1 for i in range(11)}}, [SKILL])
    pool = _roles_pool(queue, 3, 300)
    compiled(True)
    assert not _placed_in_c(queue, pool), "2**11 subsets: the selection stays in Python"
    python, c = both(compiled, lambda: find_matches(pool, queue, NOW + 30))
    assert c == python


@pytest.mark.parametrize("name", ["5v5-roles", "named-roles"])
def test_role_slots_tick_after_tick_with_the_c_loop(compiled: Callable[[bool], None], name: str) -> None:
    queue = ROLE_QUEUES[name]
    pool = _roles_pool(queue, 8, 300)
    matcher = QueueMatcher(queue)
    for tick in range(4):
        now = NOW + 10 * tick
        compiled(True)
        proposals = matcher(pool, now)
        compiled(False)
        assert list(map(repr, proposals)) == list(map(repr, find_matches(pool, queue, now))), f"tick {tick}"
        matched = {t for p in proposals for t in p.ticket_ids}
        pool = [t for t in pool if t.id not in matched] + [
            dataclasses.replace(t, id=f"{t.id}-{tick}") for t in _roles_pool(queue, 20 + tick, 80)
        ]


# -- the rows in age order ---------------------------------------------------------------------------


def _rows(rng: random.Random, count: int) -> list[tuple[Any, ...]]:
    """Rows as ``_Tick._derive`` makes them, as far as ``_by_age`` reads them: ids, times (float or
    int, some equal, some expired), queued or not, and the same ticket twice now and then."""
    rows: list[tuple[Any, ...]] = []
    for i in range(count):
        if rows and rng.random() < 0.05:
            rows.append(rng.choice(rows))  # a snapshot repeats a ticket
            continue
        enqueued: float = rng.choice((NOW - rng.randrange(5), NOW - rng.uniform(0, 60), NOW - 30))
        expires: float = rng.choice((0.0, 0, NOW + 60, NOW - 1, NOW))
        rows.append(((), None, f"q.{rng.randrange(count):04d}", enqueued, expires, rng.random() < 0.9, i))
    return rows


@pytest.mark.parametrize("seed", range(20))
def test_rows_are_put_in_age_order_alike_in_c(seed: int) -> None:
    rows = _rows(random.Random(seed), 300)
    expected = matching._by_age(list(rows), NOW)
    got = matching._matchloop.by_age(list(rows), NOW)  # type: ignore[attr-defined]  # built: see the first test
    assert got == expected
    assert [id(r) for r in got] == [id(r) for r in expected]


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(((), None, "q.x", 2**60, 0.0, True), id="time-past-2**53"),
        pytest.param(((), None, "q.x", NOW, None, True), id="no-expiry-time"),
        pytest.param(((), None, 7, NOW, 0.0, True), id="id-not-str"),
        pytest.param(((), None, "q.x", math.nan, 0.0, True), id="nan"),
    ],
)
def test_rows_c_cannot_order_exactly_are_left_to_python(row: tuple[Any, ...]) -> None:
    assert matching._matchloop.by_age([row], NOW) is None  # type: ignore[attr-defined]
