"""A call the internal token interceptor lets through is served under the role its credential
proves (`remit.grpcutil.caller_role`), whatever the shape of its method; a server that checks
no credentials serves every call with none."""

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from remit.grpcutil.caller_role import caller_role
from remit.grpcutil.internal_auth import server_interceptors
from remit.grpcutil.internal_roles import ADMIN, API, role_credential

pytestmark = pytest.mark.anyio

TOKEN = "the-platform-token-0123456789abcdefghijklmnopq"


def _role() -> bytes:
    return (caller_role() or "none").encode()


async def _say(request: bytes, context: Any) -> bytes:
    return _role()


async def _count(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield _role()


async def _written(request: bytes, context: Any) -> None:
    # A streaming handler may write its answers rather than yield them.
    await context.write(_role())


async def _join(requests: AsyncIterator[bytes], context: Any) -> bytes:
    return b"".join([request async for request in requests]) + _role()


async def _repeat(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    async for _ in requests:
        yield _role()


async def _serving(token: str | None) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server(interceptors=server_interceptors(token))
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "test.Who",
                {
                    "Say": grpc.unary_unary_rpc_method_handler(_say),
                    "Count": grpc.unary_stream_rpc_method_handler(_count),
                    "Written": grpc.unary_stream_rpc_method_handler(_written),
                    "Join": grpc.stream_unary_rpc_method_handler(_join),
                    "Repeat": grpc.stream_stream_rpc_method_handler(_repeat),
                },
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def _answers(target: str, credential: str | None) -> list[bytes]:
    metadata = () if credential is None else (("remit-internal-token", credential),)

    async def one() -> AsyncIterator[bytes]:
        yield b""

    async with grpc.aio.insecure_channel(target) as channel:
        # The calls' types are the channel's own, unparametrized (as in test_internal_auth).
        say: Any = channel.unary_unary("/test.Who/Say")
        count: Any = channel.unary_stream("/test.Who/Count")
        write: Any = channel.unary_stream("/test.Who/Written")
        join: Any = channel.stream_unary("/test.Who/Join")
        repeat: Any = channel.stream_stream("/test.Who/Repeat")
        said = await say(b"", metadata=metadata)
        counted = [answer async for answer in count(b"", metadata=metadata)]
        written = [answer async for answer in write(b"", metadata=metadata)]
        joined = await join(one(), metadata=metadata)
        repeated = [answer async for answer in repeat(one(), metadata=metadata)]
    return [said, *counted, *written, joined, *repeated]


async def test_each_call_is_served_under_the_role_it_proved() -> None:
    server, target = await _serving(TOKEN)
    try:
        as_admin = await _answers(target, TOKEN)
        # An admin-only test method: other roles are refused, so only the admin's get through.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _answers(target, role_credential(TOKEN, API))
    finally:
        await server.stop(0)
    assert as_admin == [ADMIN.encode()] * 5
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_a_server_checking_no_credentials_serves_calls_with_no_role() -> None:
    server, target = await _serving(None)
    try:
        answers = await _answers(target, role_credential(TOKEN, API))
    finally:
        await server.stop(0)
    assert answers == [b"none"] * 5
