"""What a load test measures, on one clock: the players' own figures and the services' metrics.

- **Latencies** go into HDR histograms (``hdrh``, microseconds from 1 µs to an hour, 3 significant
  digits, a percentile never above the maximum), so p99 and the maximum stay accurate however many
  players there are: time to match (from sending the ticket to knowing the server, per player),
  ticket creation, assignment push (from the first ticket of a match learning it to each ticket
  learning it; a ticket that joined a running match, from the first ticket of its backfill), UDP join.
- **Timeline**: one bucket per second since the start: arrivals and matches (players), the players
  by phase at the end of the second, that second's time-to-match and client-latency p50/p95/p99
  (exact: a bucket holds few values), and the Ready/Allocated servers the scraper saw.
- **Per queue**: time to match of each queue's players (``ttm_by_queue``).
- **Wait estimate**: per ticket, the ``estimatedWaitSeconds`` the server gave when it was created and
  the time the party then waited for its match; ``wait_estimate`` says how many estimates were within
  +-``ESTIMATE_TOLERANCE`` of the truth (target: ``ESTIMATE_TARGET_PERCENT`` of them).
- **Scraper** (``MetricsScraper``): every second, each ``/metrics`` endpoint of the target, parsed
  with ``prometheus_client.parser``. ``fleetmatch up`` serves all its metrics on its metrics port
  only; elsewhere a metric family is taken from the first endpoint that has it (never summed twice). It keeps
  Ready/Allocated game servers (``fleetmatch_gameservers`` summed over fleets, else the allocator's
  ``fleetmatch_allocator_cached_gameservers``), the allocation latency histogram, ticket events, the
  matchmaker's allocation failures by reason, and the match-quality histograms. Run figures are
  deltas from the first scrape (before any player) to the last, so earlier traffic does not count;
  a counter that went down (a restart) counts from zero. An endpoint that does not answer opens a
  **gap** (``{"endpoint", "from", "to", "error"}``, seconds since the start), closed when it answers
  again; the run goes on.

Histograms in the report are ``{"le": [bounds..., "+Inf"], "counts": [per bucket, not cumulative]}``.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from hdrh.histogram import HdrHistogram
from prometheus_client.parser import text_string_to_metric_families

from loadtest.players import (
    ASSIGNMENT_PUSH,
    PHASES,
    TICKET_CREATE,
    UDP_JOIN,
    FailureKind,
    Phase,
    SimPlayer,
)

# Re-exported: where callers have always found them.
from loadtest.reconcile import TicketRecord as TicketRecord
from loadtest.reconcile import reconcile as reconcile

log = logging.getLogger(__name__)

TIME_TO_MATCH = "timeToMatch"
CLIENT_LATENCIES = (TICKET_CREATE, ASSIGNMENT_PUSH, UDP_JOIN)
"""What a client waits for besides its match; each also has per-second percentiles in the timeline."""
LATENCY_NAMES = (TIME_TO_MATCH, *CLIENT_LATENCIES)
ERROR_CAP = 200

ESTIMATE_TOLERANCE = 0.25
"""An estimate is right when within +-25 % of the wait that followed (issue 15)."""
ESTIMATE_TARGET_PERCENT = 80.0
ESTIMATE_BUCKETS = (
    ("under by more than 50 %", -math.inf, -0.5),
    ("under by 25-50 %", -0.5, -ESTIMATE_TOLERANCE),
    ("within +-25 %", -ESTIMATE_TOLERANCE, ESTIMATE_TOLERANCE),
    ("over by 25-50 %", ESTIMATE_TOLERANCE, 0.5),
    ("over by more than 50 %", 0.5, math.inf),
)
"""Relative error ((estimate - wait) / wait) buckets of the report's chart: [low, high), the middle one closed."""

