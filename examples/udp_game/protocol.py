"""The example game's wire protocol: one JSON object per UDP datagram, ``"t"`` naming its type.

Requests (client → server) and their replies::

    {"t":"ping"}                                   → {"t":"pong","server":NAME,"state":STATE,"players":N,"labels":{...}}
    {"t":"join","player":ID,"token":TOKEN}         → {"t":"welcome","player":ID,"server":NAME,"tick":N,"players":[...]}
                                                   | {"t":"reject","player":ID,"reason":REASON}
    {"t":"input","player":ID,"seq":N,"data":ANY}   → {"t":"state","player":ID,"seq":ACKED,"tick":N,"players":[...]}
    {"t":"leave","player":ID}                      → {"t":"bye","player":ID}
    anything malformed                             → {"t":"error","reason":REASON}

``players`` in replies is ``[{"id":ID,"seq":N}, ...]``: who is in the match and the last input seq
the server applied for each. ``state.seq`` acknowledges the highest seq applied for the sender, so a
client can resend unacknowledged inputs; every request is idempotent (UDP may duplicate or drop
datagrams, and the client retries). ``labels`` in ``pong`` are the GameServer's labels as of its
allocation: what the allocator wrote (match id, mode...).

Field rules: ``player`` is 1-64 characters of ``[A-Za-z0-9_.-]``; ``token`` a non-empty string of at
most 512 characters; ``seq`` an integer in ``[0, 2**53)``; ``data`` any JSON value. A datagram is at
most ``MAX_DATAGRAM`` bytes of UTF-8. Unknown fields are ignored, so the protocol can grow.

Everything here is pure (no sockets, no clock): the server and client only move bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_DATAGRAM = 1400
"""Largest request accepted: fits one Ethernet frame, so no IP fragmentation on the way in."""
MAX_TOKEN = 512
MAX_SEQ = 2**53
"""Sequence numbers stay exact in every JSON implementation (doubles)."""

_PLAYER = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class ProtocolError(ValueError):
    """A datagram that is not a valid request; ``reason`` goes back in an ``error`` reply."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Join:
    player: str
    token: str


@dataclass(frozen=True, slots=True)
class Input:
    player: str
    seq: int
    data: Any = None


@dataclass(frozen=True, slots=True)
class Leave:
    player: str


Request = Ping | Join | Input | Leave


@dataclass(frozen=True, slots=True)
class PlayerView:
    """One player as replies show it."""

    id: str
    seq: int


# -- decoding ---------------------------------------------------------------------------------------


def _object(data: bytes, limit: int | None) -> dict[str, Any]:
    if limit is not None and len(data) > limit:
        raise ProtocolError(f"datagram too large ({len(data)} > {limit} bytes)")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("not a UTF-8 JSON document") from None
    if not isinstance(doc, dict):
        raise ProtocolError("expected a JSON object")
    kind = doc.get("t")
    if not isinstance(kind, str):
        raise ProtocolError('missing message type "t"')
    return doc


def _player(doc: Mapping[str, Any]) -> str:
    player = doc.get("player")
    if not isinstance(player, str) or not _PLAYER.match(player):
        raise ProtocolError("player must be 1-64 characters of A-Z a-z 0-9 _ . -")
    return player


def decode_request(data: bytes) -> Request:
    """The request in ``data``; ``ProtocolError`` saying what is wrong otherwise."""
    doc = _object(data, MAX_DATAGRAM)
    kind = doc["t"]
    if kind == "ping":
        return Ping()
    if kind == "join":
        token = doc.get("token")
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN:
            raise ProtocolError(f"token must be a non-empty string of at most {MAX_TOKEN} characters")
        return Join(_player(doc), token)
    if kind == "input":
        seq = doc.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < MAX_SEQ:
            raise ProtocolError("seq must be an integer in [0, 2**53)")
        return Input(_player(doc), seq, doc.get("data"))
    if kind == "leave":
        return Leave(_player(doc))
    raise ProtocolError(f"unknown message type {kind[:32]!r}")


def decode_reply(data: bytes) -> dict[str, Any]:
    """A server reply as a dict (the client's side: it trusts the shape, checks only the framing)."""
    return _object(data, None)


# -- encoding ---------------------------------------------------------------------------------------


def encode(message: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, one datagram."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encode_request(request: Request) -> bytes:
    if isinstance(request, Ping):
        return encode({"t": "ping"})
    if isinstance(request, Join):
        return encode({"t": "join", "player": request.player, "token": request.token})
    if isinstance(request, Input):
        return encode({"t": "input", "player": request.player, "seq": request.seq, "data": request.data})
    return encode({"t": "leave", "player": request.player})


def _players(players: Sequence[PlayerView]) -> list[dict[str, Any]]:
    return [{"id": p.id, "seq": p.seq} for p in players]


def pong(server: str, state: str, players: int, labels: Mapping[str, str]) -> dict[str, Any]:
    return {"t": "pong", "server": server, "state": state, "players": players, "labels": dict(labels)}


def welcome(player: str, server: str, tick: int, players: Sequence[PlayerView]) -> dict[str, Any]:
    return {"t": "welcome", "player": player, "server": server, "tick": tick, "players": _players(players)}


def reject(player: str, reason: str) -> dict[str, Any]:
    return {"t": "reject", "player": player, "reason": reason}


def state(player: str, seq: int, tick: int, players: Sequence[PlayerView]) -> dict[str, Any]:
    return {"t": "state", "player": player, "seq": seq, "tick": tick, "players": _players(players)}


def bye(player: str) -> dict[str, Any]:
    return {"t": "bye", "player": player}


def error(reason: str) -> dict[str, Any]:
    return {"t": "error", "reason": reason}
