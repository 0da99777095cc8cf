"""Python client of the allocation API (the CLI and the matchmaker use it).

``allocate`` returns the allocation's status: ``Allocated`` with the server, or ``UnAllocated``
when nothing is free (a normal answer on the hot path, not an exception). ``Contention`` is retried
with jittered back-off. Nothing else is retried blindly: a request that may have reached the
allocator is never sent twice, because a second success would leave a server allocated to nobody.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from typing import Any

import aiohttp

from fleetmatch.allocation import (
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
        ssl_context: ssl.SSLContext | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retries = contention_retries
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

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def allocate(self, spec: GameServerAllocationSpec) -> GameServerAllocationStatus:
        """Allocate a server; ``status.state`` says whether it worked (Allocated) or nothing was free."""
        body = encode_allocation(GameServerAllocation(spec=spec))
        body.pop("status")
        delay = 0.01
        for attempt in range(self._retries + 1):
            status = await self._post(body)
            if status.state is not AllocationState.CONTENTION or attempt == self._retries:
                return status
            await asyncio.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.5)
        raise AssertionError("unreachable")

    async def _post(self, body: dict[str, Any]) -> GameServerAllocationStatus:
        try:
            async with self._http().post(
                f"{self.url}/v1/allocations", json=body, headers=self._headers, ssl=self._ssl
            ) as resp:
                doc = await resp.json(content_type=None)
                status_code = resp.status
        except aiohttp.ClientConnectorError as exc:
            raise AllocatorError(0, "Unreachable", f"cannot connect to {self.url}: {exc.os_error}") from exc
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise AllocatorError(0, "Failed", f"request to {self.url} failed: {exc!r}") from exc
        if status_code in (201, 409, 429) and isinstance(doc, dict) and doc.get("status"):
            return from_wire(GameServerAllocationStatus, doc["status"])
        error = doc.get("error", {}) if isinstance(doc, dict) else {}
        raise AllocatorError(
            status_code, str(error.get("code", "Error")), str(error.get("message", doc)), error.get("field")
        )
