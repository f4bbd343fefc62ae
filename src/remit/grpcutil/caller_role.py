"""The internal role the call being served proved, for a handler that records who did what.

The internal token interceptor (`remit.grpcutil.internal_auth`) checks each call's credential
before any handler runs; a call it lets through runs under its role, kept in a context
variable, so that a handler reads it without the credential being checked twice. A server
that checks no credentials (REMIT_INTERNAL_AUTH=off, a test's in-process server) serves every
call with no role: `caller_role()` is None.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any, TypeAlias

import grpc

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

_role: ContextVar[str | None] = ContextVar("remit_caller_role", default=None)


def caller_role() -> str | None:
    """The role the call being served proved; None when its server checks no credentials."""
    return _role.get()


def serving_as(role: str, handler: Handler) -> Handler:
    """`handler`, its calls served under `role`. (Each call is served in a task of its own:
    what it sets in its context is seen by nothing else.)"""
    kinds = (
        (handler.unary_unary, grpc.unary_unary_rpc_method_handler),
        (handler.unary_stream, grpc.unary_stream_rpc_method_handler),
        (handler.stream_unary, grpc.stream_unary_rpc_method_handler),
        (handler.stream_stream, grpc.stream_stream_rpc_method_handler),
    )
    behaviour, make = next((inner, make) for inner, make in kinds if inner is not None)
    return make(
        _under(role, behaviour),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _under(role: str, behaviour: Any) -> Any:
    """`behaviour` run with the role set: a coroutine's or an async generator's alike (a
    streaming handler may be either)."""
    if inspect.isasyncgenfunction(behaviour):

        async def streamed(request: Any, context: Context) -> AsyncIterator[Any]:
            _role.set(role)
            async for response in behaviour(request, context):
                yield response

        return streamed

    async def answered(request: Any, context: Context) -> Any:
        _role.set(role)
        return await behaviour(request, context)

    return answered
