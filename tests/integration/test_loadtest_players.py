"""Simulated players against a real `fleetmatch up`: eight duel players through the runner (SSE,
WebSocket and long-poll; one presents a wrong connection token; one metrics endpoint stops
mid-run), two parties of four in 4v4 learning their own connection tokens (player tokens and an
API key), a wrong secret, and a hard stop that cancels a waiting ticket. Plus the pure figures:
histogram quantiles, the metrics merge, and the ticket reconciliation.

Game ports 7550-7599; no other test module uses them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from loadtest.collect import (
    Collector,
    TicketRecord,
    histogram_quantile,
    parse_metrics,
    reconcile,
    relative_error,
    wait_estimate_summary,
)
from loadtest.players import Credentials, FailureKind, Party, PartySettings, Phase
from loadtest.runner import RunSettings, Target, run_loadtest
from loadtest.scenario import PartySpec, parse_scenario
from loadtest.stack import start_stack, stop_stack
from matchmaker.models import Player

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

API_KEY = "loadtest-backend-key-0123456789"

DUELS = """
apiVersion: fleetmatch.dev/v1
kind: LoadTest
metadata: {name: duels}
spec:
  players: 8
  durationSeconds: 5
  hardStopSeconds: 40
  matchTimeoutSeconds: 20
  arrival: {process: even, phases: [{type: constant, rate: 8}]}
  queues: {duel: {weight: 1}}
  attributes: {skill: {distribution: constant, value: 1500}}
  regions: {local: {distribution: constant, value: 5}}
  sessionSeconds: {distribution: constant, value: 2}
  clients: {sse: 1, websocket: 1, longpoll: 1}
  limits: {maxPlayers: 8, maxRate: 20}
"""

LONELY = """
apiVersion: fleetmatch.dev/v1
kind: LoadTest
metadata: {name: lonely}
spec:
  players: 1
  durationSeconds: 1
  hardStopSeconds: 3
  matchTimeoutSeconds: 60
  arrival: {process: even, phases: [{type: constant, rate: 5}]}
  queues: {4v4: {weight: 1}}
  attributes: {skill: {distribution: constant, value: 1500}}
  regions: {local: {distribution: constant, value: 5}}
  limits: {maxPlayers: 1, maxRate: 5}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One `fleetmatch up` (demo fleet and queues, plus an API key) for the module."""
    data_dir = tmp_path_factory.mktemp("loadtest") / "data"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FLEETMATCH_API_KEYS", f"loadtest={API_KEY}")
        proc: subprocess.Popen[str] = start_stack(data_dir, port_range="7550-7599")
    try:
        yield data_dir
    finally:
        stop_stack(proc)


class Exposition:
    """A real /metrics endpoint of our own that can be stopped mid-run."""

    def __init__(self) -> None:
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        async def metrics(_: web.Request) -> web.Response:
            return web.Response(text="# TYPE loadtest_probe gauge\nloadtest_probe 1.0\n")

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/metrics"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def exposition() -> AsyncIterator[Exposition]:
    endpoint = Exposition()
    await endpoint.start()
    yield endpoint
    await endpoint.stop()


def forge_first(player: str, token: str) -> str:
    """The first party's player presents a token that is not theirs."""
    return "not-the-right-token" if player.endswith("-0-0") else token


async def test_duels_through_the_runner(stack: Path, tmp_path: Path, exposition: Exposition) -> None:
    base = Target.from_stack(stack)
    target = Target(
        base.matchmaker_url,
        player_token_secret=base.player_token_secret,
        metrics_urls=(*base.metrics_urls, exposition.url),
        scrape_matchmaker=base.scrape_matchmaker,
    )

    async def stop_exposition() -> None:
        await asyncio.sleep(0.5)  # after the baseline scrape, well before the run ends
        await exposition.stop()

    stopper = asyncio.create_task(stop_exposition(), name="test.stop-exposition")
    report = await run_loadtest(
        parse_scenario(DUELS),
        target=target,
        out_dir=tmp_path / "out",
        seed=7,
        view=True,  # not a terminal here: no drawing, only log lines
        party_settings=PartySettings(connection_token=forge_first),
        settings=RunSettings(settle_seconds=8),
    )
    await stopper
    summary = report["summary"]

    assert json.loads((tmp_path / "out" / "report.json").read_text()) == report
    assert summary["players"] == 8 and summary["unfinished"] == 0
    assert summary["played"] + summary["failed"] == 8
    assert {k: n for k, n in summary["failures"].items() if n} == {"rejected-token": 1}, report["errors"]
    assert summary["played"] == 7 and summary["connected"] == 7
    assert summary["ticketsCreated"] == 8 and summary["ticketsMatched"] == 8
    assert summary["timeToMatchMs"]["count"] == 8  # one per matched player
    assert summary["latenciesMs"]["udpJoin"]["count"] == 7
    assert summary["allocationMs"] is not None and summary["allocationMs"]["count"] >= 4
    assert summary["ticketEvents"]["created"] == 8 and summary["ticketEvents"]["matched"] == 8
    server = summary["serverTickets"]
    assert server["consistent"], server["problems"]
    assert (server["created"], server["matched"], server["missing"], server["queued"]) == (8, 8, 0, 0)
    assert server["matches"] == 4

    rows = report["timeline"]
    assert sum(r["arrivals"] for r in rows) == 8 and sum(r["matchedPlayers"] for r in rows) == 8
    assert rows[-1]["phases"]["done"] == 7 and rows[-1]["phases"]["failed"] == 1
    assert any(r["ready"] is not None for r in rows)
    assert max(r["allocated"] or 0 for r in rows) >= 1
    assert report["summary"]["readyBuffer"]["start"] >= 1

    gaps = summary["metricsGaps"]
    assert [g["endpoint"] for g in gaps] == [exposition.url] and gaps[0]["to"] is None
    assert any(e["kind"] == "metrics-gap" for e in report["errors"])
    assert any(e["kind"] == "rejected-token" and "-0-0" in e["message"] for e in report["errors"])


