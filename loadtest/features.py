"""Per-feature figures of a load test: ready checks, role slots, and the shape of every match, as
the simulated players lived them (``summary.features`` of the report), and the verdict's check on
them (``loadtest.verdict``).

Why from the players: the server says what it *meant* to do (``fleetmatch_match_proposals_total``);
the players say what happened to them. The report puts both side by side, and the verdict fails
when they disagree (a decline the server did not count, a proposal that timed out twice), when a
match is not the shape the scenario says every match of its queue must be (``match``: teams, team
size, each team's role slots filled), or when a player plays a role it did not offer.

- **Ready checks** (queues with ``acceptance`` in the scenario): each proposal a party saw is
  classed by what its tickets did: ``declined`` (one declined it, or cancelled its ticket
  meanwhile), ``accepted`` (every ticket accepted: the server then allocates), ``timedOut`` (a
  ticket did not answer in time and was cancelled), ``open`` (the run ended first). The accepting
  tickets of a proposal that fell through go back to the pool (``requeued``); ``rematched`` counts
  those that were matched afterwards.
- **Matches** (per queue): players per match, how many are full (the scenario's ``match``), role
  fill (slots filled of the slots every match should have), players out of the roles they offered,
  and parties whose players took different roles.

Pure: it reads the parties after the run (``loadtest.players.Party``) and the scraped counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from loadtest.charts import esc
from loadtest.players import DECLINE, SILENT, FailureKind, PartyLike, ProposalSeen, SimPlayer
from loadtest.scenario import QueueMix


class PartyRecord(Protocol):
    """What the figures read of a party after the run (``loadtest.players.Party`` is one)."""

    @property
    def spec(self) -> PartyLike: ...

    @property
    def players(self) -> Sequence[SimPlayer]: ...

    @property
    def proposals(self) -> Sequence[ProposalSeen]: ...

    @property
    def assignment(self) -> Mapping[str, Any] | None: ...


LISTED = 10
"""Match ids named per problem, at most."""


def _proposal_outcome(answers: Sequence[tuple[str, str]]) -> str:
    """A proposal's fate from its tickets' (answer, outcome)."""
    if any(answer in ("declined", "cancelled") for answer, _ in answers):
        return "declined"
    if all(answer == "accepted" for answer, _ in answers):
        return "accepted"
    if any(outcome == "cancelled" for _, outcome in answers):
        return "timedOut"
    return "open"


def acceptance(
    parties: Sequence[PartyRecord], queues: Mapping[str, QueueMix], server: Mapping[str, float] | None
) -> dict[str, Any] | None:
    """Ready-check figures over the queues whose tickets answer proposals (None: no such queue)."""
    asked = {name for name, mix in queues.items() if mix.acceptance is not None}
    if not asked:
        return None
    mine = [p for p in parties if p.spec.queue in asked]
    by_match: dict[str, list[tuple[str, str]]] = {}
    answers: Counter[str] = Counter()
    requeued = rematched = 0
    for party in mine:
        for seen in party.proposals:
            by_match.setdefault(seen.match_id, []).append((seen.answer, seen.outcome))
            answers[seen.answer] += 1
        if any(p.outcome == "requeued" for p in party.proposals) and party.spec.answer not in (DECLINE, SILENT):
            requeued += 1
            rematched += party.assignment is not None
    outcomes = Counter(_proposal_outcome(a) for a in by_match.values())
    failures = Counter(str(p.failure) for party in mine for p in party.players if p.failure is not None)
    planned = Counter(str(party.spec.answer) for party in mine)
    by_plan: dict[str, Counter[str]] = {}
    for party in mine:
        by_plan.setdefault(str(party.spec.answer), Counter())[_ending(party)] += 1
    told_not = [p for party in mine if party.spec.answer in (DECLINE, SILENT) for p in party.players]
    return {
        "tickets": len(mine),
        "ticketsPlanned": {k: planned.get(k, 0) for k in ("accept", DECLINE, SILENT)},
        "byPlan": {plan: dict(sorted(ends.items())) for plan, ends in sorted(by_plan.items())},
        "playersToldNotToAccept": len(told_not),
        "failedOfThose": sum(p.failure is not None for p in told_not),
        "proposals": len(by_match),
        "byOutcome": {k: outcomes.get(k, 0) for k in ("accepted", "declined", "timedOut", "open")},
        "server": None if server is None else {k: round(v) for k, v in sorted(server.items())},
        "ticketAnswers": dict(sorted(answers.items())),
        "declinedPlayers": failures.get(str(FailureKind.DECLINED), 0),
        "notAcceptedPlayers": failures.get(str(FailureKind.NOT_ACCEPTED), 0),
        "requeuedTickets": requeued,
        "rematchedTickets": rematched,
    }


def _ending(party: PartyRecord) -> str:
    """How a ticket ended: ``played`` (every player), else its first failed player's kind."""
    failed = [str(p.failure) for p in party.players if p.failure is not None]
    return failed[0] if failed else "played"


