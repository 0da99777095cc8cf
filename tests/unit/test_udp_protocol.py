"""The example UDP game's protocol, match rules and datagram handling: pure, no sockets."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from examples.udp_game import game, protocol
from examples.udp_game.game import Allocation, Match
from examples.udp_game.protocol import (
    MAX_DATAGRAM,
    Input,
    Join,
    Leave,
    Ping,
    PlayerView,
    ProtocolError,
    decode_reply,
    decode_request,
    encode,
    encode_request,
)
from examples.udp_game.server import GameConfig, GameProtocol

ADDR = ("203.0.113.7", 40000)

# -- protocol ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        pytest.param({"t": "ping"}, Ping(), id="ping"),
        pytest.param({"t": "join", "player": "p-1", "token": "tok"}, Join("p-1", "tok"), id="join"),
        pytest.param(
            {"t": "input", "player": "p_1.x", "seq": 7, "data": {"move": [1, -1]}},
            Input("p_1.x", 7, {"move": [1, -1]}),
            id="input",
        ),
        pytest.param({"t": "input", "player": "p1", "seq": 0}, Input("p1", 0, None), id="input-without-data"),
        pytest.param({"t": "leave", "player": "p1"}, Leave("p1"), id="leave"),
        pytest.param({"t": "ping", "client": "v2", "extra": [1]}, Ping(), id="unknown-fields-ignored"),
        pytest.param({"t": "join", "player": "P" * 64, "token": "x" * 512}, Join("P" * 64, "x" * 512), id="limits"),
    ],
)
def test_decode_valid_requests(doc: dict[str, Any], expected: protocol.Request) -> None:
    assert decode_request(json.dumps(doc).encode()) == expected


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"\xff\xfe", "UTF-8 JSON", id="not-utf8"),
        pytest.param(b"hello", "UTF-8 JSON", id="not-json"),
        pytest.param(b"", "UTF-8 JSON", id="empty"),
        pytest.param(b"[1, 2]", "JSON object", id="array"),
        pytest.param(b'"ping"', "JSON object", id="string"),
        pytest.param(b"{}", 'type "t"', id="no-type"),
        pytest.param(b'{"t": 5}', 'type "t"', id="type-not-string"),
        pytest.param(b'{"t": "dance"}', "unknown message type 'dance'", id="unknown-type"),
        pytest.param(b'{"t": "join", "player": "p1"}', "token", id="join-without-token"),
        pytest.param(b'{"t": "join", "player": "p1", "token": ""}', "token", id="empty-token"),
        pytest.param(b'{"t": "join", "player": "p1", "token": 42}', "token", id="token-not-string"),
        pytest.param(
            json.dumps({"t": "join", "player": "p1", "token": "x" * 513}).encode(), "token", id="token-too-long"
        ),
        pytest.param(b'{"t": "join", "token": "t"}', "player", id="join-without-player"),
        pytest.param(b'{"t": "leave", "player": ""}', "player", id="empty-player"),
        pytest.param(b'{"t": "leave", "player": "a b"}', "player", id="player-with-space"),
        pytest.param(b'{"t": "leave", "player": 7}', "player", id="player-not-string"),
        pytest.param(json.dumps({"t": "leave", "player": "p" * 65}).encode(), "player", id="player-too-long"),
        pytest.param(b'{"t": "input", "player": "p1"}', "seq", id="input-without-seq"),
        pytest.param(b'{"t": "input", "player": "p1", "seq": -1}', "seq", id="negative-seq"),
        pytest.param(b'{"t": "input", "player": "p1", "seq": true}', "seq", id="bool-seq"),
        pytest.param(b'{"t": "input", "player": "p1", "seq": 1.5}', "seq", id="float-seq"),
        pytest.param(b'{"t": "input", "player": "p1", "seq": "3"}', "seq", id="string-seq"),
        pytest.param(json.dumps({"t": "input", "player": "p1", "seq": 2**53}).encode(), "seq", id="huge-seq"),
        pytest.param(
            json.dumps({"t": "input", "player": "p1", "seq": 1, "data": "x" * MAX_DATAGRAM}).encode(),
            "too large",
            id="oversize",
        ),
    ],
)
def test_decode_rejects_malformed_datagrams(data: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_request(data)
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    "request_", [Ping(), Join("p1", "t0k"), Input("p1", 3, {"a": [1, None, "é"]}), Input("p1", 0), Leave("p1")]
)
def test_requests_round_trip(request_: protocol.Request) -> None:
    data = encode_request(request_)
    assert len(data) <= MAX_DATAGRAM
    assert decode_request(data) == request_


def test_replies_are_compact_json_objects() -> None:
    players = [PlayerView("p1", 3), PlayerView("p2", -1)]
    replies = [
        protocol.pong("gs-1", "Allocated", 2, {"match": "m1"}),
        protocol.welcome("p1", "gs-1", 9, players),
        protocol.reject("p1", "full"),
        protocol.state("p1", 3, 9, players),
        protocol.bye("p1"),
        protocol.error("nope"),
    ]
    for reply in replies:
        data = encode(reply)
        assert b" " not in data
        assert decode_reply(data) == reply
    assert decode_reply(encode(replies[3]))["players"] == [{"id": "p1", "seq": 3}, {"id": "p2", "seq": -1}]


# -- match rules ------------------------------------------------------------------------------------


def allocated_match(now: float = 100.0, **kwargs: Any) -> Match:
    match = Match("gs-1", **kwargs)
    match.observe("Ready", {}, {}, now=now - 50)
    assert match.observe("Allocated", {"match": "m1"}, {"note": "n"}, now=now)
    return match


def test_joins_wait_for_the_allocation() -> None:
    match = Match("gs-1")
    match.observe("Ready", {"pool": "a"}, {}, now=0)
    assert match.handle(Join("p1", "t"), ADDR, now=1) == protocol.reject("p1", game.NOT_ALLOCATED)
    assert match.observe("Allocated", {"match": "m1"}, {}, now=2) is True
    assert match.observe("Allocated", {"match": "m1", "extra": "x"}, {}, now=3) is False  # only the first is news
    assert match.allocated_at == 2
    assert match.handle(Ping(), ADDR, now=3) == protocol.pong("gs-1", "Allocated", 0, {"match": "m1", "extra": "x"})
    assert match.handle(Join("p1", "t"), ADDR, now=4)["t"] == "welcome"


def test_join_is_idempotent_and_follows_a_new_address() -> None:
    match = allocated_match()
    first = match.handle(Join("p1", "t"), ADDR, now=101)
    assert first == protocol.welcome("p1", "gs-1", 0, [PlayerView("p1", -1)])
    again = match.handle(Join("p1", "t"), ("198.51.100.1", 5), now=102)
    assert again == first
    assert match.joined == 1
    assert match.players["p1"].address == ("198.51.100.1", 5)


def test_a_full_match_rejects_newcomers_but_not_members() -> None:
    match = allocated_match(max_players=2)
    for player in ("p1", "p2"):
        assert match.handle(Join(player, "t"), ADDR, now=101)["t"] == "welcome"
    assert match.handle(Join("p3", "t"), ADDR, now=101) == protocol.reject("p3", game.FULL)
    assert match.handle(Join("p2", "t"), ADDR, now=102)["t"] == "welcome"


def test_a_player_the_allocation_does_not_name_yet_may_come_back() -> None:
    """A backfilled player's join can arrive before the watch brings the annotation naming them:
    ``unknown-player`` (retried by clients), then welcome once the server has learned of them."""
    hashes = {"p1": hashlib.sha256(b"t1").hexdigest()}
    match = Match("gs-1")
    match.observe("Allocated", {}, {game.PLAYER_TOKENS_ANNOTATION: json.dumps(hashes)}, now=100)
    assert match.handle(Join("p1", "t1"), ADDR, now=101)["t"] == "welcome"
    assert match.handle(Join("p2", "t2"), ADDR, now=101) == protocol.reject("p2", game.UNKNOWN_PLAYER)
    assert match.handle(Join("p1", "t2"), ADDR, now=101) == protocol.reject("p1", game.BAD_TOKEN)
    hashes["p2"] = hashlib.sha256(b"t2").hexdigest()
    assert match.observe("Allocated", {}, {game.PLAYER_TOKENS_ANNOTATION: json.dumps(hashes)}, now=102) is False
    assert match.handle(Join("p2", "t2"), ADDR, now=102)["t"] == "welcome"
    assert match.handle(Join("p2", "t1"), ADDR, now=102) == protocol.reject("p2", game.BAD_TOKEN)


def test_the_token_verifier_decides_with_the_allocation() -> None:
    seen: list[tuple[str, str, Allocation]] = []

    def verify(player: str, token: str, allocation: Allocation) -> bool:
        seen.append((player, token, allocation))
        return token == allocation.labels.get("match")

    match = allocated_match(verify=verify)
    assert match.handle(Join("p1", "wrong"), ADDR, now=101) == protocol.reject("p1", game.BAD_TOKEN)
    assert match.handle(Join("p1", "m1"), ADDR, now=101)["t"] == "welcome"
    assert [(p, t, a.server, dict(a.labels), dict(a.annotations)) for p, t, a in seen] == [
        ("p1", "wrong", "gs-1", {"match": "m1"}, {"note": "n"}),
        ("p1", "m1", "gs-1", {"match": "m1"}, {"note": "n"}),
    ]
    assert game.accept_any_token("p1", "anything", Allocation("gs-1"))
    assert not game.accept_any_token("p1", "", Allocation("gs-1"))


def test_inputs_are_acknowledged_and_applied_once_in_order() -> None:
    match = allocated_match()
    assert match.handle(Input("p1", 1), ADDR, now=101) == protocol.error(game.NOT_JOINED)
    match.handle(Join("p1", "t"), ADDR, now=101)
    match.handle(Join("p2", "t"), ADDR, now=101)

    assert match.handle(Input("p1", 1, "a"), ADDR, now=102) == protocol.state(
        "p1", 1, 0, [PlayerView("p1", 1), PlayerView("p2", -1)]
    )
    assert match.handle(Input("p1", 3, "c"), ADDR, now=103)["seq"] == 3
    assert match.handle(Input("p1", 2, "b"), ADDR, now=104)["seq"] == 3  # late: acknowledged, not applied
    assert match.handle(Input("p1", 3, "c2"), ADDR, now=105)["seq"] == 3  # repeated
    assert match.players["p1"].data == "c"
    match.advance(now=106)
    assert match.handle(Input("p2", 1), ADDR, now=106)["tick"] == 1


def test_the_match_ends_when_every_player_has_left() -> None:
    match = allocated_match()
    assert match.handle(Leave("ghost"), ADDR, now=101) == protocol.bye("ghost")
    assert match.advance(now=101) is None  # nobody joined yet: not over
    for player in ("p1", "p2"):
        match.handle(Join(player, "t"), ADDR, now=101)
    assert match.handle(Leave("p1"), ADDR, now=102) == protocol.bye("p1")
    assert match.advance(now=102) is None
    assert match.handle(Leave("p2"), ADDR, now=103) == protocol.bye("p2")
    assert match.handle(Leave("p2"), ADDR, now=103) == protocol.bye("p2")  # a resent leave
    assert match.over == game.ALL_LEFT
    assert match.advance(now=104) == game.ALL_LEFT
    assert match.handle(Join("p3", "t"), ADDR, now=104) == protocol.reject("p3", game.MATCH_OVER)


def test_a_backfilled_player_on_the_way_keeps_the_match_open() -> None:
    """A backfill names a newcomer just before the last player leaves: the match waits for them
    (up to ``join_timeout``) instead of ending under them; a no-show of the allocation does not."""

    def named(*players: str) -> dict[str, str]:
        return {game.PLAYER_TOKENS_ANNOTATION: json.dumps({p: hashlib.sha256(b"t").hexdigest() for p in players})}

    match = Match("gs-1", join_timeout=30)
    match.observe("Allocated", {}, named("p1", "p2", "no-show"), now=100)
    for player in ("p1", "p2"):
        assert match.handle(Join(player, "t"), ADDR, now=101)["t"] == "welcome"
    match.handle(Leave("p1"), ADDR, now=110)
    match.observe("Allocated", {}, named("p2", "no-show", "new"), now=111)  # p1's slot backfilled
    match.handle(Leave("p2"), ADDR, now=112)
    assert match.over is None
    assert match.awaited(now=112) == ["new"]
    assert match.advance(now=120) is None
    assert match.handle(Join("new", "t"), ADDR, now=121)["t"] == "welcome"
    assert match.awaited(now=121) == []
    match.handle(Leave("new"), ADDR, now=130)
    assert match.advance(now=130) == game.ALL_LEFT

    stood_up = Match("gs-2", join_timeout=30)
    stood_up.observe("Allocated", {}, named("p1"), now=100)
    stood_up.handle(Join("p1", "t"), ADDR, now=101)
    stood_up.observe("Allocated", {}, named("p1", "late"), now=102)
    stood_up.handle(Leave("p1"), ADDR, now=103)
    assert stood_up.advance(now=131.9) is None
    assert stood_up.advance(now=132) == game.ALL_LEFT  # the newcomer never came
    assert stood_up.handle(Join("late", "t"), ADDR, now=133) == protocol.reject("late", game.MATCH_OVER)


def test_idle_players_are_dropped_and_end_the_match() -> None:
    match = allocated_match(idle_timeout=30)
    match.handle(Join("quiet", "t"), ADDR, now=100)
    match.handle(Join("busy", "t"), ADDR, now=100)
    match.handle(Input("busy", 1), ADDR, now=125)
    assert match.advance(now=129.9) is None
    assert match.advance(now=130) is None
    assert list(match.players) == ["busy"]
    assert match.advance(now=155) == game.IDLE
    assert match.players == {}


def test_the_time_limit_counts_from_the_allocation() -> None:
    match = Match("gs-1", time_limit=60)
    match.observe("Ready", {}, {}, now=0)
    assert match.advance(now=1000) is None  # a Ready server waits for players as long as it takes
    match.observe("Allocated", {}, {}, now=1000)
    match.handle(Join("p1", "t"), ADDR, now=1001)
    match.handle(Input("p1", 1), ADDR, now=1059)
    assert match.advance(now=1059.9) is None
    assert match.advance(now=1060) == game.TIME_LIMIT


def test_a_shutdown_from_outside_ends_the_match() -> None:
    match = allocated_match()
    match.handle(Join("p1", "t"), ADDR, now=101)
    match.observe("Shutdown", {}, {}, now=102)
    assert match.advance(now=102) == game.SHUT_DOWN
    assert match.handle(Ping(), ADDR, now=102)["state"] == "Shutdown"


# -- datagram handling ------------------------------------------------------------------------------


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], Any]] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append((json.loads(data), addr))


def protocol_with(match: Match) -> tuple[GameProtocol, FakeTransport, list[int]]:
    changes: list[int] = []
    handler = GameProtocol(match, lambda: changes.append(1), clock=lambda: 101.0)
    transport = FakeTransport()
    handler.transport = transport  # type: ignore[assignment]
    return handler, transport, changes


def test_every_datagram_gets_exactly_one_reply_and_garbage_never_crashes() -> None:
    handler, transport, changes = protocol_with(allocated_match())
    datagrams = [b"", b"\x00\xff", b"{", b"[]", b'{"t":"join"}', b"x" * 70000, b'{"t":"ping"}']
    for data in datagrams:
        handler.datagram_received(data, ADDR)
    assert [reply["t"] for reply, _ in transport.sent] == ["error"] * 6 + ["pong"]
    assert all(addr == ADDR for _, addr in transport.sent)
    assert len(changes) == len(datagrams)


def test_a_failing_rule_answers_internal_error() -> None:
    def broken(player: str, token: str, allocation: Allocation) -> bool:
        raise RuntimeError("verifier down")

    handler, transport, _ = protocol_with(allocated_match(verify=broken))
    handler.datagram_received(b'{"t":"join","player":"p1","token":"t"}', ADDR)
    handler.datagram_received(b'{"t":"ping"}', ADDR)
    assert [reply for reply, _ in transport.sent] == [
        protocol.error("internal"),
        protocol.pong("gs-1", "Allocated", 0, {"match": "m1"}),
    ]


# -- configuration ----------------------------------------------------------------------------------


def test_config_from_env() -> None:
    config = GameConfig.from_env(
        {
            "FLEETMATCH_PORT": "7011",
            "FLEETMATCH_GAMESERVER": "gs-9",
            "AGONES_SDK_HTTP_PORT": "9400",
            "MATCH_TIME_LIMIT": "30",
            "PLAYER_IDLE_TIMEOUT": "5.5",
            "MAX_PLAYERS": "4",
        }
    )
    assert config == GameConfig(
        name="gs-9", port=7011, bind="0.0.0.0", sdk_port=9400, time_limit=30, idle_timeout=5.5, max_players=4
    )
    assert GameConfig.from_env({"FLEETMATCH_PORT_DEFAULT": "7012", "FLEETMATCH_BIND": "127.0.0.1"}) == GameConfig(
        name="", port=7012, bind="127.0.0.1"
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        pytest.param({}, "FLEETMATCH_PORT", id="no-port"),
        pytest.param({"FLEETMATCH_PORT": "70000"}, "FLEETMATCH_PORT", id="port-out-of-range"),
        pytest.param({"FLEETMATCH_PORT": "7000", "MATCH_TIME_LIMIT": "soon"}, "MATCH_TIME_LIMIT", id="not-a-number"),
        pytest.param({"FLEETMATCH_PORT": "7000", "MAX_PLAYERS": "0"}, "MAX_PLAYERS", id="not-positive"),
        pytest.param({"FLEETMATCH_PORT": "7000", "AGONES_SDK_HTTP_PORT": "x"}, "AGONES_SDK_HTTP_PORT", id="sdk-port"),
    ],
)
def test_config_errors_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ValueError, match=variable):
        GameConfig.from_env(env)
