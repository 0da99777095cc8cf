"""Errors of the allocator package, each with the HTTP answer it gets (``fleetmatch.http`` maps them).

    FleetmatchError
    └── AllocationError
        ├── KeyInUseError      another request with this Idempotency-Key is being served (409)
        └── ClientGoneError    the client hung up before its server was claimed (499, read by nobody)

(A key reused with another request body is a ``ValidationError`` naming the header: 422.)
"""

from __future__ import annotations

from fleetmatch.errors import FleetmatchError


class AllocationError(FleetmatchError):
    """Base of the allocator's own errors."""


class KeyInUseError(AllocationError):
    """A request with the same idempotency key is in progress (here or in another allocator):
    retrying with the same key returns its server once it is claimed."""

    http_status = 409
    http_code = "IdempotencyKeyInUse"
    retry_after = 1.0

    def __init__(self) -> None:
        super().__init__("another request with this Idempotency-Key is in progress: retry with the same key")


class KeyReleasedError(AllocationError):
    """The allocation made under this idempotency key was released (its match was abandoned):
    a late request with the key must not claim another server."""

    http_status = 409
    http_code = "AllocationReleased"

    def __init__(self) -> None:
        super().__init__("the allocation with this Idempotency-Key was released; a new request needs a new key")


class ClientGoneError(AllocationError):
    """The client closed its connection before the claim, so nothing was claimed for it."""

    http_status = 499
    http_code = "ClientClosedRequest"

    def __init__(self) -> None:
        super().__init__("the client hung up before a server was claimed for it")
