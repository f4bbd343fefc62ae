"""A database outage fails every request a core or a vault gets while it lasts; the log says
so once when it begins, once a minute while it lasts and once when a request goes through
again, not once per request. A deadlock or a timeout stays one line per request: it is that
request's, among others that go through."""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import psycopg
import pytest
import sqlalchemy.exc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.grpcutil.errors import ErrorMappingInterceptor, detail_from_rpc_error
from remit.storage.driver_errors import ConnectionWaitTimeoutError

pytestmark = pytest.mark.anyio

LOGGER = "remit.grpcutil.errors"


async def _database_refuses_connections(_engine: AsyncEngine) -> None:
    await psycopg.AsyncConnection.connect("postgresql://remit@127.0.0.1:1/remit", connect_timeout=2)


def _raised(sqlstate: str) -> Callable[[AsyncEngine], Awaitable[None]]:
    async def run(engine: AsyncEngine) -> None:
        async with engine.connect() as db:
            await db.execute(
                text(f"DO $$ BEGIN RAISE EXCEPTION 'failed' USING ERRCODE = '{sqlstate}'; END $$")
            )

    return run


async def _database_works(engine: AsyncEngine) -> None:
    async with engine.connect() as db:
        await db.execute(text("SELECT 1"))


async def _pool_exhausted(_engine: AsyncEngine) -> None:
    # What SQLAlchemy's pool raises when no connection came free in time (as
    # tests/integration/storage/test_direct.py shows it does).
    raise sqlalchemy.exc.TimeoutError(
        "QueuePool limit of size 10 overflow 10 reached, connection timed out, timeout 5.00"
    )


async def _direct_pool_exhausted(_engine: AsyncEngine) -> None:
    raise ConnectionWaitTimeoutError("all 5 direct connections in use for 5s")


STATEMENTS = {
    "pool exhausted": _pool_exhausted,
    "direct pool exhausted": _direct_pool_exhausted,
    "refused": _database_refuses_connections,
    "starting up": _raised("57P03"),
    "disk full": _raised("53100"),
    "deadlock": _raised("40P01"),
    "works": _database_works,
}

Call = Callable[[str], Awaitable[Any]]


@pytest.fixture
async def server(core_engine: AsyncEngine) -> AsyncIterator[tuple[Call, Call]]:
    """A server of a remit method that runs the statement its request names, and of health
    checks, behind the interceptor: (call the method, check health)."""

    async def handler(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        await STATEMENTS[request.decode()](core_engine)
        return b""

    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    method: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(handler)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("remit_api.test.v1.Database", {"Run": method}),)
    )
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    run: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        "/remit_api.test.v1.Database/Run"
    )
    checks = health_pb2_grpc.HealthStub(channel)

    async def call(statement: str) -> Any:
        return await run(statement.encode())

    async def check(_: str) -> Any:
        return await checks.Check(health_pb2.HealthCheckRequest())

    try:
        yield call, check
    finally:
        await channel.close()
        await server.stop(0)


async def _fails(call: Call, statement: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call(statement)
    assert failed.value.code() is grpc.StatusCode.UNAVAILABLE


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]


@pytest.mark.parametrize(
    ("statement", "level", "reason", "meanwhile"),
    [("refused", logging.WARNING, "Connection refused",
      "each is answered UNAVAILABLE, to be retried"),
     ("starting up", logging.WARNING, "failed", "each is answered UNAVAILABLE, to be retried"),
     ("disk full", logging.ERROR, "failed", "each is answered UNAVAILABLE")],
)  # fmt: skip
async def test_an_outage_is_a_line_when_it_begins_and_one_when_a_request_goes_through_again(
    server: tuple[Call, Call],
    caplog: pytest.LogCaptureFixture,
    statement: str,
    level: int,
    reason: str,
    meanwhile: str,
) -> None:
    call, check = server
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for _ in range(5):
            await _fails(call, statement)
        # A health check needs no database: it says nothing about the outage.
        await check("")
        await _fails(call, statement)
        await call("works")
        await call("works")
    lines = _lines(caplog)
    assert lines[0] == (
        level,
        f"serving requests failed: database unavailable ({reason}); {meanwhile}",
    )
    assert len(lines) == 2, lines
    assert lines[1][0] == logging.INFO
    assert lines[1][1].startswith("serving requests works again: database back after ")
    assert lines[1][1].endswith("s, 6 failed attempts")
    assert not any(record.exc_info for record in caplog.records)


async def test_a_deadlock_is_a_line_per_request(
    server: tuple[Call, Call], caplog: pytest.LogCaptureFixture
) -> None:
    call, _ = server
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for _ in range(2):
            await _fails(call, "deadlock")
        await call("works")
    assert _lines(caplog) == [
        (logging.WARNING, "database unavailable in /remit_api.test.v1.Database/Run "
                          "(OperationalError)"),
    ] * 2  # fmt: skip


async def test_a_pool_short_of_connections_is_retryable_and_one_line_while_it_lasts(
    server: tuple[Call, Call], caplog: pytest.LogCaptureFixture
) -> None:
    """Under load some requests wait too long for a connection while others go through: each
    is UNAVAILABLE with a retry invited, and the log says so once, not with a traceback per
    request nor a line each time one fails after another went through."""
    call, _ = server
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for statement in ["pool exhausted", "direct pool exhausted"] * 3:
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await call(statement)
            assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
            detail = detail_from_rpc_error(failed.value)
            assert detail is not None
            assert detail.should_retry
            assert detail.http_status == 503
            await call("works")
    lines = _lines(caplog)
    assert len(lines) == 1, lines
    assert lines[0][0] == logging.WARNING
    assert lines[0][1].startswith("serving requests failed: database unavailable (QueuePool limit")
    assert not any(record.exc_info for record in caplog.records)
