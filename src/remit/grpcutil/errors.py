"""Domain errors across the gRPC boundary, in both directions.

Servers turn a `RemitError` into a precise status code plus an `ErrorDetail` inside
`google.rpc.Status` (the standard rich error model), so any caller, the REST facade included,
recovers Stripe's error fields (`type`, `code`, `param`, `decline_code`, ...) exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeAlias, TypeVar, cast

import grpc
from google.protobuf import any_pb2, symbol_database
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status

from remit.core.errors import ErrorKind, RemitError
from remit.core.logging import mask_card_numbers
from remit.core.text_limits import too_long_message
from remit.grpcutil.request_lengths import OverLimit, field_over_limit, shortest_limit
from remit.grpcutil.request_text import field_with_nul
from remit.storage.driver_errors import database_unavailable, text_with_nul, unknown_account
from remit_api.common.v1 import common_pb2

log = logging.getLogger(__name__)

GRPC_CODES: Final = {
    ErrorKind.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorKind.CARD_DECLINED: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorKind.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorKind.CONFLICT: grpc.StatusCode.ABORTED,
    ErrorKind.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorKind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorKind.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.INTERNAL: grpc.StatusCode.INTERNAL,
    ErrorKind.DATA_LOSS: grpc.StatusCode.DATA_LOSS,
}

HTTP_STATUS: Final = {
    ErrorKind.INVALID_ARGUMENT: 400,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.FAILED_PRECONDITION: 400,
    ErrorKind.CARD_DECLINED: 402,
    ErrorKind.ALREADY_EXISTS: 400,
    ErrorKind.CONFLICT: 409,
    ErrorKind.PERMISSION_DENIED: 403,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.RESOURCE_EXHAUSTED: 429,
    ErrorKind.INTERNAL: 500,
    ErrorKind.DATA_LOSS: 500,
}

_KIND_BY_GRPC_CODE: Final = {
    grpc.StatusCode.INVALID_ARGUMENT: ErrorKind.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND: ErrorKind.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION: ErrorKind.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS: ErrorKind.ALREADY_EXISTS,
    grpc.StatusCode.ABORTED: ErrorKind.CONFLICT,
    grpc.StatusCode.PERMISSION_DENIED: ErrorKind.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED: ErrorKind.UNAUTHENTICATED,
    grpc.StatusCode.UNAVAILABLE: ErrorKind.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ErrorKind.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ErrorKind.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DATA_LOSS: ErrorKind.DATA_LOSS,
}


# The most characters of a message, and of a param, a refusal carries. Messages may quote client
# input, which most cut short where they quote it (`remit.core.errors.echoed`); this holds for
# any that does not, so that no refusal outgrows what a caller receives
# (`internal_auth.MAX_REPLY_METADATA_BYTES`) and reaches it as a transport failure instead.
MAX_MESSAGE_CHARS: Final = 2000
MAX_PARAM_CHARS: Final = 200


def _shown(text: str, limit: int) -> str:
    """Text of a refusal as it leaves the process: a card number the caller put where an id
    or a code goes (`No such PaymentMethod: '4242...'`) masked, as the facade masks it, and
    cut to `limit` characters."""
    text = mask_card_numbers(text)
    return text if len(text) <= limit else text[:limit] + "..."


def error_detail(error: RemitError, related: Message | None = None) -> common_pb2.ErrorDetail:
    detail = common_pb2.ErrorDetail(
        type=error.error_type,
        code=error.code or "",
        decline_code=error.decline_code or "",
        param=_shown(error.param or "", MAX_PARAM_CHARS),
        message=_shown(error.message, MAX_MESSAGE_CHARS),
        charge=error.charge or "",
        should_retry=error.should_retry,
        http_status=HTTP_STATUS[error.kind],
    )
    if related is not None:
        detail.payment_intent.Pack(related)
    return detail


def to_rpc_status(error: RemitError) -> status_pb2.Status:
    code = GRPC_CODES[error.kind]
    packed = any_pb2.Any()
    related = error.related if isinstance(error.related, Message) else None
    packed.Pack(error_detail(error, related))
    message = _shown(error.message, MAX_MESSAGE_CHARS)
    return status_pb2.Status(code=code.value[0], message=message, details=[packed])


def detail_from_rpc_error(error: grpc.aio.AioRpcError) -> common_pb2.ErrorDetail | None:
    """The `ErrorDetail` a remit server attached to a failed call, if any."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            for packed in status.details:
                detail = common_pb2.ErrorDetail()
                if packed.Unpack(detail):
                    return detail
    return None


