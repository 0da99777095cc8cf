"""Allocation leases, the pure part: what the claim stamps, and when a lease counts as expired."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from allocator.allocation import allocated
from fleetmatch.allocation import (
    ALLOCATION_LEASE_ANNOTATION,
    GameServerAllocationSpec,
    GameServerSelector,
    lease_expired,
    lease_expiry,
)
from fleetmatch.models import (
    FLEET_LABEL,
    CounterStatus,
    GameServer,
    GameServerState,
    ObjectMeta,
    PlayerStatus,
    TemplateMeta,
)

NOW = 1_900_000_000.0
SPEC = GameServerAllocationSpec(
    selectors=(GameServerSelector.for_fleet("arena"),), metadata=TemplateMeta(labels={"match": "m1"})
)


def ready_server() -> GameServer:
    gs = GameServer(metadata=ObjectMeta(name="gs-1", labels={FLEET_LABEL: "arena"}))
    return gs.with_status(
        state=GameServerState.READY, counters={"rooms": CounterStatus(0, 4)}, players=PlayerStatus(capacity=8)
    )


def leased() -> GameServer:
    return allocated(ready_server(), SPEC, NOW, lease_seconds=30)


def test_a_claim_from_ready_is_leased_until_now_plus_the_lease() -> None:
    gs = leased()
    assert gs.state is GameServerState.ALLOCATED
    assert lease_expiry(gs) == pytest.approx(NOW + 30, abs=0.001)
    assert not lease_expired(gs, NOW + 29.9)
    assert lease_expired(gs, NOW + 30.0)


def test_no_lease_when_leases_are_off() -> None:
    gs = allocated(ready_server(), SPEC, NOW)
    assert ALLOCATION_LEASE_ANNOTATION not in gs.metadata.annotations
    assert not lease_expired(gs, NOW + 1e6)


def test_a_server_allocated_again_is_in_use_and_loses_its_lease() -> None:
    again = allocated(leased(), SPEC, NOW + 1, lease_seconds=30)
    assert ALLOCATION_LEASE_ANNOTATION not in again.metadata.annotations
    assert not lease_expired(again, NOW + 1e6)


def _label(gs: GameServer) -> GameServer:
    return replace(gs, metadata=replace(gs.metadata, labels={**gs.metadata.labels, "agones.dev/sdk-map": "dust"}))


def _annotation(gs: GameServer) -> GameServer:
    return replace(gs, metadata=replace(gs.metadata, annotations={**gs.metadata.annotations, "agones.dev/sdk-x": "1"}))


def _player(gs: GameServer) -> GameServer:
    return gs.with_status(players=PlayerStatus(count=1, capacity=8, ids=("p1",)))


def _counter(gs: GameServer) -> GameServer:
    return gs.with_status(counters={"rooms": CounterStatus(1, 4)})


def _shutdown(gs: GameServer) -> GameServer:
    return gs.with_status(state=GameServerState.SHUTDOWN)


def _reserved(gs: GameServer) -> GameServer:
    return gs.with_status(state=GameServerState.RESERVED, reserved_until=NOW + 60)


@pytest.mark.parametrize(
    "sdk_call",
    [
        pytest.param(_label, id="SetLabel"),
        pytest.param(_annotation, id="SetAnnotation"),
        pytest.param(_player, id="PlayerConnect"),
        pytest.param(_counter, id="UpdateCounter"),
        pytest.param(_shutdown, id="Shutdown"),
        pytest.param(_reserved, id="Reserve"),
    ],
)
def test_any_sdk_change_confirms_the_allocation(sdk_call: Callable[[GameServer], GameServer]) -> None:
    assert not lease_expired(sdk_call(leased()), NOW + 1e6)


def test_an_unchanged_rewrite_does_not_confirm() -> None:
    gs = leased()
    same = replace(gs, metadata=replace(gs.metadata, resource_version="99"))  # a write that changed nothing
    assert lease_expired(same, NOW + 31)


@pytest.mark.parametrize("value", ["", "yesterday abc", "2026-01-01T00:00:00Z"])
def test_a_malformed_lease_never_expires(value: str) -> None:
    gs = leased()
    bad = replace(
        gs, metadata=replace(gs.metadata, annotations={**gs.metadata.annotations, ALLOCATION_LEASE_ANNOTATION: value})
    )
    assert not lease_expired(bad, NOW + 1e6)
