"""Run a grpc.aio server with standard health checking and reflection until SIGTERM."""

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from remit.config import TOKEN_ENV, ConfigError, Endpoint, PlatformConfig
from remit.grpcutil.internal_auth import InternalAccess, add_internal_port, server_interceptors
from remit.readiness import signal_ready

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 5.0


@dataclass(frozen=True)
class ServiceRegistration:
    """One servicer: its full proto name and how to add it to a server."""

    full_name: str
    add_to_server: Callable[[grpc.aio.Server], None]


async def serve_grpc(
    endpoint: Endpoint,
    services: Sequence[ServiceRegistration],
    *,
    also_on: int | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    internal: PlatformConfig | None = None,
    on_stop: Callable[[], Awaitable[None]] | None = None,
    stop_event: asyncio.Event | None = None,
) -> None:
    # `internal`: the platform whose credentials (and mutual TLS, when configured) every
    # caller must show; None: neither (a service run on its own in a test).
    access = InternalAccess() if internal is None else InternalAccess.of(internal)
    token = None if internal is None else internal.internal_token
    if internal is not None and token is None and internal.internal_credential is not None:
        # Given a role's credential but not the platform token, it could check no one's.
        raise ConfigError(
            f"a gRPC server needs the platform token ({TOKEN_ENV}) to check its callers' "
            "credentials; it was given only a credential of one role"
        )
    server = grpc.aio.server(
        # The credential is checked first: a call without it, or outside its role, reaches no
        # other code.
        interceptors=[*server_interceptors(token), *interceptors],
        options=[
            # Only the copies of the core share a port (each also has one of its own: `also_on`).
            # Anywhere else, sharing would let a second platform started on the same ports
            # silently take half of this one's calls; refusing to listen says so at start.
            ("grpc.so_reuseport", 1 if also_on is not None else 0),
            ("grpc.max_receive_message_length", 4 * 1024 * 1024),
        ],
    )
    for service in services:
        service.add_to_server(server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = [s.full_name for s in services]
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    bound = add_internal_port(server, endpoint.target, access)
    if bound == 0:
        raise OSError(f"could not listen on {endpoint.target}")
    if also_on is not None:
        own = Endpoint(endpoint.host, also_on).target
        if add_internal_port(server, own, access) == 0:
            raise OSError(f"could not listen on {own}")
    await server.start()
    for name in ["", *names]:
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("gRPC listening on %s (%s)", Endpoint(endpoint.host, bound).target,
             ", ".join(names) or "health")  # fmt: skip
    signal_ready()

    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("stopping gRPC server on %s", endpoint.target)
    await health.enter_graceful_shutdown()
    await server.stop(SHUTDOWN_GRACE_S)
    if on_stop is not None:
        await on_stop()
