"""Calling a core service from a handler: metadata in, `RemitError` out on failure."""

from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from remit.grpcutil.errors import remit_error_from_rpc_error
from remit.rest.context import ApiContext

Reply = TypeVar("Reply", bound=Message)
CALL_TIMEOUT_S = 30.0


async def call(
    method: Callable[..., Awaitable[Reply]], request: Message, context: ApiContext
) -> Reply:
    try:
        return await method(request, metadata=context.grpc_metadata(), timeout=CALL_TIMEOUT_S)
    except grpc.aio.AioRpcError as error:
        raise remit_error_from_rpc_error(error) from None
