"""Why a ticket waits (``matchmaker.explain``): each rule against the other waiting tickets."""

from __future__ import annotations

import pytest

from matchmaker.explain import PLAYERS, blocked_counts, explain
from matchmaker.models import Player, Ticket, TicketState
from matchmaker.rules import parse_queues

NOW = 1_800_000_000.0
QUEUES = parse_queues(
    """
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: duel}
spec:
  teams: {count: 2, maxSize: 1}
  rules:
    - {name: skill, type: distance, attribute: skill, maxDistance: 180,
       widen: {steps: [{afterSeconds: 30, value: 600}]}}
    - {name: mode, type: equal, attribute: mode}
  allocation: {selectors: [{matchLabels: {agones.dev/fleet: arena}}]}
---
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: squads}
spec:
  teams: {count: 2, maxSize: 2}
  rules:
    - {name: skill, type: distance, attribute: skill, maxDistance: 100, widen: {perSecond: 10, max: 500}}
    - {name: ping, type: latency, maxLatencyMs: 80, widen: {perSecond: 2, max: 200}}
  allocation: {selectors: [{matchLabels: {agones.dev/fleet: arena, region: "{region}"}}]}
"""
)
DUEL, SQUADS = QUEUES["duel"], QUEUES["squads"]


def ticket(
    n: int,
    skill: float = 1500,
    *,
    waited: float = 0.0,
    queue: str = "duel",
    mode: str = "ranked",
    players: tuple[str, ...] = (),
    state: TicketState = TicketState.QUEUED,
    **latencies: float,
) -> Ticket:
    ids = players or (f"p{n}",)
    members = tuple(
        Player(pid, attributes={"skill": skill, "mode": mode}, latencies=latencies or {"eu": 20}) for pid in ids
    )
    return Ticket(id=f"{queue}.{n}", queue=queue, owner=ids[0], players=members, enqueued_at=NOW - waited, state=state)


def test_a_lone_ticket_waits_for_players() -> None:
    found = explain(ticket(1, waited=5), [ticket(1, waited=5)], DUEL, NOW)
    assert (found.sampled, found.blocked_by, found.compatible_players, found.players_needed) == (0, PLAYERS, 1, 2)
    assert found.reason == "no other ticket is waiting in queue duel (a match needs 2 players)"


@pytest.mark.parametrize(
    ("other", "rule", "detail"),
    [
        pytest.param(
            ticket(2, 1840, waited=2), "skill", "skill: distance 340 > 180 (widens to 600 in 21 s)", id="skill-steps"
        ),
        pytest.param(ticket(2, 2200), "skill", "skill: distance 700 > 180 (widest 600)", id="skill-beyond-widest"),
        pytest.param(ticket(2, mode="casual"), "mode", "mode: 'casual' is not 'ranked'", id="equal"),
        pytest.param(
            ticket(2, players=("p1",)), "player", "player: one of its players is in this ticket", id="same-player"
        ),
    ],
)
def test_the_first_rule_a_candidate_fails_is_named(other: Ticket, rule: str, detail: str) -> None:
    found = explain(ticket(1, 1500, waited=9), [other], DUEL, NOW)
    assert found.blocked_by == rule
    assert [(c.failed_rule, c.detail) for c in found.best] == [(rule, detail)]
    assert found.reason.endswith(detail)


def test_the_older_tickets_wait_sets_the_pair_window() -> None:
    """The matcher seeds with the oldest ticket: its wait widens the window for both."""
    found = explain(ticket(1, 1500, waited=1), [ticket(2, 1840, waited=31)], DUEL, NOW)
    assert found.blocked_by is None
    assert found.rules[0].window == 180  # the ticket's own window, reported as such


def test_rule_counts_and_best_first() -> None:
    others = [ticket(2, 1600), ticket(3, 1900), ticket(4, 1550, mode="casual"), ticket(5, 2500, mode="casual")]
    found = explain(ticket(1, 1500), others, DUEL, NOW)
    assert [(r.name, r.passed, r.failed) for r in found.rules] == [("skill", 2, 2), ("mode", 2, 2)]
    assert [c.ticket_id for c in found.best] == ["duel.2", "duel.3", "duel.4", "duel.5"]
    assert found.best[0].failed_rule is None
    assert found.blocked_by is None  # duel.2 fits: a match of 2 is at hand


def test_linear_widening_says_when() -> None:
    found = explain(ticket(1, 1500, queue="squads"), [ticket(2, 1700, queue="squads")], SQUADS, NOW)
    assert found.best[0].detail == "skill: distance 200 > 100 (widens to 200 in 10 s)"


def test_latency_names_the_closest_shared_region() -> None:
    mine = ticket(1, queue="squads", eu=20, us=150)
    other = ticket(2, queue="squads", eu=95, us=160)
    found = explain(mine, [other], SQUADS, NOW)
    assert found.best[0].detail == ("ping: no region within 80 ms for both (closest: eu at 95 ms, widens to 95 in 8 s)")


def test_enough_players_but_not_in_one_region() -> None:
    mine = ticket(1, queue="squads", eu=20, us=20)
    others = [ticket(2, queue="squads", eu=20, us=300), ticket(3, queue="squads", eu=300, us=20)]
    others.append(ticket(4, queue="squads", eu=300, us=20))
    found = explain(mine, others, SQUADS, NOW)
    assert (found.compatible_players, found.players_needed) == (4, 4)
    assert found.by_region == {"eu": 2, "us": 3}
    assert found.blocked_by == "ping"
    assert found.reason.startswith("not enough players in region us: 3 of 4")


def test_too_few_compatible_players() -> None:
    found = explain(ticket(1, queue="squads"), [ticket(2, queue="squads")], SQUADS, NOW)
    assert (found.blocked_by, found.compatible_players) == (PLAYERS, 2)
    assert "only 2 of the 4 players" in found.reason


def test_the_sample_is_bounded_and_skips_itself_and_tickets_not_queued() -> None:
    others = [ticket(1), ticket(9, state=TicketState.LEASED), *(ticket(n, 3000) for n in range(10, 30))]
    found = explain(ticket(1), others, DUEL, NOW, limit=5)
    assert found.sampled == 5


def test_players_do_not_learn_other_ticket_ids() -> None:
    found = explain(ticket(1), [ticket(2, 2000)], DUEL, NOW)
    assert "ticket" not in found.as_json(ids=False)["best"][0]
    assert found.as_json(ids=True)["best"][0]["ticket"] == "duel.2"


def test_blocked_counts_by_rule() -> None:
    unmatched = [ticket(1, 1000, waited=9), ticket(2, 1500, waited=8), ticket(3, 1550, mode="casual", waited=7)]
    assert blocked_counts(unmatched, DUEL, NOW) == {"skill": 2, "mode": 1, PLAYERS: 0}
    assert blocked_counts([], DUEL, NOW) == {"skill": 0, "mode": 0, PLAYERS: 0}