_US = 1_000_000
_HIGHEST_US = 3600 * _US


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class LatencyHistogram:
    """Seconds in, milliseconds out; accurate high percentiles (HDR, 3 significant digits)."""

    def __init__(self) -> None:
        self._hdr = HdrHistogram(1, _HIGHEST_US, 3)
        self.max_seconds = 0.0

    @property
    def count(self) -> int:
        return int(self._hdr.get_total_count())

    def record(self, seconds: float, count: int = 1) -> None:
        value = min(_HIGHEST_US, max(1, round(seconds * _US)))
        self._hdr.record_value(value, count)
        self.max_seconds = max(self.max_seconds, seconds)

    @property
    def max_ms(self) -> float | None:
        return _ms(self.max_seconds) if self.count else None

    def percentile_ms(self, percent: float) -> float | None:
        """At most the maximum: HDR answers a bucket's upper edge, which may lie above the largest
        value recorded (a p99 above the max would be nonsense in the report)."""
        top = self.max_ms
        if top is None:
            return None
        return min(top, round(float(self._hdr.get_value_at_percentile(percent)) / 1000, 3))

    def summary(self) -> dict[str, Any]:
        """``{"count", "p50", "p95", "p99", "max"}`` in milliseconds (null when empty)."""
        return {
            "count": self.count,
            "p50": self.percentile_ms(50),
            "p95": self.percentile_ms(95),
            "p99": self.percentile_ms(99),
            "max": self.max_ms,
        }


def relative_error(estimate: float, waited: float) -> float:
    """(estimate - waited) / waited; a wait under 50 ms counts as 50 ms (a tick is longer)."""
    truth = max(0.05, waited)
    return (estimate - truth) / truth


def wait_estimate_summary(errors: Sequence[float], unestimated: int) -> dict[str, Any]:
    """``{"matched", "estimated", "within", "withinPercent", "targetPercent", "tolerancePercent",
    "buckets": [{"label", "count"}]}``: of the matched tickets (``matched``), those created with an
    estimate (``estimated``) and how many of those were within the tolerance of the wait that
    followed; ``withinPercent`` null without any estimate."""
    within = sum(1 for e in errors if -ESTIMATE_TOLERANCE <= e <= ESTIMATE_TOLERANCE)
    buckets = []
    for label, low, high in ESTIMATE_BUCKETS:
        if low == -ESTIMATE_TOLERANCE:
            count = within
        else:
            count = sum(1 for e in errors if low <= e < high and not -ESTIMATE_TOLERANCE <= e <= ESTIMATE_TOLERANCE)
        buckets.append({"label": label, "count": count})
    return {
        "matched": len(errors) + unestimated,
        "estimated": len(errors),
        "within": within,
        "withinPercent": round(100 * within / len(errors), 1) if errors else None,
        "targetPercent": ESTIMATE_TARGET_PERCENT,
        "tolerancePercent": round(100 * ESTIMATE_TOLERANCE),
        "buckets": buckets,
    }


