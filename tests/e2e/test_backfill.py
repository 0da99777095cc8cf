"""Backfill end to end with `fleetmatch up` and the example UDP game: a 4v4 match is formed and
played; one player leaves (the game removes them from its ``players`` List); a waiting ninth
player is assigned to that same server, on the leaver's team, by the director's next pass, and the
game accepts their connection token (it was added to the server's annotation in the fill's write)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from examples.udp_game.client import GameClient, RejectedError
from loadtest.stack import start_stack, stop_stack
from matchmaker.auth import mint_player_token
from tests.e2e.test_matchmaking import sse_until_matched

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


async def test_a_player_leaves_a_4v4_and_a_waiting_player_takes_the_slot(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc = await asyncio.to_thread(start_stack, data_dir, port_range="7550-7599")
    try:
        stack = json.loads((data_dir / "stack.json").read_text())
        base, secret = stack["matchmaker_url"], stack["player_token_secret"]
        players = [f"p{i}" for i in range(1, 10)]
        tokens = {p: mint_player_token(secret, p, 600, time.time()) for p in players}
        async with aiohttp.ClientSession() as http:

            async def open_ticket(player: str, skill: int) -> str:
                body = {
                    "queue": "4v4",
                    "players": [{"id": player, "attributes": {"skill": skill}, "latencies": {"local": 3}}],
                }
                headers = {"Authorization": f"Bearer {tokens[player]}"}
                async with http.post(f"{base}/v1/tickets", json=body, headers=headers) as resp:
                    assert resp.status == 201, await resp.text()
                    return str((await resp.json())["id"])

            def follow(player: str, ticket: str) -> asyncio.Task[dict[str, object]]:
                url = f"{base}/v1/tickets/{ticket}/events"
                return asyncio.create_task(sse_until_matched(http, url, tokens[player]))

            first = {p: await open_ticket(p, 1500 + 10 * i) for i, p in enumerate(players[:8])}
            matched = await asyncio.gather(*(follow(p, t) for p, t in first.items()))
            assignments = {p: doc["assignment"] for p, doc in zip(first, matched, strict=True)}
            a1 = assignments["p1"]
            assert isinstance(a1, dict)
            address, port, match_id, server = a1["address"], a1["port"], a1["matchId"], a1["gameServer"]

            async with await GameClient.open(address, port) as game:
                for player, a in assignments.items():
                    assert isinstance(a, dict) and a["matchId"] == match_id
                    assert (await game.join(player, a["tokens"][player]))["t"] == "welcome"
                # The ninth player waits: alone, nobody to play against in a new match.
                waiting = follow("p9", await open_ticket("p9", 1540))
                with pytest.raises(RejectedError) as early:
                    await game.join("p9", "not-a-token-yet", patience=0)
                assert early.value.reason == "unknown-player"  # not in this match (yet)
                leaver = "p8"
                await game.leave(leaver)
                left_at = time.monotonic()
                doc = await asyncio.wait_for(waiting, 60)
                took = time.monotonic() - left_at
                got = doc["assignment"]
                assert isinstance(got, dict) and doc["state"] == "matched"
                assert (got["matchId"], got["gameServer"], got["address"], got["port"]) == (
                    match_id,
                    server,
                    address,
                    port,
                )
                assert got["team"] == assignments[leaver]["team"]  # type: ignore[index]
                assert got["backfillId"].startswith("4v4.") and "backfillId" not in a1  # joined a running match
                assert len(got["fillId"]) == 32 and "fillId" not in a1  # the fill that brought it
                welcome = await game.join("p9", got["tokens"]["p9"])
                assert welcome["t"] == "welcome"
                assert sorted(p["id"] for p in welcome["players"]) == sorted([*players[:7], "p9"])
                with pytest.raises(RejectedError) as stranger:
                    await game.join("p10", got["tokens"]["p9"], patience=0)  # someone else's token still fails
                assert stranger.value.reason == "unknown-player"
                with pytest.raises(RejectedError) as borrowed:
                    await game.join("p1", got["tokens"]["p9"], patience=0)  # a member with another's token
                assert borrowed.value.reason == "bad-token"
        # Not asserted (tests never time things): how long the match played one short, beside
        # the queue's tick, for the report.
        print(json.dumps({"backfill_seconds_after_leave": round(took, 3), "tick_seconds": 0.5}), file=sys.stderr)
    finally:
        await asyncio.to_thread(stop_stack, proc)
