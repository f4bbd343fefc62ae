"""Mutating RPCs under the caller's idempotency key (gRPC metadata `idempotency-key`): the
call as the idempotency layer sees it, and the answer, fresh or replayed. A replayed answer
(success or error) carries the trailing metadata `idempotent-replayed: true`."""

from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import status_pb2

from remit.core.ids import random_token
from remit.grpcutil.metadata import REPLAYED_KEY as REPLAYED_KEY  # the answers' marker
from remit.grpcutil.metadata import call_context
from remit.payments.keyed import Done, Keyed, KeyedCall, Replay
from remit.payments.requests import AUTO_KEY_PREFIX, scoped_key

Context = grpc.aio.ServicerContext[Any, Any]
T = TypeVar("T")
R = TypeVar("R", bound=Message)


def keyed_call(context: Context, endpoint: str, request: Message) -> KeyedCall:
    call = call_context(context)
    # Without a client key the request still gets one, so the completer can finish it: a
    # fresh one, never the request id, which names no call of its own (a service passing one
    # trace id on to several calls would have the second replay the first, or be refused as
    # reusing a key it never sent).
    if call.idempotency_key is not None:
        key = scoped_key(call.idempotency_key, publishable=call.publishable)
    else:
        key = f"{AUTO_KEY_PREFIX}{random_token()}"
    return KeyedCall(
        account_id=call.account_id,
        key=key,
        endpoint=endpoint,
        request_body=request.SerializeToString(deterministic=True),
        request_id=call.request_id,
        request_path=call.request_path,
    )


async def reply(
    result: Done[T] | Replay,
    response_type: type[R],
    build: Callable[[T], R],
    context: Context,
) -> R:
    """The fresh response, or the stored one (success or error) marked as replayed."""
    if isinstance(result, Done):
        return build(result.value)
    if result.code == 0:
        context.set_trailing_metadata(((REPLAYED_KEY, "true"),))
        return response_type.FromString(result.body)
    status = status_pb2.Status.FromString(result.body)
    await context.abort_with_status(_ReplayedStatus(status))
    raise AssertionError("unreachable: abort_with_status raises")


class _ReplayedStatus(grpc.Status):
    """A stored error status, with its rich details and the replay marker."""

    def __init__(self, status: status_pb2.Status) -> None:
        self.code = next(c for c in grpc.StatusCode if c.value[0] == status.code)
        self.details = status.message
        self.trailing_metadata = (
            ("grpc-status-details-bin", status.SerializeToString()),
            (REPLAYED_KEY, "true"),
        )


def client_keyed(
    context: Context, endpoint: str, request: Message, respond: Callable[[T], bytes]
) -> Keyed[T] | None:
    """The change under the client's own key, or None without one: a change that is one
    transaction needs no key of remit's making (there is nothing for the completer to finish)."""
    if call_context(context).idempotency_key is None:
        return None
    return Keyed(keyed_call(context, endpoint, request), respond)


def serialized(answer: Callable[[T], Message]) -> Callable[[T], bytes]:
    """The stored form of an answer builder's reply."""
    return lambda value: answer(value).SerializeToString()
