"""Counters, lists (``/v1beta1``) and player tracking (``/alpha/player``) of the REST SDK, on a real
SdkHost, RedisStore and informer: exact Agones JSON and error bodies, what reaches the store, and
coalescing of many calls into few writes."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from fleetmatch.models import (
    CounterStatus,
    GameServer,
    GameServerPort,
    GameServerSpec,
    GameServerState,
    GameServerStatus,
    Health,
    ListStatus,
    ObjectMeta,
    PlayersSpec,
    PlayerStatus,
    PortStatus,
)
from fleetmatch.settings import SdkSettings
from fleetmatch.store import modify
from tests.integration.sdkenv import Env, call, error, running_host
from tests.waiting import eventually

S = GameServerState
JSON = "application/json"


@pytest.fixture
async def env(redis_client: aioredis.Redis) -> AsyncIterator[Env]:
    async with running_host(redis_client) as e:
        yield e


async def add(
    env: Env,
    name: str = "gs-1",
    *,
    counters: dict[str, CounterStatus] | None = None,
    lists: dict[str, ListStatus] | None = None,
    players: PlayersSpec | None = None,
) -> str:
    """A GameServer declaring counters, lists and player tracking (status left empty: the session
    treats what the spec declares as the initial status); its SDK base URL."""
    gs = await env.store.create(
        GameServer(
            metadata=ObjectMeta(name=name, labels={"agones.dev/fleet": "f"}),
            spec=GameServerSpec(
                ports=(GameServerPort(name="default", host_port=7001),),
                health=Health(disabled=True),
                counters=counters if counters is not None else {"rooms": CounterStatus(1, 10)},
                lists=lists if lists is not None else {"players": ListStatus(3, ("a",))},
                players=players,
            ),
            status=GameServerStatus(
                state=S.READY, address="10.0.0.5", ports=(PortStatus("default", 7001),), node_name="local"
            ),
        )
    )
    port = await env.host.add(gs)
    return f"http://127.0.0.1:{port}"


async def flushed(env: Env, name: str = "gs-1") -> GameServer:
    assert await env.host.sessions[name].flush(5)
    return await env.store.get(name)


def bad_request(message: str) -> tuple[int, str, dict[str, Any]]:
    return 400, JSON, error(3, message)


def server_error(message: str) -> tuple[int, str, dict[str, Any]]:
    """How Agones answers counter, list and player failures: gRPC UNKNOWN, HTTP 500."""
    return 500, JSON, error(2, message)


# -- GameServer JSON -------------------------------------------------------------------------------


async def test_gameserver_json_carries_counters_lists_and_players(env: Env) -> None:
    url = await add(env, players=PlayersSpec(initial_capacity=4))
    _, _, doc = await call(env, "GET", url + "/gameserver")
    assert doc["status"]["counters"] == {"rooms": {"count": "1", "capacity": "10"}}
    assert doc["status"]["lists"] == {"players": {"capacity": "3", "values": ["a"]}}
    assert doc["status"]["players"] == {"count": "0", "capacity": "4", "ids": []}
    await call(env, "PATCH", url + "/v1beta1/counters/rooms", '{"countDiff": "2"}')
    await call(env, "POST", url + "/alpha/player/connect", '{"playerID": "p1"}')
    await flushed(env)

    async def updated() -> bool:
        _, _, doc = await call(env, "GET", url + "/gameserver")
        status = doc["status"]
        return bool(
            status["counters"]["rooms"]["count"] == "3"
            and status["players"] == {"count": "1", "capacity": "4", "ids": ["p1"]}
        )

    await eventually(updated)


async def test_players_is_null_unless_declared(env: Env) -> None:
    url = await add(env, counters={}, lists={})
    _, _, doc = await call(env, "GET", url + "/gameserver")
    assert (doc["status"]["players"], doc["status"]["counters"], doc["status"]["lists"]) == (None, {}, {})


# -- counters --------------------------------------------------------------------------------------


async def test_get_counter(env: Env) -> None:
    url = await add(env)
    assert await call(env, "GET", url + "/v1beta1/counters/rooms", "{}") == (
        200,
        JSON,
        {"name": "rooms", "count": "1", "capacity": "10"},
    )


@pytest.mark.parametrize(
    ("body", "count", "capacity"),
    [
        ('{"countDiff": "2"}', 3, 10),
        ('{"countDiff": 2}', 3, 10),
        ('{"countDiff": "-1"}', 0, 10),
        ('{"count": "5"}', 5, 10),
        ('{"count": 10}', 10, 10),
        ('{"capacity": "11"}', 1, 11),
        ('{"capacity": 20, "count": "15", "unknown": [1]}', 15, 20),
        ('{"count": 5, "countDiff": "-2"}', 3, 10),
        ('{"name": "ignored", "countDiff": 1}', 2, 10),
        ('{"capacity": "0"}', 0, 0),  # a capacity below the count truncates it, as Agones does
    ],
)
async def test_update_counter(env: Env, body: str, count: int, capacity: int) -> None:
    url = await add(env)
    expected = {"name": "rooms", "count": str(count), "capacity": str(capacity)}
    assert await call(env, "PATCH", url + "/v1beta1/counters/rooms", body) == (200, JSON, expected)
    assert await call(env, "GET", url + "/v1beta1/counters/rooms") == (200, JSON, expected)  # before any write
    gs = await flushed(env)
    assert gs.status.counters == {"rooms": CounterStatus(count, capacity)}


COUNTER_ERRORS = [
    ("GET", "/v1beta1/counters/nope", None, server_error("counter not found: nope")),
    ("PATCH", "/v1beta1/counters/nope", '{"countDiff": 1}', server_error("counter not found: nope")),
    (
        "PATCH",
        "/v1beta1/counters/rooms",
        '{"count": "11"}',
        server_error("out of range. Count must be within range [0,Capacity]. Found Count: 11, Capacity: 10"),
    ),
    (
        "PATCH",
        "/v1beta1/counters/rooms",
        '{"countDiff": "10"}',
        server_error("out of range. Count must be within range [0,Capacity]. Found Count: 11, Capacity: 10"),
    ),
    (
        "PATCH",
        "/v1beta1/counters/rooms",
        '{"countDiff": -2}',
        server_error("out of range. Count must be within range [0,Capacity]. Found Count: -1, Capacity: 10"),
    ),
    (
        "PATCH",
        "/v1beta1/counters/rooms",
        '{"capacity": "-1"}',
        server_error("out of range. Capacity must be greater than or equal to 0. Found Capacity: -1"),
    ),
    (
        "PATCH",
        "/v1beta1/counters/rooms",
        '{"count": 5, "capacity": 4}',
        server_error("out of range. Count must be within range [0,Capacity]. Found Count: 5, Capacity: 4"),
    ),
    (
        "PATCH",
        "/v1beta1/counters/rooms",
        "{}",
        server_error('invalid argument. Malformed CounterUpdateRequest: name:"rooms"'),
    ),
    (
        "PATCH",
        "/v1beta1/counters/rooms",
        '{"countDiff": "abc"}',
        bad_request("countDiff: expected an integer, got 'abc'"),
    ),
    ("PATCH", "/v1beta1/counters/rooms", '{"count": 1.5}', bad_request("count: expected an integer, got 1.5")),
    (
        "PATCH",
        "/v1beta1/counters/rooms",
        '{"capacity": true}',
        bad_request("capacity: expected an integer or a string holding one, got a boolean"),
    ),
    ("PATCH", "/v1beta1/counters/rooms", "[1]", bad_request("expected a JSON object, got an array")),
]


@pytest.mark.parametrize(("method", "path", "body", "expected"), COUNTER_ERRORS)
async def test_counter_errors(
    env: Env, method: str, path: str, body: str | None, expected: tuple[int, str, dict[str, Any]]
) -> None:
    url = await add(env)
    assert await call(env, method, url + path, body) == expected
    # Nothing changed, nothing written, and the sidecar keeps serving.
    session = env.host.sessions["gs-1"]
    assert session.writer.idle and env.store.updates == 0
    assert await call(env, "GET", url + "/v1beta1/counters/rooms") == (
        200,
        JSON,
        {"name": "rooms", "count": "1", "capacity": "10"},
    )


async def test_diffs_accumulate_and_are_checked_against_the_accumulated_count(env: Env) -> None:
    url = await add(env)
    for _ in range(9):
        status, _, _ = await call(env, "PATCH", url + "/v1beta1/counters/rooms", '{"countDiff": 1}')
        assert status == 200
    assert await call(env, "PATCH", url + "/v1beta1/counters/rooms", '{"countDiff": 1}') == server_error(
        "out of range. Count must be within range [0,Capacity]. Found Count: 11, Capacity: 10"
    )
    gs = await flushed(env)
    assert gs.status.counters["rooms"] == CounterStatus(10, 10)


# -- lists -----------------------------------------------------------------------------------------


async def test_get_list(env: Env) -> None:
    url = await add(env)
    assert await call(env, "GET", url + "/v1beta1/lists/players") == (
        200,
        JSON,
        {"name": "players", "capacity": "3", "values": ["a"]},
    )


async def test_add_and_remove_list_values(env: Env) -> None:
    url = await add(env)
    assert await call(env, "POST", url + "/v1beta1/lists/players:addValue", '{"value": "p9"}') == (
        200,
        JSON,
        {"name": "players", "capacity": "3", "values": ["a", "p9"]},
    )
    assert await call(env, "POST", url + "/v1beta1/lists/players:removeValue", '{"value": "a"}') == (
        200,
        JSON,
        {"name": "players", "capacity": "3", "values": ["p9"]},
    )
    gs = await flushed(env)
    assert gs.status.lists == {"players": ListStatus(3, ("p9",))}
    # Answers come from the session's view, which includes its own write before the store's watch
    # brings it back: the same value cannot be added twice, however quickly the game asks.
    assert await call(env, "POST", url + "/v1beta1/lists/players:addValue", '{"value": "p9"}') == server_error(
        "already exists. Value: p9 already in List: players"
    )


@pytest.mark.parametrize(
    ("query", "body", "capacity", "values"),
    [
        ("", '{"capacity": "5"}', 5, ["a"]),
        ("", '{"capacity": 1, "values": ["x", "y"]}', 1, ["x"]),  # a capacity below the values truncates
        ("", '{"values": ["x", "y", "x"]}', 3, ["x", "y"]),
        ("", '{"values": []}', 3, []),
        ("", "{}", 3, ["a"]),
        ("?update_mask=capacity", '{"capacity": "2", "values": ["ignored"]}', 2, ["a"]),
        ("?update_mask=values", '{"capacity": "2", "values": ["z"]}', 3, ["z"]),
        ("?update_mask=capacity,values", '{"capacity": 2, "values": ["z", "y"]}', 2, ["z", "y"]),
        ("?update_mask=values", "{}", 3, []),  # in the mask, absent in the body: the default
        ("?update_mask.paths=capacity", '{"capacity": 7}', 7, ["a"]),
        ("?update_mask=name", '{"name": "other", "capacity": 7}', 3, ["a"]),  # a valid path that sets nothing
    ],
)
async def test_update_list(env: Env, query: str, body: str, capacity: int, values: list[str]) -> None:
    url = await add(env)
    expected = {"name": "players", "capacity": str(capacity), "values": values}
    assert await call(env, "PATCH", url + "/v1beta1/lists/players" + query, body) == (200, JSON, expected)
    assert await call(env, "GET", url + "/v1beta1/lists/players") == (200, JSON, expected)
    gs = await flushed(env)
    assert gs.counts.lists == {"players": ListStatus(capacity, tuple(values))}


LIST_ERRORS = [
    ("GET", "/v1beta1/lists/nope", None, server_error("list not found: nope")),
    ("PATCH", "/v1beta1/lists/nope", '{"capacity": 1}', server_error("not found. nope List not found")),
    ("POST", "/v1beta1/lists/nope:addValue", '{"value": "x"}', server_error("list not found: nope")),
    ("POST", "/v1beta1/lists/nope:removeValue", '{"value": "x"}', server_error("list not found: nope")),
    (
        "POST",
        "/v1beta1/lists/players:addValue",
        '{"value": "a"}',
        server_error("already exists. Value: a already in List: players"),
    ),
    (
        "POST",
        "/v1beta1/lists/players:removeValue",
        '{"value": "zz"}',
        server_error("not found. Value: zz not found in List: players"),
    ),
    (
        "PATCH",
        "/v1beta1/lists/players",
        '{"capacity": "1001"}',
        server_error("out of range. Capacity must be within range [0,1000]. Found Capacity: 1001"),
    ),
    (
        "PATCH",
        "/v1beta1/lists/players",
        '{"capacity": -1}',
        server_error("out of range. Capacity must be within range [0,1000]. Found Capacity: -1"),
    ),
    ("PATCH", "/v1beta1/lists/players", '{"capacity": "x"}', bad_request("capacity: expected an integer, got 'x'")),
    (
        "PATCH",
        "/v1beta1/lists/players",
        '{"values": "a"}',
        bad_request("values: expected an array of strings, got a string"),
    ),
    (
        "PATCH",
        "/v1beta1/lists/players",
        '{"values": ["a", 1]}',
        bad_request("values[1]: expected a string, got a number"),
    ),
    (  # the query's mask replaces the one derived from the body; a bad path is a plain error in Agones
        "PATCH",
        "/v1beta1/lists/players?update_mask=capacity,bogus",
        '{"capacity": 2}',
        server_error(
            "invalid argument. Field Mask Path(s): [capacity bogus] are invalid for List. "
            "Use valid field name(s): [name capacity values]"
        ),
    ),
    (  # the whole body is decoded first, as the gateway does: a bad type is 400 even outside the mask
        "PATCH",
        "/v1beta1/lists/players?update_mask=values",
        '{"capacity": "x"}',
        bad_request("capacity: expected an integer, got 'x'"),
    ),
    ("POST", "/v1beta1/lists/players:addValue", '{"value": 5}', bad_request("value: expected a string, got a number")),
    ("DELETE", "/v1beta1/lists/players", None, (501, JSON, error(12, "Method Not Allowed"))),
]


@pytest.mark.parametrize(("method", "path", "body", "expected"), LIST_ERRORS)
async def test_list_errors(
    env: Env, method: str, path: str, body: str | None, expected: tuple[int, str, dict[str, Any]]
) -> None:
    url = await add(env)
    assert await call(env, method, url + path, body) == expected
    session = env.host.sessions["gs-1"]
    assert session.writer.idle and env.store.updates == 0
    assert (await call(env, "GET", url + "/v1beta1/lists/players"))[0] == 200


async def test_add_to_a_full_list(env: Env) -> None:
    url = await add(env, lists={"players": ListStatus(2, ("a",))})
    assert (await call(env, "POST", url + "/v1beta1/lists/players:addValue", '{"value": "b"}'))[0] == 200
    assert await call(env, "POST", url + "/v1beta1/lists/players:addValue", '{"value": "c"}') == server_error(
        "out of range. No available capacity. Current Capacity: 2, List Size: 2"
    )
    gs = await flushed(env)
    assert gs.status.lists == {"players": ListStatus(2, ("a", "b"))}


async def test_list_changes_merge_with_changes_made_by_others(env: Env) -> None:
    """A write applies adds and removes to the stored list, not a copy of what the session saw."""
    url = await add(env, lists={"players": ListStatus(10, ("a",))})
    await flushed(env)
    written = await modify(
        env.store.inner, "gs-1", lambda g: g.with_status(lists={"players": ListStatus(10, ("a", "other"))})
    )
    assert written is not None
    await call(env, "POST", url + "/v1beta1/lists/players:removeValue", '{"value": "a"}')
    await call(env, "POST", url + "/v1beta1/lists/players:addValue", '{"value": "mine"}')
    gs = await flushed(env)
    assert gs.status.lists["players"].values == ("other", "mine")


# -- player tracking -------------------------------------------------------------------------------


async def test_player_tracking(env: Env) -> None:
    url = await add(env, players=PlayersSpec(initial_capacity=1))
    player = url + "/alpha/player"
    assert await call(env, "GET", player + "/capacity") == (200, JSON, {"count": "1"})
    assert await call(env, "GET", player + "/count") == (200, JSON, {"count": "0"})
    assert await call(env, "GET", player + "/connected") == (200, JSON, {"list": []})
    assert await call(env, "POST", player + "/connect", '{"playerID": "p1"}') == (200, JSON, {"bool": True})
    assert await call(env, "POST", player + "/connect", '{"playerID": "p1"}') == (200, JSON, {"bool": False})
    assert await call(env, "POST", player + "/connect", '{"playerID": "p2"}') == server_error(
        "players are already at capacity"
    )
    assert await call(env, "PUT", player + "/capacity", '{"count": "10"}') == (200, JSON, {})
    assert await call(env, "GET", player + "/capacity") == (200, JSON, {"count": "10"})
    assert await call(env, "POST", player + "/connect", '{"playerID": "p2"}') == (200, JSON, {"bool": True})
    assert await call(env, "GET", player + "/count") == (200, JSON, {"count": "2"})
    assert await call(env, "GET", player + "/connected/p2") == (200, JSON, {"bool": True})
    assert await call(env, "GET", player + "/connected/p3", "{}") == (200, JSON, {"bool": False})
    assert await call(env, "GET", player + "/connected") == (200, JSON, {"list": ["p1", "p2"]})
    assert await call(env, "POST", player + "/disconnect", '{"playerID": "p1"}') == (200, JSON, {"bool": True})
    assert await call(env, "POST", player + "/disconnect", '{"playerID": "p1"}') == (200, JSON, {"bool": False})
    gs = await flushed(env)
    assert gs.status.players == PlayerStatus(1, 10, ("p2",))
    assert await call(env, "GET", player + "/connected") == (200, JSON, {"list": ["p2"]})


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("PUT", "/alpha/player/capacity", '{"count": "ten"}', bad_request("count: expected an integer, got 'ten'")),
        ("POST", "/alpha/player/connect", '{"playerID": 7}', bad_request("playerID: expected a string, got a number")),
        (
            "POST",
            "/alpha/player/disconnect",
            "{",
            bad_request("malformed JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        ),
        ("GET", "/alpha/player/connect", None, (501, JSON, error(12, "Method Not Allowed"))),
    ],
)
async def test_player_errors(
    env: Env, method: str, path: str, body: str | None, expected: tuple[int, str, dict[str, Any]]
) -> None:
    url = await add(env, players=PlayersSpec(initial_capacity=1))
    assert await call(env, method, url + path, body) == expected
    assert env.store.updates == 0
    assert await call(env, "GET", url + "/alpha/player/capacity") == (200, JSON, {"count": "1"})


@pytest.mark.parametrize("count", ['"-5"', "-5"])
async def test_a_negative_player_capacity_is_stored_and_read_back(env: Env, count: str) -> None:
    """Agones does not check SetPlayerCapacity: a negative capacity is kept (and admits nobody)."""
    url = await add(env, players=PlayersSpec(initial_capacity=1))
    player = url + "/alpha/player"
    assert await call(env, "PUT", player + "/capacity", f'{{"count": {count}}}') == (200, JSON, {})
    assert await call(env, "GET", player + "/capacity") == (200, JSON, {"count": "-5"})
    assert await call(env, "POST", player + "/connect", '{"playerID": "p1"}') == server_error(
        "players are already at capacity"
    )
    gs = await flushed(env)
    assert gs.status.players == PlayerStatus(0, -5, ())
    _, _, doc = await call(env, "GET", url + "/gameserver")
    assert doc["status"]["players"] == {"count": "0", "capacity": "-5", "ids": []}


async def test_player_capacity_without_declaration_starts_at_zero(env: Env) -> None:
    url = await add(env)
    assert await call(env, "POST", url + "/alpha/player/connect", '{"playerID": "p1"}') == server_error(
        "players are already at capacity"
    )
    assert await call(env, "PUT", url + "/alpha/player/capacity", "{}") == (200, JSON, {})  # empty: count 0
    assert await call(env, "PUT", url + "/alpha/player/capacity", '{"count": 2}') == (200, JSON, {})
    assert await call(env, "POST", url + "/alpha/player/connect", '{"playerID": "p1"}') == (200, JSON, {"bool": True})
    gs = await flushed(env)
    assert gs.status.players == PlayerStatus(1, 2, ("p1",))


# -- coalescing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrent", [True, False], ids=["gathered", "sequential"])
async def test_a_thousand_count_diffs_are_a_handful_of_writes(redis_client: aioredis.Redis, concurrent: bool) -> None:
    interval = 0.5
    async with running_host(redis_client, SdkSettings(write_interval=interval, health_tick=0.05)) as env:
        url = await add(env, counters={"rooms": CounterStatus(0, 1000)}, lists={"seen": ListStatus(1000)})
        writes_before = env.store.updates
        started = time.monotonic()
        counter, seen = url + "/v1beta1/counters/rooms", url + "/v1beta1/lists/seen:addValue"
        requests = [
            call(env, "PATCH", counter, '{"countDiff": "1"}')
            if i % 2
            else call(env, "POST", seen, json.dumps({"value": f"v{i}"}))
            for i in range(2000)
        ]
        if concurrent:
            results = []
            for i in range(0, len(requests), 200):  # 200 at a time: aiohttp's connection pool is 100
                results += await asyncio.gather(*requests[i : i + 200])
        else:
            results = [await r for r in requests]
        elapsed = time.monotonic() - started
        assert all(r[0] == 200 for r in results), [r for r in results if r[0] != 200][:3]
        gs = await flushed(env)
        assert gs.status.counters["rooms"] == CounterStatus(1000, 1000)
        assert gs.status.lists["seen"].values == tuple(f"v{i}" for i in range(0, 2000, 2))
        writes = env.store.updates - writes_before
        assert 0 < writes <= 2 + math.ceil(elapsed / interval), (writes, elapsed)
        assert writes == env.host.sessions["gs-1"].writer.writes
