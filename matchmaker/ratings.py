"""Player ratings (pure): OpenSkill's Plackett-Luce model, a match result in, new ratings out.

A rating is a belief about a player's skill: ``mu`` (the estimate) and ``sigma`` (how unsure it is).
New players start at ``mu = 25``, ``sigma = 25/3`` (OpenSkill's defaults); every result moves the
winners' ``mu`` up and the losers' down, and shrinks everyone's ``sigma`` as evidence accumulates.
``ordinal = mu - 3 sigma`` is the conservative figure leaderboards show.

What this module does, without I/O (the Redis side is ``matchmaker.ratingstore``):

- ``rate``: teams of ratings and their ranks (1 = first; equal ranks are a draw) or scores (higher
  is better) -> the teams' new ratings.
- ``predict_win`` / ``predict_draw``: each team's chance to win, and the chance of a draw, which is
  highest when the teams are evenly matched: the **match quality** of a rating queue. ``predict``
  gives both from mu and sigma directly, with OpenSkill's floats: the matcher's per-match path.
- ``balance``: the split of a match's parties into teams whose predicted win probability is
  closest to even (every split for small matches of two teams, the matcher's greedy split otherwise).
- ``parse_result``: a game backend's ``POST /v1/matches/{id}/result`` body against the recorded
  match -> an ``Outcome``, with errors that name the field.
- ``with_ratings``: a ticket request whose players omit their rating -> the same request with the
  stored (or new-player) rating as the rule's attribute and ``<attribute>.sigma``.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from openskill.models import PlackettLuce
from openskill.models.weng_lin.common import phi_major, phi_major_inverse

from fleetmatch.errors import ValidationError
from matchmaker.models import Player, TicketRequest

DEFAULT_MU = 25.0
DEFAULT_SIGMA = 25.0 / 3.0
SIGMA_SUFFIX = ".sigma"
"""A player's sigma travels as the attribute ``<rating attribute>.sigma`` (``skill.sigma``)."""
BRUTE_FORCE_PARTIES = 10
"""Two-team matches of at most this many tickets try every split (at most 2^9 = 512); larger ones,
and matches of three teams or more, keep the matcher's greedy split."""
MAX_RANK = 1_000_000

_MODEL = PlackettLuce(mu=DEFAULT_MU, sigma=DEFAULT_SIGMA)
_SPREAD = 2 * _MODEL.beta**2
"""``predict``'s ``2 beta^2``: the part of every pair's variance that no player's sigma adds."""

try:
    from matchmaker import _ratingloop
except ImportError:  # built by pip where there is a C compiler (setup.py): optional
    _ratingloop = None  # type: ignore[assignment]

COMPILED = _ratingloop is not None and sys.version_info < (3, 12)
"""Balance and predict in C (``matchmaker/_ratingloop.c``) when it was built: the same teams and
floats (tests/unit/test_ratingloop.py). It adds floats as CPython 3.11's ``sum()`` does, left to
right; 3.12's ``sum()`` compensates, so there the Python code runs. Tests turn this off to check."""


@dataclass(frozen=True, slots=True)
class Rating:
    mu: float = DEFAULT_MU
    sigma: float = DEFAULT_SIGMA

    @property
    def ordinal(self) -> float:
        """``mu - 3 sigma``: a figure the player is 99.7 % sure to be above."""
        return self.mu - 3.0 * self.sigma


NEW_PLAYER = Rating()


def _teams(teams: Sequence[Sequence[Rating]]) -> list[list[Any]]:
    if len(teams) < 2 or not all(teams):
        raise ValidationError("teams", f"a rating needs at least two teams of at least one player, got {len(teams)}")
    return [[_MODEL.rating(mu=r.mu, sigma=r.sigma) for r in team] for team in teams]


def rate(
    teams: Sequence[Sequence[Rating]], *, ranks: Sequence[float] | None = None, scores: Sequence[float] | None = None
) -> list[list[Rating]]:
    """The teams' ratings after a match: exactly one of ``ranks`` (lower is better, equal is a draw)
    or ``scores`` (higher is better), one per team."""
    if (ranks is None) == (scores is None):
        raise ValidationError("teams", "give each team a rank or a score (one kind for all)")
    given = ranks if ranks is not None else scores
    assert given is not None
    if len(given) != len(teams):
        raise ValidationError("teams", f"{len(given)} results for {len(teams)} teams")
    rated = _MODEL.rate(
        _teams(teams),
        ranks=list(map(float, ranks)) if ranks is not None else None,
        scores=list(map(float, scores)) if scores is not None else None,
    )
    return [[Rating(float(r.mu), float(r.sigma)) for r in team] for team in rated]


