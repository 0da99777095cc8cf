"""Leader leases as ``coordination.k8s.io/v1`` Leases, the way client-go's leader election holds them.

``KubeLease`` implements ``fleetmatch.lease.Lease``. The Lease's spec is the election record:
``holderIdentity``, ``leaseDurationSeconds``, ``acquireTime``, ``renewTime`` (MicroTime, UTC) and
``leaseTransitions``. ``acquire()``:

- creates the Lease, held by us, when there is none (a create that loses to another is 409);
- renews it when we hold it: first optimistically on the version we last wrote, else after a read;
- takes it over only when it has no holder (a released lease) or when its record has not changed
  for ``leaseDurationSeconds`` as *this* process observed it. Expiry is measured on our own
  monotonic clock from the moment we saw the record change, never by comparing the holder's
  ``renewTime`` with our wall clock, so clock skew between nodes does not matter (client-go's
  ``observedTime``). A candidate that starts late thus waits one lease duration before it can take
  over a lease whose holder died;
- writes every change as a PUT conditional on the resourceVersion it read: of two candidates
  racing for one expired lease, the API server lets exactly one through (409 for the other).

``release()`` clears the holder (duration 1 s, as client-go), so a standby takes over at once
instead of after the duration. RBAC: get, create and update on ``leases`` in the namespace.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes_asyncio.client import ApiClient, CoordinationV1Api, V1Lease, V1LeaseSpec

from fleetmatch.backends.kube.calls import call
from fleetmatch.backends.kube.errors import ApiTarget
from fleetmatch.errors import AlreadyExistsError, ConflictError, NotFoundError

GROUP = "coordination.k8s.io"
_KEPT_META = ("name", "namespace", "labels", "annotations", "resourceVersion")
"""Metadata a PUT sends back: what others may have set, and the precondition."""


@dataclass(frozen=True, slots=True)
class _Record:
    """The election record a Lease's spec holds."""

    holder: str
    duration: int
    acquired: datetime | None
    renewed: datetime | None
    transitions: int

    @classmethod
    def of(cls, lease: V1Lease) -> _Record:
        spec = cast(V1LeaseSpec | None, lease.spec)  # absent on a Lease created bare
        if spec is None:
            return cls("", 0, None, None, 0)
        return cls(
            spec.holder_identity or "",
            spec.lease_duration_seconds or 0,
            spec.acquire_time,
            spec.renew_time,
            spec.lease_transitions or 0,
        )


def _micro_time(moment: datetime) -> str:
    """Kubernetes' MicroTime: RFC 3339 in UTC with six fractional digits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class KubeLease:
    """``fleetmatch.lease.Lease`` on the Lease ``namespace/name`` (see the module documentation)."""

    def __init__(
        self,
        api: ApiClient,
        name: str,
        holder: str,
        *,
        namespace: str,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.ttl = ttl
        self.name, self.holder, self.namespace = name, holder, namespace
        self._duration = max(1, math.ceil(ttl))
        """``leaseDurationSeconds`` we write (whole seconds; never shorter than ``ttl``)."""
        self._api = CoordinationV1Api(api)
        self._sanitize = api.sanitize_for_serialization
        self._target = ApiTarget("get", "leases", GROUP, namespace, "Lease", name)
        self._clock, self._wall = clock, wall_clock
        self._observed: _Record | None = None
        self._observed_at = -math.inf
        """``clock()`` when ``_observed`` last changed: the record's age, as this process saw it."""
        self._meta: dict[str, Any] = {}
        """The Lease's metadata as last read or written (labels kept, resourceVersion the precondition)."""

    @property
    def leading(self) -> bool:
        """Whether the record we last saw names us and has not expired by our clock."""
        return self._holds(self._clock())

    def _holds(self, now: float) -> bool:
        record = self._observed
        return record is not None and record.holder == self.holder and self._observed_at + record.duration > now

    async def acquire(self) -> bool:
        """Take or renew the lease; True while we hold it."""
        now = self._clock()
        if self._holds(now):
            assert self._observed is not None
            try:  # the fast path: renew on the version we wrote last
                await self._write(self._observed.acquired, self._observed.transitions, now)
                return True
            except (ConflictError, NotFoundError):
                pass  # someone else wrote (or deleted) it: look at it
        try:
            lease = await call(self._api.read_namespaced_lease(self.name, self.namespace), self._target)
        except NotFoundError:
            return await self._create(now)
        self._observe(lease, now)
        record = self._observed
        assert record is not None
        if record.holder and record.holder != self.holder and self._observed_at + record.duration > now:
            return False  # held by another, not expired
        ours = record.holder == self.holder
        acquired = record.acquired if ours else None
        try:
            await self._write(acquired, record.transitions if ours else record.transitions + 1, now)
        except (ConflictError, NotFoundError):
            return False  # another candidate wrote first
        return True

    async def taken(self) -> bool:
        """Whether the Lease names a holder whose record changed within its duration, as this process
        observed it (a Lease first seen counts as held for one duration: the same rule ``acquire``
        follows before taking one over)."""
        now = self._clock()
        try:
            lease = await call(self._api.read_namespaced_lease(self.name, self.namespace), self._target)
        except NotFoundError:
            return False
        self._observe(lease, now)
        record = self._observed
        assert record is not None
        return bool(record.holder) and self._observed_at + record.duration > now

    async def release(self) -> None:
        """Give the lease up if we hold it: the holder cleared, so a standby need not wait it out."""
        now = self._clock()
        if not self._holds(now):
            return
        assert self._observed is not None
        moment = _micro_time(self._wall())
        spec = {
            "holderIdentity": "",
            "leaseDurationSeconds": 1,
            "acquireTime": moment,
            "renewTime": moment,
            "leaseTransitions": self._observed.transitions,
        }
        try:
            await self._put(spec, now)
        except (ConflictError, NotFoundError):
            pass  # no longer ours to release

    async def _create(self, now: float) -> bool:
        moment = _micro_time(self._wall())
        body = {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": self._spec(moment, moment, 0),
        }
        request = self._api.create_namespaced_lease(self.namespace, cast(Any, body))  # a dict: our MicroTime
        try:
            lease = await call(request, self._target.about(self.name, verb="create"))
        except AlreadyExistsError:
            return False  # another candidate created it first
        self._observe(lease, now)
        return True

    async def _write(self, acquired: datetime | None, transitions: int, now: float) -> None:
        moment = _micro_time(self._wall())
        await self._put(self._spec(_micro_time(acquired) if acquired else moment, moment, transitions), now)

    def _spec(self, acquired: str, renewed: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self._duration,
            "acquireTime": acquired,
            "renewTime": renewed,
            "leaseTransitions": transitions,
        }

    async def _put(self, spec: dict[str, Any], now: float) -> None:
        """Replace the Lease's spec, conditional on the resourceVersion last seen (409 otherwise)."""
        version = str(self._meta.get("resourceVersion") or "")
        body = {"apiVersion": f"{GROUP}/v1", "kind": "Lease", "metadata": self._meta, "spec": spec}
        target = self._target.about(self.name, verb="update", version=version)
        lease = await call(self._api.replace_namespaced_lease(self.name, self.namespace, cast(Any, body)), target)
        self._observe(lease, now)

    def _observe(self, lease: V1Lease, now: float) -> None:
        meta = self._sanitize(lease.metadata) or {}
        self._meta = {k: meta[k] for k in _KEPT_META if k in meta}
        record = _Record.of(lease)
        if record != self._observed:
            self._observed, self._observed_at = record, now


__all__ = ["KubeLease"]
