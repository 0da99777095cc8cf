"""Event records as ``events.k8s.io/v1`` Events: what ``kubectl describe`` and ``kubectl get events`` show.

``KubeEventLog`` implements ``fleetmatch.events.EventLog``. One occurrence is one Event named
``<object>.<digest of reason and message>`` about (``regarding``, with the object's uid when the
caller knows it) the GameServer, Fleet or Node;
recording the same (object, reason, message) again bumps the Event's ``series`` (``count``,
``lastObservedTime``) with a conditional update instead of creating another, as the Kubernetes
event recorder aggregates. The API server keeps Events for its ``--event-ttl`` (one hour by default).
RBAC: create, get, list and update on ``events`` in group ``events.k8s.io``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes_asyncio.client import ApiClient, EventsV1Api

from fleetmatch.backends.kube.calls import call
from fleetmatch.backends.kube.errors import ApiTarget
from fleetmatch.errors import AlreadyExistsError, ConflictError, NotFoundError
from fleetmatch.events import MESSAGE_LIMIT, EventRecord, Severity, matches
from fleetmatch.models import API_VERSION

GROUP = "events.k8s.io"
CONTROLLER = "fleetmatch.dev/controller"
"""``reportingController`` of every Event fleetmatch writes."""
_API_VERSIONS = {"GameServer": API_VERSION, "Fleet": API_VERSION, "FleetAutoscaler": API_VERSION, "Node": "v1"}


def event_name(kind: str, name: str, reason: str, message: str) -> str:
    """One Event per (object, reason, message): a stable, valid name."""
    digest = hashlib.blake2b(f"{kind}/{reason}/{message}".encode(), digest_size=6).hexdigest()
    return f"{name[:240]}.{digest}"


def _micro_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _seconds(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return 0.0


class KubeEventLog:
    def __init__(self, api: ApiClient, namespace: str, *, instance: str) -> None:
        self._api = EventsV1Api(api)
        self._namespace = namespace
        self._instance = instance
        self._target = ApiTarget("create", "events", GROUP, namespace, "Event")

    async def record(
        self, kind: str, name: str, reason: str, message: str, *, type: Severity = Severity.NORMAL, uid: str = ""
    ) -> None:
        message = message[:MESSAGE_LIMIT]
        event = event_name(kind, name, reason, message)
        now = datetime.now(UTC)
        body = {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Event",
            "metadata": {"name": event, "namespace": self._namespace},
            "eventTime": _micro_time(now),
            "reportingController": CONTROLLER,
            "reportingInstance": self._instance[:128],
            "action": reason,
            "reason": reason,
            "note": message,
            "type": type.value,
            "regarding": {
                "apiVersion": _API_VERSIONS.get(kind, API_VERSION),
                "kind": kind,
                "name": name,
                **({"namespace": self._namespace} if kind != "Node" else {}),
                **({"uid": uid} if uid else {}),
            },
        }
        try:
            await call(self._api.create_namespaced_event(self._namespace, cast(Any, body)), self._target.about(event))
            return
        except AlreadyExistsError:
            pass
        for _ in range(5):  # seen before: one more in its series
            current: Any = await call(  # the raw response: the document as the server has it
                self._api.read_namespaced_event(event, self._namespace, _preload_content=False),
                self._target.about(event, verb="get"),
            )
            doc = await current.json()
            series = doc.get("series") or {"count": 1}
            doc["series"] = {"count": int(series.get("count", 1)) + 1, "lastObservedTime": _micro_time(now)}
            try:
                await call(
                    self._api.replace_namespaced_event(event, self._namespace, doc),
                    self._target.about(event, verb="update"),
                )
                return
            except (ConflictError, NotFoundError):
                continue  # another writer bumped it meanwhile (or it expired): read again

    async def list(self, kind: str | None = None, name: str | None = None) -> list[EventRecord]:
        response: Any = await call(
            self._api.list_namespaced_event(self._namespace, _preload_content=False),
            self._target.about(verb="list"),
        )
        doc = await response.json()
        records = []
        for item in doc.get("items") or ():
            if item.get("reportingController") != CONTROLLER:
                continue
            regarding = item.get("regarding") or {}
            series = item.get("series") or {}
            first = _seconds(item.get("eventTime"))
            record = EventRecord(
                kind=str(regarding.get("kind", "")),
                name=str(regarding.get("name", "")),
                reason=str(item.get("reason", "")),
                message=str(item.get("note", "")),
                type=Severity(item.get("type") or Severity.NORMAL.value),
                count=int(series.get("count", 1)),
                first=first,
                last=_seconds(series.get("lastObservedTime")) or first,
            )
            if matches(record, kind, name):
                records.append(record)
        records.sort(key=lambda r: r.last)
        return records
