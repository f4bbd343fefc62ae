"""How remit's gRPC servers hold their ports."""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from remit.config import CREDENTIAL_ENV, ConfigError, Endpoint, core_instances_target, from_env
from remit.core.errors import ErrorKind
from remit.grpcutil.errors import remit_error_from_rpc_error
from remit.grpcutil.server import ServiceRegistration, serve_grpc
from remit.rest.errors import StripeError
from remit.rest.remit_errors import stripe_error_from_remit
from tests.support.ports import free_port

pytestmark = pytest.mark.anyio


async def _started(endpoint: Endpoint, stop: asyncio.Event, also_on: int | None = None) -> None:
    await serve_grpc(endpoint, [], stop_event=stop, also_on=also_on)


# Only a server that never listens takes this long to.
LISTENING_WITHIN_S = 30.0


async def _running(task: "asyncio.Task[None]", host: str, port: int) -> None:
    """Once the server `task` runs listens on `port` (its own, for a copy of the core): its
    callers are not refused for having come too soon, however slowly a loaded machine starts
    it."""
    deadline = asyncio.get_running_loop().time() + LISTENING_WITHIN_S
    while True:
        assert not task.done(), task.exception()
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            assert asyncio.get_running_loop().time() < deadline, f"nothing listens on {port}"
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


@asynccontextmanager
async def _one_call_in_progress() -> AsyncIterator[
    tuple[grpc.aio.Channel, grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]]
]:
    """A server of one slow method, with one call of it in progress for the block; the call
    is let finish, and the server stopped, after it."""
    release = asyncio.Event()
    entered = asyncio.Event()

    async def slow(_request: bytes, _context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        entered.set()
        await release.wait()
        return b""

    def add(server: grpc.aio.Server) -> None:
        handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(slow)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("remit_api.test.v1.Slow", {"Run": handler}),)
        )

    endpoint = Endpoint("127.0.0.1", free_port())
    stop = asyncio.Event()
    serving = asyncio.create_task(
        serve_grpc(endpoint, [ServiceRegistration("remit_api.test.v1.Slow", add)], stop_event=stop)
    )
    try:
        await _running(serving, endpoint.host, endpoint.port)
        async with grpc.aio.insecure_channel(endpoint.target) as channel:
            run: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                "/remit_api.test.v1.Slow/Run"
            )
            first = asyncio.ensure_future(run(b""))
            await asyncio.wait_for(entered.wait(), 30)
            try:
                yield channel, run
            finally:
                release.set()
                await first
    finally:
        stop.set()
        await serving


async def test_a_second_server_on_a_port_in_use_refuses_to_start() -> None:
    """Sharing a port would let a second platform started on the same ports silently take
    half of the first one's calls; the second server fails at start instead."""
    endpoint = Endpoint("127.0.0.1", free_port())
    stop = asyncio.Event()
    first = asyncio.create_task(_started(endpoint, stop))
    try:
        await _running(first, endpoint.host, endpoint.port)
        # Were it to start, it would stop again after a while, raising nothing.
        second_stop = asyncio.Event()
        asyncio.get_running_loop().call_later(3, second_stop.set)
        with pytest.raises(ConfigError, match=f"cannot listen on {endpoint.target}: Address "
                           "already in use"):  # fmt: skip
            await _started(endpoint, second_stop)
    finally:
        stop.set()
        await first


async def test_copies_of_the_core_share_their_common_port() -> None:
    """Several core processes listen on one port together (each also on one of its own)."""
    shared = Endpoint("127.0.0.1", free_port())
    stop = asyncio.Event()
    own_ports = (free_port(), free_port())
    copies = [asyncio.create_task(_started(shared, stop, also_on=p)) for p in own_ports]
    try:
        for copy, port in zip(copies, own_ports, strict=True):
            await _running(copy, shared.host, port)
    finally:
        stop.set()
        await asyncio.gather(*copies)


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("host", ["localhost", "::1"])
async def test_copies_of_the_core_on_a_host_name_or_ipv6_address_are_reached_on_their_ports(
    host: str, tmp_path: Path
) -> None:
    """The REST facade's round-robin channel names each core copy's own port: a target gRPC
    accepts for a host name and an IPv6 address too, not only for an IPv4 address."""
    if host == "::1" and not _has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback address")
    own_ports = (free_port(), free_port())
    config = from_env(
        {
            "REMIT_DATA_DIR": str(tmp_path),
            "REMIT_CORE_HOST": host,
            "REMIT_CORE_PORT": str(free_port()),
            "REMIT_CORE_PROCESSES": "2",
            "REMIT_CORE_INSTANCE_PORTS": ",".join(map(str, own_ports)),
        }
    )
    stop = asyncio.Event()
    copies = [asyncio.create_task(_started(config.core, stop, also_on=p)) for p in own_ports]
    try:
        for copy, port in zip(copies, own_ports, strict=True):
            await _running(copy, config.core.host, port)
        async with grpc.aio.insecure_channel(
            config.core_balanced_target(), options=[("grpc.lb_policy_name", "round_robin")]
        ) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(4):  # round robin: each copy answers in turn
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=30)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        stop.set()
        await asyncio.gather(*copies)


