"""``load_trusted`` (records read back on hot paths, unvalidated) builds exactly what the validating
``from_wire`` builds, for every kind of record the stores keep, straight and through msgpack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest

from allocator.allocation import allocated
from fleetmatch.allocation import GameServerAllocationSpec, GameServerSelector
from fleetmatch.codec import from_wire, load_trusted, to_wire
from fleetmatch.manifests import load_resources
from fleetmatch.models import (
    FLEET_LABEL,
    CounterStatus,
    GameServer,
    GameServerState,
    ListStatus,
    ObjectMeta,
    PlayerStatus,
    PortStatus,
)
from matchmaker.models import Assignment, Player, Ticket, TicketState

REPO = Path(__file__).resolve().parents[2]


def _game_servers() -> list[Any]:
    bare = GameServer(metadata=ObjectMeta(name="gs-1", labels={FLEET_LABEL: "arena"}))
    ready = bare.with_status(
        state=GameServerState.READY, address="10.0.0.1", ports=(PortStatus("default", 7001),), node_name="n1"
    )
    rich = ready.with_status(
        counters={"rooms": CounterStatus(count=2, capacity=5)},
        lists={"players": ListStatus(capacity=8, values=("a", "b"))},
        players=PlayerStatus(count=1, capacity=4, ids=("a",)),
        reserved_until=1_800_000_000.25,
    )
    claimed = allocated(rich, GameServerAllocationSpec(selectors=(GameServerSelector.for_fleet("arena"),)), 1.7e9)
    return [bare, ready, rich, claimed]


def _resources() -> list[Any]:
    files = [REPO / "fleetmatch/demo/fleet.yaml", REPO / "fleetmatch/demo/autoscaler.yaml"]
    files += sorted(REPO.glob("loadtest/scenarios/*-fleet.yaml"))
    return [resource for path in files for resource in load_resources(path)]


def _tickets() -> list[Any]:
    alice = Player("alice", attributes={"skill": 1500.5, "mode": "ranked"}, latencies={"eu": 20}, roles=("tank",))
    queued = Ticket(id="t1", queue="duel", owner="alice", players=(alice,), created_at=1.7e9, enqueued_at=1.7e9)
    matched = Ticket(
        id="t2",
        queue="duel",
        owner="key:backend",
        players=(alice, Player("bob")),
        state=TicketState.MATCHED,
        assignment=Assignment(
            match_id="m1",
            game_server="gs-1",
            address="10.0.0.1",
            port=7001,
            ports=(PortStatus("default", 7001),),
            tokens={"alice": "tok"},
            roles={"alice": "tank"},
        ),
        blocked_players=("carol",),
    )
    return [queued, matched]


RECORDS = _game_servers() + _resources() + _tickets()


def test_the_records_cover_fleets_and_autoscalers() -> None:
    assert {type(r).__name__ for r in RECORDS} >= {"GameServer", "Fleet", "FleetAutoscaler", "Ticket"}


@pytest.mark.parametrize(
    "record", RECORDS, ids=lambda r: f"{type(r).__name__}-{getattr(r, 'id', '') or r.metadata.name}"
)
def test_load_trusted_builds_what_from_wire_builds(record: Any) -> None:
    cls = type(record)
    wire = to_wire(record)
    validated = from_wire(cls, to_wire(record))
    assert validated == record
    assert load_trusted(cls, wire) == record
    packed = msgpack.unpackb(msgpack.packb(wire), raw=False)  # tuples come back as lists
    loaded = load_trusted(cls, packed)
    assert loaded == record and repr(loaded) == repr(validated)  # the same types inside too
