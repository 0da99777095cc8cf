"""The official Agones Node.js SDK (``@google-cloud/agones-sdk``, gRPC only) against fleetmatch's SDK
sidecar, unchanged: ``node_sdk_client.js`` calls every method of the three services, and what it
saw and what reached the store are checked from here.

Needs ``node`` on PATH (else skipped) and ``npm ci --prefix tests/compat`` (else the test fails).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from fleetmatch.backends.redis.embedded import free_port
from fleetmatch.models import GameServerState
from sdk_sidecar import metrics
from tests.compat.harness import finish_node, host_gameserver, node_binary, node_client, recording
from tests.integration.sdkenv import Env, running_host
from tests.waiting import eventually

S = GameServerState
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(180),
    pytest.mark.skipif(node_binary() is None, reason="node (Node.js) is not on PATH"),
]

INVALID_ARGUMENT = 3


@pytest.fixture
async def env(redis_client: aioredis.Redis) -> AsyncIterator[Env]:
    async with running_host(redis_client) as e:
        yield e


def health_pings() -> float:
    return float(metrics.SDK_CALLS.labels(method="Health")._value.get())


def subsequence(wanted: list[str], seen: list[str]) -> bool:
    rest = iter(seen)
    return all(any(item == s for s in rest) for item in wanted)


async def test_every_call_of_the_node_sdk(env: Env) -> None:
    pings = health_pings()
    gs = await host_gameserver(env, "node-gs")
    grpc_port = env.host.grpc_port_of("node-gs")
    assert grpc_port is not None, "SdkHost serves no gRPC port"
    async with recording(env.store.inner, "node-gs") as recorder, node_client("all", grpc_port) as proc:
        run = await finish_node(proc)
    assert run.returncode == 0, run.describe()
    assert run.steps[-1] == "done", run.describe()

    # agones.dev.sdk.SDK, as the game saw it
    first = run.result("getGameServer")
    assert (first["name"], first["namespace"], first["uid"], first["state"]) == (
        "node-gs",
        "default",
        gs.metadata.uid,
        "Scheduled",
    )
    assert first["creationTimestamp"] == int(gs.metadata.creation_timestamp or 0) > 0
    assert first["labels"] == {"agones.dev/fleet": "f"}
    assert (first["address"], first["ports"]) == ("10.0.0.5", [{"name": "default", "port": 7001}])
    assert first["health"] == {"disabled": False, "periodSeconds": 2, "failureThreshold": 3, "initialDelaySeconds": 10}
    assert first["counters"] == {"rooms": {"count": 1, "capacity": 10}}
    assert first["lists"] == {"players": {"capacity": 100, "values": []}}
    assert run.result("watchGameServer") == "node-gs"
    assert run.result("setLabel") == {} and run.result("setAnnotation") == {}
    invalid = run.error("setLabel.invalid")
    assert invalid["code"] == INVALID_ARGUMENT and "not a key" in invalid["details"]
    assert run.result("watch.ready") == "Ready"
    ready = run.result("getGameServer.ready")
    assert ready["state"] == "Ready" and ready["labels"]["agones.dev/sdk-mode"] == "ctf"
    assert ready["annotations"]["agones.dev/sdk-map"] == "de_dust"
    assert (run.result("watch.reserved"), run.result("watch.reserve_expired")) == ("Reserved", "Ready")

    # agones.dev.sdk.alpha.SDK
    assert run.result("alpha.getPlayerCapacity") == 2
    assert [run.result(f"alpha.playerConnect{s}") for s in ("", ".again", ".second")] == [True, False, True]
    assert run.error("alpha.playerConnect.full")["code"] not in (0, None)
    assert run.result("alpha.isPlayerConnected") is True
    assert run.result("alpha.getPlayerCount") == 2
    assert run.result("alpha.getConnectedPlayers") == ["p1", "p2"]
    assert [run.result("alpha.playerDisconnect"), run.result("alpha.playerDisconnect.again")] == [True, False]
    assert run.result("alpha.isPlayerConnected.gone") is False
    assert run.result("alpha.getPlayerCount.after") == 1

    # agones.dev.sdk.beta.SDK
    assert (run.result("beta.getCounterCount"), run.result("beta.getCounterCapacity")) == (1, 10)
    assert run.result("beta.getCounterCount.diffs") == 3  # 1 + 3 - 1
    assert (run.result("beta.getCounterCount.set"), run.result("beta.getCounterCapacity.set")) == (5, 20)
    assert run.error("beta.setCounterCount.too_high")["code"] not in (0, None)
    assert run.error("beta.getCounterCount.missing")["code"] not in (0, None)
    # setListCapacity sends an update_mask that is present but empty (a quirk of the Node SDK).
    assert (run.result("beta.getListCapacity"), run.result("beta.getListCapacity.set")) == (100, 50)
    assert run.error("beta.appendListValue.duplicate")["code"] not in (0, None)
    assert run.result("beta.listContains") is True and run.result("beta.getListLength") == 2
    assert run.result("beta.getListValues") == ["alice", "bob"]
    assert run.error("beta.deleteListValue.missing")["code"] not in (0, None)
    assert run.result("beta.listContains.deleted") is False
    assert run.result("beta.getListValues.after") == ["bob"]
    assert run.error("beta.getListLength.missing")["code"] not in (0, None)

    # The batched counter/list/player writes came back through the watch, then Allocated and Shutdown.
    counted = run.result("watch.counted")
    assert counted["counters"]["rooms"] == {"count": 5, "capacity": 20}
    assert counted["lists"]["players"] == {"capacity": 50, "values": ["bob"]}
    assert run.result("watch.allocated") == "Allocated"
    allocated = run.result("getGameServer.allocated")
    assert allocated["state"] == "Allocated" and "agones.dev/last-allocated" in allocated["annotations"]
    assert allocated["players"] == {"count": 1, "capacity": 2, "ids": ["p1"]}
    assert run.result("watch.shutdown") == "Shutdown"
    watch = run.result("watch.summary")
    assert watch["error"] is None
    assert subsequence(["Scheduled", "Ready", "Reserved", "Ready", "Allocated", "Shutdown"], watch["states"]), watch
    assert watch["resourceVersions"] == watch["updates"]  # no version delivered twice

    # Health: every ping of the one client stream was counted; the stream closed with OK.
    health = run.result("health")
    assert health["status"] == 0 and health["errors"] == [] and health["sent"] >= 5
    assert health_pings() - pings == health["sent"]

    # What reached the store.
    lifecycle = ["RequestReady", "Ready", "Reserved", "RequestReady", "Ready", "Allocated", "Shutdown"]
    assert subsequence(lifecycle, recorder.states), recorder.states
    stored = await env.store.get("node-gs")
    assert stored.state is S.SHUTDOWN
    assert stored.metadata.labels == {"agones.dev/fleet": "f", "agones.dev/sdk-mode": "ctf"}
    assert stored.metadata.annotations["agones.dev/sdk-map"] == "de_dust"
    status = stored.status
    assert (status.counters["rooms"].count, status.counters["rooms"].capacity) == (5, 20)
    assert (status.lists["players"].capacity, status.lists["players"].values) == (50, ("bob",))
    assert status.players is not None
    assert (status.players.count, status.players.capacity, status.players.ids) == (1, 2, ("p1",))
    assert not any(g.state is S.UNHEALTHY for g in recorder.history)
    # The client's exit cancelled its watch stream: the session let go of it.
    session = env.host.sessions["node-gs"]
    await eventually(lambda: session.watch_count == 0, what=lambda: f"{session.watch_count} watch streams open")


async def test_node_sdk_reaches_a_sidecar_that_starts_late(env: Env) -> None:
    """connect() waits (up to 30 s) for a sidecar that starts after the game, a known Agones start-up race
    (https://github.com/googleforgames/agones/issues/2266)."""
    pings = health_pings()
    grpc_port = free_port()
    async with recording(env.store.inner, "late-gs") as recorder, node_client("late", grpc_port) as proc:
        await asyncio.sleep(3.0)
        assert proc.returncode is None, "the Node.js client gave up before the sidecar started"
        await host_gameserver(env, "late-gs", grpc_port=grpc_port)
        run = await finish_node(proc)
        await env.stored("late-gs", lambda g: g.state is S.READY)
    assert run.returncode == 0, run.describe()
    assert run.steps == ["start", "connect", "connect.waited_ms", "getGameServer", "ready", "health", "done"]
    assert run.result("connect.waited_ms") >= 2500
    assert run.result("getGameServer")["name"] == "late-gs"
    health = run.result("health")
    assert health["status"] == 0 and health["sent"] >= 2
    assert health_pings() - pings == health["sent"]
    assert subsequence(["RequestReady", "Ready"], recorder.states)