def exact_percentile(values: Sequence[float], percent: float) -> float:
    """Nearest-rank percentile of a small, unsorted sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def _percentiles(prefix: str, seconds: Sequence[float] | None) -> dict[str, float | None]:
    """A timeline row's ``{prefix}P50Ms``, ``P95Ms``, ``P99Ms`` of one second's sample (null: none)."""
    return {f"{prefix}P{p}Ms": _ms(exact_percentile(seconds, p)) if seconds else None for p in (50, 95, 99)}


# -- Prometheus ------------------------------------------------------------------------------------

Samples = dict[str, list[tuple[dict[str, str], float]]]
"""Sample name (``..._bucket``, ``..._total``) -> (labels, value) of every series."""


def _only(text: str, prefixes: tuple[str, ...]) -> str:
    """The lines of the families we read: the parser is pure Python, and a busy service exposes
    hundreds of series we do not need."""
    keep = []
    for line in text.splitlines():
        name = line.split(" ", 3)[2] if line.startswith("# ") and line.count(" ") >= 2 else line
        if name.startswith(prefixes):
            keep.append(line)
    return "\n".join(keep) + "\n"


def parse_metrics(texts: Iterable[str], families_of: tuple[str, ...] | None = None) -> Samples:
    """Samples of several exposition texts; each family from the first text that has it.
    ``families_of``: only families whose names start so (default: all)."""
    samples: Samples = {}
    families: set[str] = set()
    for text in texts:
        seen: set[str] = set()
        if families_of is not None:
            text = _only(text, families_of)
        for family in text_string_to_metric_families(text):
            if family.name in families:
                continue
            seen.add(family.name)
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
        families |= seen
    return samples


def _le(text: str) -> float:
    return math.inf if text in ("+Inf", "Inf", "inf") else float(text)


def _buckets(samples: Samples, name: str, **only: str) -> dict[float, float]:
    """Cumulative ``le -> count`` of a histogram, summed over its other labels; ``only``: keep the
    series whose labels have these values (a series without such a label is kept)."""
    out: dict[float, float] = {}
    for labels, value in samples.get(f"{name}_bucket", ()):
        if any(labels.get(key, want) != want for key, want in only.items()):
            continue
        le = _le(labels.get("le", "+Inf"))
        out[le] = out.get(le, 0.0) + value
    return out


def _by(samples: Samples, name: str, *keys: str) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for labels, value in samples.get(name, ()):
        key = tuple(labels.get(k, "") for k in keys)
        out[key] = out.get(key, 0.0) + value
    return out


def _servers(samples: Samples, state: str) -> float | None:
    for name in ("fleetmatch_gameservers", "fleetmatch_allocator_cached_gameservers"):
        values = [v for labels, v in samples.get(name, ()) if labels.get("state") == state]
        if values:
            return sum(values)
    return None


QUALITY: Mapping[str, tuple[tuple[str, float], ...]] = {
    "skillSpread": (("fleetmatch_match_skill_spread", 1.0),),
    "worstLatencyMs": (("fleetmatch_match_worst_latency_seconds", 1000.0), ("fleetmatch_match_worst_latency_ms", 1.0)),
    "longestWaitSeconds": (("fleetmatch_match_longest_wait_seconds", 1.0),),
}
"""Report key -> the metric names it may come from (the first one exposed wins), each with the factor
to the report's unit: the worst latency is read in seconds or, from an older matchmaker, in ms."""
SCRAPED = (
    "fleetmatch_gameservers",
    "fleetmatch_allocator_cached_gameservers",
    "fleetmatch_allocation_seconds",
    "fleetmatch_tickets",
    "fleetmatch_match_allocation_failures",
    "fleetmatch_match_proposals",
    *(name for names in QUALITY.values() for name, _ in names),
)
"""The metric families the scraper reads (name prefixes): every metric name it knows is here or in
``QUALITY``, so a renamed metric is changed in one place."""


def _quality(samples: Samples, names: Sequence[tuple[str, float]]) -> dict[float, float]:
    """The first of ``names`` the target exposes, its bounds scaled to the report's unit."""
    for name, factor in names:
        buckets = _buckets(samples, name)
        if buckets:
            return {le * factor: count for le, count in buckets.items()}
    return {}


@dataclass(frozen=True, slots=True)
class ScrapeSample:
    """What one scrape of the target's endpoints found (``at``: monotonic)."""

    at: float
    ready: float | None = None
    allocated: float | None = None
    allocation: Mapping[float, float] = field(default_factory=dict)
    """``fleetmatch_allocation_seconds`` cumulative buckets of successful allocations (a fast
    "nothing free" answer is not an allocation)."""
    tickets: Mapping[tuple[str, ...], float] = field(default_factory=dict)
    """``fleetmatch_tickets_total`` by (queue, event)."""
    allocation_failures: Mapping[tuple[str, ...], float] = field(default_factory=dict)
    """``fleetmatch_match_allocation_failures_total`` by (queue, reason)."""
    proposals: Mapping[tuple[str, ...], float] = field(default_factory=dict)
    """``fleetmatch_match_proposals_total`` by (queue, outcome): ready checks."""
    quality: Mapping[str, Mapping[float, float]] = field(default_factory=dict)

    @classmethod
    def of(cls, at: float, samples: Samples) -> ScrapeSample:
        return cls(
            at=at,
            ready=_servers(samples, "Ready"),
            allocated=_servers(samples, "Allocated"),
            allocation=_buckets(samples, "fleetmatch_allocation_seconds", result="Allocated"),
            tickets=_by(samples, "fleetmatch_tickets_total", "queue", "event"),
            allocation_failures=_by(samples, "fleetmatch_match_allocation_failures_total", "queue", "reason"),
            proposals=_by(samples, "fleetmatch_match_proposals_total", "queue", "outcome"),
            quality={key: _quality(samples, names) for key, names in QUALITY.items()},
        )


