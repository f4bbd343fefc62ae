"""The internal token: a gRPC server of remit answers only callers that show it."""

import asyncio
import logging
import stat
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from remit.config import TOKEN_ENV, ConfigError, InternalTls, from_env
from remit.grpcutil.internal_auth import (
    InternalAccess,
    add_internal_port,
    internal_channel,
    internal_sync_channel,
    server_interceptors,
    token_in,
)
from remit.grpcutil.internal_roles import role_credential
from tests.support.tls import make_tls, tls_env

pytestmark = pytest.mark.anyio

TOKEN = "the-platform-token-0123456789abcdefghijklmnopq"
_SAY = "/test.Echo/Say"
_COUNT = "/test.Echo/Count"
_JOIN = "/test.Echo/Join"
_REPEAT = "/test.Echo/Repeat"


async def _say(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return b"heard " + request


async def _count(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    for number in range(3):
        yield str(number).encode()


async def _join(requests: AsyncIterator[bytes], context: Any) -> bytes:
    return b" ".join([request async for request in requests])


async def _repeat(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    async for request in requests:
        yield request


@pytest.fixture
async def target() -> AsyncIterator[str]:
    server = grpc.aio.server(interceptors=server_interceptors(TOKEN))
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "test.Echo",
                {
                    "Say": grpc.unary_unary_rpc_method_handler(_say),
                    "Count": grpc.unary_stream_rpc_method_handler(_count),
                    "Join": grpc.stream_unary_rpc_method_handler(_join),
                    "Repeat": grpc.stream_stream_rpc_method_handler(_repeat),
                },
            )
        ]
    )
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


async def _call(channel: grpc.aio.Channel) -> bytes:
    say: Any = channel.unary_unary(_SAY)
    reply = await say(b"hello", timeout=30)
    assert isinstance(reply, bytes)
    return reply


@pytest.mark.parametrize("token", [None, "wrong", TOKEN[:-1], TOKEN + "x"])
async def test_a_call_without_the_token_is_refused_before_any_handler(
    target: str, token: str | None
) -> None:
    async with internal_channel(target, InternalAccess(token)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _call(channel)
        count_call: Any = channel.unary_stream(_COUNT)
        count = count_call(b"", timeout=30)
        with pytest.raises(grpc.aio.AioRpcError) as streamed:
            [item async for item in count]
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert streamed.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "internal token" in (refused.value.details() or "")
    assert TOKEN not in (refused.value.details() or "")


async def _words() -> AsyncIterator[bytes]:
    for word in (b"a", b"b"):
        yield word


async def test_a_call_of_any_shape_with_the_token_is_answered(target: str) -> None:
    async with internal_channel(target, InternalAccess(TOKEN)) as channel:
        assert await _call(channel) == b"heard hello"
        count_call: Any = channel.unary_stream(_COUNT)
        assert [item async for item in count_call(b"", timeout=30)] == [b"0", b"1", b"2"]
        join_call: Any = channel.stream_unary(_JOIN)
        assert await join_call(_words(), timeout=30) == b"a b"
        repeat_call: Any = channel.stream_stream(_REPEAT)
        assert [item async for item in repeat_call(_words(), timeout=30)] == [b"a", b"b"]

    def calls_from_a_blocking_client() -> list[object]:
        with internal_sync_channel(target, InternalAccess(TOKEN)) as sync_channel:
            say_again: Any = sync_channel.unary_unary(_SAY)
            count: Any = sync_channel.unary_stream(_COUNT)
            join: Any = sync_channel.stream_unary(_JOIN)
            repeat: Any = sync_channel.stream_stream(_REPEAT)
            return [
                say_again(b"again", timeout=30),
                list(count(b"", timeout=30)),
                join(iter([b"a", b"b"]), timeout=30),
                list(repeat(iter([b"a", b"b"]), timeout=30)),
            ]

    # In a thread: the server runs on this test's event loop.
    assert await asyncio.to_thread(calls_from_a_blocking_client) == [
        b"heard again",
        [b"0", b"1", b"2"],
        b"a b",
        [b"a", b"b"],
    ]


async def test_health_checks_need_no_token(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=30
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_serve_keeps_one_token_in_its_data_directory_readable_by_its_owner_only(
    tmp_path: Path,
) -> None:
    made = token_in(tmp_path)
    assert len(made) >= 43
    assert token_in(tmp_path) == made
    mode = stat.S_IMODE((tmp_path / "internal-token").stat().st_mode)
    assert mode == 0o600
    # Processes and commands started later with the same data directory find it; the variable
    # wins over the file, and the config hands it to children.
    assert from_env({"REMIT_DATA_DIR": str(tmp_path)}).internal_token == made
    config = from_env({"REMIT_DATA_DIR": str(tmp_path), TOKEN_ENV: "from-the-environment"})
    assert config.internal_token == "from-the-environment"
    assert config.to_env()[TOKEN_ENV] == "from-the-environment"
    assert "from-the-environment" not in repr(config)
    assert from_env({"REMIT_DATA_DIR": str(tmp_path / "elsewhere")}).internal_token is None


# --- roles -------------------------------------------------------------------------------

_AUTHENTICATE = "/remit_api.accounts.v1.AccountsService/AuthenticateApiKey"
_CREATE_API_KEY = "/remit_api.accounts.v1.AccountsService/CreateApiKey"
_REMOVE_KEY_VERSION = "/remit_api.vault.v1.VaultService/RemoveKeyVersion"


@pytest.fixture
async def platform_target() -> AsyncIterator[str]:
    """A server answering, byte for byte, methods of the real services' names."""
    server = grpc.aio.server(interceptors=server_interceptors(TOKEN))
    for method in (_AUTHENTICATE, _CREATE_API_KEY, _REMOVE_KEY_VERSION):
        service, name = method.lstrip("/").split("/")
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    service, {name: grpc.unary_unary_rpc_method_handler(_say)}
                )
            ]
        )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


