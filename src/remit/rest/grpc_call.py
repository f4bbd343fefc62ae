"""Calling a core service from a handler: metadata in, `RemitError` out on failure."""

from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from remit.grpcutil.errors import remit_error_from_rpc_error
from remit.payments.send_budget import core_call_timeout_s
from remit.rest.context import ApiContext

Reply = TypeVar("Reply", bound=Message)


REPLAYED_KEY = "idempotent-replayed"


def _replayed(metadata: object) -> bool:
    return any(key == REPLAYED_KEY and value == "true" for key, value in metadata or ())  # type: ignore[attr-defined]


async def call(
    method: Callable[..., Awaitable[Reply]], request: Message, context: ApiContext
) -> Reply:
    """Call a core RPC for this request; a replayed answer marks the response as replayed.

    Its deadline is the core's worst case (`core_call_timeout_s`): the core bounds its steps at
    the card network by it, so nothing it does for the call outlasts it."""
    pending = method(request, metadata=context.grpc_metadata(), timeout=core_call_timeout_s())
    try:
        reply = await pending
    except grpc.aio.AioRpcError as error:
        if _replayed(error.trailing_metadata()):
            context.response_headers["Idempotent-Replayed"] = "true"
        raise remit_error_from_rpc_error(error) from None
    trailing = getattr(pending, "trailing_metadata", None)
    if trailing is not None and _replayed(await trailing()):
        context.response_headers["Idempotent-Replayed"] = "true"
    return reply
