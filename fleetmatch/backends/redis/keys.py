"""Every Redis key of the state store; nothing else builds these names.

Layout (every key of a namespace shares the hash tag ``{ns:<namespace>}``, so one Lua script only
ever touches one Redis Cluster slot)::

    fm:{ns:default}:gameservers:objs    HASH  name -> msgpack wire dict, without the server-owned fields
    fm:{ns:default}:gameservers:vers    HASH  name -> resourceVersion (the stream id of its last change)
    fm:{ns:default}:gameservers:meta    HASH  name -> "generation|spec digest|uid|creationTimestamp"
    fm:{ns:default}:gameservers:events  STREAM of changes: t=ADDED|MODIFIED|DELETED n=name g u c b=body
    fm:{ns:default}:gameservers:floor   STRING id of the newest change trimmed from the stream
    fm:{ns:default}:leases:<name>       STRING holder id, expiring after the lease's ttl
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Every Redis key of one kind in one namespace; nothing else builds these names."""

    objs: str
    vers: str
    meta: str
    events: str
    floor: str

    @classmethod
    def of(cls, namespace: str, plural: str) -> Keys:
        base = f"{namespace_prefix(namespace)}:{plural}"
        return cls(f"{base}:objs", f"{base}:vers", f"{base}:meta", f"{base}:events", f"{base}:floor")


def namespace_prefix(namespace: str) -> str:
    """``fm:{ns:<namespace>}``: the hash tag puts every key of a namespace in one Cluster slot."""
    return f"fm:{{ns:{namespace}}}"


def lease_key(namespace: str, name: str) -> str:
    """The key of leader lease ``name`` (a STRING holding the holder's id, with a TTL)."""
    return f"{namespace_prefix(namespace)}:leases:{name}"