def kind_from_grpc_code(code: grpc.StatusCode) -> ErrorKind:
    return _KIND_BY_GRPC_CODE.get(code, ErrorKind.INTERNAL)


_Reply = TypeVar("_Reply")


async def answer_of(pending: Awaitable[_Reply]) -> _Reply:
    """The reply of a call to another remit service, or its failure as the `RemitError` the
    server raised (`remit_error_from_rpc_error`)."""
    try:
        return await pending
    except grpc.aio.AioRpcError as error:
        raise remit_error_from_rpc_error(error) from None


def remit_error_from_rpc_error(error: grpc.aio.AioRpcError) -> RemitError:
    """Rebuild the server's `RemitError` on the client side of a call."""
    detail = detail_from_rpc_error(error)
    kind = kind_from_grpc_code(error.code())
    if detail is None:
        retryable = kind is ErrorKind.UNAVAILABLE
        return RemitError(
            message="An internal service is unavailable; please retry."
            if retryable
            else "An unexpected error occurred.",
            kind=kind if retryable else ErrorKind.INTERNAL,
            error_type="api_error",
            should_retry=retryable,
        )
    if detail.http_status == 402:
        kind = ErrorKind.CARD_DECLINED
    related: Message | None = None
    if detail.HasField("payment_intent"):
        type_name = detail.payment_intent.type_url.rpartition("/")[2]
        related = symbol_database.Default().GetSymbol(type_name)()
        detail.payment_intent.Unpack(related)
    return RemitError(
        message=detail.message,
        kind=kind,
        error_type=detail.type or "api_error",
        code=detail.code or None,
        param=detail.param or None,
        decline_code=detail.decline_code or None,
        charge=detail.charge or None,
        should_retry=detail.should_retry,
        related=related,
    )


Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]"


def database_unavailable_error() -> RemitError:
    return RemitError(
        message="A temporary database problem interrupted the request. Retry it with the same "
        "idempotency key.",
        kind=ErrorKind.UNAVAILABLE,
        error_type="api_error",
        should_retry=True,
    )


def nul_in_request_error() -> RemitError:
    return RemitError(
        message="A text parameter contains a NUL character (U+0000), which cannot be stored.",
        kind=ErrorKind.INVALID_ARGUMENT,
    )


