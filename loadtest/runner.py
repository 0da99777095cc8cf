"""Running a load test: simulated players on the scenario's schedule, the collector and scraper
beside them, the live view, and the report at the end (``fleetmatch loadtest``).

    report = await run_loadtest(load_scenario(path), target=Target.from_stack(data_dir), out_dir=out)

**Bounded.** The scenario caps players and rate (``loadtest.scenario``: its limits, and absolute
caps above them); a run never outlives ``hardStopSeconds``: arrivals stop at the end of the arrival
window or the player cap, and at the hard stop every party still going is cancelled (still queued:
failed ``match-timeout``, its ticket cancelled; joined: ``done``, it leaves the game). Parties get
``cleanup_seconds`` to tidy up; a party that has not stopped by then is counted, never waited for.
The report is written whatever happened; interrupted (Ctrl-C, SIGTERM), the run stops its players
the same way and writes what it has (without reading tickets back) before it ends.

**Settling.** When every party has ended early, the scraper goes on (at most ``settle_seconds``,
never past the hard stop) until the Ready buffer is back at its start level, so the report can say
how fast it refilled.

**Reconciliation.** Every ticket the players opened is read back from the ticket API (bounded
concurrency and time) and compared with what its client saw: ``summary.serverTickets`` counts the
server's states (``loadtest.reconcile`` lists what counts as a problem), given each match's life as
its parties saw it (a game server reused after a match is fine, one given to two live matches is
not). Zero tickets lost means: ``lost`` 0, ``unchecked`` 0, and ``consistent``.

**Verdict.** The report carries its verdict (``loadtest.verdict``: PASS or FAIL with the reasons,
judged with the caller's thresholds) and, with ``previous``, the run it is compared with.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import math
import resource
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from random import Random
from typing import Any

import aiohttp

from fleetmatch.errors import ConfigError
from fleetmatch.settings import DEFAULT_PLAYER_TOKEN_AUDIENCE
from fleetmatch.tasks import cancel_and_wait, supervised
from loadtest.collect import TIME_TO_MATCH, Collector, MetricsScraper
from loadtest.features import features
from loadtest.players import (
    ASSIGNMENT_PUSH,
    TICKET_CREATE,
    UDP_JOIN,
    Credentials,
    FailureKind,
    Party,
    PartySettings,
    Phase,
)
from loadtest.reconcile import Span, reconcile
from loadtest.scenario import Scenario
from loadtest.verdict import DEFAULT_THRESHOLDS, Thresholds, judge
from loadtest.view import LiveView

log = logging.getLogger(__name__)


class LoadTestError(ConfigError):
    """The load test cannot run as asked (a limit, a missing credential, no stack)."""


@dataclass(frozen=True, slots=True)
class Target:
    """What to load-test: the ticket API, how players authenticate, and what to scrape."""

    matchmaker_url: str
    player_token_secret: str | None = None
    """Mint player tokens with it (what real clients have); else ``api_key`` is used."""
    api_key: str | None = None
    """A trusted backend's key: opens tickets for the players and sees all their tokens."""
    player_token_audience: str = DEFAULT_PLAYER_TOKEN_AUDIENCE
    """The ``aud`` of the minted player tokens (the target's ``FLEETMATCH_PLAYER_TOKEN_AUDIENCE``)."""
    metrics_urls: tuple[str, ...] = ()
    """Further ``/metrics`` endpoints (``fleetmatch up``'s own, a fleet controller's...)."""
    allocator_metrics_url: str | None = None
    scrape_matchmaker: bool = True
    """Scrape ``{matchmaker_url}/metrics`` too."""

    def __post_init__(self) -> None:
        if not self.player_token_secret and not self.api_key:
            raise LoadTestError("the target needs the player-token secret or an API key to sign players in")

    @classmethod
    def from_stack(cls, data_dir: Path) -> Target:
        """The ``fleetmatch up`` running in ``data_dir`` (its ``stack.json``)."""
        from fleetmatch.stackfile import STACK_FILE, StackInfo

        info = StackInfo.read(data_dir)
        if info is None:
            raise LoadTestError(
                f"no running fleetmatch stack in {data_dir} ({STACK_FILE}): start one with `fleetmatch up`"
            )
        return cls(
            matchmaker_url=info.matchmaker_url,
            player_token_secret=info.player_token_secret,
            player_token_audience=info.player_token_audience,
            metrics_urls=(info.metrics_url,),  # up serves every component's metrics there only
            scrape_matchmaker=False,
        )

    @property
    def scrape_endpoints(self) -> list[str]:
        """In order of preference: a metric family comes from the first endpoint that has it."""
        urls = [f"{self.matchmaker_url.rstrip('/')}/metrics"] if self.scrape_matchmaker else []
        urls += [self.allocator_metrics_url or "", *self.metrics_urls]
        return list(dict.fromkeys(u for u in urls if u))


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How the runner itself behaves (the scenario says what the players do)."""

    settle_seconds: float = 30.0
    """After the last party: how long to wait for the Ready buffer to refill (within the hard stop)."""
    reconcile_seconds: float = 60.0
    reconcile_concurrency: int = 16
    stop_grace_seconds: float = 5.0
    """After cancelling at the hard stop: how long parties may take to tidy up."""
    max_connections: int = 10_000
    """Upper bound of the players' HTTP connection pool (each waiting party holds one stream)."""
    max_parties: int = 20_000
    """Parties alive at once, at most: a safety net above the scenario's own caps."""
    scrape_interval: float = 1.0


