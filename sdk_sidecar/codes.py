"""gRPC status codes and the HTTP status the Agones REST gateway answers for each: the one table.

Both front doors report errors as gRPC codes; the REST door (``sdk_sidecar.http``) and the Python
client (which maps a gRPC failure to the status the REST door would have answered) both read
``HTTP_STATUS``. Nothing is imported here, so the client can use it without the server side.
"""

from __future__ import annotations

from enum import IntEnum


class GrpcCode(IntEnum):
    """gRPC status codes: both front doors report errors with these (REST maps them to HTTP)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


HTTP_STATUS: dict[GrpcCode, int] = {
    GrpcCode.OK: 200,
    GrpcCode.CANCELLED: 499,
    GrpcCode.UNKNOWN: 500,
    GrpcCode.INVALID_ARGUMENT: 400,
    GrpcCode.DEADLINE_EXCEEDED: 504,
    GrpcCode.NOT_FOUND: 404,
    GrpcCode.ALREADY_EXISTS: 409,
    GrpcCode.PERMISSION_DENIED: 403,
    GrpcCode.RESOURCE_EXHAUSTED: 429,
    GrpcCode.FAILED_PRECONDITION: 400,
    GrpcCode.ABORTED: 409,
    GrpcCode.OUT_OF_RANGE: 400,
    GrpcCode.UNIMPLEMENTED: 501,
    GrpcCode.INTERNAL: 500,
    GrpcCode.UNAVAILABLE: 503,
    GrpcCode.DATA_LOSS: 500,
    GrpcCode.UNAUTHENTICATED: 401,
}
"""grpc-gateway v2's ``runtime.HTTPStatusFromCode``."""


def http_status(code: int) -> int:
    """The HTTP status of gRPC ``code`` (500 for a code gRPC does not define, as the gateway does)."""
    try:
        return HTTP_STATUS[GrpcCode(code)]
    except ValueError:
        return 500
