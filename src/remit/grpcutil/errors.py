"""Domain errors across the gRPC boundary, in both directions.

Servers turn a `RemitError` into a precise status code plus an `ErrorDetail` inside
`google.rpc.Status` (the standard rich error model), so any caller, the REST facade included,
recovers Stripe's error fields (`type`, `code`, `param`, `decline_code`, ...) exactly.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import re
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, NoReturn, TypeAlias, TypeVar, cast

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status

from remit.core.errors import ErrorKind, RemitError
from remit.core.logging import mask_card_numbers
from remit.core.text_limits import cut_short, too_long_message
from remit.grpcutil.deadlines import note_deadline
from remit.grpcutil.request_lengths import OverLimit, field_over_limit, shortest_limit
from remit.grpcutil.request_text import field_with_nul
from remit.grpcutil.unstarted import UnstartedRefusalError, marked, refused_unstarted
from remit.storage.driver_errors import (
    DatabaseFault,
    database_fault,
    database_out_of_reach,
    pool_wait_timed_out,
    text_with_nul,
    unknown_account,
)
from remit.storage.outages import OutageLog
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1.payments_pb2 import PaymentIntent

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
    return cut_short(mask_card_numbers(text), limit)


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
    """The `ErrorDetail` a remit server attached to a failed call, if any. Details that do not
    decode (a proxy's, or bytes mangled on the way) are no detail: the call is classified by
    its status alone. Raising here would escape the callers that classify every failure, such
    as the breakers' (`GrpcCardNetwork._guarded`)."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            try:
                return detail_of_status(status_pb2.Status.FromString(value))
            except DecodeError:
                _warn_unreadable(error, "status details did not decode; ignored")
                return None
    return None


def detail_of_status(status: status_pb2.Status) -> common_pb2.ErrorDetail | None:
    """The `ErrorDetail` packed in a rich status (`to_rpc_status`), such as one a key stores
    to replay; None if it holds none. Raises DecodeError for a detail that does not decode."""
    for packed in status.details:
        detail = common_pb2.ErrorDetail()
        if packed.Unpack(detail):
            return detail
    return None


# The failed calls whose unreadable detail was logged already. One failure may be read several
# times (`GrpcCardNetwork._guarded` asks whether it is a refusal to send, then rebuilds it),
# and a line for each read would tell one bad answer as several. Weak: a failure is forgotten
# with the exception.
_warned: Final[weakref.WeakSet[object]] = weakref.WeakSet()


def _warn_unreadable(error: grpc.aio.AioRpcError, what: str) -> None:
    """Log, once per failed call, that part of its detail could not be read. Never the bytes:
    they are another service's answer, which may quote what a client sent."""
    if error in _warned:
        return
    _warned.add(error)
    log.warning("a failed call's (%s) %s", error.code().name, what)


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
    # A server's refusal past its bound of calls at once (`remit.grpcutil.concurrency`) is
    # marked as such. Other RESOURCE_EXHAUSTED without a remit detail (a message past its size
    # limit) are faults of remit's: INTERNAL, logged, and not worth a retry.
    if detail is None and refused_unstarted(error):
        return server_overloaded_error()
    if detail is None and error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return _message_too_large(error)
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
    return RemitError(
        message=detail.message,
        kind=kind,
        error_type=detail.type or "api_error",
        code=detail.code or None,
        param=detail.param or None,
        decline_code=detail.decline_code or None,
        charge=detail.charge or None,
        should_retry=detail.should_retry,
        related=_intent_of(detail, error),
    )


class MessageTooLargeError(RemitError):
    """A call whose request or answer was larger than a channel between remit's services
    takes: RESOURCE_EXHAUSTED with no remit detail, which gRPC itself raised. The same call
    fails the same way however often it is made, so it does not invite a retry."""


# gRPC's own words for a message past the limit: "Received message larger than max (N vs. M)".
_SIZES: Final = re.compile(r"\((\d+) vs\. (\d+)\)")
_logged_too_large: Final[weakref.WeakSet[object]] = weakref.WeakSet()


def _message_too_large(error: grpc.aio.AioRpcError) -> MessageTooLargeError:
    """The error of a call refused for a message's size, logged once per call: that is a bug
    of remit's (a list past its byte budget, remit.storage.answer_budget), which no client can
    get past. Only the sizes are logged, never gRPC's text, which may hold a server's."""
    if error not in _logged_too_large:
        _logged_too_large.add(error)
        sizes = _SIZES.search(error.details() or "")
        log.error(
            "a call failed with RESOURCE_EXHAUSTED without a remit detail: a message larger "
            "than the channel takes (%s bytes, the limit %s)",
            sizes.group(1) if sizes else "unknown",
            sizes.group(2) if sizes else "unknown",
        )
    return MessageTooLargeError(
        message="An internal answer to this request was larger than remit can pass on; "
        "retrying the same request will fail the same way.",
        kind=ErrorKind.INTERNAL,
        error_type="api_error",
    )


def _intent_of(detail: common_pb2.ErrorDetail, error: grpc.aio.AioRpcError) -> PaymentIntent | None:
    """The PaymentIntent a refusal carries (a decline's, or one refused for the intent's
    state), if any. One that is no PaymentIntent, or whose bytes do not decode, is left out,
    and the refusal passed on without it: failing instead would reach the caller as an
    unexpected exception, and its client as a bare 500, in place of the refusal."""
    if not detail.HasField("payment_intent"):
        return None
    intent = PaymentIntent()
    try:
        if detail.payment_intent.Unpack(intent):
            return intent
        unreadable = "is no PaymentIntent"
    except DecodeError:
        unreadable = "did not decode"
    _warn_unreadable(error, f"error detail's payment_intent {unreadable}; left out")
    return None


def server_overloaded_error() -> RemitError:
    """A service refused the call as it had as many in progress as it runs at once: Stripe
    answers overload as it answers a rate limit (429, `rate_limit`), which clients back off
    from; none was started, so nothing is stored under an idempotency key. Not
    `should_retry`: SDKs told to retry would do so within a second or two, adding to the
    load that refused it."""
    return RemitError(
        message="Request rate limit exceeded. Reduce the rate of your requests, backing off "
        "exponentially before retrying.",
        kind=ErrorKind.RESOURCE_EXHAUSTED,
        error_type="invalid_request_error",
        code="rate_limit",
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


def database_out_of_resources_error() -> RemitError:
    """UNAVAILABLE, as the service cannot serve for now through no fault of the request; but
    not to be retried right away (no `should_retry`, so no `Stripe-Should-Retry: true`): a full
    disk waits for an operator, and clients told to retry would do so in a loop."""
    return RemitError(
        message="The database is out of resources (disk space or memory), so the request was "
        "not carried out. It can be retried with the same idempotency key once they are back.",
        kind=ErrorKind.UNAVAILABLE,
        error_type="api_error",
    )


def over_database_limit_error() -> RemitError:
    """A request the database refuses on every try (a value too large to index): the caller's
    to change, never to retry."""
    return RemitError(
        message="The request holds a value too large for the database to store or look up. "
        "Send it with shorter values.",
        kind=ErrorKind.INVALID_ARGUMENT,
    )


def nul_in_request_error() -> RemitError:
    return RemitError(
        message="A text parameter contains a NUL character (U+0000), which cannot be stored.",
        kind=ErrorKind.INVALID_ARGUMENT,
    )


def unreadable_request_error() -> RemitError:
    return RemitError(
        message="The request could not be read: its bytes are not a valid message of the "
        "method's request type.",
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
    a retryable UNAVAILABLE (one out of resources into UNAVAILABLE not to retry at once, a value
    past one of its limits into INVALID_ARGUMENT: `driver_errors`), a NUL character the
    caller sent (which PostgreSQL cannot store) into INVALID_ARGUMENT, a row refused for
    naming an account that does not exist into NOT_FOUND, and anything else into a bare
    INTERNAL.

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
        self._outages = RequestOutages()

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        method = handler_call_details.method
        cached = self._guarded.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        guarded = _guard(handler, method, self._outages)
        self._guarded[method] = guarded
        return guarded


class RequestOutages:
    """The database outages a server's requests run into, each told as an `OutageLog` tells
    it: a line when it begins, a reminder each minute, a line when a request goes through
    again; not a line per request, which during an outage would be every request. The
    server is out of reach (or restarting, or out of connections: a warning, the callers
    retry) or out of a resource (a full disk: an error, it takes an operator), or its
    connections are all in use for longer than a request waits for one (the database not
    keeping up with the load: a warning, the callers retry; over once none has run out of
    time for a while, as requests that got a connection go through meanwhile). A deadlock or
    a timeout is one request's, among others that go through: a line of its own."""

    def __init__(self) -> None:
        self._out_of_reach = OutageLog(
            log, "serving requests", is_outage=database_out_of_reach, level=logging.WARNING,
            meanwhile="each is answered UNAVAILABLE, to be retried",
        )  # fmt: skip
        self._out_of_resources = OutageLog(
            log, "serving requests", is_outage=_out_of_resources, level=logging.ERROR,
            meanwhile="each is answered UNAVAILABLE",
        )  # fmt: skip
        self._short_of_connections = OutageLog(
            log, "serving requests", is_outage=pool_wait_timed_out, level=logging.WARNING,
            meanwhile="those that wait too long for a connection are answered UNAVAILABLE, to "
            "be retried", settle_s=POOL_OUTAGE_SETTLE_S,
        )  # fmt: skip

    def failed(self, error: BaseException, method: str) -> None:
        """Log that a request to `method` failed on a database that could not do its work."""
        if pool_wait_timed_out(error):
            self._short_of_connections.failed(error)
        elif database_out_of_reach(error):
            self._out_of_reach.failed(error)
        elif _out_of_resources(error):
            self._out_of_resources.failed(error)
        else:
            log.warning("database unavailable in %s (%s)", method, type(error).__name__)

    def went_through(self, method: str) -> None:
        """Note that a request to `method` was answered: when it is one of remit's own
        (which read or write the database), an outage is over. A health check or a
        reflection call, which never touches it, says nothing about the database."""
        if method.startswith(_REMIT_METHODS):
            self._out_of_reach.succeeded()
            self._out_of_resources.succeeded()
            self._short_of_connections.succeeded()


_REMIT_METHODS: Final = "/remit_api."
# Seconds without a request that waited too long for a connection before one that goes through
# says the pool keeps up again.
POOL_OUTAGE_SETTLE_S: Final = 10.0


def _out_of_resources(error: BaseException) -> bool:
    return database_fault(error) is DatabaseFault.OUT_OF_RESOURCES


Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
# grpc.aio registers coroutine and async generator functions where the typing stubs describe
# sync ones.
_Inner: TypeAlias = "Callable[[Any, Context], Any]"


def _guard(handler: Handler, method: str, outages: RequestOutages) -> Handler:
    """`handler`, of whatever shape, behind the same checks and the same error mapping. A
    single request is read here rather than by grpc, which answers bytes that are no message
    of the method's type with UNKNOWN; here they are the caller's INVALID_ARGUMENT. Streamed
    requests are still read by grpc (a handler may read them with `context.read`), each checked
    as the handler takes it from its iterator."""
    deserialize = handler.request_deserializer
    serialize = handler.response_serializer
    if handler.unary_unary is not None:
        unary_unary = cast(_Inner, handler.unary_unary)

        async def answered(raw: Any, context: Context) -> Any:
            return await _mapped(lambda: unary_unary(_read_request(raw, deserialize), context),
                                 context, method, outages)  # fmt: skip

        return grpc.unary_unary_rpc_method_handler(
            answered, request_deserializer=None, response_serializer=serialize
        )
    if handler.unary_stream is not None:
        unary_stream = cast(_Inner, handler.unary_stream)
        streamed = _streamed(
            lambda raw, context: unary_stream(_read_request(raw, deserialize), context),
            method,
            outages,
            generator=inspect.isasyncgenfunction(unary_stream),
        )
        return grpc.unary_stream_rpc_method_handler(
            streamed, request_deserializer=None, response_serializer=serialize
        )
    if handler.stream_unary is not None:
        stream_unary = cast(_Inner, handler.stream_unary)

        async def answered_stream(requests: Any, context: Context) -> Any:
            return await _mapped(lambda: stream_unary(_checked(requests), context),
                                 context, method, outages)  # fmt: skip

        return grpc.stream_unary_rpc_method_handler(
            answered_stream, request_deserializer=deserialize, response_serializer=serialize
        )
    stream_stream = cast(_Inner, handler.stream_stream)
    streamed = _streamed(
        lambda requests, context: stream_stream(_checked(requests), context),
        method,
        outages,
        generator=inspect.isasyncgenfunction(stream_stream),
    )
    return grpc.stream_stream_rpc_method_handler(
        streamed, request_deserializer=deserialize, response_serializer=serialize
    )


async def _mapped(
    call: Callable[[], Awaitable[Any]], context: Context, method: str, outages: RequestOutages
) -> Any:
    """What `call` answers, or its failure as the status it maps to."""
    # Noted for the calls the handler makes on, which must end before its caller gives up.
    note_deadline(context)
    try:
        answer = await call()
    except grpc.aio.AbortError:
        raise
    except Exception as error:
        await _abort(error, context, method, outages)
    outages.went_through(method)
    return answer


def _streamed(start: _Inner, method: str, outages: RequestOutages, *, generator: bool) -> _Inner:
    """A streaming handler that runs `start` and maps its failures, before its first reply or
    after any: each reply goes out as the handler yields it (nothing is buffered), and the
    handler's generator is closed when the call ends, however it ends."""
    if not generator:
        # A handler that writes its replies itself (`context.write`).
        async def written(request: Any, context: Context) -> None:
            await _mapped(lambda: start(request, context), context, method, outages)

        return written

    async def replies(request: Any, context: Context) -> AsyncIterator[Any]:
        try:
            stream = start(request, context)
            async with contextlib.aclosing(stream):
                async for reply in stream:
                    yield reply
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await _abort(error, context, method, outages)
        outages.went_through(method)

    return replies


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """Streamed requests, each refused as `_read_request` refuses a single one (grpc reads
    them as the handler asks for them)."""
    iterator = aiter(requests)
    while True:
        try:
            request = await anext(iterator)
        except StopAsyncIteration:
            return
        except DecodeError:
            raise unreadable_request_error() from None
        yield _read_request(request, None)


async def _abort(
    error: Exception, context: Context, method: str, outages: RequestOutages
) -> NoReturn:
    status = (
        rpc_status.to_status(to_rpc_status(error))
        if isinstance(error, RemitError)
        else _status_of_unexpected(error, method, outages)
    )
    if isinstance(error, UnstartedRefusalError):
        status = marked(status)
    await context.abort_with_status(status)
    raise AssertionError("unreachable: abort_with_status raises")


def _status_of_unexpected(error: Exception, method: str, outages: RequestOutages) -> grpc.Status:
    """The status of an exception that is no `RemitError`: what a database error says about
    the request, the caller's NUL or unknown account, and else a bare INTERNAL (logged here
    with its traceback; its text never leaves the process)."""
    mapped = _database_refusal(error, method, outages)
    if mapped is None and text_with_nul(error):
        mapped = nul_in_request_error()
    if mapped is None and unknown_account(error):
        mapped = unknown_account_error()
    if mapped is not None:
        return rpc_status.to_status(to_rpc_status(mapped))
    log.error("unhandled error in %s", method, exc_info=error)
    status = status_pb2.Status(code=code_pb2.INTERNAL, message="An unexpected error occurred.")
    return rpc_status.to_status(status)


def _database_refusal(error: Exception, method: str, outages: RequestOutages) -> RemitError | None:
    fault = database_fault(error)
    if fault is DatabaseFault.TEMPORARY:
        # Not a fault of the request: say so, and that a retry is safe.
        outages.failed(error, method)
        return database_unavailable_error()
    if fault is DatabaseFault.OUT_OF_RESOURCES:
        outages.failed(error, method)
        return database_out_of_resources_error()
    if fault is DatabaseFault.OVER_LIMIT:
        # A value no field's declared limit kept out: worth a line, to give that field one.
        log.warning("a request to %s went past a database limit (%s)", method,
                    type(error).__name__)  # fmt: skip
        return over_database_limit_error()
    return None


def _read_request(raw: Any, deserialize: Callable[[Any], Any] | None) -> Any:
    """The request message, refused (INVALID_ARGUMENT) if the bytes are no message of its
    type, if any of its text holds a NUL, which no text stored in PostgreSQL can, or if any of
    its text is longer than its field allows."""
    try:
        request = raw if deserialize is None else deserialize(raw)
    except DecodeError:
        raise unreadable_request_error() from None
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
