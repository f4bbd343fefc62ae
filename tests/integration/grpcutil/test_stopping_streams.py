"""A stopping gRPC server ends its streams (which have no end of their own) as the stop begins,
with UNAVAILABLE for their clients to open them again elsewhere, instead of waiting out its
grace for them; the grace still goes to the calls that do end."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from remit.config import Endpoint
from remit.grpcutil import server as grpc_server
from remit.grpcutil.errors import ErrorMappingInterceptor
from remit.grpcutil.open_streams import STOPPING_MESSAGE, OpenStreams
from remit.grpcutil.server import ServiceRegistration, serve_grpc
from tests.support.ports import free_port

pytestmark = pytest.mark.anyio

GRACE_S = 30.0
# A stream ends long before the grace would: any time under it, however loaded the machine.
ENDED_WITHIN_S = GRACE_S / 2


class Service:
    def __init__(self) -> None:
        self.streaming = asyncio.Event()
        self.calling = asyncio.Event()
        self.answer = asyncio.Event()
        self.stream_closed = False

    async def stream(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        try:
            yield b"first"
            self.streaming.set()
            await asyncio.Event().wait()  # a stream has no end of its own
        finally:
            self.stream_closed = True

    async def call(self, request: bytes, context: Any) -> bytes:
        self.calling.set()
        await self.answer.wait()
        return b"answered"

    def add(self, server: grpc.aio.Server) -> None:
        stream: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_stream_rpc_method_handler(
            self.stream
        )
        call: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(self.call)
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("test.Streams", {"Stream": stream, "Call": call})]
        )


async def _read_all(call: Any) -> list[bytes]:
    return [reply async for reply in call]


async def test_a_stop_ends_open_streams_at_once_and_lets_calls_finish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(grpc_server, "shutdown_grace_s", lambda: GRACE_S)
    service = Service()
    endpoint = Endpoint("127.0.0.1", free_port())
    stop = asyncio.Event()
    serving = asyncio.create_task(
        serve_grpc(
            endpoint,
            [ServiceRegistration("test.Streams", service.add)],
            interceptors=[ErrorMappingInterceptor()],
            stop_event=stop,
        )
    )
    async with grpc.aio.insecure_channel(endpoint.target) as channel:
        streaming: Any = channel.unary_stream("/test.Streams/Stream")
        calling: Any = channel.unary_unary("/test.Streams/Call")
        stream = asyncio.ensure_future(_read_all(streaming(b"", wait_for_ready=True)))
        call = calling(b"", timeout=GRACE_S, wait_for_ready=True)
        await asyncio.wait_for(service.streaming.wait(), 10)
        await asyncio.wait_for(service.calling.wait(), 10)

        began = time.monotonic()
        stop.set()
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await asyncio.wait_for(stream, ENDED_WITHIN_S)
        assert time.monotonic() - began < ENDED_WITHIN_S, "not held for the grace"
        assert ended.value.code() is grpc.StatusCode.UNAVAILABLE
        assert ended.value.details() == STOPPING_MESSAGE
        assert service.stream_closed

        assert not serving.done(), "the call still in flight keeps its grace"
        service.answer.set()
        assert await asyncio.wait_for(call, 10) == b"answered"
        await asyncio.wait_for(serving, 10)


async def test_a_stream_written_by_its_handler_is_ended_and_none_starts_after() -> None:
    """Whatever the handler's shape (here one that writes its replies, `context.write`); and a
    stream asked for once the stop has begun is refused at once."""
    writing = asyncio.Event()

    async def written(request: bytes, context: Any) -> None:
        await context.write(b"first")
        writing.set()
        await asyncio.Event().wait()

    streams = OpenStreams()
    server = grpc.aio.server(interceptors=[streams])
    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_stream_rpc_method_handler(written)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("test.Written", {"Stream": handler})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            streaming: Any = channel.unary_stream("/test.Written/Stream")
            open_before = asyncio.ensure_future(_read_all(streaming(b"")))
            await asyncio.wait_for(writing.wait(), 10)
            streams.end_all()
            for stream in (open_before, _read_all(streaming(b""))):
                with pytest.raises(grpc.aio.AioRpcError) as ended:
                    await asyncio.wait_for(stream, 10)
                assert ended.value.code() is grpc.StatusCode.UNAVAILABLE
                assert ended.value.details() == STOPPING_MESSAGE
    finally:
        await server.stop(0)
