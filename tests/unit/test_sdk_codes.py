"""The one gRPC -> HTTP status table, read by the REST front door and by the Python client."""

from __future__ import annotations

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata

from sdk_sidecar.client import GrpcTransport
from sdk_sidecar.codes import HTTP_STATUS, GrpcCode, http_status


def test_every_grpc_code_has_its_gateway_status() -> None:
    assert {int(c) for c in HTTP_STATUS} == {int(c.value[0]) for c in grpc.StatusCode}
    # grpc-gateway v2's HTTPStatusFromCode, for the codes the Agones sidecar answers.
    assert [http_status(c) for c in (0, 2, 3, 5, 12, 14)] == [200, 500, 400, 404, 501, 503]
    assert http_status(99) == 500  # a code gRPC does not define


@pytest.mark.parametrize("code", list(grpc.StatusCode), ids=lambda c: c.name)
def test_the_grpc_client_reports_the_status_the_rest_door_answers(code: grpc.StatusCode) -> None:
    number = int(code.value[0])
    err = GrpcTransport("127.0.0.1", 1, 1.0)._error(AioRpcError(code, Metadata(), Metadata(), "why"))
    # UNAVAILABLE means the sidecar was not reached: status 0, as a refused REST connection.
    expected = 0 if number == GrpcCode.UNAVAILABLE else HTTP_STATUS[GrpcCode(number)]
    assert (err.status, err.code, err.message) == (expected, number, "why")
