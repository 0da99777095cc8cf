"""Python client of the allocation API (the CLI and the matchmaker use it).

``allocate`` returns the allocation's status: ``Allocated`` with the server, or ``UnAllocated``
when nothing is free (a normal answer on the hot path, not an exception). Asking for a fleet that
does not exist is a mistake, not a full fleet: ``AllocatorError`` with status 404 and code
``FleetNotFound`` (its message ``fleet "x" does not exist``, its field the selector).

Every logical request carries an ``Idempotency-Key`` (the caller's, such as a match id, or a fresh
random one), and every retry of it the same key: the allocator answers a retry with the server the
first attempt got, never a second one. That is what makes retrying safe after a timeout or a lost
connection, when the first attempt may have claimed a server. Retried with jittered back-off:
``Contention`` and a key still in progress elsewhere (409), up to ``contention_retries`` times; a
timeout, a failed connection or a 503, up to ``retries`` times.

``release_match`` asks the allocator to give back what was allocated under a key (the matchmaker
releases the servers of matches nobody got).
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import uuid
from typing import Any
from urllib.parse import quote

import aiohttp

from fleetmatch.allocation import (
    IDEMPOTENCY_HEADER,
    AllocationState,
    GameServerAllocation,
    GameServerAllocationSpec,
    GameServerAllocationStatus,
    encode_allocation,
)
from fleetmatch.codec import from_wire
from fleetmatch.errors import FleetmatchError


class AllocatorError(FleetmatchError):
    """The allocator refused the request or could not be reached."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        self.status, self.code, self.message, self.field = status, code, message, field
        where = f" ({field})" if field else ""
        super().__init__(f"allocator: {status} {code}{where}: {message}" if status else f"allocator: {message}")


class AllocatorClient:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 5.0,
        contention_retries: int = 5,
        retries: int = 2,
        ssl_context: ssl.SSLContext | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """``timeout``: seconds per attempt. ``retries``: attempts after a timeout, a failed connection
        or a 503 (safe: the key makes a retry return what the first attempt got)."""
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._contention_retries = contention_retries
        self._retries = retries
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> AllocatorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _failed(self, exc: Exception) -> AllocatorError:
        """A request that got no usable answer, as an ``AllocatorError`` of status 0 (retried as a 503 is)."""
        if isinstance(exc, aiohttp.ClientConnectorError):
            return AllocatorError(0, "Unreachable", f"cannot connect to {self.url}: {exc.os_error}")
        if isinstance(exc, TimeoutError):
            return AllocatorError(0, "Timeout", f"{self.url} did not answer within {self._timeout.total:g}s")
        return AllocatorError(0, "Failed", f"request to {self.url} failed: {exc!r}")

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def allocate(
        self, spec: GameServerAllocationSpec, *, idempotency_key: str | None = None, namespace: str | None = None
    ) -> GameServerAllocationStatus:
        """Allocate a server; ``status.state`` says whether it worked (Allocated) or nothing was free.
        ``idempotency_key``: names this logical request (e.g. the match it is for), so that its
        retries, by this client or after a restart, get the same server; default: a fresh one.
        ``namespace``: the namespace meant (the allocator refuses one that is not its own, 422);
        default: the allocator's."""
        body = encode_allocation(GameServerAllocation(spec=spec))
        body.pop("status")
        if namespace:
            body["metadata"] = {"namespace": namespace}
        headers = {**self._headers, IDEMPOTENCY_HEADER: idempotency_key or uuid.uuid4().hex}
        delay = 0.01
        contention = failures = 0
        while True:
            try:
                status = await self._post(body, headers)
            except AllocatorError as exc:
                if exc.code == "IdempotencyKeyInUse" and contention < self._contention_retries:
                    contention += 1
                elif exc.status in (0, 503) and failures < self._retries:  # 0: timeout, connection lost
                    failures += 1
                else:
                    raise
            else:
                if status.state is not AllocationState.CONTENTION or contention == self._contention_retries:
                    return status
                contention += 1
            await asyncio.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.5)

    async def release_match(self, match_id: str) -> tuple[str, ...]:
        """Give back the servers allocated under ``match_id`` (the request's ``Idempotency-Key``)
        that are still Allocated with no player connected: ``DELETE /v1/allocations/{match_id}``
        answers ``{"released": [names]}`` (empty when there is nothing to release). An allocator
        without that endpoint answers 404 or 405: an ``AllocatorError`` with that status."""
        try:
            async with self._http().delete(
                f"{self.url}/v1/allocations/{quote(match_id, safe='')}", headers=self._headers, ssl=self._ssl
            ) as resp:
                status_code = resp.status
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise self._failed(exc) from exc
        try:
            doc = json.loads(text)
        except ValueError:
            doc = text[:200]
        released = doc.get("released") if isinstance(doc, dict) else None
        if status_code == 200 and isinstance(released, list) and all(isinstance(n, str) for n in released):
            return tuple(released)
        error = doc.get("error", {}) if isinstance(doc, dict) else {}
        raise AllocatorError(status_code, str(error.get("code", "Error")), str(error.get("message", doc)))

    async def _post(self, body: dict[str, Any], headers: dict[str, str]) -> GameServerAllocationStatus:
        try:
            async with self._http().post(
                f"{self.url}/v1/allocations", json=body, headers=headers, ssl=self._ssl
            ) as resp:
                doc = await resp.json(content_type=None)
                status_code = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise self._failed(exc) from exc
        if status_code in (201, 409, 429) and isinstance(doc, dict) and doc.get("status"):
            return from_wire(GameServerAllocationStatus, doc["status"])
        error = doc.get("error", {}) if isinstance(doc, dict) else {}
        raise AllocatorError(
            status_code, str(error.get("code", "Error")), str(error.get("message", doc)), error.get("field")
        )
