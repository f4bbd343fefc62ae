"""Run a grpc.aio server with standard health checking and reflection until SIGTERM."""

import asyncio
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from remit.config import (
    TOKEN_ENV,
    ConfigError,
    Endpoint,
    PlatformConfig,
    grpc_max_concurrent_rpcs,
    shutdown_grace_s,
)
from remit.grpcutil.concurrency import ConcurrencyLimit
from remit.grpcutil.in_flight import InFlightCalls
from remit.grpcutil.internal_auth import InternalAccess, add_internal_port, server_interceptors
from remit.grpcutil.open_streams import OpenStreams
from remit.hosts import listen_problem
from remit.readiness import signal_ready

log = logging.getLogger(__name__)

# How long calls cancelled by a stop get to unwind before `on_stop`.
CLEANUP_WAIT_S = 5.0


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
    max_concurrent_rpcs: int | None = None,
) -> None:
    # `internal`: the platform whose credentials (and mutual TLS, when configured) every
    # caller must show; None: neither (a service run on its own in a test).
    # `max_concurrent_rpcs`: calls run at once (REMIT_GRPC_MAX_CONCURRENT_RPCS by default),
    # health checks aside; past it a call is refused at once with RESOURCE_EXHAUSTED, before
    # its handler runs, rather than queueing every call on the database pools until all of
    # them are slow and memory grows with the queue. The facade answers it as Stripe answers
    # overload: a 429 (`remit.grpcutil.concurrency`).
    limit = grpc_max_concurrent_rpcs() if max_concurrent_rpcs is None else max_concurrent_rpcs
    access = InternalAccess() if internal is None else InternalAccess.of(internal)
    token = None if internal is None else internal.internal_token
    if internal is not None and token is None and internal.internal_credential is not None:
        # Given a role's credential but not the platform token, it could check no one's.
        raise ConfigError(
            f"a gRPC server needs the platform token ({TOKEN_ENV}) to check its callers' "
            "credentials; it was given only a credential of one role"
        )
    in_flight = InFlightCalls()
    streams = OpenStreams()
    server = grpc.aio.server(
        # The credential is checked first: a call without it, or outside its role, reaches no
        # other code.
        interceptors=[
            ConcurrencyLimit(limit),
            in_flight,
            streams,
            *server_interceptors(token),
            *interceptors,
        ],
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
    # The core copies' common port is in use by the other copies, as it should be.
    bound = _listen(server, endpoint, access, shared=also_on is not None)
    if also_on is not None:
        _listen(server, Endpoint(endpoint.host, also_on), access, shared=False)
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
    # Streams have no end of their own: the grace is for the calls that do.
    streams.end_all()
    await server.stop(shutdown_grace_s())
    # Calls cancelled at the end of the grace are still unwinding (releasing their keys):
    # `on_stop` closes what they use.
    await in_flight.wait(CLEANUP_WAIT_S)
    if on_stop is not None:
        await on_stop()


def _listen(
    server: grpc.aio.Server, endpoint: Endpoint, access: InternalAccess, *, shared: bool
) -> int:
    """Listen on `endpoint` (returns the port): a `ConfigError` saying why when it cannot (a
    port another program holds, an address not this machine's), for the process to stop on
    in one line rather than gRPC's log line and traceback."""
    # Asked first, where no other server may hold the port, so that gRPC never tries (and
    # logs its own failure on stderr); asked again should gRPC fail all the same.
    problem = None if shared else _listen_problem(endpoint)
    if problem is None:
        try:
            bound = add_internal_port(server, endpoint.target, access)
        except RuntimeError:
            bound = 0  # grpcio raises on a port it cannot bind; older versions returned 0
        if bound != 0:
            return bound
        problem = _listen_problem(endpoint) or "gRPC could not bind it"
    raise ConfigError(f"cannot listen on {endpoint.target}: {problem}")


def _listen_problem(endpoint: Endpoint) -> str | None:
    try:
        return listen_problem(endpoint.host, endpoint.port)
    except socket.gaierror as error:
        return f"{endpoint.host} does not resolve ({error.strerror or error})"
