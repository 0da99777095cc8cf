"""The example game's token check: only the matchmaker's players, each with their own token."""

from __future__ import annotations

import hashlib
import json

import pytest

from examples.udp_game.game import (
    NO_PLAYERS,
    PLAYER_TOKENS_ANNOTATION,
    Allocation,
    Match,
    verify_match_token,
)


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


MATCHED = Allocation("gs-1", annotations={PLAYER_TOKENS_ANNOTATION: json.dumps({"p1": sha("t1"), "p2": sha("t2")})})


@pytest.mark.parametrize(
    ("player", "token", "allocation", "ok"),
    [
        ("p1", "t1", MATCHED, True),
        ("p2", "t2", MATCHED, True),
        ("p1", "t2", MATCHED, False),  # another player's token
        ("p3", "t1", MATCHED, None),  # not named: not in this match, or backfilled and not seen yet
        ("p3", "", MATCHED, None),
        ("p1", "", MATCHED, False),
        ("p1", sha("t1"), MATCHED, False),  # the hash itself is not a token
        ("p1", "t1", Allocation("gs-1", annotations={PLAYER_TOKENS_ANNOTATION: "not json"}), False),
        ("p1", "t1", Allocation("gs-1", annotations={PLAYER_TOKENS_ANNOTATION: '["p1"]'}), False),
        ("p1", "t1", Allocation("gs-1", annotations={PLAYER_TOKENS_ANNOTATION: '{"p1": 7}'}), False),
        ("anyone", "x", Allocation("gs-1"), True),  # allocated by hand: any non-empty token
        ("anyone", "", Allocation("gs-1"), False),
    ],
)
def test_verify_match_token(player: str, token: str, allocation: Allocation, ok: bool | None) -> None:
    assert verify_match_token(player, token, allocation) is ok


def test_a_match_nobody_joins_ends() -> None:
    match = Match("gs-1", join_timeout=30)
    match.observe("Allocated", {}, {}, now=100.0)
    assert match.advance(129.0) is None
    assert match.advance(130.0) == NO_PLAYERS
