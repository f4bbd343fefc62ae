"""A real gRPC server whose one method fails every call with the status and trailing metadata it
is given: how a test makes a client read a refusal another service sent, malformed or not."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass
class Refusal:
    """What the method answers: `code` and `message`, and `details` as the
    grpc-status-details-bin trailer (bytes sent as they are, whatever they hold)."""

    code: grpc.StatusCode
    message: str
    details: bytes


def refusal_with(code: grpc.StatusCode, message: str, *details: Any) -> Refusal:
    """A refusal whose trailer is a well-formed `google.rpc.Status` of `code` and `message`
    holding `details` (each a `google.protobuf.Any`, which may hold anything)."""
    status = status_pb2.Status(code=code.value[0], message=message, details=details)
    return Refusal(code, message, status.SerializeToString())


@asynccontextmanager
async def refusing(service: str, method: str, refusal: Refusal) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to a local server of `service` whose `method` answers `refusal` to every call
    (its request unread); the server stopped when the block ends."""

    async def refuse(_request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        await context.abort(
            refusal.code,
            refusal.message,
            trailing_metadata=((STATUS_DETAILS_KEY, refusal.details),),
        )
        raise AssertionError("unreachable: abort raises")

    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(refuse)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service, {method: handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(0)
