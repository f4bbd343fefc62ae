"""The api process: the REST facade under uvicorn (uvloop + httptools, whose refusals of what
is not HTTP are answered in Stripe's shape: `remit.rest.http_protocol`).

The listening socket is opened here with SO_REUSEPORT so several api processes can share one
port and the kernel balances connections between them.
"""

import asyncio
import contextlib
import logging
import math
import signal
import socket
from collections.abc import Generator

import uvicorn
from starlette.types import ASGIApp

from remit.config import (
    ConfigError,
    Endpoint,
    PlatformConfig,
    api_max_connections,
    api_max_in_flight,
    api_read_timeout_s,
    forwarded_allow_ips,
    shutdown_grace_s,
)
from remit.hosts import bind_address
from remit.readiness import signal_ready
from remit.rest.app import build_app
from remit.rest.dependencies import connect_dependencies
from remit.rest.forwarded import ForwardedFor
from remit.rest.http_protocol import StripeShapedHttpToolsProtocol

log = logging.getLogger(__name__)

# How long a connection may stay idle between requests.
KEEP_ALIVE_S = 5
# How long requests cancelled at shutdown get to send their 503.
CANCELLED_ANSWER_WAIT_S = 1.0


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket listening on `host` (its first address, for a name: `remit.hosts`) at `port`;
    a `ConfigError` saying why when it cannot (a port another program holds without
    SO_REUSEPORT, an address not this machine's), for the process to stop on in one line."""
    family, address = bind_address(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        target = Endpoint(host, port).target
        raise ConfigError(f"cannot listen on {target}: {error.strerror or error}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    """uvicorn, minus its own signal handling: the process's event loop decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def uvicorn_config(
    app: ASGIApp, *, read_timeout_s: float | None = None, max_connections: int | None = None
) -> uvicorn.Config:
    """How an api process runs `app` under uvicorn; the settings not given are read from the
    environment (REMIT_API_READ_TIMEOUT_S, REMIT_API_MAX_CONNECTIONS)."""
    protocol = StripeShapedHttpToolsProtocol.configured(
        read_timeout_s=api_read_timeout_s() if read_timeout_s is None else read_timeout_s,
        max_connections=api_max_connections() if max_connections is None else max_connections,
    )
    return uvicorn.Config(
        app,
        loop="none",  # the process already runs on uvloop
        http=protocol,
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        date_header=True,
        # An idle connection is closed after this long without a request; uvicorn's default,
        # said here as the bound it is. Its own `limit_concurrency` is left unset: see
        # `remit.rest.http_protocol` for the connection cap used instead.
        timeout_keep_alive=KEEP_ALIVE_S,
        # A confirm in flight may wait on the network for its whole timeout.
        timeout_graceful_shutdown=math.ceil(shutdown_grace_s()),
        proxy_headers=False,  # `ForwardedFor` does it
    )


def _stop(server: uvicorn.Server, stopping: asyncio.Event) -> None:
    # Set first: the requests uvicorn cancels past its grace are told apart by it from those
    # cancelled for another reason (`remit.rest.app.dispatch`).
    stopping.set()
    server.should_exit = True


async def serve_api(config: PlatformConfig) -> None:
    # Read first: a bad value stops the process before it connects to anything.
    trusted_proxies = forwarded_allow_ips()
    max_in_flight = api_max_in_flight()
    read_timeout_s = api_read_timeout_s()
    max_connections = api_max_connections()
    dependencies = await connect_dependencies(config)
    # X-Forwarded-For is believed from the trusted proxies only, so the per-client limit counts
    # clients; from any other peer it is ignored, and logged (`remit.rest.forwarded`).
    stopping = asyncio.Event()
    app = ForwardedFor(
        build_app(
            dependencies,
            max_in_flight=max_in_flight,
            read_timeout_s=read_timeout_s,
            stopping=stopping,
        ),
        trusted_proxies,
    )
    server = _Server(
        uvicorn_config(app, read_timeout_s=read_timeout_s, max_connections=max_connections)
    )
    sock = listening_socket(config.api.host, config.api.port)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _stop, server, stopping)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            await serving
            return
        await asyncio.sleep(0.02)
    log.info("REST facade listening on http://%s", config.api.target)
    signal_ready()
    try:
        await serving
        # uvicorn cancels what outlasted the grace and returns at once: give those requests a
        # moment to write their answer (`dispatch` answers a cancelled one with a retryable
        # 503) before the channels they would answer through close.
        cancelled = set(server.server_state.tasks)
        if cancelled:
            await asyncio.wait(cancelled, timeout=CANCELLED_ANSWER_WAIT_S)
    finally:
        await dependencies.close()
