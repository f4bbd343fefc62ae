"""A gRPC server stopped with calls in flight past its grace cancels them, and lets their
cleanup (releasing an idempotency key, say) finish before `on_stop` closes what it needs."""

import asyncio
from typing import Any

import grpc
import pytest

from remit.config import Endpoint
from remit.grpcutil import server as grpc_server
from remit.grpcutil.server import ServiceRegistration, serve_grpc
from tests.support.ports import free_port

pytestmark = pytest.mark.anyio


async def test_a_cancelled_calls_cleanup_ends_before_on_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(grpc_server, "shutdown_grace_s", lambda: 0.1)
    started = asyncio.Event()
    happened: list[str] = []

    async def stuck(request: bytes, context: Any) -> bytes:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)  # a key released in the database
            happened.append("cleaned up")
            raise
        return b""

    def add(server: grpc.aio.Server) -> None:
        handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(stuck)
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("test.Stuck", {"Call": handler})]
        )

    async def on_stop() -> None:
        happened.append("stopped")

    endpoint = Endpoint("127.0.0.1", free_port())
    stop = asyncio.Event()
    serving = asyncio.create_task(
        serve_grpc(
            endpoint,
            [ServiceRegistration("test.Stuck", add)],
            on_stop=on_stop,
            stop_event=stop,
        )
    )
    async with grpc.aio.insecure_channel(endpoint.target) as channel:
        method: Any = channel.unary_unary("/test.Stuck/Call")
        call = method(b"", timeout=10, wait_for_ready=True)
        await asyncio.wait_for(started.wait(), 10)
        stop.set()
        await asyncio.wait_for(serving, 10)
        with pytest.raises(grpc.aio.AioRpcError):
            await call
    assert happened == ["cleaned up", "stopped"]