def unknown_account_error() -> RemitError:
    return RemitError(
        message="No such account: the account this call names (its remit-account-id) does not "
        "exist.",
        kind=ErrorKind.NOT_FOUND,
        code="resource_missing",
    )


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Turns `RemitError` into a rich status, a database that is unavailable for the moment into
    a retryable UNAVAILABLE, a NUL character the caller sent (which PostgreSQL cannot store)
    into INVALID_ARGUMENT, a row refused for naming an account that does not exist into
    NOT_FOUND, and anything else into a bare INTERNAL.

    It reads each request itself, and refuses as INVALID_ARGUMENT, before the handler runs,
    bytes that are no message of the method's request type, a NUL in any of the message's
    text (`request_text`) and a value longer than its field's declared `max_length`
    (`request_lengths`): all are the caller's mistakes, and none may claim anything (an
    idempotency key) first.

    Unexpected exceptions are logged here, with their traceback, and their text never leaves
    the process: it may hold data that must not reach a caller.

    It goes last (innermost) in a server's interceptors: it keeps the handler its continuation
    gives for each method, which only the service registration itself decides.
    """

    def __init__(self) -> None:
        # A method's handler never changes, so each is wrapped once, not on every call.
        self._guarded: dict[str, Handler] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        method = handler_call_details.method
        cached = self._guarded.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        guarded = self._guard(handler, method)
        self._guarded[method] = guarded
        return guarded

    @staticmethod
    def _guard(handler: Handler, method: str) -> Handler:
        # grpc.aio registers coroutine functions where the typing stubs describe sync ones.
        inner = cast(Callable[[Any, Any], Awaitable[Any]], handler.unary_unary)
        # The request is read here rather than by grpc, which answers bytes that are no message
        # of the method's type with UNKNOWN; here they are the caller's INVALID_ARGUMENT.
        deserialize = handler.request_deserializer

        async def guarded(raw: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                return await inner(_read_request(raw, deserialize), context)
            except RemitError as error:
                await context.abort_with_status(rpc_status.to_status(to_rpc_status(error)))
            except grpc.aio.AbortError:
                raise
            except Exception as error:
                if database_unavailable(error):
                    # Not a fault of the request: say so, and that a retry is safe.
                    log.warning("database unavailable in %s (%s)", method, type(error).__name__)
                    await context.abort_with_status(
                        rpc_status.to_status(to_rpc_status(database_unavailable_error()))
                    )
                if text_with_nul(error):
                    await context.abort_with_status(
                        rpc_status.to_status(to_rpc_status(nul_in_request_error()))
                    )
                if unknown_account(error):
                    await context.abort_with_status(
                        rpc_status.to_status(to_rpc_status(unknown_account_error()))
                    )
                log.exception("unhandled error in %s", method)
                status = status_pb2.Status(
                    code=code_pb2.INTERNAL, message="An unexpected error occurred."
                )
                await context.abort_with_status(rpc_status.to_status(status))
            raise AssertionError("unreachable: abort_with_status raises")

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=None,
            response_serializer=handler.response_serializer,
        )


def _read_request(raw: Any, deserialize: Callable[[Any], Any] | None) -> Any:
    """The request message, refused (INVALID_ARGUMENT) if the bytes are no message of its
    type, if any of its text holds a NUL, which no text stored in PostgreSQL can, or if any of
    its text is longer than its field allows."""
    try:
        request = raw if deserialize is None else deserialize(raw)
    except DecodeError:
        raise RemitError(
            message="The request could not be read: its bytes are not a valid message of the "
            "method's request type.",
            kind=ErrorKind.INVALID_ARGUMENT,
        ) from None
    # A NUL in any string is a 0x00 byte in the message's encoding (strings travel as their
    # UTF-8 bytes), so bytes without one need no walk through the message: nearly every call.
    holds_zero_byte = not isinstance(raw, bytes) or b"\x00" in raw
    if holds_zero_byte and isinstance(request, Message):
        field = field_with_nul(request)
        if field is not None:
            refused = nul_in_request_error()
            raise RemitError(message=refused.message, kind=refused.kind, param=field)
    if isinstance(request, Message):
        _refuse_over_long_text(request, raw)
    return request


def _refuse_over_long_text(request: Message, raw: Any) -> None:
    """Refuse a value longer than its field's `max_length` (`request_lengths`). A string takes
    at least as many bytes of the encoding as it has characters, so a request whose bytes are
    no more than the shortest limit below its type holds none: most calls, unwalked."""
    shortest = shortest_limit(request)
    if shortest is None or (isinstance(raw, bytes) and len(raw) <= shortest):
        return
    over = field_over_limit(request)
    if over is not None:
        raise over_long_text_error(over)


def over_long_text_error(over: OverLimit) -> RemitError:
    return RemitError(
        message=too_long_message(over.value, over.limit),
        kind=ErrorKind.INVALID_ARGUMENT,
        code="parameter_invalid",
        param=over.param,
    )
