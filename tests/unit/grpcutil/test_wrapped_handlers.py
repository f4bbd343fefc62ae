"""The interceptors that wrap a method's handler wrap it once, on its first call, not on every
call: the handler grpc gives for a method is the same object on each."""

from typing import Any

import grpc
import pytest

from remit.acquirer.faults import MUTATING_METHODS, FaultConfig
from remit.acquirer.interceptor import FaultInjectionInterceptor
from remit.grpcutil import wrapped_handlers
from remit.grpcutil.concurrency import ConcurrencyLimit
from remit.grpcutil.in_flight import InFlightCalls
from remit.grpcutil.open_streams import OpenStreams
from remit.grpcutil.wrapped_handlers import Handler, WrappedHandlers

pytestmark = pytest.mark.anyio

METHOD = sorted(MUTATING_METHODS)[0]


async def _unary(request: Any, context: Any) -> Any:
    return request


async def _stream(request: Any, context: Any) -> Any:
    yield request


class Details:
    def __init__(self, method: str = METHOD) -> None:
        self.method = method
        self.invocation_metadata = ()


async def _intercepted(interceptor: grpc.aio.ServerInterceptor, handler: Handler) -> Handler:
    async def continuation(details: grpc.HandlerCallDetails) -> Handler:
        return handler

    intercepted = await interceptor.intercept_service(continuation, Details())  # type: ignore[arg-type]
    assert intercepted is not None
    assert intercepted is not handler
    return intercepted


@pytest.mark.parametrize(
    ("interceptor", "handler"),
    [
        (ConcurrencyLimit(10), grpc.unary_unary_rpc_method_handler(_unary)),
        (ConcurrencyLimit(10), grpc.unary_stream_rpc_method_handler(_stream)),
        (InFlightCalls(), grpc.unary_unary_rpc_method_handler(_unary)),
        (OpenStreams(), grpc.unary_stream_rpc_method_handler(_stream)),
        (
            FaultInjectionInterceptor(FaultConfig(latency_ms=1)),
            grpc.unary_unary_rpc_method_handler(_unary),
        ),
    ],
)
async def test_a_method_s_handler_is_wrapped_once(
    interceptor: grpc.aio.ServerInterceptor, handler: Handler
) -> None:
    first = await _intercepted(interceptor, handler)
    assert await _intercepted(interceptor, handler) is first
    # Another handler (another method's, or a refusal in its place) is wrapped for itself.
    other = handler._replace()  # type: ignore[attr-defined]
    assert await _intercepted(interceptor, other) is not first


def test_past_the_kept_bound_handlers_are_wrapped_unkept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wrapped_handlers, "MAX_KEPT", 1)
    wrapped: list[Handler] = []

    def wrap(handler: Handler) -> Handler:
        wrapped.append(handler)
        return grpc.unary_unary_rpc_method_handler(_unary)

    handlers = WrappedHandlers(wrap)
    kept: Handler = grpc.unary_unary_rpc_method_handler(_unary)
    unkept: Handler = grpc.unary_unary_rpc_method_handler(_unary)
    assert handlers.of(kept) is handlers.of(kept)
    assert handlers.of(unkept) is not handlers.of(unkept)
    assert wrapped == [kept, unkept, unkept]