def predict_win(teams: Sequence[Sequence[Rating]]) -> list[float]:
    """Each team's probability of winning (they sum to 1)."""
    return [float(p) for p in _MODEL.predict_win(_teams(teams))]


def predict_draw(teams: Sequence[Sequence[Rating]]) -> float:
    """The probability of a draw: highest for evenly matched teams (OpenSkill's match quality)."""
    return float(_MODEL.predict_draw(_teams(teams)))


# -- matches: team balance and quality ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prediction:
    win: tuple[float, ...]
    """Per team, the probability it wins."""
    draw: float
    """The probability of a draw: the match's quality."""


def party_ratings(players: Sequence[Player], attribute: str) -> list[Rating]:
    """The ratings of a ticket's players, from ``attribute`` and ``attribute.sigma`` (a missing
    sigma is a new player's)."""
    out = []
    for p in players:
        mu = p.attributes.get(attribute, DEFAULT_MU)
        sigma = p.attributes.get(attribute + SIGMA_SUFFIX, DEFAULT_SIGMA)
        out.append(Rating(float(mu), float(sigma)))  # numbers: Queue.check_ticket and the matcher checked
    return out


def balance(
    parties: Sequence[Sequence[Rating]], greedy: Sequence[Sequence[int]], size: int
) -> tuple[list[list[int]], Prediction]:
    """Teams of parties (indexes into ``parties``) whose predicted win probability is closest to
    even, and that prediction. ``greedy`` is a valid split (``size`` players per team) to start from.

    Two teams: ``P(A wins) = Phi((mu_A - mu_B) / c)`` where ``c`` depends only on the sum of every
    player's sigma^2 (the same for every split), so the split closest to 0.5 is the one with the
    smallest difference of mu sums: with at most ``BRUTE_FORCE_PARTIES`` tickets every split is tried
    (the first party stays in team 0: the mirror split is the same match), exact to the float.

    The matcher calls this for every match of a rating queue: in C when it is built (``COMPILED``),
    which answers None for anything it does not reproduce (the Python code then runs, and raises
    what it always raised).
    """
    if COMPILED:
        done = _ratingloop.balance(parties, greedy, size, BRUTE_FORCE_PARTIES, _SPREAD, _draw_margin)
        if done is not None:
            split, win, draw = done
            return split, Prediction(win, draw)
    teams = [list(team) for team in greedy]
    if len(teams) == 2 and len(parties) <= BRUTE_FORCE_PARTIES:
        teams = _best_split(parties, teams, size)
    return teams, predict([[r for i in team for r in parties[i]] for team in teams])


def predict(teams: Sequence[Sequence[Rating]]) -> Prediction:
    """``predict_win`` and ``predict_draw`` in one, from mu and sigma directly: OpenSkill's own
    rating objects each cost a ``uuid4``, and the matcher predicts every match of a rating queue.
    The arithmetic is Plackett-Luce's in openskill 6, step for step and in the same order (a team's
    mu and sigma^2 summed over its players by descending ordinal, no balance weights), so the floats
    are the same; tests/unit/test_ratings.py holds it to OpenSkill's answers."""
    if len(teams) < 2 or not all(teams):
        raise ValidationError("teams", f"a rating needs at least two teams of at least one player, got {len(teams)}")
    sums = list(map(_team_sums, teams))
    spread = 2 * _MODEL.beta**2
    n = len(sums)
    if n == 2:
        (mu_a, var_a), (mu_b, var_b) = sums
        first = phi_major((mu_a - mu_b) / math.sqrt(spread + var_a + var_b))
        win: tuple[float, ...] = (first, 1 - first)
    else:
        pairs = [
            phi_major((mu_a - mu_b) / math.sqrt(spread + var_a + var_b))
            for (mu_a, var_a), (mu_b, var_b) in itertools.permutations(sums, 2)
        ]
        wins = [sum(pairs[j] for j in range(i * (n - 1), (i + 1) * (n - 1))) / (n - 1) for i in range(n)]
        total = sum(wins)
        win = tuple(w / total for w in wins)
    margin = _draw_margin(sum(map(len, teams)))
    draws = [
        phi_major((margin - mu_a + mu_b) / math.sqrt(spread + var_a + var_b))
        - phi_major((mu_b - mu_a - margin) / math.sqrt(spread + var_a + var_b))
        for (mu_a, var_a), (mu_b, var_b) in itertools.combinations(sums, 2)
    ]
    return Prediction(win=win, draw=sum(draws) / len(draws))


