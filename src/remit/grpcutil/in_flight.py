"""The calls a gRPC server is running, so that a stopping server can wait for their cleanup.

`grpc.aio.Server.stop(grace)` cancels the calls still running when the grace runs out and
returns without waiting for them to unwind: a handler releasing its idempotency key in its
`except`/`finally` would then meet an engine already disposed (`on_stop`) or a loop being torn
down, and the key would stay held for its whole lease, refusing the client's retry."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, cast

import grpc

from remit.grpcutil.wrapped_handlers import WrappedHandlers

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
_Behavior: TypeAlias = Callable[[Any, Any], Awaitable[Any]]
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]"


class InFlightCalls(grpc.aio.ServerInterceptor):
    """Tracks the task of every unary call until its handler has ended, cleanup included."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tracked = WrappedHandlers(self._tracked_handler)

    async def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> "Handler | None":
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        return self._tracked.of(handler)

    def _tracked_handler(self, handler: Handler) -> Handler:
        behavior = cast(_Behavior, handler.unary_unary)
        tasks = self._tasks

        async def tracked(request: Any, context: Any) -> Any:
            task = asyncio.current_task()
            if task is not None:
                tasks.add(task)
            try:
                return await behavior(request, context)
            finally:
                if task is not None:
                    tasks.discard(task)

        # A namedtuple: the same handler, serializers and all, but for its behavior.
        return cast(Handler, handler._replace(unary_unary=tracked))  # type: ignore[attr-defined]

    async def wait(self, timeout_s: float) -> None:
        """Wait, at most `timeout_s`, for the calls still unwinding."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