async def _call_method(target: str, access: InternalAccess, method: str) -> bytes:
    async with internal_channel(target, access) as channel:
        call: Any = channel.unary_unary(method)
        reply = await call(b"hello", timeout=30)
    assert isinstance(reply, bytes)
    return reply


@pytest.mark.parametrize("method", [_CREATE_API_KEY, _REMOVE_KEY_VERSION])
async def test_the_apis_credential_is_refused_administrative_calls_by_name(
    platform_target: str, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    api = InternalAccess(role_credential(TOKEN, "api"))
    with (
        caplog.at_level(logging.WARNING, logger="remit"),
        pytest.raises(grpc.aio.AioRpcError) as refused,
    ):
        await _call_method(platform_target, api, method)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    details = refused.value.details() or ""
    assert method in details
    assert "The api role" in details
    assert f"refused {method} to a caller of the api role" in caplog.text
    assert role_credential(TOKEN, "api") not in caplog.text + details
    # What the facade needs stays open to it.
    assert await _call_method(platform_target, api, _AUTHENTICATE) == b"heard hello"


@pytest.mark.parametrize("method", [_CREATE_API_KEY, _REMOVE_KEY_VERSION, _AUTHENTICATE])
async def test_the_admins_credential_and_the_platform_token_may_call_anything(
    platform_target: str, method: str
) -> None:
    for access in (InternalAccess(role_credential(TOKEN, "admin")), InternalAccess(TOKEN)):
        assert await _call_method(platform_target, access, method) == b"heard hello"


async def test_another_platforms_admin_credential_is_unauthenticated(
    platform_target: str,
) -> None:
    stranger = InternalAccess(role_credential("another-platform-token", "admin"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _call_method(platform_target, stranger, _CREATE_API_KEY)
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED


# --- mutual TLS ----------------------------------------------------------------------------


@pytest.fixture
async def tls_target(tmp_path: Path) -> AsyncIterator[tuple[str, InternalTls]]:
    tls = make_tls(tmp_path / "platform")
    access = InternalAccess(TOKEN, tls)
    server = grpc.aio.server(interceptors=server_interceptors(TOKEN))
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(_say)}
            )
        ]
    )
    port = add_internal_port(server, "127.0.0.1:0", access)
    await server.start()
    try:
        yield f"127.0.0.1:{port}", tls
    finally:
        await server.stop(0)


async def test_over_mutual_tls_a_platform_certificate_and_the_token_are_answered(
    tls_target: tuple[str, InternalTls],
) -> None:
    target, tls = tls_target
    async with internal_channel(target, InternalAccess(TOKEN, tls)) as channel:
        assert await _call(channel) == b"heard hello"


async def test_over_mutual_tls_plaintext_and_strangers_certificates_are_refused(
    tls_target: tuple[str, InternalTls], tmp_path: Path
) -> None:
    target, _ = tls_target
    stranger = make_tls(tmp_path / "stranger", label="stranger")
    for access in (InternalAccess(TOKEN), InternalAccess(TOKEN, stranger)):
        async with internal_channel(target, access) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _call(channel)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_needs_all_three_files(tmp_path: Path) -> None:
    tls = make_tls(tmp_path)
    env = {"REMIT_DATA_DIR": str(tmp_path), **tls_env(tls)}
    assert from_env(env).internal_tls == tls
    assert from_env(env).to_env()["REMIT_INTERNAL_TLS_CA"] == str(tls.ca)
    del env["REMIT_INTERNAL_TLS_KEY"]
    with pytest.raises(ConfigError, match="REMIT_INTERNAL_TLS_KEY"):
        from_env(env)


def test_processes_making_the_token_at_once_agree_on_one(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        made = set(pool.map(lambda _: token_in(tmp_path), range(32)))
    assert len(made) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["internal-token"]
