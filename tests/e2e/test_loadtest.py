"""``fleetmatch loadtest`` with the shipped smoke scenario (100 players, under a minute) against a
``fleetmatch up`` this test starts: every player ends played or with a classified failure, the
tickets in Redis agree with what the players saw (nothing lost, nothing matched twice, one game
server per match), and the report is complete and self-contained.

The ticket check reads Redis directly rather than trusting the tool's own reconciliation: the
two are compared, so a bug in either shows."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, cast

import msgpack  # type: ignore[import-untyped]
import pytest
import redis.asyncio as aioredis

from loadtest.players import FailureKind
from loadtest.stack import REPO, start_stack, stop_stack
from matchmaker.tickets import Keys

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

QUEUES = ("duel", "4v4")  # the demo queues smoke.yaml joins
SECTIONS = {"scenario", "summary", "timeline", "quality", "errors"}


async def _hash(client: aioredis.Redis, key: str) -> dict[bytes, bytes]:
    return cast(dict[bytes, bytes], await client.hgetall(key))


async def server_tickets(redis_url: str) -> dict[str, dict[str, Any]]:
    """Every ticket the matchmaker holds: id -> state, match id, assignment, player count."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        tickets: dict[str, dict[str, Any]] = {}
        for queue in QUEUES:
            keys = Keys.of(queue)
            states = await _hash(client, keys.state)
            matches = await _hash(client, keys.match)
            assignments = await _hash(client, keys.assignment)
            bodies = await _hash(client, keys.bodies)
            for raw_id, state in states.items():
                assignment = assignments.get(raw_id)
                tickets[raw_id.decode()] = {
                    "queue": queue,
                    "state": state.decode(),
                    "match": matches[raw_id].decode() if raw_id in matches else None,
                    "assignment": msgpack.unpackb(assignment, raw=False) if assignment else None,
                    "players": len(msgpack.unpackb(bodies[raw_id], raw=False)["players"]),
                }
        return tickets
    finally:
        await client.aclose()


async def test_smoke_scenario_against_fleetmatch_up(tmp_path: Path) -> None:
    data_dir, out = tmp_path / "data", tmp_path / "report"
    proc = await asyncio.to_thread(start_stack, data_dir, port_range="8100-8199")
    try:
        stack = json.loads((data_dir / "stack.json").read_text())
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        command = [sys.executable, "-m", "fleetmatch", "--data-dir", str(data_dir), "loadtest"]
        run = await asyncio.create_subprocess_exec(
            *command, "--scenario", "loadtest/scenarios/smoke.yaml", "--out", str(out), "--seed", "7", "--no-view",
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(run.communicate(), timeout=150)
        server = await server_tickets(stack["redis_url"])
    finally:
        await asyncio.to_thread(stop_stack, proc)
    printed = stdout.decode()
    assert run.returncode == 0, f"{printed}\n{stderr.decode()[-3000:]}"
    assert "time to match" in printed and "report.html" in printed

    report = json.loads((out / "report.json").read_text())
    assert SECTIONS <= set(report)
    summary = report["summary"]

    # Every player ended: played, or failed with a kind the tool knows; nothing left in between.
    assert summary["players"] == report["scenario"]["playersPlanned"] == 100
    assert summary["unfinished"] == 0
    assert summary["played"] + summary["failed"] == summary["players"]
    assert sum(summary["failures"].values()) == summary["failed"]
    assert set(summary["failures"]) <= {str(kind) for kind in FailureKind}
    assert summary["played"] > 0 and summary["timeToMatchMs"]["count"] >= summary["played"]

    # The server's tickets, read from Redis, agree with the players' side: none lost, none queued
    # or leased after the run, as many matched as players saw matched.
    states = Counter(t["state"] for t in server.values())
    assert len(server) == summary["ticketsCreated"], states
    assert states["queued"] == states["leased"] == 0, states
    assert states["matched"] == summary["ticketsMatched"], states
    assert set(states) <= {"matched", "cancelled", "expired"}, states
    reconciled = summary["serverTickets"]
    assert reconciled["consistent"] and reconciled["problems"] == [], reconciled
    assert reconciled["missing"] == reconciled["unchecked"] == 0
    assert reconciled["matched"] == states["matched"] and reconciled["cancelled"] == states["cancelled"]

    # Nothing matched twice: each matched ticket carries its own match's assignment, each match
    # went to one game server, and no game server got two matches (the example game plays one).
    matched = [t for t in server.values() if t["state"] == "matched"]
    assert all(t["assignment"]["matchId"] == t["match"] for t in matched)
    server_of: dict[str, set[str]] = {}
    for t in matched:
        server_of.setdefault(t["match"], set()).add(t["assignment"]["gameServer"])
    assert all(len(names) == 1 for names in server_of.values()), server_of
    servers = [next(iter(names)) for names in server_of.values()]
    assert len(servers) == len(set(servers)) == reconciled["matches"]
    # Every player who played was matched by the server.
    assert sum(t["players"] for t in matched) >= summary["played"]

    # The report: timeline and quality filled, and the HTML needs no network.
    assert report["timeline"] and {"t", "arrivals", "matchedPlayers", "phases"} <= set(report["timeline"][0])
    assert report["quality"]["skillSpread"]
    html = (out / "report.html").read_text()
    assert html.count("<svg") >= 5
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|@import|url\(\s*["']?(?:https?:)?//""", html)
