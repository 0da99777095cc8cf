"""The rule values a queue's matcher keeps between ticks: never stale, never a different result.

``QueueMatcher`` must answer exactly what ``find_matches`` answers on the same pool, whatever
happened between its ticks: tickets matched and gone, changed (a new object under the same id),
new, expired, leased, repeated, players in two tickets, blocks arriving later.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from fleetmatch.models import FLEET_LABEL
from matchmaker.matching import QueueMatcher, find_matches
from matchmaker.models import Player, Ticket, TicketState
from matchmaker.rules import Queue, decode_queue
from matchmaker.tickcache import TicketCache
from tests.unit.test_matching import NOW, QUEUES, T, check_invariants, make_queue, random_pool, solo, teams_of

ROLES = decode_queue(
    {
        "metadata": {"name": "q"},
        "spec": {
            "teams": {"count": 2, "roles": {"tank": 1, "healer": 1, "dps": 2}, "minSize": 3, "waitForFullSeconds": 20},
            "rules": [{"name": "skill", "type": "distance", "attribute": "skill", "maxDistance": 300}],
            "allocation": {"selectors": [{"matchLabels": {FLEET_LABEL: "f"}}]},
        },
    }
)
OFFERS: tuple[tuple[str, ...], ...] = (("tank",), ("healer",), ("dps",), ("dps",), ("tank", "dps"), ())


def _with_roles(rng: random.Random, pool: list[Ticket]) -> list[Ticket]:
    """Solo tickets offering roles (parties of the random pool would often fit no slots)."""
    out = []
    for t in pool:
        player = t.players[0]
        out.append(dataclasses.replace(t, players=(dataclasses.replace(player, roles=rng.choice(OFFERS)),)))
    return out


def _next_pool(rng: random.Random, queue: Queue, pool: list[Ticket], matched: set[str], tick: int) -> list[Ticket]:
    """What a store might hand the next tick: most matched tickets gone, some tickets changed (a new
    object, as the store decodes a changed ticket again), leased or expired, new ones, a repeat."""
    out: list[Ticket] = []
    for t in {t.id: t for t in reversed(pool)}.values():  # last tick's repeat once
        roll = rng.random()
        if t.id in matched and roll < 0.8:
            continue
        if roll < 0.05:
            skill = round(rng.gauss(1500, 200))
            players = tuple(dataclasses.replace(p, attributes={**p.attributes, "skill": skill}) for p in t.players)
            t = dataclasses.replace(t, players=players)
        elif roll < 0.07:
            t = dataclasses.replace(t, state=TicketState.LEASED)
        elif roll < 0.09:
            t = dataclasses.replace(t, expires_at=NOW + tick)
        elif roll < 0.12:
            everyone = [p.id for other in pool for p in other.players]
            t = dataclasses.replace(t, blocked_players=(rng.choice(everyone),))
        out.append(t)
    fresh = random_pool(rng, queue, 60, reuse=0.1)
    fresh = [dataclasses.replace(t, id=f"{t.id}-{tick}") for t in fresh]
    if queue is ROLES:
        fresh = _with_roles(rng, fresh)
    out += fresh
    out.append(rng.choice(out))  # a snapshot may repeat a ticket
    rng.shuffle(out)
    return out


@pytest.mark.parametrize("name", [*sorted(QUEUES), "roles"])
@pytest.mark.parametrize("seed", range(4))
def test_the_matcher_answers_as_the_function_tick_after_tick(name: str, seed: int) -> None:
    queue = ROLES if name == "roles" else QUEUES[name]
    rng = random.Random(seed)
    pool = random_pool(rng, queue, 250, reuse=0.05)
    if queue is ROLES:
        pool = _with_roles(rng, pool)
    matcher = QueueMatcher(queue)
    seen: set[int] = set()
    for tick in range(6):
        now = NOW + tick
        proposals = matcher(pool, now)
        assert proposals == find_matches(pool, queue, now), f"tick {tick}"
        check_invariants(queue, [t for t in pool if t.state is TicketState.QUEUED], proposals, now)
        objects = set(map(id, pool))
        assert matcher.cache.derived == len(objects - seen), "only tickets not seen last tick are derived"
        assert len(matcher.cache) == len(objects)
        seen = objects
        pool = _next_pool(rng, queue, pool, {t for p in proposals for t in p.ticket_ids}, tick)


def test_a_changed_ticket_is_derived_again() -> None:
    """The store hands back a new object when a ticket changed: its row is derived again, even under
    the same id (a cache keyed by ticket id would keep the old skill and match nothing)."""
    matcher = QueueMatcher(make_queue())
    far = solo("c", "carol", 3000, wait=1)
    assert matcher([solo("a", "alice", 1500, wait=2), far], NOW) == []
    assert teams_of(matcher([solo("a", "alice", 2990, wait=2), far], NOW)) == [T("a", "c")]


def test_a_player_in_two_tickets_is_noticed_when_the_second_arrives() -> None:
    matcher = QueueMatcher(make_queue())
    first = solo("a", "alice", wait=3)
    assert matcher([first], NOW) == []
    assert matcher([first, solo("b", "alice", wait=2)], NOW) == [], "alice would play herself"
    assert teams_of(matcher([first, solo("c", "carol", wait=1)], NOW)) == [T("a", "c")], "b left: nothing shared"


def test_a_block_is_honoured_when_it_arrives_in_a_later_tick() -> None:
    matcher = QueueMatcher(make_queue())
    first = solo("a", "alice", wait=3)
    assert matcher([first], NOW) == []
    blocker = dataclasses.replace(solo("b", "bob", wait=2), blocked_players=("alice",))
    assert matcher([first, blocker], NOW) == []
    assert teams_of(matcher([first, solo("c", "carol", wait=1)], NOW)) == [T("a", "c")], "the blocker left"


def test_the_cache_keeps_exactly_the_tickets_of_the_last_tick() -> None:
    cache = TicketCache()
    derived: list[str] = []

    def derive(tickets: list[Ticket]) -> list[tuple[Any, ...]]:
        derived.extend(t.id for t in tickets)
        return [(tuple(p.id for p in t.players), t.id, ()) for t in tickets]

    a, b, c = (Ticket(x, "q", x, (Player(x),)) for x in "abc")
    assert [row[1] for row in cache.rows([a, b, a], derive)] == ["a", "b", "a"]
    assert derived == ["a", "b"] and len(cache) == 2, "an object given twice is derived once"
    assert [row[1] for row in cache.rows([b, c], derive)] == ["b", "c"]
    assert derived == ["a", "b", "c"] and len(cache) == 2, "only c was new; a is forgotten"

    def shared() -> bool:  # a call: mypy would take the property for a constant between the asserts
        return cache.shared_players

    assert not shared()
    cache.rows([b, c, Ticket("d", "q", "b", (Player("b"),))], derive)
    assert shared(), "player b in two tickets"
    cache.rows([c], derive)
    assert not shared() and len(cache) == 1


def test_a_matcher_busy_in_another_thread_still_answers() -> None:
    """Two ticks at once (a shadow run, say) must not share the cache: the second goes without it."""
    queue = QUEUES["duel"]
    pool = random_pool(random.Random(1), queue, 100)
    matcher = QueueMatcher(queue)
    with matcher._busy:  # another tick holds the cache
        assert matcher(pool, NOW) == find_matches(pool, queue, NOW)
    assert len(matcher.cache) == 0
