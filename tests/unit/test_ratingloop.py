"""A rating queue's balance and prediction in C (``matchmaker/_ratingloop.c``) give exactly what the
Python code gives: the same splits and floats, compared by ``repr`` (a float that differs in its last
bit shows), on random matches and through the matcher on random rated pools."""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest

from matchmaker import ratings
from matchmaker.matching import find_matches
from matchmaker.models import Player, Ticket
from matchmaker.ratings import Rating, balance
from tests.unit.test_matching import NOW, make_queue

Split = tuple[list[list[Rating]], list[list[int]], int]


@pytest.fixture
def compiled() -> Iterator[Callable[[bool], None]]:
    """Switch the C code on or off for the calls that follow; back as it was afterwards. On CPython
    3.12+ the C code is never used (``ratings.COMPILED`` is off: ``sum()`` compensates there, and
    its floats would differ), so there is nothing to compare."""
    if sys.version_info >= (3, 12):
        pytest.skip("the C rating code is off on CPython 3.12+ (its sum() adds floats otherwise)")
    was = ratings.COMPILED

    def switch(on: bool) -> None:
        ratings.COMPILED = on

    yield switch
    ratings.COMPILED = was


def outcome(call: Callable[[], Any]) -> str:
    """What a call returns or raises, as text: the two paths must agree on both."""
    try:
        return repr(call())
    except Exception as error:  # the Python code's own errors, whichever they are
        return f"raised {type(error).__name__}: {error}"


def both(switch: Callable[[bool], None], call: Callable[[], Any]) -> str:
    switch(False)
    python = outcome(call)
    switch(True)
    c = outcome(call)
    assert c == python
    return c


def test_the_c_rating_loop_is_built_here() -> None:
    """The development install compiles it (``pip install -e .`` with a C compiler): without it every
    other test here would compare the Python code with itself. On CPython 3.12+ it is built but off
    (``sum()`` adds floats differently there), and a rating queue runs in Python."""
    assert importlib.util.find_spec("matchmaker._ratingloop"), "it did not build: is a C compiler installed?"
    assert ratings.COMPILED is (sys.version_info < (3, 12))


# -- balance on random matches --------------------------------------------------------------------


def _mu(rng: random.Random, kind: str) -> float:
    """Ratings that tie (whole numbers), nearly tie (tenths: sums differ in their last bits, where
    the 1e-9 rule decides) or do not (full precision)."""
    if kind == "whole":
        return float(rng.randint(20, 30))
    if kind == "tenths":
        return round(rng.gauss(25, 4), 1)
    return rng.gauss(25, 5)


def _rating(rng: random.Random, kind: str, sigma: bool) -> Rating:
    """A rating of ``kind``; with ``sigma`` some share an ordinal with others, unlike mu and sigma
    (the order a team's ratings are summed in, by ordinal, then shows in the last bits)."""
    if not sigma:
        return Rating(_mu(rng, kind))
    if rng.random() < 0.3:
        spread = rng.choice([1.1, 2.3, 0.7, ratings.DEFAULT_SIGMA])
        return Rating(rng.choice([19.7, 22.1, 24.3]) + 3.0 * spread, spread)
    return Rating(_mu(rng, kind), rng.choice([ratings.DEFAULT_SIGMA, 2.0, rng.uniform(0.5, 9)]))


def _party(rng: random.Random, players: int, kind: str, sigma: bool) -> list[Rating]:
    return [_rating(rng, kind, sigma) for _ in range(players)]


def random_match(rng: random.Random, teams: int, size: int, biggest: int, sigma: bool) -> Split:
    """``teams`` teams of ``size`` players in parties of 1..``biggest``, shuffled, and the greedy split
    they came from (a valid one, as the matcher's)."""
    kind = rng.choice(["whole", "tenths", "any"])
    parties: list[tuple[int, list[Rating]]] = []
    for team in range(teams):
        left = size
        while left:
            players = rng.randint(1, min(biggest, left))
            parties.append((team, _party(rng, players, kind, sigma)))
            left -= players
    rng.shuffle(parties)
    greedy = [[i for i, (t, _) in enumerate(parties) if t == team] for team in range(teams)]
    return [party for _, party in parties], greedy, size


SHAPES = {  # teams, players per team, the biggest party
    "2-teams-mixed-parties": (2, 4, 4),
    "2-teams-pairs": (2, 4, 2),
    "2-teams-solos": (2, 5, 1),
    "2-teams-too-many-to-try": (2, 7, 1),  # more than BRUTE_FORCE_PARTIES: the greedy split stands
    "3-teams": (3, 3, 3),
    "5-teams-solos": (5, 1, 1),
    "8-teams": (8, 4, 4),
}