async def test_copies_of_the_core_are_reached_at_any_address_of_their_host_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A name with several addresses is not pinned to the first: here it resolves to ::1
    first, where no copy listens, and then to 127.0.0.1, where both do."""
    system_resolver = socket.getaddrinfo

    def resolve(host: str, *args: Any, **kwargs: Any) -> Any:
        if host != "core.test":
            return system_resolver(host, *args, **kwargs)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 0, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0)),
        ]

    own_ports = (free_port(), free_port())
    stop = asyncio.Event()
    shared = Endpoint("127.0.0.1", free_port())
    copies = [asyncio.create_task(_started(shared, stop, also_on=p)) for p in own_ports]
    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    target = core_instances_target("core.test", own_ports)
    try:
        for copy, port in zip(copies, own_ports, strict=True):
            await _running(copy, shared.host, port)
        async with grpc.aio.insecure_channel(
            target, options=[("grpc.lb_policy_name", "round_robin")]
        ) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(4):
                reply = await health.Check(
                    health_pb2.HealthCheckRequest(), timeout=30, wait_for_ready=True
                )
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        stop.set()
        await asyncio.gather(*copies)


async def test_a_server_given_only_a_roles_credential_refuses_to_start(tmp_path: Path) -> None:
    """Without the platform token it could check no caller's credential, and would answer
    everyone; it says so instead."""
    config = from_env({"REMIT_DATA_DIR": str(tmp_path), CREDENTIAL_ENV: "api.mac"})
    stopped = asyncio.Event()
    stopped.set()  # were it to start, it would stop at once, raising nothing
    with pytest.raises(ConfigError, match="REMIT_INTERNAL_TOKEN"):
        await serve_grpc(
            Endpoint("127.0.0.1", free_port()), [], internal=config, stop_event=stopped
        )


async def test_calls_past_the_concurrency_limit_are_refused_at_once_as_stripe_refuses_overload(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past REMIT_GRPC_MAX_CONCURRENT_RPCS calls in progress, a server refuses the next at once
    (none queues on its database pools), and the facade answers it as Stripe answers
    overload: a 429 `rate_limit`, with no invitation to retry at once."""
    monkeypatch.setenv("REMIT_GRPC_MAX_CONCURRENT_RPCS", "1")
    async with _one_call_in_progress() as (_channel, run):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await asyncio.wait_for(run(b""), 30)
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    error = stripe_error_from_remit(remit_error_from_rpc_error(refused.value))
    assert error.http_status == 429
    assert error.should_retry is None
    assert error.to_body() == StripeError.rate_limited().to_body()


async def test_a_message_too_large_is_no_overload() -> None:
    """RESOURCE_EXHAUSTED from grpc for anything else than the concurrency limit (a message
    past its size limit) is remit's fault: an internal error, not a 429 clients back off from."""

    class TooLarge(grpc.aio.AioRpcError):
        def __init__(self) -> None:
            super().__init__(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                details="Received message larger than max (5000000 vs. 4194304)",
            )

    assert remit_error_from_rpc_error(TooLarge()).kind is ErrorKind.INTERNAL


async def test_a_message_too_large_is_logged_once_and_invites_no_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No client gets past it (a list past its byte budget, remit.storage.answer_budget): the
    facade logs it, by its sizes only, and says so, with `Stripe-Should-Retry: false` so
    that the SDKs do not ask again for the same answer."""
    too_large = grpc.aio.AioRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details="Received message larger than max (17890123 vs. 16777216) 4242424242424242",
    )
    with caplog.at_level("ERROR", logger="remit.grpcutil.errors"):
        errors = [remit_error_from_rpc_error(too_large) for _ in range(2)]
    answered = stripe_error_from_remit(errors[0])
    assert answered.http_status == 500
    assert answered.type == "api_error"
    assert answered.should_retry is False
    assert "will fail the same way" in answered.message
    logged = [record.getMessage() for record in caplog.records]
    assert len(logged) == 1, logged
    assert "RESOURCE_EXHAUSTED" in logged[0]
    assert "17890123 bytes, the limit 16777216" in logged[0]
    assert "4242" not in logged[0]


async def test_a_server_at_its_concurrency_limit_still_answers_its_health_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A busy server is not a dead one: with its bound of calls in progress, it refuses the
    next call but still answers SERVING to health checks, so it is not restarted or taken out
    of its load balancer for being busy."""
    monkeypatch.setenv("REMIT_GRPC_MAX_CONCURRENT_RPCS", "1")
    async with _one_call_in_progress() as (channel, run):
        health = health_pb2_grpc.HealthStub(channel)
        replies = [
            await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=30)
            for name in ("", "remit_api.test.v1.Slow")
        ]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await asyncio.wait_for(run(b""), 30)
    assert [reply.status for reply in replies] == [health_pb2.HealthCheckResponse.SERVING] * 2
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