def _team(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def matches(parties: Sequence[PartyRecord], queues: Mapping[str, QueueMix]) -> dict[str, Any]:
    """Per queue: the matches the players were assigned to, and how they compare with ``match``."""
    out: dict[str, Any] = {}
    for name, mix in queues.items():
        teams: dict[str, dict[int, int]] = {}  # match -> team -> players
        roles: dict[str, dict[int, Counter[str]]] = {}  # match -> team -> role -> players
        out_of_role = spanning = 0
        offers: Counter[str] = Counter()
        for party in parties:
            if party.spec.queue != name:
                continue
            for player in party.spec.players:
                offers["+".join(player.roles) or "any"] += 1
            assignment = party.assignment
            team = _team(assignment.get("team")) if assignment is not None else None
            if assignment is None or team is None:
                continue
            match_id = str(assignment.get("matchId"))
            sizes = teams.setdefault(match_id, {})
            sizes[team] = sizes.get(team, 0) + len(party.spec.players)
            taken = assignment.get("roles")
            if not isinstance(taken, Mapping):
                continue
            party_roles = set()
            for player in party.spec.players:
                role = taken.get(player.id)
                if not isinstance(role, str):
                    out_of_role += 1
                    continue
                party_roles.add(role)
                out_of_role += bool(player.roles) and role not in player.roles
                roles.setdefault(match_id, {}).setdefault(team, Counter())[role] += 1
            spanning += len(party.spec.players) > 1 and len(party_roles) > 1
        if not teams and mix.match is None:
            continue
        out[name] = _queue_figures(mix, teams, roles, out_of_role, spanning, offers)
    return out


def _queue_figures(
    mix: QueueMix,
    teams: Mapping[str, Mapping[int, int]],
    roles: Mapping[str, Mapping[int, Counter[str]]],
    out_of_role: int,
    spanning: int,
    offers: Counter[str],
) -> dict[str, Any]:
    sizes = Counter(sum(t.values()) for t in teams.values())
    figures: dict[str, Any] = {
        "matches": len(teams),
        "players": sum(sum(t.values()) for t in teams.values()),
        "playersPerMatch": {str(k): v for k, v in sorted(sizes.items())},
        "teamsPerMatch": {str(k): v for k, v in sorted(Counter(len(t) for t in teams.values()).items())},
    }
    shape = mix.match
    if shape is not None:
        expected = [shape.size] * shape.teams
        not_full = sorted(m for m, t in teams.items() if sorted(t.values()) != expected)
        figures["expected"] = {"teams": shape.teams, "teamSize": shape.size, "roles": dict(shape.roles)}
        figures["full"] = len(teams) - len(not_full)
        figures["notFull"] = not_full[:LISTED]
    slots = shape.roles if shape is not None else {}
    if slots or roles:
        filled: Counter[str] = Counter()
        incomplete = []
        for match_id in teams:
            per_team = roles.get(match_id, {})
            for team_roles in per_team.values():
                filled.update({r: min(n, slots.get(r, n)) for r, n in team_roles.items()})
            team_ids = teams[match_id]
            if slots and (
                len(team_ids) != (shape.teams if shape is not None else len(team_ids))
                or any(per_team.get(t, Counter()) != Counter(slots) for t in team_ids)
            ):
                incomplete.append(match_id)
        teams_total = len(teams) * (shape.teams if shape is not None else 1)
        figures["roleFill"] = {
            role: {"filled": filled.get(role, 0), "slots": n * teams_total} for role, n in sorted(slots.items())
        }
        figures["roleComplete"] = len(teams) - len(incomplete)
        figures["roleIncomplete"] = sorted(incomplete)[:LISTED]
        figures["playersOutOfRole"] = out_of_role
        figures["partiesSpanningRoles"] = spanning
        figures["offers"] = dict(sorted(offers.items()))
    return figures


def features(
    parties: Sequence[PartyRecord], queues: Mapping[str, QueueMix], proposals: Mapping[str, float] | None
) -> dict[str, Any]:
    """``summary.features``: ``acceptance`` (None without a ready check) and ``matches`` per queue."""
    return {"acceptance": acceptance(parties, queues, proposals), "matches": matches(parties, queues)}


def problems(figures: Mapping[str, Any]) -> list[str]:
    """What the verdict holds against the feature figures (empty: all well)."""
    found: list[str] = []
    ready = figures.get("acceptance")
    if isinstance(ready, Mapping):
        found += _acceptance_problems(ready)
    for queue, q in (figures.get("matches") or {}).items():
        if "expected" in q:
            if not q["matches"]:
                found.append(f"{queue}: no match was formed")
            elif q["full"] != q["matches"]:
                found.append(f"{queue}: {q['matches'] - q['full']} of {q['matches']} matches not full")
        if q.get("roleIncomplete"):
            found.append(f"{queue}: {q['matches'] - q['roleComplete']} matches with a role slot not filled")
        if q.get("playersOutOfRole"):
            found.append(f"{queue}: {q['playersOutOfRole']} players in a role they did not offer")
    return found


def _acceptance_problems(ready: Mapping[str, Any]) -> list[str]:
    server = ready.get("server")
    if not isinstance(server, Mapping):
        return ["ready checks: the matchmaker's proposal counts were not scraped"]
    client = ready["byOutcome"]
    found = []
    for ours, theirs in (("accepted", "accepted"), ("declined", "declined"), ("timedOut", "timed-out")):
        if client.get(ours, 0) != server.get(theirs, 0):
            found.append(
                f"ready checks: the players saw {client.get(ours, 0)} proposals {theirs}, "
                f"the matchmaker counted {server.get(theirs, 0)}"
            )
    if server.get("proposed", 0) != ready["proposals"]:
        found.append(
            f"ready checks: the players saw {ready['proposals']} proposals, "
            f"the matchmaker proposed {server.get('proposed', 0)}"
        )
    return found


# -- rendering (the printed summary and report.html) -------------------------------------------------


def _ready_text(ready: Mapping[str, Any]) -> str:
    outcome, server = ready["byOutcome"], ready.get("server")
    told = ", ".join(f"{k} {v}" for k, v in outcome.items())
    counted = "not scraped" if not isinstance(server, Mapping) else ", ".join(f"{k} {v}" for k, v in server.items())
    return (
        f"{ready['proposals']} proposals ({told}); the matchmaker counted: {counted}. "
        f"{ready['declinedPlayers']} players declined, {ready['notAcceptedPlayers']} did not answer; "
        f"{ready['requeuedTickets']} tickets back in the pool after a match fell through, "
        f"{ready['rematchedTickets']} of them matched again"
    )


def _queue_text(q: Mapping[str, Any]) -> str:
    sizes = ", ".join(f"{n}x {size}" for size, n in q["playersPerMatch"].items()) or "none"
    parts = [f"{q['matches']} matches (players: {sizes})"]
    if "expected" in q:
        e = q["expected"]
        parts.append(f"{q['full']} full ({e['teams']} teams of {e['teamSize']})")
    if "roleFill" in q:
        fill = ", ".join(f"{r} {f['filled']}/{f['slots']}" for r, f in q["roleFill"].items())
        parts.append(
            f"{q['roleComplete']} role-complete (slots filled: {fill}); {q['playersOutOfRole']} players out of "
            f"role; {q['partiesSpanningRoles']} parties spanning roles"
        )
    return ", ".join(parts)


def feature_lines(figures: Any) -> list[tuple[str, str]]:
    """(label, text) lines of the printed summary."""
    if not isinstance(figures, Mapping):
        return []
    lines = []
    ready = figures.get("acceptance")
    if isinstance(ready, Mapping):
        lines.append(("ready checks", _ready_text(ready)))
    for queue, q in (figures.get("matches") or {}).items():
        if "expected" in q or "roleFill" in q:
            lines.append((f"  matches {queue}", _queue_text(q)))
    return lines


def feature_html(figures: Any) -> str:
    """The report's "Features" section (empty when the run exercised none)."""
    lines = feature_lines(figures)
    if not lines:
        return ""
    rows = "".join(f"<tr><td>{esc(label.strip())}</td><td>{esc(text)}</td></tr>" for label, text in lines)
    note = (
        "Ready checks as the players lived them beside what the matchmaker counted; every match of a queue "
        "the scenario describes, checked for size and role slots (summary.features in report.json)."
    )
    return f'<section><h2>Features</h2><p class="note">{esc(note)}</p><table class="features">{rows}</table></section>'
