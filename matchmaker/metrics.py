"""Every Prometheus metric of the matchmaker (ticket API, push, directors)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TICKETS = Counter(
    "fleetmatch_tickets_total",
    "Ticket events by queue: created, cancelled, expired, matched, released (back to the pool).",
    ["queue", "event"],
)
PLAYERS_WAITING = Gauge(
    "fleetmatch_players_waiting",
    "Players (not tickets: a party counts each member) queued, by queue and best region.",
    ["queue", "region"],
)
TIME_TO_MATCH = Histogram(
    "fleetmatch_time_to_match_seconds",
    "From a ticket's enqueue time to its assignment.",
    ["queue"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
MATCH_SKILL_SPREAD = Histogram(
    "fleetmatch_match_skill_spread",
    "Difference between the strongest and weakest team's mean skill, per match.",
    ["queue"],
    buckets=(0, 5, 10, 25, 50, 100, 200, 400, 800),
)
MATCH_WORST_LATENCY = Histogram(
    "fleetmatch_match_worst_latency_seconds",
    "Highest player latency to the chosen region, per match (tickets carry it in ms; observed in seconds).",
    ["queue"],
    buckets=(0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3),
)
MATCH_LONGEST_WAIT = Histogram(
    "fleetmatch_match_longest_wait_seconds",
    "Longest-waiting ticket's wait, per match.",
    ["queue"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
MATCH_DRAW_PROBABILITY = Histogram(
    "fleetmatch_match_draw_probability",
    "Predicted probability of a draw, per match of a queue with a rating rule: its quality (even teams score highest).",
    ["queue"],
    buckets=(0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.8),
)
MATCH_RESULTS = Counter(
    "fleetmatch_match_results_total",
    "Match results posted, by queue and outcome: applied, replayed (the same result again), conflict.",
    ["queue", "outcome"],
)
DIRECTOR_TICK_SECONDS = Histogram(
    "fleetmatch_director_tick_seconds",
    "One director pass over a queue: snapshot, match, claim, allocate, assign.",
    ["queue"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
MATCH_SECONDS = Histogram(
    "fleetmatch_match_function_seconds",
    "Time the match function takes on one pool snapshot.",
    ["queue"],
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
TICKETS_BLOCKED = Gauge(
    "fleetmatch_tickets_blocked",
    "Of the 16 longest-waiting tickets a director pass left unmatched, how many each rule holds back "
    "(rule 'players': too few players wait), sampled at most every 2 s.",
    ["queue", "rule"],
)
CLAIM_CONFLICTS = Counter(
    "fleetmatch_ticket_claim_conflicts_total",
    "Proposals dropped because a ticket was taken (another director) or cancelled meanwhile.",
    ["queue"],
)
LEASE_RENEWALS = Counter(
    "fleetmatch_ticket_lease_renewals_total",
    "Leases a director renewed because its match's allocation outlasted a third of the lease.",
    ["queue"],
)
ALLOCATION_FAILURES = Counter(
    "fleetmatch_match_allocation_failures_total",
    "Matches whose server could not be allocated, by reason: no-capacity, contention, error, lost-lease.",
    ["queue", "reason"],
)
MATCH_PROPOSALS = Counter(
    "fleetmatch_match_proposals_total",
    "Matches of queues with acceptance by outcome: proposed, accepted (by every ticket), declined, timed-out.",
    ["queue", "outcome"],
)
SERVERS_RELEASED = Counter(
    "fleetmatch_abandoned_servers_released_total",
    "Game servers allocated for a match nobody got (its tickets went back to the pool), returned to their fleet",
    ["queue"],
)
API_REQUESTS = Counter(
    "fleetmatch_ticket_api_requests_total",
    "Ticket API requests by route and HTTP status.",
    ["route", "status"],
)
WAITERS = Gauge(
    "fleetmatch_ticket_waiters",
    "Requests waiting for a ticket's news (SSE, WebSocket, long-poll) in this process.",
)
LEGACY_PLAYER_TOKENS = Counter(
    "fleetmatch_legacy_player_tokens_total",
    "Player tokens of the deprecated fmp1 format the ticket API accepted (0 for a while: no backend mints them).",
)
SHADOW_RUNS = Counter(
    "fleetmatch_shadow_runs_total",
    "Runs of a queue's shadow match function by outcome: ok, error, timeout, skipped (the previous run still going).",
    ["queue", "outcome"],
)
SHADOW_SECONDS = Histogram(
    "fleetmatch_shadow_function_seconds",
    "Time the shadow match function took on one pool snapshot (runs that finished).",
    ["queue"],
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
SHADOW_MATCHES = Counter(
    "fleetmatch_shadow_matches_total",
    "Matches proposed on the passes the shadow ran, by side: live (played) or shadow (compared only).",
    ["queue", "side"],
)
SHADOW_PLAYERS = Counter(
    "fleetmatch_shadow_players_total",
    "Players in the matches proposed on the passes the shadow ran, by side: live or shadow.",
    ["queue", "side"],
)
SHADOW_AGREED = Counter(
    "fleetmatch_shadow_agreed_matches_total",
    "Live proposals the shadow function proposed too (the same tickets).",
    ["queue"],
)
SHADOW_AGREEMENT = Gauge(
    "fleetmatch_shadow_agreement_ratio",
    "Share of the last compared pass's live proposals the shadow proposed too (unchanged when live proposed none).",
    ["queue"],
)
SHADOW_TICKET_WAIT = Histogram(
    "fleetmatch_shadow_ticket_wait_seconds",
    "Wait so far of each ticket a side would match, on the passes the shadow ran, by side: live or shadow.",
    ["queue", "side"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
SHADOW_SKILL_SPREAD = Histogram(
    "fleetmatch_shadow_match_skill_spread",
    "Skill spread (match quality) of each match a side proposed, on the passes the shadow ran, by side.",
    ["queue", "side"],
    buckets=(0, 5, 10, 25, 50, 100, 200, 400, 800),
)
BACKFILLS = Counter(
    "fleetmatch_backfills_total",
    "Backfill events by queue: opened (from a players List), filled (a fill committed), cancelled "
    "(its server gone or plays another match), conflict (a fill's tickets or lock taken), lost-lease.",
    ["queue", "event"],
)
BACKFILLS_OPEN = Gauge(
    "fleetmatch_backfills_open",
    "Open backfills (running matches wanting players), by queue, as the last director pass read them.",
    ["queue"],
)
BACKFILL_PLAYERS = Counter(
    "fleetmatch_backfill_players_total",
    "Players added to running matches by backfill, by queue.",
    ["queue"],
)
BACKFILL_SECONDS = Histogram(
    "fleetmatch_backfill_fill_seconds",
    "From a backfill's opening to each fill of it.",
    ["queue"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
