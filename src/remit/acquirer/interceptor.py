"""The gRPC side of fault injection: a server interceptor that applies a `FaultPlan`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeAlias, cast

import grpc

from remit.acquirer.faults import MUTATING_METHODS, READ_METHODS, Fault, FaultConfig, FaultPlan

log = logging.getLogger(__name__)

HANG_WITHOUT_DEADLINE_S: Final = 30.0
# How far past the caller's deadline a timeout fault sleeps, so the caller surely gave up.
PAST_DEADLINE_S: Final = 0.05

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Context = grpc.aio.ServicerContext[Any, Any]


class FaultInjectionInterceptor(grpc.aio.ServerInterceptor):
    """Applies the configured faults around the acquirer's RPCs. Install it outermost, so a
    lost response is lost after the call (and its transaction) completed."""

    def __init__(self, config: FaultConfig) -> None:
        self._config = config
        self._plan = FaultPlan(config)
        self._methods = MUTATING_METHODS | (READ_METHODS if config.include_reads else set())
        # Each method's handler with faults, made on its first call rather than on every one,
        # with the handler it wraps (the same on every call: `ErrorMappingInterceptor`'s).
        self._with_faults: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.unary_unary is None or method not in self._methods:
            return handler
        if not self._config.active:
            return handler
        kept = self._with_faults.get(method)
        if kept is not None and kept[0] is handler:
            return kept[1]
        with_faults = self._faulty(handler, method)
        self._with_faults[method] = (handler, with_faults)
        return with_faults

    def _faulty(self, handler: Handler, method: str) -> Handler:
        inner = cast(Callable[[Any, Context], Awaitable[Any]], handler.unary_unary)
        config, plan = self._config, self._plan

        async def with_faults(request: Any, context: Context) -> Any:
            fault = plan.next_fault()
            if config.latency_ms:
                await asyncio.sleep(config.latency_ms / 1000)
            if fault is Fault.ERROR:
                log.info("injected fault: %s failed before processing", method)
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE, "The acquirer is unavailable (injected fault)."
                )
            if fault is Fault.TIMEOUT:
                remaining = context.time_remaining()
                log.info("injected fault: %s outlasts the caller's deadline", method)
                await asyncio.sleep(
                    HANG_WITHOUT_DEADLINE_S if remaining is None else remaining + PAST_DEADLINE_S
                )
                await context.abort(
                    grpc.StatusCode.DEADLINE_EXCEEDED, "The acquirer timed out (injected fault)."
                )
            response = await inner(request, context)
            if fault is Fault.LOST_RESPONSE:
                log.info("injected fault: %s processed, response lost", method)
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    "The connection to the acquirer was lost (injected fault).",
                )
            return response

        return grpc.unary_unary_rpc_method_handler(
            with_faults,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
