"""Reconciliation: every ticket the players opened, as the server holds it after the run, compared
with what its players were told. What the verdict's "tickets lost" and "consistency" checks read
(``loadtest.verdict``). Pure: the runner fetches the server's tickets and passes them in.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class TicketRecord:
    """A ticket as the client knows it."""

    id: str
    queue: str
    reader: str | None
    """The player whose token reads it (None: the API key)."""
    created_at: float
    state: str = "queued"
    match_ids: list[str] = field(default_factory=list)


PROBLEM_CAP = 50
FINAL_STATES = frozenset({"matched", "cancelled", "expired"})
"""Server states a ticket may end in; any other (queued, leased...) or none at all is a ticket lost."""

Span = tuple[float, float]
"""A match's life as its clients saw it (monotonic): first assignment learned, last player ended."""


def _shared(owners: Mapping[str, set[str]]) -> dict[str, list[str]]:
    """The keys (players, servers) that belong to more than one match, with those matches."""
    return {key: sorted(matches) for key, matches in owners.items() if len(matches) > 1}


def _overlapping(matches: Sequence[str], spans: Mapping[str, Span]) -> bool:
    """Whether two of a server's matches were alive at once (a reused server is fine, one in use
    twice is not); a match whose span the client cannot tell counts as overlapping."""
    if any(m not in spans for m in matches):
        return True
    ordered = sorted(spans[m] for m in matches)
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(ordered))


def _mismatches(ticket_id: str, record: TicketRecord, state: str, match_id: Any) -> list[str]:
    """Where the server's ticket disagrees with what its players were told."""
    problems = []
    if state in FINAL_STATES and record.state != "queued" and record.state != state:
        problems.append(f"{ticket_id}: the client was told {record.state}, the server says {state}")
    if len(record.match_ids) > 1:
        problems.append(f"{ticket_id}: the client saw it in matches {', '.join(record.match_ids)}")
    elif record.match_ids and record.match_ids[0] != match_id:
        problems.append(f"{ticket_id}: the client saw match {record.match_ids[0]}, the server says {match_id}")
    return problems


def reconcile(
    client: Mapping[str, TicketRecord],
    server: Mapping[str, Mapping[str, Any] | None],
    spans: Mapping[str, Span] | None = None,
) -> dict[str, Any]:
    """Compare what the client saw of each ticket with the server's ticket (None: 404, absent:
    not checked). Problems: a ticket missing or not final after the run (``lost``); in another
    final state than the client was told, matched into another match than the client saw (or seen
    in two), a match whose tickets name different servers (``mismatches``); a player in two
    matches, and a game server
    given to two matches alive at once (``spans``: each match's life; without them, not checked:
    a server may rightly host one match after another)."""
    counts = {"created": len(client), "matched": 0, "cancelled": 0, "expired": 0, "queued": 0, "missing": 0}
    unchecked, lost, mismatches, problems = 0, 0, 0, []
    servers: dict[str, set[tuple[Any, ...]]] = {}
    players: dict[str, set[str]] = {}
    for ticket_id, record in client.items():
        if ticket_id not in server:
            unchecked += 1
            continue
        doc = server[ticket_id]
        if doc is None:
            counts["missing"] += 1
            lost += 1
            problems.append(f"{ticket_id}: missing on the server")
            continue
        state = str(doc.get("state"))
        counts[state] = counts.get(state, 0) + 1
        if state not in FINAL_STATES:
            lost += 1
            problems.append(f"{ticket_id}: still {state} on the server after the run")
        assignment = doc.get("assignment") if isinstance(doc.get("assignment"), dict) else None
        match_id = assignment.get("matchId") if assignment else None
        wrong = _mismatches(ticket_id, record, state, match_id)
        mismatches += len(wrong)
        problems += wrong
        if assignment and match_id:
            servers.setdefault(match_id, set()).add(
                (assignment.get("gameServer"), assignment.get("address"), assignment.get("port"))
            )
            for player in doc.get("players") or ():
                if isinstance(player, Mapping) and isinstance(player.get("id"), str):
                    players.setdefault(player["id"], set()).add(match_id)
    for match_id, where in servers.items():
        if len(where) > 1:
            mismatches += 1
            problems.append(f"match {match_id}: its tickets name {len(where)} different servers")
    twice = _shared(players)
    problems += [f"player {p}: in matches {', '.join(m)}" for p, m in twice.items()]
    owners: dict[str, set[str]] = {}
    for match_id, named in servers.items():
        for name, address, port in named:
            owners.setdefault(str(name or f"{address}:{port}"), set()).add(match_id)
    reused = {s: m for s, m in _shared(owners).items() if spans is not None and _overlapping(m, spans)}
    problems += [f"game server {s}: given to matches {', '.join(m)} at once" for s, m in reused.items()]
    return {
        **counts,
        "unchecked": unchecked,
        "lost": lost,
        "mismatches": mismatches,
        "clientMatched": sum(1 for r in client.values() if r.state == "matched"),
        "matches": len(servers),
        "playersInTwoMatches": len(twice),
        "serversAllocatedTwice": len(reused),
        "consistent": not problems and not unchecked,
        "problems": problems[:PROBLEM_CAP],
    }
