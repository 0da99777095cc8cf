"""Shadow match functions, the comparison (pure): what the live and the shadow function proposed
for one pool snapshot, side by side.

A queue's ``spec.shadow`` names a second match function (and optionally other rules) that runs on
the same snapshot as the live one each pass; its proposals are never claimed or played, only
compared (``matchmaker.shadowrun`` runs it and records the metrics). Per side: the matches
proposed, their players, the wait of every ticket it would match (``now`` minus its enqueue time)
and each match's skill spread (``MatchQuality.skill_spread``). ``agreed``: the live proposals the
shadow proposed too, as the same set of tickets (teams may be split differently); ``agreement`` is
their share of the live ones. A ticket id that is not in the pool (a broken plug-in) counts for
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from matchmaker.models import Proposal, Ticket


@dataclass(frozen=True, slots=True)
class Side:
    """What one function proposed for the snapshot."""

    matches: int
    players: int
    waits: tuple[float, ...]
    """Per ticket it would match, seconds waited so far."""
    skill_spreads: tuple[float, ...]
    """Per match, its quality's skill spread."""


@dataclass(frozen=True, slots=True)
class Comparison:
    live: Side
    shadow: Side
    agreed: int
    """Live proposals the shadow also proposed (the same tickets)."""

    @property
    def agreement(self) -> float | None:
        """Share of the live proposals the shadow also proposed; None when live proposed none."""
        return self.agreed / self.live.matches if self.live.matches else None


def side(proposals: Sequence[Proposal], tickets: Mapping[str, Ticket], now: float) -> Side:
    known = [[tickets[tid] for tid in p.ticket_ids if tid in tickets] for p in proposals]
    return Side(
        matches=len(proposals),
        players=sum(t.size for match in known for t in match),
        waits=tuple(max(0.0, now - t.enqueued_at) for match in known for t in match),
        skill_spreads=tuple(p.quality.skill_spread for p in proposals),
    )


def compare(pool: Sequence[Ticket], live: Sequence[Proposal], shadow: Sequence[Proposal], now: float) -> Comparison:
    """The two sides of one pass over ``pool`` at ``now``."""
    tickets = {t.id: t for t in pool}
    proposed = {frozenset(p.ticket_ids) for p in shadow}
    agreed = sum(1 for p in live if frozenset(p.ticket_ids) in proposed)
    return Comparison(side(live, tickets, now), side(shadow, tickets, now), agreed)