async def test_the_wait_estimate_is_measured_against_the_truth(stack: Path, tmp_path: Path) -> None:
    """A first run gives the directors times to match; every ticket of the second is created with
    an estimate, and the report says how many were within +-25 % of the wait that followed."""
    target = Target.from_stack(stack)
    reports = []
    for run in ("first", "second"):
        reports.append(
            await run_loadtest(
                parse_scenario(DUELS),
                target=target,
                out_dir=tmp_path / run,
                seed=11,
                view=False,
                settings=RunSettings(settle_seconds=1),
            )
        )
    figures = reports[1]["summary"]["waitEstimate"]
    assert figures["matched"] == reports[1]["summary"]["ticketsMatched"] == 8
    assert figures["estimated"] == 8  # the first run's matches are recent enough for every ticket
    assert sum(b["count"] for b in figures["buckets"]) == 8
    assert figures["within"] == figures["buckets"][2]["count"]
    assert figures["withinPercent"] == round(100 * figures["within"] / 8, 1)
    printed = (tmp_path / "second" / "report.html").read_text()
    assert "Wait estimate" in printed and "(target 80 %)" in printed


@pytest.mark.parametrize(
    ("pairs", "unestimated", "within", "percent", "buckets"),
    [
        pytest.param([], 3, 0, None, [0, 0, 0, 0, 0], id="no-estimates"),
        pytest.param([(10, 10), (12.5, 10), (7.5, 10)], 0, 3, 100.0, [0, 0, 3, 0, 0], id="edges-are-within"),
        pytest.param([(4, 10), (6, 10), (14, 10), (30, 10)], 1, 0, 0.0, [1, 1, 0, 1, 1], id="misses"),
        pytest.param([(0.1, 0.0), (0.05, 0.01)], 0, 1, 50.0, [0, 0, 1, 0, 1], id="tiny-waits-floor-at-50ms"),
    ],
)
def test_wait_estimate_summary(
    pairs: list[tuple[float, float]], unestimated: int, within: int, percent: float | None, buckets: list[int]
) -> None:
    figures = wait_estimate_summary([relative_error(e, w) for e, w in pairs], unestimated)
    assert (figures["matched"], figures["estimated"]) == (len(pairs) + unestimated, len(pairs))
    assert (figures["within"], figures["withinPercent"]) == (within, percent)
    assert [b["count"] for b in figures["buckets"]] == buckets


async def test_parties_learn_their_own_connection_tokens(stack: Path) -> None:
    """Two parties of four fill a 4v4: one signed in with player tokens (each member reads the
    ticket with its own token), the other through the API key (which sees every token)."""
    info = Target.from_stack(stack)
    assert info.player_token_secret is not None
    collector = Collector()
    settings = PartySettings(match_timeout=20, udp_reply_timeout=0.5)
    tag = f"{time.time_ns() % 10**9}"
    async with aiohttp.ClientSession() as http:
        parties = []
        for index, (client, credentials) in enumerate(
            (("sse", Credentials(secret=info.player_token_secret)), ("websocket", Credentials(api_key=API_KEY)))
        ):
            players = tuple(Player(f"party-{tag}-{index}-{k}", {"skill": 1500.0 + k}, {"local": 5.0}) for k in range(4))
            spec = PartySpec("4v4", players, client, 1.0)
            parties.append(
                Party(
                    index,
                    spec,
                    http=http,
                    base_url=info.matchmaker_url,
                    credentials=credentials,
                    observer=collector,
                    settings=settings,
                )
            )
        await asyncio.gather(*(p.run() for p in parties))
    for party in parties:
        assert [p.phase for p in party.players] == [Phase.DONE] * 4, [p.message for p in party.players]
        assert len({p.connection_token for p in party.players}) == 4
        phases = [t.phase for t in party.players[1].transitions]
        assert phases == [Phase.QUEUED, Phase.MATCHED, Phase.CONNECTED, Phase.PLAYING, Phase.DONE]
    assert parties[0].assignment is not None and parties[1].assignment is not None
    assert parties[0].assignment["matchId"] == parties[1].assignment["matchId"]
    assert collector.latencies["timeToMatch"].count == 8 and collector.connected == 8
    assert collector.tickets_matched == 2 and collector.failures == {}


