"""A small in-process AcquirerService that records what it received (the real acquirer is
another engineer's process). It approves every card except Stripe's generic-decline number."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc

from remit.core.ids import new_id
from remit_api.acquirer.v1 import acquirer_pb2, acquirer_pb2_grpc
from remit_api.common.v1 import common_pb2

DECLINED_NUMBER = "4000000000000002"


class RecordingAcquirer(acquirer_pb2_grpc.AcquirerServiceServicer):
    def __init__(self) -> None:
        self.requests: list[acquirer_pb2.AuthorizeRequest] = []

    async def Authorize(  # noqa: N802 (the RPC name)
        self, request: acquirer_pb2.AuthorizeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> acquirer_pb2.AuthorizeResponse:
        self.requests.append(request)
        if request.card_number == DECLINED_NUMBER:
            result = acquirer_pb2.AuthorizationResult(
                approved=False,
                network_status=common_pb2.NETWORK_STATUS_DECLINED_BY_NETWORK,
                code="card_declined",
                decline_code="generic_decline",
                message="Your card was declined.",
                operation_id=new_id("op"),
            )
        else:
            result = acquirer_pb2.AuthorizationResult(
                approved=True,
                authorization_id=new_id("auth"),
                network_status=common_pb2.NETWORK_STATUS_APPROVED_BY_NETWORK,
                cvc_check=common_pb2.CARD_CHECK_RESULT_PASS
                if request.HasField("cvc")
                else common_pb2.CARD_CHECK_RESULT_UNCHECKED,
                captured=request.capture,
                operation_id=new_id("op"),
            )
        return acquirer_pb2.AuthorizeResponse(result=result)


@asynccontextmanager
async def running_acquirer(
    servicer: RecordingAcquirer | None = None,
) -> AsyncIterator[tuple[RecordingAcquirer, str]]:
    """A real grpc.aio server (of `servicer`, a new RecordingAcquirer by default) on a free
    port of 127.0.0.1; yields its servicer and its target."""
    servicer = servicer or RecordingAcquirer()
    server = grpc.aio.server()
    acquirer_pb2_grpc.add_AcquirerServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        await server.stop(0)