@pytest.mark.parametrize("sigma", [True, False], ids=["sigma", "no-sigma"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_c_balance_gives_the_python_teams_and_floats(
    compiled: Callable[[bool], None], shape: str, sigma: bool
) -> None:
    teams, size, biggest = SHAPES[shape]
    rng = random.Random(f"{shape}-{sigma}")
    for _ in range(400):
        parties, greedy, cap = random_match(rng, teams, size, biggest, sigma)
        both(compiled, partial(balance, parties, greedy, cap))


@pytest.mark.parametrize(
    ("mus", "split"),
    [
        # 0.6 + 0.3 + 0.4 and 0.3 + 0.4 + 0.6 differ in their last bit: within 1e-9 the first split
        # found (here the greedy one) stays
        pytest.param((0.6, 0.3, 0.4, 0.3, 0.4, 0.6), [[0, 1, 2], [3, 4, 5]], id="within-1e-9"),
        # {5, 2, 5} and {5, 1, 5} are as far from even (gap 2): the first found stays
        pytest.param((5.0, 7.0, 2.0, 1.0, 3.0, 5.0), [[0, 2, 5], [1, 3, 4]], id="exact-tie"),
    ],
)
def test_the_c_balance_keeps_the_first_of_equally_even_splits(
    compiled: Callable[[bool], None], mus: tuple[float, ...], split: list[list[int]]
) -> None:
    """The tie rule of ``_best_split``: a later split replaces the best so far only if it is more
    even by more than 1e-9 (float noise is no reason to move a party)."""
    parties = [[Rating(mu)] for mu in mus]
    got = both(compiled, lambda: balance(parties, [[0, 1, 2], [3, 4, 5]], 3))
    assert got.startswith(f"({split!r}, ")


# -- what the C code leaves to Python --------------------------------------------------------------

ODD_CASES: dict[str, tuple[list[list[Rating]], list[list[int]], int]] = {
    "integer-ratings": ([[Rating(30, 4)], [Rating(22, 7)]], [[0], [1]], 1),
    "infinite-mu": ([[Rating(math.inf)], [Rating(22.0)]], [[0], [1]], 1),
    "nan-sigma": ([[Rating(25.0, math.nan)], [Rating(22.0)]], [[0], [1]], 1),
    "sigma-squared-overflows": ([[Rating(25.0, 1e200)], [Rating(22.0)]], [[0], [1]], 1),
    "one-team": ([[Rating(25.0)], [Rating(22.0)]], [[0, 1]], 2),
    "an-empty-team": ([[Rating(25.0)], [Rating(22.0)]], [[0, 1], []], 2),
    "an-empty-party": ([[Rating(25.0)], [], [Rating(22.0)]], [[0, 1], [2]], 1),
    "index-from-the-end": ([[Rating(25.0)], [Rating(22.0)], [Rating(21.0)]], [[0, -1], [1]], 1),
    "index-out-of-range": ([[Rating(25.0)], [Rating(22.0)]], [[0], [2]], 1),
    "party-bigger-than-a-team": ([[Rating(25.0)] * 2, [Rating(22.0)] * 2], [[0], [1]], 1),
    "a-party-in-every-team": ([[Rating(25.0)], [Rating(22.0)]], [[0, 0, 0], [0, 1]], 3),
}


@pytest.mark.parametrize("case", sorted(ODD_CASES))
def test_the_c_balance_answers_none_where_python_differs_or_fails(compiled: Callable[[bool], None], case: str) -> None:
    """Not a float, not finite, an overflow, a split that is not one: the C code declines (None) and
    ``balance`` then returns or raises what the Python code always did."""
    from matchmaker import _ratingloop  # not built: test_the_c_rating_loop_is_built_here fails too

    parties, greedy, size = ODD_CASES[case]
    declined = _ratingloop.balance(
        parties, greedy, size, ratings.BRUTE_FORCE_PARTIES, ratings._SPREAD, ratings._draw_margin
    )
    assert declined is None
    both(compiled, lambda: balance(parties, greedy, size))


# -- through the matcher ---------------------------------------------------------------------------

RATING: dict[str, Any] = {"name": "rating", "type": "rating", "attribute": "skill", "maxDistance": 4}
QUEUES = {
    "2v2-parties": make_queue(max_size=2, rules=[RATING]),
    "4v4-parties": make_queue(max_size=4, min_size=2, wait_for_full=20, rules=[RATING]),
    "5v5-solos": make_queue(max_size=5, rules=[RATING]),
    "3x3-parties": make_queue(count=3, max_size=3, rules=[{**RATING, "maxDistance": 8}]),
    "ffa-6": make_queue(count=6, max_size=1, rules=[{**RATING, "maxDistance": 8}]),
}


def rated_pool(rng: random.Random, size: int, biggest: int, sigma: bool) -> list[Ticket]:
    """Tickets of parties of 1..``biggest`` with a rating (tenths: near ties), a sigma or not."""
    pool = []
    for i in range(size):
        players = []
        for j in range(rng.randint(1, biggest)):
            attributes = {"skill": round(rng.gauss(25, 4), 1)}
            if sigma and rng.random() < 0.8:
                attributes["skill.sigma"] = round(rng.uniform(1, 8.3), 2)
            players.append(Player(f"t{i}-{j}", attributes))
        pool.append(Ticket(f"t{i}", "q", f"t{i}-0", tuple(players), enqueued_at=NOW - rng.uniform(0, 40)))
    return pool


@pytest.mark.parametrize("sigma", [True, False], ids=["sigma", "no-sigma"])
@pytest.mark.parametrize("name", sorted(QUEUES))
def test_a_rating_queue_proposes_the_same_matches_with_the_c_balance(
    compiled: Callable[[bool], None], name: str, sigma: bool
) -> None:
    queue = QUEUES[name]
    rng = random.Random(f"{name}-{sigma}")
    biggest = 1 if name == "5v5-solos" else min(4, queue.spec.teams.max_size)
    for _ in range(3):
        pool = rated_pool(rng, 300, biggest, sigma)
        proposals = both(compiled, partial(find_matches, pool, queue, NOW))
        assert proposals.count("draw_probability=0.") >= 10  # matches, rated
