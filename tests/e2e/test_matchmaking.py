"""Matchmaking end to end with `fleetmatch up`: eight players open tickets for a 4v4 queue, all
learn the same server over Server-Sent Events, each joins it over UDP with their own connection
token; a ninth player with a forged token, or someone else's, is turned away."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from examples.udp_game.client import GameClient, RejectedError
from loadtest.stack import start_stack, stop_stack
from matchmaker.auth import mint_player_token

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


async def sse_until_matched(http: aiohttp.ClientSession, url: str, token: str) -> dict[str, Any]:
    """Follow a ticket's event stream until it is matched; the last ticket document."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    async with http.get(url, headers=headers) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        async for raw in resp.content:
            line = raw.decode().strip()
            if line.startswith("data:"):
                doc: dict[str, Any] = json.loads(line[5:])
                if doc["state"] != "queued":
                    return doc
    raise AssertionError("stream ended before the match")


async def test_eight_players_one_server_tokens_checked(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc = await asyncio.to_thread(start_stack, data_dir, port_range="7500-7549")
    try:
        stack = json.loads((data_dir / "stack.json").read_text())
        base, secret = stack["matchmaker_url"], stack["player_token_secret"]
        players = [f"p{i}" for i in range(1, 9)]
        tokens = {p: mint_player_token(secret, p, 600, time.time()) for p in players}
        async with aiohttp.ClientSession() as http:
            tickets = {}
            for i, player in enumerate(players):
                body = {
                    "queue": "4v4",
                    "players": [{"id": player, "attributes": {"skill": 1500 + 10 * i}, "latencies": {"local": 3}}],
                }
                async with http.post(
                    f"{base}/v1/tickets", json=body, headers={"Authorization": f"Bearer {tokens[player]}"}
                ) as resp:
                    assert resp.status == 201, await resp.text()
                    tickets[player] = (await resp.json())["id"]
            matched = await asyncio.gather(
                *(sse_until_matched(http, f"{base}/v1/tickets/{tickets[p]}/events", tokens[p]) for p in players)
            )
        assignments = [doc["assignment"] for doc in matched]
        assert {doc["state"] for doc in matched} == {"matched"}
        assert len({(a["address"], a["port"], a["matchId"], a["gameServer"]) for a in assignments}) == 1
        assert sorted(a["team"] for a in assignments) == [0, 0, 0, 0, 1, 1, 1, 1]
        address, port = assignments[0]["address"], assignments[0]["port"]
        connection = {p: a["tokens"][p] for p, a in zip(players, assignments, strict=True)}
        assert all(set(a["tokens"]) == {p} for p, a in zip(players, assignments, strict=True))  # only your own

        async with await GameClient.open(address, port) as game:
            for player in players:
                welcome = await game.join(player, connection[player])
                assert welcome["t"] == "welcome"
            with pytest.raises(RejectedError) as forged:
                await game.join("p9", "forged-token", patience=0)
            assert forged.value.reply["reason"] == "unknown-player"  # not in this match
            with pytest.raises(RejectedError) as stranger:
                await game.join("p9", connection["p1"], patience=0)  # someone else's token
            assert stranger.value.reason == "unknown-player"
            with pytest.raises(RejectedError) as borrowed:
                await game.join("p2", connection["p1"])  # a player of the match with another's token
            assert borrowed.value.reason == "bad-token"
    finally:
        await asyncio.to_thread(stop_stack, proc)
