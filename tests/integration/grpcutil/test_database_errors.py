"""What a database error tells a caller depends on what PostgreSQL said (its SQLSTATE), not on
the driver class it comes as: only a temporary fault is an UNAVAILABLE to retry; a full disk is
UNAVAILABLE without the invitation to retry; a value past one of the database's limits fails
every time, and is the caller's INVALID_ARGUMENT. The errors here are PostgreSQL's own, met
through SQLAlchemy as the services meet them, and the answers are followed to the REST facade's
HTTP status and Stripe-Should-Retry."""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.grpcutil.errors import (
    ErrorMappingInterceptor,
    detail_from_rpc_error,
    remit_error_from_rpc_error,
)
from remit.rest.remit_errors import stripe_error_from_remit
from remit.storage.driver_errors import (
    DatabaseFault,
    database_fault,
    database_out_of_reach,
    database_unavailable,
    refused_for_its_values,
)

pytestmark = pytest.mark.anyio

Statement = Callable[[AsyncEngine], Awaitable[None]]


def raised(sqlstate: str) -> Statement:
    """A statement the server fails with `sqlstate`, as it fails those it cannot run."""

    async def run(engine: AsyncEngine) -> None:
        async with engine.connect() as db:
            await db.execute(
                text(f"DO $$ BEGIN RAISE EXCEPTION 'failed' USING ERRCODE = '{sqlstate}'; END $$")
            )

    return run


async def index_row_too_large(engine: AsyncEngine) -> None:
    """An incompressible 20,000-character value into a B-tree index (at most ~2,700 bytes):
    what a 6,004-character request id did to the idempotency keys' index."""
    async with engine.connect() as db:
        await db.execute(text("CREATE TEMPORARY TABLE wide (value text PRIMARY KEY)"))
        await db.execute(
            text(
                "INSERT INTO wide SELECT string_agg(md5(i::text || random()::text), '') "
                "FROM generate_series(1, 625) AS i"
            )
        )


async def statement_timeout(engine: AsyncEngine) -> None:
    async with engine.begin() as db:
        await db.execute(text("SET LOCAL statement_timeout = '50ms'"))
        await db.execute(text("SELECT pg_sleep(5)"))


async def lock_timeout(engine: AsyncEngine) -> None:
    async with engine.begin() as holder, engine.begin() as waiter:
        await holder.execute(text("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE"))
        await waiter.execute(text("SET LOCAL lock_timeout = '50ms'"))
        await waiter.execute(text("SELECT count(*) FROM accounts"))


async def administrator_ends_the_session(engine: AsyncEngine) -> None:
    async with engine.connect() as db:
        await db.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))


async def connection_refused(engine: AsyncEngine) -> None:
    await psycopg.AsyncConnection.connect("postgresql://remit@127.0.0.1:1/remit", connect_timeout=2)


CASES: dict[str, tuple[Statement, DatabaseFault | None]] = {
    "index row too large (54000)": (index_row_too_large, DatabaseFault.OVER_LIMIT),
    "statement too complex (54001)": (raised("54001"), DatabaseFault.OVER_LIMIT),
    "disk full (53100)": (raised("53100"), DatabaseFault.OUT_OF_RESOURCES),
    "out of memory (53200)": (raised("53200"), DatabaseFault.OUT_OF_RESOURCES),
    "I/O error (58030)": (raised("58030"), DatabaseFault.OUT_OF_RESOURCES),
    "statement timeout (57014)": (statement_timeout, DatabaseFault.TEMPORARY),
    "lock timeout (55P03)": (lock_timeout, DatabaseFault.TEMPORARY),
    "administrator ends the session (57P01)": (
        administrator_ends_the_session,
        DatabaseFault.TEMPORARY,
    ),
    "connection refused": (connection_refused, DatabaseFault.TEMPORARY),
    "serialization failure (40001)": (raised("40001"), DatabaseFault.TEMPORARY),
    "deadlock (40P01)": (raised("40P01"), DatabaseFault.TEMPORARY),
    "too many connections (53300)": (raised("53300"), DatabaseFault.TEMPORARY),
    "starting up (57P03)": (raised("57P03"), DatabaseFault.TEMPORARY),
    "database dropped (57P04)": (raised("57P04"), None),
    "object in use (55006)": (raised("55006"), None),
    "a number out of range (22003)": (raised("22003"), None),
    # A statement's own check refused (`remit_require`, the ledger's balance checks).
    "a statement's own check (RM500)": (raised("RM500"), None),
}


