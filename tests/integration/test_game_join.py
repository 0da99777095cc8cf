"""Joining the example game over real UDP while the server is still learning of its match: the
client's patience with ``not-allocated`` and ``unknown-player``, and how the load tester classifies
a join refused for good.

The race it covers was seen in the smoke load test: the matchmaker writes a backfilled player's
token hash onto the server, then tells the player, whose join reached the game 1.4 ms before the
SDK watch brought the annotation; the game answered ``bad-token`` and the player failed."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Mapping

import pytest

from examples.udp_game import game
from examples.udp_game.client import GameClient, RejectedError
from examples.udp_game.game import Allocation, Match
from examples.udp_game.server import GameProtocol
from loadtest.players import FailureKind, PlayerFailure, join_game
from tests.waiting import eventually


def hashes(tokens: Mapping[str, str]) -> dict[str, str]:
    """The annotation the matchmaker writes for ``tokens``."""
    digests = {p: hashlib.sha256(t.encode()).hexdigest() for p, t in tokens.items()}
    return {game.PLAYER_TOKENS_ANNOTATION: json.dumps(digests)}


class Served:
    """A ``Match`` behind a real UDP socket, as ``examples.udp_game.server`` serves it; every
    verdict the token check gave, in order."""

    def __init__(self, match: Match) -> None:
        self.match = match
        self.verdicts: list[tuple[str, bool | None]] = []
        check = match.verify

        def verify(player: str, token: str, allocation: Allocation) -> bool | None:
            verdict = check(player, token, allocation)
            self.verdicts.append((player, verdict))
            return verdict

        match.verify = verify

    def learn(self, state: str, annotations: Mapping[str, str]) -> None:
        """What the SDK watch would bring."""
        self.match.observe(state, {}, annotations, asyncio.get_running_loop().time())


@pytest.fixture
async def served() -> AsyncIterator[tuple[Served, GameClient]]:
    loop = asyncio.get_running_loop()
    server = Served(Match("gs-1"))
    transport, _ = await loop.create_datagram_endpoint(
        lambda: GameProtocol(server.match, lambda: None), local_addr=("127.0.0.1", 0)
    )
    port = transport.get_extra_info("sockname")[1]
    try:
        async with await GameClient.open("127.0.0.1", port, reply_timeout=0.5) as client:
            yield server, client
    finally:
        transport.close()


async def test_a_backfilled_player_faster_than_the_watch_gets_in(served: tuple[Served, GameClient]) -> None:
    server, client = served
    server.learn("Allocated", hashes({"p1": "t1"}))
    assert (await client.join("p1", "t1"))["t"] == "welcome"

    async def watch_catches_up() -> None:
        await eventually(lambda: any(p == "p2" for p, _ in server.verdicts))  # the server refused p2 once
        server.learn("Allocated", hashes({"p1": "t1", "p2": "t2"}))

    catching_up = asyncio.create_task(watch_catches_up())
    welcome = await client.join("p2", "t2", patience=10)
    await catching_up
    assert welcome["t"] == "welcome" and sorted(p["id"] for p in welcome["players"]) == ["p1", "p2"]
    p2 = [verdict for player, verdict in server.verdicts if player == "p2"]
    assert p2[0] is None and p2[-1] is True  # refused as unknown first, then let in


async def test_patience_zero_and_final_refusals(served: tuple[Served, GameClient]) -> None:
    server, client = served
    server.learn("Ready", {})
    with pytest.raises(RejectedError) as early:
        await client.join("p1", "t1", patience=0)
    assert early.value.reason == game.NOT_ALLOCATED

    server.learn("Allocated", hashes({"p1": "t1"}))
    with pytest.raises(RejectedError) as stranger:
        await client.join("p9", "t1", patience=0)
    assert stranger.value.reason == game.UNKNOWN_PLAYER

    server.verdicts.clear()
    with pytest.raises(RejectedError) as wrong:
        await client.join("p1", "t9", patience=10)
    assert wrong.value.reason == game.BAD_TOKEN
    assert server.verdicts == [("p1", False)]  # final: asked once, never again


@pytest.mark.parametrize(
    ("state", "player", "token", "kind", "reason"),
    [
        ("Allocated", "p9", "t9", FailureKind.REJECTED_TOKEN, game.UNKNOWN_PLAYER),  # never named
        ("Allocated", "p1", "t9", FailureKind.REJECTED_TOKEN, game.BAD_TOKEN),
        ("Ready", "p1", "t1", FailureKind.OTHER, game.NOT_ALLOCATED),  # never allocated
    ],
)
async def test_the_load_tester_classifies_a_join_refused_for_good(
    served: tuple[Served, GameClient], state: str, player: str, token: str, kind: FailureKind, reason: str
) -> None:
    server, client = served
    server.learn(state, hashes({"p1": "t1"}) if state == "Allocated" else {})
    with pytest.raises(PlayerFailure) as failed:
        await join_game(client, player, token, retry_seconds=0.3)
    assert failed.value.kind is kind and reason in failed.value.message
    tries = len(server.verdicts)  # the token check runs only on an allocated server
    if reason == game.UNKNOWN_PLAYER:
        assert tries >= 2  # retried before giving up
    else:
        assert tries == (1 if reason == game.BAD_TOKEN else 0)
