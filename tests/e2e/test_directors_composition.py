"""Large and asymmetric matches through real directors, an allocator and Redis: a battle royale of
25 teams of 4 (100 players, parties of 1-4) and 1 hunter against 4 prey with role slots. Every
ticket ends in one match; teams are whole parties of the queue's sizes; each player's role comes
back in the assignment; the game server's annotation holds a token hash for every player."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest

from fleetmatch.backends.redis.embedded import EmbeddedRedis, free_port
from fleetmatch.backends.redis.store import RedisStore
from fleetmatch.models import GameServer
from matchmaker.director import PLAYER_ROLES_ANNOTATION, PLAYER_TOKENS_ANNOTATION, token_hash
from matchmaker.models import Player, TicketState
from matchmaker.tickets import RedisTicketStore
from tests.e2e.harness import open_tickets, ready_servers, stack_env, start, stop
from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
TOKEN = "e2e-composition-token-0123456789"
QUEUES = """\
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: royale}
spec:
  teams: {count: 25, maxSize: 4}
  tickSeconds: 0.1
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
---
apiVersion: fleetmatch.dev/v1
kind: Queue
metadata: {name: hunt}
spec:
  teams:
    named:
      - {name: hunter, size: 1}
      - {name: prey, size: 4, roles: {scout: 1, runner: 3}}
  tickSeconds: 0.1
  allocation:
    selectors: [{matchLabels: {agones.dev/fleet: arena}}]
"""
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


async def test_battle_royale_and_one_against_four(redis_server: EmbeddedRedis, redis_client, tmp_path: Path) -> None:
    gameservers = RedisStore(redis_client, GameServer)
    await ready_servers(gameservers, 4)
    tickets = RedisTicketStore(redis_client)
    sizes = [1, 2, 3, 4] * 10  # 100 players: exactly one battle royale
    royale = await open_tickets(
        tickets, "royale", [[Player(f"r{i}-{j}") for j in range(n)] for i, n in enumerate(sizes)]
    )
    hunt_parties = [
        [Player("h-solo")],
        [Player("h-a", roles=("runner",)), Player("h-b", roles=("scout", "runner"))],
        [Player("h-c", roles=("runner",))],
        [Player("h-d", roles=("runner", "scout"))],
    ]
    hunt = await open_tickets(tickets, "hunt", hunt_parties)

    queues = tmp_path / "queues.yaml"
    queues.write_text(QUEUES)
    port = free_port()
    env = stack_env(redis_server.url, tmp_path, port, TOKEN)
    argvs = [["allocator", "--port", str(port)]] + [["matchmaker", "--no-api", "--queues", str(queues)]] * 2
    procs = [start(argv, env) for argv in argvs]
    try:

        async def all_matched() -> bool:
            states = [t.state for t in await asyncio.gather(*(tickets.get(t) for t in royale + hunt))]
            return all(s is TicketState.MATCHED for s in states)

        await eventually(all_matched, within=90)
    finally:
        await stop(procs)

    # the battle royale: one match, 25 teams of 4 whole parties, 100 players, one server
    final = await asyncio.gather(*(tickets.get(t) for t in royale))
    assert len({t.assignment.match_id for t in final if t.assignment}) == 1
    per_team: Counter[int] = Counter()
    for t in final:
        assert t.assignment is not None
        per_team[t.assignment.team] += t.size
        assert set(t.assignment.tokens) == {p.id for p in t.players}
    assert sorted(per_team) == list(range(25)) and set(per_team.values()) == {4}
    servers, _ = await gameservers.list()
    (server,) = [g for g in servers if g.name == final[0].assignment.game_server]  # type: ignore[union-attr]
    hashes = json.loads(server.metadata.annotations[PLAYER_TOKENS_ANNOTATION])
    assert len(hashes) == 100
    assert all(hashes[p] == token_hash(tok) for t in final for p, tok in t.assignment.tokens.items())  # type: ignore[union-attr]

    # 1 against 4: the solo hunts, the rest are prey with their roles
    done = {t.id: t for t in await asyncio.gather(*(tickets.get(t) for t in hunt))}
    assert len({t.assignment.match_id for t in done.values() if t.assignment}) == 1
    hunter = done[hunt[0]].assignment
    assert hunter is not None and hunter.team_name == "hunter" and hunter.team == 0 and hunter.roles == {}
    roles: dict[str, str] = {}
    for tid in hunt[1:]:
        assignment = done[tid].assignment
        assert assignment is not None and assignment.team_name == "prey" and assignment.team == 1
        roles.update(assignment.roles)
    assert Counter(roles.values()) == Counter({"runner": 3, "scout": 1}) and roles["h-b"] in ("scout", "runner")
    (prey_server,) = [g for g in (await gameservers.list())[0] if g.name == hunter.game_server]
    assert json.loads(prey_server.metadata.annotations[PLAYER_ROLES_ANNOTATION]) == roles