async def _failure_of(statement: Statement, engine: AsyncEngine) -> Exception:
    try:
        await statement(engine)
    except Exception as error:
        return error
    raise AssertionError("the statement did not fail")


@pytest.mark.parametrize("case", CASES)
async def test_a_database_error_says_what_its_sqlstate_says(
    core_engine: AsyncEngine, case: str
) -> None:
    statement, fault = CASES[case]
    error = await _failure_of(statement, core_engine)
    assert database_fault(error) is fault
    # Work that runs again later waits for the database only when it is not the work's fault.
    assert database_unavailable(error) is (
        fault in (DatabaseFault.TEMPORARY, DatabaseFault.OUT_OF_RESOURCES)
    )
    # Requests that meet the server out of reach are an outage, logged as one; a deadlock or
    # a timeout is one request's.
    assert database_out_of_reach(error) is (case in OUT_OF_REACH)


OUT_OF_REACH = {
    "administrator ends the session (57P01)",
    "connection refused",
    "too many connections (53300)",
    "starting up (57P03)",
}


@pytest.fixture
async def run_statement(core_engine: AsyncEngine) -> AsyncIterator[Callable[[str], Awaitable[Any]]]:
    """Calls a gRPC method whose handler runs the statement of the case its request names."""

    async def handler(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        statement, _ = CASES[request.decode()]
        await statement(core_engine)
        return b""

    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    method: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(handler)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("test.Database", {"Run": method}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        run: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            "/test.Database/Run"
        )
        yield lambda case: run(case.encode())
    finally:
        await channel.close()
        await server.stop(0)


# The cases refused for the values their statement was given, by SQLSTATE: the same statement
# fails the same way each time, so work that runs again by itself sets the item aside.
REFUSED_FOR_ITS_VALUES = {
    "index row too large (54000)": "54000",
    "statement too complex (54001)": "54001",
    "a number out of range (22003)": "22003",
}


@pytest.mark.parametrize("case", CASES)
async def test_a_statement_refused_for_its_values_is_told_apart(
    core_engine: AsyncEngine, case: str
) -> None:
    statement, _ = CASES[case]
    error = await _failure_of(statement, core_engine)
    assert refused_for_its_values(error) == REFUSED_FOR_ITS_VALUES.get(case)


# Per case: the gRPC code, whether a retry is invited, and the facade's HTTP status.
ANSWERS: dict[str, tuple[grpc.StatusCode, bool, int]] = {
    "index row too large (54000)": (grpc.StatusCode.INVALID_ARGUMENT, False, 400),
    "disk full (53100)": (grpc.StatusCode.UNAVAILABLE, False, 503),
    "statement timeout (57014)": (grpc.StatusCode.UNAVAILABLE, True, 503),
    "deadlock (40P01)": (grpc.StatusCode.UNAVAILABLE, True, 503),
    "database dropped (57P04)": (grpc.StatusCode.INTERNAL, False, 500),
    "a statement's own check (RM500)": (grpc.StatusCode.INTERNAL, False, 500),
}


@pytest.mark.parametrize("case", ANSWERS)
async def test_a_caller_is_told_to_retry_only_what_a_retry_may_mend(
    run_statement: Callable[[str], Awaitable[Any]], case: str
) -> None:
    code, should_retry, http_status = ANSWERS[case]
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await run_statement(case)
    assert failed.value.code() is code
    if code is not grpc.StatusCode.INTERNAL:
        detail = detail_from_rpc_error(failed.value)
        assert detail is not None
        assert detail.should_retry is should_retry
    # What PostgreSQL said (index names, sizes, the statement) stays in the process.
    said = failed.value.details() or ""
    for server_words in ("index", "ERRCODE", "failed"):
        assert server_words not in said
    stripe_error = stripe_error_from_remit(remit_error_from_rpc_error(failed.value))
    assert stripe_error.http_status == http_status
    # The facade sends Stripe-Should-Retry: true only when the core invites the retry, and
    # false for a 503 it does not (the SDKs retry a 5xx that says nothing).
    expected = True if should_retry else (False if http_status == 503 else None)
    assert stripe_error.should_retry is expected
