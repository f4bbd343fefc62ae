"""The error mapping holds for a handler of every shape, not only unary ones: a `RemitError` is
its precise status with an ErrorDetail, anything unexpected a bare INTERNAL that shows nothing
of itself, and each request (streamed ones too) is refused before the handler sees it if its
bytes are no request or its text holds a NUL. Replies sent before a failure still arrive."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc
import pytest

from remit.core.errors import invalid
from remit.grpcutil.errors import ErrorMappingInterceptor, detail_from_rpc_error
from remit_api.webhooks.v1 import webhooks_pb2 as pb

pytestmark = pytest.mark.anyio

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Request = pb.StreamEventsRequest
SECRET = "secret-of-the-server"


def _fail(request: Request) -> None:
    """Each request says how its handler fails: `types` "refuse" or "crash"."""
    if "refuse" in request.types:
        raise invalid("Refused, as asked.", "types")
    if "crash" in request.types:
        raise RuntimeError(SECRET)


async def _stream_unary(requests: AsyncIterator[Request], context: Context) -> bytes:
    count = 0
    async for request in requests:
        _fail(request)
        count += 1
    return str(count).encode()


async def _stream_stream(
    requests: AsyncIterator[Request], context: Context
) -> AsyncIterator[bytes]:
    async for request in requests:
        _fail(request)
        yield b"ok"


async def _unary_stream_written(request: Request, context: Context) -> None:
    await context.write(b"ok")
    _fail(request)


def _handlers() -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    read = Request.FromString
    return {
        "StreamUnary": grpc.stream_unary_rpc_method_handler(_stream_unary, read),
        "StreamStream": grpc.stream_stream_rpc_method_handler(_stream_stream, read),
        "UnaryStreamWritten": grpc.unary_stream_rpc_method_handler(_unary_stream_written, read),
    }


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("test.Shapes", _handlers()),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    opened = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield opened
    finally:
        await opened.close()
        await server.stop(0)


def _encoded(*types: str) -> bytes:
    return Request(types=list(types)).SerializeToString()


async def _sent(requests: list[bytes]) -> AsyncIterator[bytes]:
    for request in requests:
        yield request


async def _stream_unary_call(channel: grpc.aio.Channel, requests: list[bytes]) -> bytes:
    call: grpc.aio.StreamUnaryMultiCallable[bytes, bytes] = channel.stream_unary(
        "/test.Shapes/StreamUnary"
    )
    return await call(_sent(requests))


async def _stream_stream_call(channel: grpc.aio.Channel, requests: list[bytes]) -> list[bytes]:
    call: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(
        "/test.Shapes/StreamStream"
    )
    received: list[bytes] = []
    stream = call(_sent(requests))
    try:
        async for reply in stream:
            received.append(reply)
    except grpc.aio.AioRpcError:
        if received:
            # A failure after replies: those that went out first arrived.
            assert received == [b"ok"]
        raise
    return received


async def _unary_stream_call(channel: grpc.aio.Channel, request: bytes) -> list[bytes]:
    call: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
        "/test.Shapes/UnaryStreamWritten"
    )
    return [reply async for reply in call(request)]


Calls = Callable[[grpc.aio.Channel, list[bytes]], Awaitable[Any]]
SHAPES: dict[str, Calls] = {
    "stream-unary": _stream_unary_call,
    "stream-stream": _stream_stream_call,
    "unary-stream (written)": lambda channel, requests: _unary_stream_call(channel, requests[-1]),
}


async def _refused(call: Calls, channel: grpc.aio.Channel, requests: list[bytes]) -> Any:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(channel, requests)
    return refused.value


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_refusal_is_its_precise_status_with_its_detail(
    channel: grpc.aio.Channel, shape: str
) -> None:
    refused = await _refused(SHAPES[shape], channel, [_encoded("fine"), _encoded("refuse")])
    assert refused.code() is grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(refused)
    assert detail is not None
    assert (detail.message, detail.param) == ("Refused, as asked.", "types")


@pytest.mark.parametrize("shape", SHAPES)
async def test_an_unexpected_error_is_a_bare_internal(
    channel: grpc.aio.Channel, shape: str
) -> None:
    refused = await _refused(SHAPES[shape], channel, [_encoded("fine"), _encoded("crash")])
    assert refused.code() is grpc.StatusCode.INTERNAL
    assert SECRET not in (refused.details() or "")


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_nul_in_a_request_is_refused_before_the_handler_reads_it(
    channel: grpc.aio.Channel, shape: str
) -> None:
    # Were the handler to read it, "crash" would make it an INTERNAL.
    refused = await _refused(SHAPES[shape], channel, [_encoded("fine"), _encoded("cr\x00sh")])
    assert refused.code() is grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(refused)
    assert detail is not None
    assert detail.param.startswith("types")


@pytest.mark.parametrize("shape", SHAPES)
async def test_bytes_that_are_no_request_are_an_invalid_argument(
    channel: grpc.aio.Channel, shape: str
) -> None:
    refused = await _refused(SHAPES[shape], channel, [_encoded("fine"), b"\xff\xff\xff"])
    assert refused.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_a_stream_that_succeeds_answers_as_it_would_unguarded(
    channel: grpc.aio.Channel,
) -> None:
    requests = [_encoded("fine"), _encoded("also fine")]
    assert await _stream_unary_call(channel, requests) == b"2"
    assert await _stream_stream_call(channel, requests) == [b"ok", b"ok"]
    assert await _unary_stream_call(channel, _encoded("fine")) == [b"ok"]
