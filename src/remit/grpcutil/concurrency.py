"""How many calls one gRPC server runs at once, and the answer to those past it.

grpc's own `maximum_concurrent_rpcs` counts every call, health checks included: a server busy
up to its bound failed its health checks exactly when it was busy, and was restarted or taken
out of its load balancer for it. This bound counts the calls of remit's services and lets the
health service's through, so a busy server still says it is serving.

Past the bound a call is refused at once, before its handler runs, with RESOURCE_EXHAUSTED
marked as a refusal of a call not carried out (`remit.grpcutil.unstarted`), so that a caller
knows it may send it again. A call is counted, and refused, as its handler starts (the
handler another interceptor put in its place included, such as a refusal of its credential).

Only unary calls and server streams are counted; calls streaming requests (the reflection
service, a tool's) are not remit's work and pass.
"""

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, TypeAlias, cast

import grpc

from remit.grpcutil.unstarted import MARK
from remit.grpcutil.wrapped_handlers import WrappedHandlers

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]"
_Behavior: TypeAlias = Callable[[Any, Any], Any]

EXEMPT_SERVICE_PREFIX: Final = "/grpc.health.v1.Health/"
# The details grpc's own bound gave its refusals, kept for whoever reads them in a log.
REFUSAL_DETAILS: Final = "Concurrent RPC limit exceeded!"


class ConcurrencyLimit(grpc.aio.ServerInterceptor):
    """Runs at most `max_concurrent_rpcs` calls at once, health checks aside; refuses the
    others with RESOURCE_EXHAUSTED."""

    def __init__(self, max_concurrent_rpcs: int) -> None:
        self._max = max_concurrent_rpcs
        self._running = 0
        self._limited = WrappedHandlers(self._limited_handler)

    @property
    def running(self) -> int:
        return self._running

    async def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> "Handler | None":
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(EXEMPT_SERVICE_PREFIX):
            return handler
        return self._limited.of(handler)

    def _limited_handler(self, handler: Handler) -> Handler:
        if handler.unary_unary is not None:
            limited = self._limited_unary(cast(_Behavior, handler.unary_unary))
            # A namedtuple: the same handler, serializers and all, but for its behavior.
            return cast(Handler, handler._replace(unary_unary=limited))  # type: ignore[attr-defined]
        if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
            limited = self._limited_stream(cast(_Behavior, handler.unary_stream))
            return cast(Handler, handler._replace(unary_stream=limited))  # type: ignore[attr-defined]
        return handler

    def _limited_unary(self, behavior: _Behavior) -> _Behavior:
        async def limited(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            # Counted when the handler starts, not when the call is intercepted: a call whose
            # request cannot be read never reaches it, and would hold its place for ever.
            if self._running >= self._max:
                await refuse(context)
            self._running += 1
            try:
                return await behavior(request, context)
            finally:
                self._running -= 1

        return limited

    def _limited_stream(self, behavior: _Behavior) -> _Behavior:
        async def limited(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            if self._running >= self._max:
                await refuse(context)
            self._running += 1
            try:
                async for reply in behavior(request, context):
                    yield reply
            finally:
                self._running -= 1

        return limited


async def refuse(context: grpc.aio.ServicerContext[Any, Any]) -> None:
    """End the call as refused for the bound (raises, as `abort` does)."""
    await context.abort(
        grpc.StatusCode.RESOURCE_EXHAUSTED, REFUSAL_DETAILS, trailing_metadata=(MARK,)
    )