def _delta(end: Mapping[Any, float], start: Mapping[Any, float]) -> dict[Any, float]:
    """``end - start`` per key; where a counter went down (a restart), ``end`` alone."""
    out = {}
    for key, value in end.items():
        before = start.get(key, 0.0)
        out[key] = value - before if value >= before else value
    return out


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus' ``histogram_quantile``: linear interpolation inside the bucket holding rank
    ``q * count`` (cumulative buckets); the highest finite bound if it falls in ``+Inf``."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    total = buckets[bounds[-1]]
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return previous_bound
            if count == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / (count - previous_count)
        previous_bound, previous_count = bound, count
    return previous_bound


def histogram_json(cumulative: Mapping[float, float]) -> dict[str, list[Any]]:
    bounds = sorted(cumulative)
    counts, before = [], 0.0
    for bound in bounds:
        counts.append(round(max(0.0, cumulative[bound] - before)))
        before = cumulative[bound]
    return {"le": ["+Inf" if math.isinf(b) else b for b in bounds], "counts": counts}


# -- the collector ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Bucket:
    arrivals: int = 0
    matched_players: int = 0
    ttm: list[float] = field(default_factory=list)
    phases: dict[str, int] | None = None
    client: dict[str, list[float]] = field(default_factory=dict)
    """Client latencies (seconds) recorded in this second, by name."""


@dataclass(frozen=True, slots=True)
class LiveFigures:
    """A snapshot for the live view."""

    elapsed: float
    players: int
    phases: Mapping[str, int]
    arrival_rate: float
    """Players per second over the last ``RATE_WINDOW`` seconds."""
    ttm_ms: tuple[float | None, float | None, float | None]
    ready: float | None
    allocated: float | None
    failures: Mapping[str, int]
    tickets_created: int
    tickets_matched: int
    open_gaps: int


RATE_WINDOW = 5