def _run_id() -> str:
    return secrets.token_hex(4)


def _connection_limit(planned: int, settings: RunSettings) -> int:
    """Room for every party's stream plus requests, within half the file descriptors (the other
    half: UDP sockets, the scraper, the rest of the process)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    budget = soft // 2 if soft != resource.RLIM_INFINITY else settings.max_connections
    limit = max(64, min(planned + 64, settings.max_connections, budget))
    if limit < planned:
        log.warning(
            "only %d connections for %d players (file descriptor limit %d): waiting parties may queue for one",
            limit,
            planned,
            soft,
        )
    return limit


class _Run:
    """One run's moving parts; ``run_loadtest`` is the way in."""

    def __init__(
        self,
        scenario: Scenario,
        target: Target,
        collector: Collector,
        http: aiohttp.ClientSession,
        credentials: Credentials,
        party_settings: PartySettings,
        settings: RunSettings,
        seed: int,
        run_id: str,
    ) -> None:
        self.scenario, self.target, self.collector, self.http = scenario, target, collector, http
        self.credentials, self.party_settings, self.settings = credentials, party_settings, settings
        self.seed, self.run_id = seed, run_id
        self.parties: list[Party] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.limit = asyncio.Semaphore(settings.max_parties)

    async def _party(self, party: Party) -> None:
        async with self.limit:
            await party.run()

    async def arrive(self) -> None:
        """Start a party at each arrival time, until the schedule (or the player cap) ends."""
        master = Random(self.seed)
        times_rng, party_rng = Random(master.getrandbits(64)), Random(master.getrandbits(64))
        cap = min(self.scenario.spec.player_cap, self.scenario.spec.limits.max_players)
        players = 0
        for index, at in enumerate(self.scenario.arrival_times(times_rng)):
            delay = self.collector.start + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            spec = self.scenario.party(party_rng, index, self.run_id)
            if players + len(spec.players) > cap:  # the schedule stops first; this is the net
                log.warning("player cap %d reached at party %d: arrivals stop", cap, index)
                break
            players += len(spec.players)
            party = Party(
                index,
                spec,
                http=self.http,
                base_url=self.target.matchmaker_url,
                credentials=self.credentials,
                observer=self.collector,
                settings=self.party_settings,
            )
            party.arrive()
            self.parties.append(party)
            task = asyncio.create_task(self._party(party), name=f"loadtest.party[{index}]")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def until_done(self, arrivals: asyncio.Task[None], deadline: float) -> bool:
        """Wait for the arrivals and every party until ``deadline``; True if all ended in time."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            waiting: set[asyncio.Task[None]] = set(self.tasks)
            if not arrivals.done():
                waiting.add(arrivals)
            if not waiting:
                return True
            await asyncio.wait(waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)

    async def stop(self) -> None:
        """The hard stop: cancel every party, give them ``stop_grace_seconds``, then settle the
        phases of any that did not get to it (they are counted, not waited for)."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self.settings.stop_grace_seconds)
        stuck = sum(not t.done() for t in tasks)
        if stuck:
            log.warning(
                "%d parties did not stop within %.0fs of the hard stop", stuck, self.settings.stop_grace_seconds
            )
        for party in self.parties:
            party.settle_stopped()

    async def settle(self, deadline: float) -> None:
        """Scrape on (the scraper task does) until the Ready count is back at its start, or ``deadline``."""
        while time.monotonic() < deadline:
            samples = [s for s in self.collector.samples if s.ready is not None]
            if not samples or samples[-1].ready is None or samples[0].ready is None:
                return
            if samples[-1].ready >= samples[0].ready:
                return
            await asyncio.sleep(min(self.settings.scrape_interval, max(0.0, deadline - time.monotonic())))

    async def reconcile(self) -> dict[str, Any]:
        """Read every ticket back from the server (bounded) and compare with the client's view."""
        limit = asyncio.Semaphore(self.settings.reconcile_concurrency)
        server: dict[str, Mapping[str, Any] | None] = {}

        async def fetch(ticket_id: str, reader: str | None) -> None:
            async with limit:
                doc = await _read_ticket(self.http, self.target.matchmaker_url, self.credentials, ticket_id, reader)
            if doc is not _UNREADABLE:
                server[ticket_id] = doc if isinstance(doc, Mapping) else None

        jobs = [
            asyncio.create_task(fetch(t.id, t.reader), name=f"loadtest.reconcile[{t.id}]")
            for t in self.collector.tickets.values()
        ]
        if jobs:
            _, pending = await asyncio.wait(jobs, timeout=self.settings.reconcile_seconds)
            await cancel_and_wait(*pending)
        return reconcile(self.collector.tickets, server, self.match_spans())

    def match_spans(self) -> dict[str, Span]:
        """Each match's life as its parties saw it: from the first assignment learned to the last
        player's end (a party still going: open-ended). Tells a reused server from a doubly used one."""
        spans: dict[str, Span] = {}
        for party in self.parties:
            record = self.collector.tickets.get(party.ticket_id or "")
            for match_id in record.match_ids if record else ():
                start = self.collector.match_first_seen.get(match_id, math.inf)
                ended = [p.transitions[-1].monotonic for p in party.players if p.final and p.transitions]
                end = max(ended) if len(ended) == len(party.players) else math.inf
                before = spans.get(match_id, (start, end))
                spans[match_id] = (min(before[0], start), max(before[1], end))
        return spans


