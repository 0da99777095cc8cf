"""The hand-written REST JSON (``jsonpb``) is what protobuf's own JSON printer makes of the messages the
gRPC door sends (``grpc_server``), for generated GameServers, counters and lists.

The REST door keeps its hand-written mapper because it is on the hot path (about 5x cheaper than building
the message and printing it with ``json_format``); this property is what lets it.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetmatch.models import (
    CounterStatus,
    GameServer,
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
from fleetmatch.names import qualified_name_error
from sdk_sidecar import jsonpb
from sdk_sidecar.grpc_server import counter_proto, gameserver_proto, list_proto

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)  # any Unicode a proto string holds
DNS_LABEL = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?", fullmatch=True)
LABEL_VALUE = st.from_regex(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?)?", fullmatch=True)
KEY = st.builds(
    lambda prefix, name: f"{'.'.join(prefix)}/{name}" if prefix else name,
    st.lists(DNS_LABEL, max_size=2),
    st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?", fullmatch=True),
).filter(lambda key: qualified_name_error(key) is None)
TIMESTAMP = st.none() | st.floats(min_value=-1e11, max_value=1e11, allow_nan=False)


@st.composite
def counters(draw: st.DrawFn) -> CounterStatus:
    capacity = draw(st.integers(0, 2**63 - 1))
    return CounterStatus(draw(st.integers(0, capacity)), capacity)


@st.composite
def lists(draw: st.DrawFn) -> ListStatus:
    values = draw(st.lists(TEXT, unique=True, max_size=4))
    return ListStatus(draw(st.integers(len(values), 1000)), tuple(values))


@st.composite
def players(draw: st.DrawFn) -> PlayerStatus:
    ids = draw(st.lists(TEXT, unique=True, max_size=4))
    return PlayerStatus(len(ids), draw(INT64), tuple(ids))


HEALTH = st.builds(
    Health,
    disabled=st.booleans(),
    period_seconds=st.integers(1, 2**31 - 1),
    failure_threshold=st.integers(1, 2**31 - 1),
    initial_delay_seconds=st.integers(0, 2**31 - 1),
)
NAMED_COUNTERS = st.dictionaries(TEXT.filter(bool), counters(), max_size=3)
NAMED_LISTS = st.dictionaries(TEXT.filter(bool), lists(), max_size=3)

GAMESERVERS = st.builds(
    GameServer,
    metadata=st.builds(
        ObjectMeta,
        name=DNS_LABEL,
        namespace=DNS_LABEL,
        uid=TEXT,
        resource_version=TEXT,
        generation=INT64,
        creation_timestamp=TIMESTAMP,
        deletion_timestamp=TIMESTAMP,
        labels=st.dictionaries(KEY, LABEL_VALUE, max_size=3),
        annotations=st.dictionaries(KEY, TEXT, max_size=3),
    ),
    spec=st.builds(
        GameServerSpec,
        health=HEALTH,
        counters=NAMED_COUNTERS,
        lists=NAMED_LISTS,
        players=st.none() | st.builds(PlayersSpec, initial_capacity=st.integers(0, 2**63 - 1)),
    ),
    status=st.builds(
        GameServerStatus,
        state=st.sampled_from(GameServerState),
        address=TEXT,
        ports=st.lists(st.builds(PortStatus, name=TEXT, port=INT32), max_size=3).map(tuple),
        counters=NAMED_COUNTERS,
        lists=NAMED_LISTS,
        players=st.none() | players(),
    ),
)


def protojson(message: Message) -> dict[str, Any]:
    """What grpc-gateway's marshaler prints (protojson, ``UseProtoNames`` and ``EmitUnpopulated``):
    ``json_format``'s output plus ``null`` for each unset message field, which Python leaves out."""
    doc: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    _add_nulls(message, doc)
    return doc


def _add_nulls(message: Message, doc: dict[str, Any]) -> None:
    for field in message.DESCRIPTOR.fields:
        if field.message_type is None:
            continue
        value = getattr(message, field.name)
        if field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].message_type is not None:
                for key, item in value.items():
                    _add_nulls(item, doc[field.name][str(key)])
        elif field.is_repeated:
            for i, item in enumerate(value):
                _add_nulls(item, doc[field.name][i])
        elif message.HasField(field.name):
            _add_nulls(value, doc[field.name])
        else:
            doc[field.name] = None


PROPERTY = settings(max_examples=300, deadline=None, database=None)


@PROPERTY
@given(GAMESERVERS)
def test_gameserver_json_is_protojson_of_the_grpc_message(gs: GameServer) -> None:
    expected = protojson(gameserver_proto(gs))
    assert jsonpb.gameserver_json(gs) == expected
    assert json.loads(jsonpb.watch_line(gs)) == {"result": expected}  # and as bytes on the wire


@PROPERTY
@given(TEXT, counters(), lists())
def test_counter_and_list_json_are_protojson_of_the_grpc_messages(
    name: str, counter: CounterStatus, found: ListStatus
) -> None:
    assert jsonpb.counter_json(name, counter) == protojson(counter_proto(name, counter))
    assert jsonpb.list_json(name, found) == protojson(list_proto(name, found))


def test_the_oracle_prints_an_unset_message_as_null() -> None:
    """The difference the oracle adds to ``json_format`` is exercised (``players`` is a message field)."""
    gs = GameServer(metadata=ObjectMeta(name="gs"))
    assert protojson(gameserver_proto(gs))["status"]["players"] is None
    with_players = GameServer(metadata=ObjectMeta(name="gs"), status=GameServerStatus(players=PlayerStatus()))
    assert protojson(gameserver_proto(with_players))["status"]["players"] == {"count": "0", "capacity": "0", "ids": []}