class Collector:
    """Every figure of a run (a ``loadtest.players.PartyObserver``); times are ``time.monotonic``."""

    def __init__(self, *, start: float | None = None, error_cap: int = ERROR_CAP) -> None:
        self.start = time.monotonic() if start is None else start
        self.started_wall = time.time() - (time.monotonic() - self.start)
        self.phases: dict[Phase, int] = dict.fromkeys(PHASES, 0)
        self.failures: dict[str, int] = {}
        self.latencies = {name: LatencyHistogram() for name in LATENCY_NAMES}
        self.ttm_by_queue: dict[str, LatencyHistogram] = {}
        self.buckets: list[_Bucket] = []
        self.players = 0
        self.connected = 0
        """Players who reached ``connected`` (matched and joined), whatever came after."""
        self.tickets: dict[str, TicketRecord] = {}
        self.tickets_matched = 0
        self.estimates: dict[str, float | None] = {}
        """Ticket id -> its estimated wait when created (None: the server had none)."""
        self.estimate_errors: list[float] = []
        """Per matched ticket with an estimate: (estimate - wait) / wait."""
        self.unestimated_matched = 0
        self.match_first_seen: dict[str, float] = {}
        self.backfill_first_seen: dict[str, float] = {}
        """Per backfill, when a ticket first learned it filled it: what a backfill's push is timed from."""
        """When a client first learned each match (monotonic)."""
        self.errors: list[dict[str, Any]] = []
        self.error_cap = error_cap
        self.errors_dropped = 0
        self.samples: list[ScrapeSample] = []
        self.gaps: list[dict[str, Any]] = []
        self._open_gaps: dict[str, dict[str, Any]] = {}

    def offset(self, at: float) -> float:
        return at - self.start

    def _bucket(self, at: float) -> _Bucket:
        index = max(0, int(at - self.start))
        while len(self.buckets) <= index:
            self.buckets.append(_Bucket())
        return self.buckets[index]

    def error(self, at: float, kind: str, message: str) -> None:
        if len(self.errors) < self.error_cap:
            self.errors.append({"t": round(self.offset(at), 3), "kind": kind, "message": message})
        else:
            self.errors_dropped += 1

    # -- PartyObserver --------------------------------------------------------------------------

    def phase_changed(self, player: SimPlayer, old: Phase | None, at: float) -> None:
        bucket = self._bucket(at)
        if old is None:
            self.players += 1
            bucket.arrivals += 1
        else:
            self.phases[old] -= 1
        self.phases[player.phase] += 1
        if player.phase is Phase.CONNECTED:
            self.connected += 1
        elif player.phase is Phase.FAILED:
            kind = str(player.failure or FailureKind.OTHER)
            self.failures[kind] = self.failures.get(kind, 0) + 1
            self.error(at, kind, f"{player.id}: {player.message}")
        bucket.phases = {str(p): n for p, n in self.phases.items()}

    def latency(self, name: str, seconds: float, at: float) -> None:
        histogram = self.latencies.get(name)
        if histogram is None:
            histogram = self.latencies[name] = LatencyHistogram()
        histogram.record(seconds)
        if name in CLIENT_LATENCIES:
            self._bucket(at).client.setdefault(name, []).append(seconds)

    def ticket_created(
        self, ticket_id: str, queue: str, reader: str | None, at: float, *, estimate: float | None = None
    ) -> None:
        self.tickets[ticket_id] = TicketRecord(ticket_id, queue, reader, at)
        self.estimates[ticket_id] = estimate

    def ticket_seen(self, ticket_id: str, state: str, match_id: str | None, at: float) -> None:
        record = self.tickets.get(ticket_id)
        if record is None:
            return
        record.state = state
        if match_id is not None and match_id not in record.match_ids:
            record.match_ids.append(match_id)

    def matched(
        self, ticket_id: str, match_id: str, players: int, waited: float, at: float, *, backfill: str = ""
    ) -> None:
        """``backfill``: the fill (``assignment.fillId``, else its backfill's id) of a backfilled ticket."""
        self.tickets_matched += 1
        self.latencies[TIME_TO_MATCH].record(waited, players)
        if ticket_id in self.estimates:
            estimate = self.estimates.pop(ticket_id)
            if estimate is None:
                self.unestimated_matched += 1
            else:
                self.estimate_errors.append(relative_error(estimate, waited))
        record = self.tickets.get(ticket_id)
        queue = record.queue if record is not None else "unknown"
        self.ttm_by_queue.setdefault(queue, LatencyHistogram()).record(waited, players)
        bucket = self._bucket(at)
        bucket.matched_players += players
        bucket.ttm.extend([waited] * players)
        first = self.match_first_seen.setdefault(match_id, at)
        if backfill:  # told with the others of its fill (a backfill is filled again and again), not
            first = self.backfill_first_seen.setdefault(backfill, at)  # with the match's first players
        self.latency(ASSIGNMENT_PUSH, at - first, at)

    def no_capacity_since(self, queue: str, since: float) -> int:
        key = (queue, "no-capacity")
        before = after = None
        for sample in self.samples:
            value = sample.allocation_failures.get(key, 0.0)
            if sample.at <= since or before is None:
                before = value
            after = value
        if before is None or after is None:
            return 0
        return int(max(0.0, after - before))

    # -- scrapes --------------------------------------------------------------------------------

    def add_sample(self, sample: ScrapeSample) -> None:
        self.samples.append(sample)

    def endpoint_down(self, endpoint: str, at: float, error: str) -> None:
        if endpoint in self._open_gaps:
            return
        gap = {"endpoint": endpoint, "from": round(self.offset(at), 3), "to": None, "error": error}
        self._open_gaps[endpoint] = gap
        self.gaps.append(gap)
        self.error(at, "metrics-gap", f"{endpoint}: {error}")

    def endpoint_up(self, endpoint: str, at: float) -> None:
        gap = self._open_gaps.pop(endpoint, None)
        if gap is not None:
            gap["to"] = round(self.offset(at), 3)

    # -- views ----------------------------------------------------------------------------------

    def live(self, now: float | None = None) -> LiveFigures:
        now = time.monotonic() if now is None else now
        last = int(now - self.start)
        window = self.buckets[max(0, last - RATE_WINDOW) : last]
        ttm = self.latencies[TIME_TO_MATCH]
        sample = self.samples[-1] if self.samples else None
        return LiveFigures(
            elapsed=now - self.start,
            players=self.players,
            phases={str(p): n for p, n in self.phases.items()},
            arrival_rate=sum(b.arrivals for b in window) / max(1, len(window)),
            ttm_ms=(ttm.percentile_ms(50), ttm.percentile_ms(95), ttm.percentile_ms(99)),
            ready=sample.ready if sample else None,
            allocated=sample.allocated if sample else None,
            failures=dict(self.failures),
            tickets_created=len(self.tickets),
            tickets_matched=self.tickets_matched,
            open_gaps=len(self._open_gaps),
        )

    def timeline(self, until: float | None = None) -> list[dict[str, Any]]:
        """One row per second from the start to ``until`` (default: the last event or scrape)."""
        last = max([len(self.buckets) - 1] + [int(self.offset(s.at)) for s in self.samples])
        if until is not None:
            last = max(last, int(self.offset(until)))
        offsets = [self.offset(s.at) for s in self.samples]
        phases: dict[str, int] = {str(p): 0 for p in PHASES}
        rows = []
        for t in range(last + 1):
            bucket = self.buckets[t] if t < len(self.buckets) else _Bucket()
            phases = bucket.phases or phases
            # The latest scrape within the second (or the one before, if the 1 s ticks jittered
            # past it); none within two seconds: a gap, shown as null.
            i = bisect.bisect_right(offsets, t + 1) - 1
            sample = self.samples[i] if i >= 0 and offsets[i] > t - 1 else None
            rows.append(
                {
                    "t": t,
                    "arrivals": bucket.arrivals,
                    "matchedPlayers": bucket.matched_players,
                    "phases": dict(phases),
                    **_percentiles("ttm", bucket.ttm),
                    **{
                        k: v
                        for name in CLIENT_LATENCIES
                        for k, v in _percentiles(name, bucket.client.get(name)).items()
                    },
                    "ready": sample.ready if sample else None,
                    "allocated": sample.allocated if sample else None,
                }
            )
        return rows

    def wait_estimate(self) -> dict[str, Any]:
        """How good the server's estimated waits were (``report.json`` ``summary.waitEstimate``)."""
        return wait_estimate_summary(self.estimate_errors, self.unestimated_matched)

    def ttm_by_queue_summary(self) -> dict[str, dict[str, Any]]:
        """Time to match per queue (``{"count", "p50", "p95", "p99", "max"}`` in ms), by queue name."""
        return {queue: histogram.summary() for queue, histogram in sorted(self.ttm_by_queue.items())}

    # -- run figures from the scrapes -----------------------------------------------------------

    def _span(self, pick: Callable[[ScrapeSample], Mapping[Any, float]]) -> dict[Any, float] | None:
        """Delta of a counter family from the first scrape to the last (None without scrapes)."""
        if not self.samples:
            return None
        return _delta(pick(self.samples[-1]), pick(self.samples[0]))

    def allocation_ms(self) -> dict[str, float | None] | None:
        buckets = self._span(lambda s: s.allocation)
        if not buckets or not any(buckets.values()):
            return None
        p50, p95, p99 = (histogram_quantile(q, buckets) for q in (0.5, 0.95, 0.99))
        return {"p50": _ms(p50), "p95": _ms(p95), "p99": _ms(p99), "count": round(max(buckets.values()))}

    def ready_buffer(self) -> dict[str, Any] | None:
        """The deepest dip of the Ready count, and how long after it the start level was back."""
        series = [(self.offset(s.at), s.ready) for s in self.samples if s.ready is not None]
        if not series:
            return None
        start = series[0][1]
        low_at, low = min(series, key=lambda item: item[1])  # the first time at the minimum
        refill = next((t - low_at for t, v in series if t >= low_at and v >= start), None)
        return {
            "start": start,
            "min": low,
            "minAt": round(low_at, 3),
            "refillSeconds": None if refill is None else round(refill, 3),
        }

    def ticket_events(self) -> dict[str, float] | None:
        """Server-side ticket events during the run (``fleetmatch_tickets_total``), over queues."""
        span = self._span(lambda s: s.tickets)
        if span is None:
            return None
        events: dict[str, float] = {}
        for (_, event), value in span.items():
            events[event] = events.get(event, 0.0) + value
        return {k: round(v) for k, v in sorted(events.items())}

    def allocation_failures(self) -> dict[str, int] | None:
        span = self._span(lambda s: s.allocation_failures)
        if span is None:
            return None
        reasons: dict[str, float] = {}
        for (_, reason), value in span.items():
            reasons[reason] = reasons.get(reason, 0.0) + value
        return {k: round(v) for k, v in sorted(reasons.items()) if v}

    def proposal_outcomes(self, queues: Iterable[str]) -> dict[str, float] | None:
        """Ready-check outcomes the matchmaker counted on ``queues`` during the run (None: not scraped)."""
        span = self._span(lambda s: s.proposals)
        if span is None:
            return None
        wanted, outcomes = set(queues), dict.fromkeys(("proposed", "accepted", "declined", "timed-out"), 0.0)
        for (queue, outcome), value in span.items():
            if queue in wanted:
                outcomes[outcome] = outcomes.get(outcome, 0.0) + value
        return outcomes

    def quality(self) -> dict[str, Any]:
        """Match-quality histograms of the matches made during the run (null: none seen)."""
        out: dict[str, Any] = dict.fromkeys(QUALITY)
        if self.samples:
            first, last = self.samples[0], self.samples[-1]
            for key in QUALITY:
                span = _delta(last.quality.get(key, {}), first.quality.get(key, {}))
                out[key] = histogram_json(span) if span else None
        return out


