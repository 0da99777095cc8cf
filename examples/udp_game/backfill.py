"""Backfill, played against a running ``fleetmatch up``: ``python -m examples.udp_game.backfill``.

Eight players queue in the demo ``4v4`` queue, are matched onto one example game server and join
it over UDP with their connection tokens; a ninth player queues and waits (nobody to play against
in a new match). One player leaves: the game removes them from its ``players`` List, the director
opens a backfill for the match and fills it on its next pass with the ninth player, who joins the
same server with their own token. Prints one JSON line per step; exits 1 if a step fails.

The players' skills (9000 and up) keep them apart from anything else waiting in the demo queue.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
from typing import Any

import aiohttp

from examples.udp_game.client import GameClient
from fleetmatch.settings import Settings
from fleetmatch.stackfile import StackInfo
from matchmaker.auth import mint_player_token

QUEUE = "4v4"
SKILL = 9000


def say(step: str, **fields: Any) -> None:
    print(json.dumps({"step": step, **fields}), flush=True)


class Players:
    """Players of the demo, each with a player token, opening tickets and following them."""

    def __init__(self, http: aiohttp.ClientSession, info: StackInfo) -> None:
        self.http, self.info = http, info
        self.run = secrets.token_hex(3)

    def token(self, player: str) -> str:
        secret, audience = self.info.player_token_secret, self.info.player_token_audience
        return mint_player_token(secret, player, 600, time.time(), audience=audience)

    async def queue(self, player: str, skill: int) -> str:
        body = {"queue": QUEUE, "players": [{"id": player, "attributes": {"skill": skill}, "latencies": {"local": 3}}]}
        headers = {"Authorization": f"Bearer {self.token(player)}"}
        async with self.http.post(f"{self.info.matchmaker_url}/v1/tickets", json=body, headers=headers) as resp:
            resp.raise_for_status()
            return str((await resp.json())["id"])

    async def assignment(self, player: str, ticket: str) -> dict[str, Any]:
        """Long-poll the ticket until it is matched; its assignment."""
        headers = {"Authorization": f"Bearer {self.token(player)}"}
        url = f"{self.info.matchmaker_url}/v1/tickets/{ticket}?wait=30"
        while True:
            async with self.http.get(url, headers=headers) as resp:
                resp.raise_for_status()
                doc = await resp.json()
            if doc["state"] == "matched":
                return dict(doc["assignment"])
            if doc["state"] != "queued":
                raise RuntimeError(f"ticket {ticket} of {player} ended {doc['state']}: {doc.get('reason')}")


async def main() -> int:
    try:
        async with asyncio.timeout(120):
            return await play()
    except TimeoutError:
        print("no match or no backfill within 2 minutes: is a demo server free?", file=sys.stderr)
        return 1


async def play() -> int:
    info = StackInfo.read(Settings.from_env().data_dir)
    if info is None:
        print("no running fleetmatch stack: start one with `fleetmatch up`", file=sys.stderr)
        return 1
    async with aiohttp.ClientSession() as http:
        players = Players(http, info)
        names = [f"bf-{players.run}-{i}" for i in range(1, 10)]
        tickets = {p: await players.queue(p, SKILL + i) for i, p in enumerate(names[:8])}
        found = await asyncio.gather(*(players.assignment(p, t) for p, t in tickets.items()))
        got = dict(zip(tickets, found, strict=True))
        first = got[names[0]]
        if {a["matchId"] for a in found} != {first["matchId"]}:
            print("the eight players were not matched together", file=sys.stderr)
            return 1
        say("matched", gameServer=first["gameServer"], address=first["address"], port=first["port"])
        async with await GameClient.open(first["address"], first["port"]) as game:
            for player, a in got.items():
                await game.join(player, a["tokens"][player])
            say("joined", players=len(got))
            ninth = names[8]
            waiting = asyncio.create_task(players.assignment(ninth, await players.queue(ninth, SKILL + 4)))
            leaver = names[7]
            await game.leave(leaver)
            left = time.monotonic()
            say("left", player=leaver, team=got[leaver]["team"])
            a = await asyncio.wait_for(waiting, 60)
            say(
                "backfilled",
                player=ninth,
                sameServer=a["gameServer"] == first["gameServer"],
                team=a["team"],
                seconds=round(time.monotonic() - left, 2),
            )
            welcome = await game.join(ninth, a["tokens"][ninth])
            say("joined", player=ninth, players=len(welcome["players"]))
            for player in [*names[:7], ninth]:
                await game.leave(player)  # the match ends; its server goes back to the fleet
        return 0 if a["gameServer"] == first["gameServer"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