_UNREADABLE = object()


async def _read_ticket(
    http: aiohttp.ClientSession, base: str, credentials: Credentials, ticket_id: str, reader: str | None
) -> object:
    """The server's ticket, None if it does not know it (404), ``_UNREADABLE`` if it would not say."""
    headers = {"Authorization": f"Bearer {credentials.bearer(reader)}"}
    for attempt in range(5):
        try:
            async with http.get(
                f"{base.rstrip('/')}/v1/tickets/{ticket_id}", headers=headers, timeout=aiohttp.ClientTimeout(total=10)
            ) as resp:
                if resp.status == 200:
                    return await resp.json()
                if resp.status == 404:
                    return None
                if resp.status not in (429, 503):
                    log.warning("reading ticket %s back: HTTP %d", ticket_id, resp.status)
                    return _UNREADABLE
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.debug("reading ticket %s back: %s", ticket_id, exc)
        await asyncio.sleep(0.2 * 2**attempt)
    return _UNREADABLE


# -- the report ------------------------------------------------------------------------------------


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_report(
    *,
    scenario: Scenario,
    scenario_file: str | None,
    target: Target,
    collector: Collector,
    planned: int,
    seed: int,
    run_id: str,
    ended: float,
    server_tickets: dict[str, Any] | None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    previous: Mapping[str, Any] | None = None,
    parties: Sequence[Party] = (),
) -> dict[str, Any]:
    """The report document (``loadtest.report`` renders it; keys are part of its contract), with
    its verdict (``loadtest.verdict``) and, given ``previous`` (``load_previous``), the figures
    of the run it is compared with."""
    phases = collector.phases
    failures = {str(kind): collector.failures.get(str(kind), 0) for kind in FailureKind}
    failures.update({k: v for k, v in collector.failures.items() if k not in failures})
    latencies = collector.latencies
    report: dict[str, Any] = {
        "scenario": {
            "name": scenario.name,
            "file": scenario_file,
            "target": target.matchmaker_url,
            "startedAt": _rfc3339(collector.started_wall),
            "seconds": round(ended - collector.start, 3),
            "playersPlanned": planned,
            "hardStopSeconds": scenario.hard_stop_seconds,
            "matchTimeoutSeconds": scenario.match_timeout_seconds,
            "seed": seed,
            "runId": run_id,
        },
        "summary": {
            "players": collector.players,
            "played": phases[Phase.DONE],
            "failed": phases[Phase.FAILED],
            "connected": collector.connected,
            "unfinished": sum(n for p, n in phases.items() if p not in (Phase.DONE, Phase.FAILED)),
            "failures": failures,
            "ticketsCreated": len(collector.tickets),
            "ticketsMatched": collector.tickets_matched,
            "timeToMatchMs": latencies[TIME_TO_MATCH].summary(),
            "timeToMatchByQueueMs": collector.ttm_by_queue_summary(),
            "waitEstimate": collector.wait_estimate(),
            "allocationMs": collector.allocation_ms(),
            "readyBuffer": collector.ready_buffer(),
            "serverTickets": server_tickets,
            "latenciesMs": {name: latencies[name].summary() for name in (TICKET_CREATE, ASSIGNMENT_PUSH, UDP_JOIN)},
            "ticketEvents": collector.ticket_events(),
            "allocationFailures": collector.allocation_failures(),
            "metricsGaps": list(collector.gaps),
            "errorsDropped": collector.errors_dropped,
            "features": _features(scenario, collector, parties),
        },
        "timeline": collector.timeline(ended),
        "quality": collector.quality(),
        "errors": list(collector.errors),
    }
    report["verdict"] = judge(report, thresholds).as_json(thresholds)
    if previous is not None:
        report["previous"] = dict(previous)
    return report