def _ordinal(rating: Rating) -> float:
    return rating.mu - 3.0 * rating.sigma  # OpenSkill's ordinal() with its defaults (z 3, alpha 1, target 0)


def _team_sums(team: Sequence[Rating]) -> tuple[float, float]:
    """A team's mu and sigma^2, summed as OpenSkill sums them (strongest ordinal first)."""
    mu = var = 0.0
    for r in sorted(team, key=_ordinal, reverse=True):
        mu += r.mu
        var += r.sigma**2
    return mu, var


@functools.lru_cache(maxsize=256)
def _draw_margin(players: int) -> float:
    return math.sqrt(players) * _MODEL.beta * phi_major_inverse((1 + 1 / players) / 2)


def _best_split(parties: Sequence[Sequence[Rating]], start: list[list[int]], size: int) -> list[list[int]]:
    sizes = [len(p) for p in parties]
    mus = [sum([r.mu for r in p]) for p in parties]
    total = sum(mus)
    size_of, mu_of = sizes.__getitem__, mus.__getitem__
    need, first = size - sizes[0], mus[0]  # team 0: party 0 and ``others``

    best, best_gap = start, abs(total - 2 * sum(map(mu_of, start[0])))
    rest = range(1, len(parties))
    counts = range(len(parties)) if len(set(sizes)) > 1 else (size // sizes[0] - 1,)
    for k in counts:
        for others in itertools.combinations(rest, k):
            if sum(map(size_of, others)) != need:
                continue
            g = abs(total - 2 * sum(map(mu_of, others), first))  # the same additions as a sum over (0, *others)
            if g < best_gap - 1e-9:
                chosen = {0, *others}
                best, best_gap = [[0, *others], [i for i in range(len(parties)) if i not in chosen]], g
    return best


# -- tickets --------------------------------------------------------------------------------------


def with_ratings(
    request: TicketRequest, attribute: str, stored: Mapping[str, Rating], *, trusted: bool
) -> TicketRequest:
    """``request`` with every player's rating as attributes ``attribute`` (mu) and
    ``attribute.sigma``: the stored one, or a new player's. A player who brings a rating keeps it
    only if the caller is ``trusted`` (a game backend with its own rating system, an API key); a
    player token may not choose its own skill."""
    sigma_name = attribute + SIGMA_SUFFIX
    players = []
    for i, player in enumerate(request.players):
        attributes = player.attributes
        given = [name for name in (attribute, sigma_name) if name in attributes]
        if given and not trusted:
            raise ValidationError(
                f"players[{i}].attributes.{given[0]}",
                "is the player's rating, which the matchmaker keeps from match results: leave it out "
                "(a game backend's API key may give it)",
            )
        if attribute in attributes:
            players.append(player)
            continue
        rating = stored.get(player.id, NEW_PLAYER)
        players.append(replace(player, attributes={**attributes, attribute: rating.mu, sigma_name: rating.sigma}))
    return replace(request, players=tuple(players))


# -- results --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """A match's result as OpenSkill rates it: groups of players (the match's teams, or one group per
    player for per-player ranks) with a rank or a score each."""

    groups: tuple[tuple[str, ...], ...]
    ranks: tuple[float, ...] | None = None
    scores: tuple[float, ...] | None = None

    @property
    def players(self) -> tuple[str, ...]:
        return tuple(p for group in self.groups for p in group)

    def canonical(self) -> str:
        """The same text for the same result: how a repeated POST is told from a different one."""
        return json.dumps([self.groups, self.ranks, self.scores], separators=(",", ":"))

    def rated(self, before: Mapping[str, Rating]) -> dict[str, Rating]:
        """Every player's rating after this outcome, from ``before`` (a new player's when absent)."""
        teams = [[before.get(p, NEW_PLAYER) for p in group] for group in self.groups]
        after = rate(teams, ranks=self.ranks, scores=self.scores)
        return {
            p: r for group, ratings in zip(self.groups, after, strict=True) for p, r in zip(group, ratings, strict=True)
        }


def _number(value: Any, where: str, *, rank: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(where, f"must be a number, got {json.dumps(value)[:40]}")
    if rank and (value != int(value) or not 1 <= value <= MAX_RANK):
        raise ValidationError(where, f"must be a whole number within 1..{MAX_RANK} (1 = first), got {value}")
    return float(value)


def _only(doc: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(doc) - allowed)
    if extra:
        prefix = f"{where}." if where else ""
        raise ValidationError(f"{prefix}{extra[0]}", f"unknown field; expected {', '.join(sorted(allowed))}")


def parse_result(doc: Any, teams: Sequence[Sequence[str]]) -> Outcome:
    """A result body for a match of ``teams`` (player ids per team, in the match's team order):

    - ``{"teams": [{"rank": 1}, {"rank": 2}]}`` or ``{"teams": [{"score": 31}, {"score": 12}]}``:
      one entry per team of the match, in its order (a ticket's ``assignment.team``);
    - ``{"players": [{"id": "p1", "rank": 1}, ...]}``: every player of the match once, rated as a
      free-for-all (each player on their own).
    """
    if not isinstance(doc, dict):
        raise ValidationError("", "expected an object with teams or players")
    _only(doc, {"teams", "players"}, "")
    if ("teams" in doc) == ("players" in doc):
        raise ValidationError("teams", "give either teams (a rank or score per team) or players (a rank per player)")
    if "teams" in doc:
        return _team_result(doc["teams"], teams)
    return _player_result(doc["players"], teams)


def _team_result(entries: Any, teams: Sequence[Sequence[str]]) -> Outcome:
    if not isinstance(entries, list) or len(entries) != len(teams):
        got = len(entries) if isinstance(entries, list) else "not a list"
        raise ValidationError("teams", f"must list the match's {len(teams)} teams in order, got {got}")
    kind = None
    values = []
    for i, entry in enumerate(entries):
        where = f"teams[{i}]"
        if not isinstance(entry, dict):
            raise ValidationError(where, 'must be an object: {"rank": 1} or {"score": 31}')
        _only(entry, {"rank", "score"}, where)
        if len(entry) != 1:
            raise ValidationError(where, "give a rank or a score")
        (key,) = entry
        if kind is not None and key != kind:
            raise ValidationError(f"{where}.{key}", f"every team needs a {kind}, as the first one")
        kind = key
        values.append(_number(entry[key], f"{where}.{key}", rank=key == "rank"))
    groups = tuple(tuple(team) for team in teams)
    return Outcome(groups, ranks=tuple(values)) if kind == "rank" else Outcome(groups, scores=tuple(values))


def _player_result(entries: Any, teams: Sequence[Sequence[str]]) -> Outcome:
    everyone = [p for team in teams for p in team]
    if not isinstance(entries, list):
        raise ValidationError("players", "must be a list of {id, rank}")
    ranks: dict[str, float] = {}
    for i, entry in enumerate(entries):
        where = f"players[{i}]"
        if not isinstance(entry, dict):
            raise ValidationError(where, 'must be an object: {"id": "p1", "rank": 1}')
        _only(entry, {"id", "rank"}, where)
        pid = entry.get("id")
        if not isinstance(pid, str) or pid not in everyone:
            raise ValidationError(f"{where}.id", f"{json.dumps(pid)[:80]} is not a player of this match")
        if pid in ranks:
            raise ValidationError(f"{where}.id", f"player {pid!r} appears twice")
        if "rank" not in entry:
            raise ValidationError(f"{where}.rank", "is required")
        ranks[pid] = _number(entry["rank"], f"{where}.rank", rank=True)
    missing = [p for p in everyone if p not in ranks]
    if missing:
        raise ValidationError("players", f"every player of the match needs a rank; missing {', '.join(missing[:5])}")
    return Outcome(tuple((p,) for p in everyone), ranks=tuple(ranks[p] for p in everyone))