async def test_a_wrong_secret_fails_as_auth(stack: Path) -> None:
    info = Target.from_stack(stack)
    collector = Collector()
    spec = PartySpec("duel", (Player("forger-1", {"skill": 1500.0}),), "sse", 1.0)
    async with aiohttp.ClientSession() as http:
        party = Party(
            0,
            spec,
            http=http,
            base_url=info.matchmaker_url,
            credentials=Credentials(secret="not-the-stack-secret-0123456789"),
            observer=collector,
            settings=PartySettings(),
        )
        await party.run()
    player = party.players[0]
    assert (player.phase, player.failure) == (Phase.FAILED, FailureKind.AUTH), player.message
    assert "401" in player.message and collector.failures == {"auth": 1} and not collector.tickets


async def test_hard_stop_cancels_the_waiting_ticket(stack: Path, tmp_path: Path) -> None:
    """A lone player in 4v4 can never be matched: the hard stop (3 s) ends the run, the player
    fails ``match-timeout``, and its ticket is cancelled on the server, not left in the pool."""
    report = await run_loadtest(parse_scenario(LONELY), target=Target.from_stack(stack), out_dir=tmp_path, view=False)
    summary = report["summary"]
    assert summary["players"] == 1 and summary["failed"] == 1
    assert summary["failures"]["match-timeout"] == 1, report["errors"]
    assert "hard stop" in report["errors"][0]["message"]
    server = summary["serverTickets"]
    assert (server["created"], server["cancelled"], server["queued"]) == (1, 1, 0) and server["consistent"]
    assert report["scenario"]["seconds"] < 3 + RunSettings().stop_grace_seconds + 2  # stopped, not timed out


async def test_an_interrupted_run_still_writes_its_report(stack: Path, tmp_path: Path) -> None:
    """Ctrl-C (the task cancelled) stops the players, cancels the waiting ticket, writes the report
    so far, and only then ends the run as cancelled."""
    lonely = parse_scenario(LONELY.replace("hardStopSeconds: 3", "hardStopSeconds: 60"))
    run = asyncio.create_task(
        run_loadtest(lonely, target=Target.from_stack(stack), out_dir=tmp_path, view=False), name="test.run"
    )
    await asyncio.sleep(1.5)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["summary"]["players"] == 1 and report["summary"]["unfinished"] == 0
    assert report["summary"]["serverTickets"] is None
    assert any(e["kind"] == "interrupted" for e in report["errors"]), report["errors"]
    assert (tmp_path / "report.html").exists()


# -- pure figures ------------------------------------------------------------------------------------


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = {0.001: 0.0, 0.002: 50.0, 0.005: 90.0, 0.01: 100.0, float("inf"): 100.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.002)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.0035)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.0095)
    assert histogram_quantile(0.5, {float("inf"): 0.0}) is None
    assert histogram_quantile(0.99, {0.1: 1.0, float("inf"): 10.0}) == 0.1  # in +Inf: the highest bound


def test_parse_metrics_takes_each_family_once() -> None:
    one = '# TYPE fleetmatch_gameservers gauge\nfleetmatch_gameservers{fleet="a",state="Ready"} 3\n'
    two = one + "# TYPE other gauge\nother 1\n"
    samples = parse_metrics([one, two])
    assert samples["fleetmatch_gameservers"] == [({"fleet": "a", "state": "Ready"}, 3.0)]
    assert samples["other"] == [({}, 1.0)]


def test_reconcile_flags_lost_and_double_matched_tickets() -> None:
    def record(ticket_id: str, state: str, *matches: str) -> TicketRecord:
        return TicketRecord(ticket_id, "duel", None, 0.0, state, list(matches))

    def doc(state: str, match: str | None = None, server: str = "gs-1") -> dict[str, Any]:
        assignment = None if match is None else {"matchId": match, "gameServer": server, "address": "h", "port": 1}
        return {"state": state, "assignment": assignment}

    client = {
        "a": record("a", "matched", "m1"),
        "b": record("b", "matched", "m1"),
        "c": record("c", "cancelled"),
        "d": record("d", "matched", "m2"),
        "e": record("e", "queued"),
        "f": record("f", "matched", "m3", "m4"),
        "g": record("g", "queued"),
    }
    server = {
        "a": doc("matched", "m1"),
        "b": doc("matched", "m1", server="gs-2"),
        "c": doc("cancelled"),
        "d": doc("matched", "m9"),
        "e": None,
        "f": doc("matched", "m4"),
    }
    result = reconcile(client, server)
    assert (result["created"], result["matched"], result["cancelled"], result["missing"]) == (7, 4, 1, 1)
    assert result["unchecked"] == 1 and not result["consistent"]
    problems = "\n".join(result["problems"])
    assert "e: missing" in problems and "d: the client saw match m2" in problems
    assert "f: the client saw it in matches m3, m4" in problems and "match m1" in problems
    assert len(result["problems"]) == 4