# -- the scraper -----------------------------------------------------------------------------------


class MetricsScraper:
    """Reads the target's ``/metrics`` endpoints every ``interval`` seconds into the collector.

    It has its own small HTTP session, so a pool full of players' streams never delays a scrape.
    """

    def __init__(
        self, endpoints: Sequence[str], collector: Collector, *, interval: float = 1.0, timeout: float = 2.0
    ) -> None:
        self.endpoints = list(dict.fromkeys(endpoints))
        self.collector = collector
        self.interval = interval
        self.timeout = timeout
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> MetricsScraper:
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(1, 2 * len(self.endpoints))),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _fetch(self, url: str) -> str:
        assert self._http is not None, "use `async with MetricsScraper(...)`"
        async with self._http.get(url) as resp:
            if resp.status != 200:
                raise ConnectionError(f"HTTP {resp.status}")
            return await resp.text()

    async def scrape_once(self) -> ScrapeSample | None:
        """One pass over every endpoint; the sample (None if no endpoint answered)."""
        if not self.endpoints:
            return None
        answers = await asyncio.gather(*(self._fetch(url) for url in self.endpoints), return_exceptions=True)
        at = time.monotonic()
        texts = []
        for url, answer in zip(self.endpoints, answers, strict=True):
            if isinstance(answer, BaseException):
                if isinstance(answer, asyncio.CancelledError):
                    raise answer
                self.collector.endpoint_down(url, at, f"{type(answer).__name__}: {answer}".rstrip(": "))
            else:
                self.collector.endpoint_up(url, at)
                texts.append(answer)
        if not texts:
            return None
        try:
            sample = ScrapeSample.of(at, parse_metrics(texts, SCRAPED))
        except ValueError as exc:  # a malformed exposition: a gap in the figures, not a crash
            self.collector.error(at, "metrics-gap", f"unparsable metrics: {exc}")
            return None
        self.collector.add_sample(sample)
        return sample

    async def run(self) -> None:
        """Scrape on a fixed one-second grid until cancelled."""
        next_at = time.monotonic()
        while True:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                await self.scrape_once()
            next_at += self.interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
