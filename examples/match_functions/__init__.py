"""An example custom match function: first come, first served.

Plug it in by publishing it under the entry-point group ``fleetmatch.match_functions`` from an
installed distribution (pyproject)::

    [project.entry-points."fleetmatch.match_functions"]
    fifo = "examples.match_functions:fifo"

and naming it in a queue: ``spec.matchFunction: fifo``. It ignores skill and latency rules (a
casual or test queue): tickets fill teams in arrival order, parties whole, and a match forms when
every team is full. It shows the contract every match function keeps: pure, each ticket in at most
one proposal, parties never split.
"""

from __future__ import annotations

from collections.abc import Sequence

from matchmaker.models import MatchQuality, Proposal, Ticket, TicketState
from matchmaker.rules import Queue


def fifo(pool: Sequence[Ticket], queue: Queue, now: float) -> list[Proposal]:
    teams_spec = queue.spec.teams
    waiting = sorted((t for t in pool if t.state is TicketState.QUEUED), key=lambda t: (t.enqueued_at, t.id))
    proposals = []
    teams: list[list[Ticket]] = [[] for _ in range(teams_spec.count)]
    fills = [0] * teams_spec.count
    for ticket in waiting:
        team = next((i for i, f in enumerate(fills) if f + ticket.size <= teams_spec.max_size), None)
        if team is None:
            continue  # does not fit the match being filled; it waits for the next one
        teams[team].append(ticket)
        fills[team] += ticket.size
        if all(f == teams_spec.max_size for f in fills):
            oldest = min(t.enqueued_at for team_tickets in teams for t in team_tickets)
            proposals.append(
                Proposal(
                    teams=tuple(tuple(t.id for t in team_tickets) for team_tickets in teams),
                    quality=MatchQuality(longest_wait_seconds=max(0.0, now - oldest)),
                )
            )
            teams = [[] for _ in range(teams_spec.count)]
            fills = [0] * teams_spec.count
    return proposals