def _features(scenario: Scenario, collector: Collector, parties: Sequence[Party]) -> dict[str, Any]:
    queues = scenario.spec.queues
    asked = [name for name, mix in queues.items() if mix.acceptance is not None]
    return features(parties, queues, collector.proposal_outcomes(asked) if asked else None)


def _write(report: dict[str, Any], out_dir: Path) -> None:
    """Through ``loadtest.report`` (JSON and HTML); only JSON if that module is not there."""
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        module = importlib.import_module("loadtest.report")
    except ImportError:
        log.warning("loadtest.report is not available: writing report.json only")
        (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        return
    module.write_reports(report, out_dir)


# -- the way in ------------------------------------------------------------------------------------


async def run_loadtest(
    scenario: Scenario,
    *,
    target: Target,
    out_dir: Path,
    seed: int | None = None,
    view: bool = True,
    players_override: int | None = None,
    scenario_file: str | None = None,
    party_settings: PartySettings | None = None,
    settings: RunSettings | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``scenario`` against ``target``; write ``report.json`` (and ``report.html``) to
    ``out_dir`` and return the report. ``players_override`` rescales the scenario
    (``Scenario.with_players``: refused beyond its limits). ``view``: the live terminal view (drawn
    only on a terminal). ``party_settings``: how simulated clients behave (its ``match_timeout`` is
    the scenario's). ``thresholds``: what the verdict allows; ``previous``: a run to compare with
    (``loadtest.verdict.load_previous``)."""
    if players_override is not None:
        scenario = scenario.with_players(players_override)
    planned = scenario.planned_players()
    limits = scenario.spec.limits
    if planned > limits.max_players:
        raise LoadTestError(f"{planned} players planned, above the scenario's limit of {limits.max_players}")
    settings = settings or RunSettings()
    seed = secrets.randbits(32) if seed is None else seed
    run_id = _run_id()
    hard_stop = scenario.hard_stop_seconds
    credentials = Credentials(
        secret=target.player_token_secret,
        api_key=target.api_key,
        ttl=hard_stop + settings.reconcile_seconds + 600,
        audience=target.player_token_audience,
    )
    clients = replace(party_settings or PartySettings(), match_timeout=scenario.match_timeout_seconds)
    collector = Collector()
    deadline = collector.start + hard_stop
    server_tickets: dict[str, Any] | None = None
    connector = aiohttp.TCPConnector(limit=_connection_limit(planned, settings), limit_per_host=0)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        MetricsScraper(target.scrape_endpoints, collector, interval=settings.scrape_interval) as scraper,
    ):
        await scraper.scrape_once()  # the baseline: every run figure is a delta from here
        run = _Run(scenario, target, collector, http, credentials, clients, settings, seed, run_id)
        background: list[asyncio.Task[None]] = [supervised("loadtest.scraper", scraper.run)]
        if view:
            live = LiveView(
                collector, title=f"fleetmatch loadtest {scenario.name}", planned=planned, hard_stop=hard_stop
            )
            background.append(supervised("loadtest.view", live.run))
        arrivals = asyncio.create_task(run.arrive(), name="loadtest.arrivals")
        interrupted = False
        try:
            if await run.until_done(arrivals, deadline):
                await run.settle(min(deadline, time.monotonic() + settings.settle_seconds))
        except asyncio.CancelledError:  # Ctrl-C or SIGTERM: stop the players, write what there is, re-raise
            interrupted = True
            collector.error(time.monotonic(), "interrupted", "the run was interrupted: tickets were not read back")
        finally:
            await cancel_and_wait(arrivals)
            if not arrivals.cancelled() and arrivals.exception() is not None:
                log.error("arrivals failed", exc_info=arrivals.exception())
                collector.error(time.monotonic(), "other", f"arrivals stopped early: {arrivals.exception()!r}")
            await run.stop()
            await cancel_and_wait(*background)
        if not interrupted:
            await scraper.scrape_once()
        ended = time.monotonic()
        try:
            server_tickets = None if interrupted else await run.reconcile()
        except Exception:  # the report is written whatever happens; say why this part is empty
            log.exception("reconciling tickets with the server failed")
            collector.error(time.monotonic(), "reconcile", "reading tickets back from the server failed")
    report = build_report(
        scenario=scenario,
        scenario_file=scenario_file,
        target=target,
        collector=collector,
        planned=planned,
        seed=seed,
        run_id=run_id,
        ended=ended,
        server_tickets=server_tickets,
        thresholds=thresholds,
        previous=previous,
        parties=run.parties,
    )
    _write(report, out_dir)
    if interrupted:
        log.warning("interrupted: the report so far is in %s", out_dir)
        raise asyncio.CancelledError
    return report
