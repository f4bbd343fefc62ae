"""The server-streaming calls a gRPC server is serving, so that a stopping server ends them.

A stream (the event stream of `remit listen`) has no end of its own. Left to
`grpc.aio.Server.stop(grace)`, it kept every stop waiting out its whole grace, meant for calls
that do end (a payment at the network), and was then cut off. A stopping server ends its
streams as the stop begins instead, and refuses any that starts after: each with UNAVAILABLE,
so that its client opens it again, on a server that is running (the event stream resumes after
the last event its client received, `starting_after`).
"""

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, TypeAlias, cast

import grpc

from remit.grpcutil.wrapped_handlers import WrappedHandlers

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]"
# grpc.aio registers coroutine and async generator functions where the typing stubs describe
# sync ones.
_Inner: TypeAlias = "Callable[[Any, Context], Any]"

STOPPING_MESSAGE: Final = "This server is stopping; open the stream again."


class OpenStreams(grpc.aio.ServerInterceptor):
    """Tracks the task of every server-streaming call, and ends them all at `end_all`."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        # The calls `end_all` cancelled: a cancellation of any other (its client gone) is
        # left as it is.
        self._ended: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._ending = WrappedHandlers(self._ending_handler)

    async def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: grpc.HandlerCallDetails,
    ) -> "Handler | None":
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_stream is None:
            return handler
        return self._ending.of(handler)

    def _ending_handler(self, handler: Handler) -> Handler:
        inner = cast(_Inner, handler.unary_stream)
        if inspect.isasyncgenfunction(inner):
            replies = self._ending_replies(inner)
        else:
            replies = self._ending_writes(inner)
        # A namedtuple: the same handler, serializers and all, but for its behavior.
        return cast(Handler, handler._replace(unary_stream=replies))  # type: ignore[attr-defined]

    def end_all(self) -> None:
        """End every stream being served, and refuse those that start from now on."""
        self._stopping = True
        for task in self._tasks:
            self._ended.add(task)
            task.cancel()

    def _ending_replies(self, inner: _Inner) -> _Inner:
        async def replies(request: Any, context: Context) -> AsyncIterator[Any]:
            task = await self._start(context)
            try:
                # Closed however the call ends, so that its own cleanup runs now.
                async with contextlib.aclosing(inner(request, context)) as stream:
                    async for reply in stream:
                        yield reply
            except asyncio.CancelledError:
                await self._abort_if_ended(task, context)
                raise
            finally:
                self._forget(task)

        return replies

    def _ending_writes(self, inner: _Inner) -> _Inner:
        async def written(request: Any, context: Context) -> None:
            task = await self._start(context)
            try:
                await inner(request, context)
            except asyncio.CancelledError:
                await self._abort_if_ended(task, context)
                raise
            finally:
                self._forget(task)

        return written

    async def _start(self, context: Context) -> "asyncio.Task[Any]":
        if self._stopping:
            await context.abort(grpc.StatusCode.UNAVAILABLE, STOPPING_MESSAGE)
        task = asyncio.current_task()
        assert task is not None, "grpc.aio serves each call in a task"
        self._tasks.add(task)
        return task

    async def _abort_if_ended(self, task: "asyncio.Task[Any]", context: Context) -> None:
        """Answer UNAVAILABLE rather than let the call end as cancelled, if `end_all` ended it."""
        if task in self._ended:
            task.uncancel()  # the cancellation was this interceptor's, and is answered here
            await context.abort(grpc.StatusCode.UNAVAILABLE, STOPPING_MESSAGE)

    def _forget(self, task: "asyncio.Task[Any]") -> None:
        self._tasks.discard(task)
        self._ended.discard(task)
