"""The direct pool behind `single_statement`, against a real PostgreSQL."""

import asyncio
import gc
from collections.abc import AsyncIterator

import psycopg
import pytest
import sqlalchemy.exc
from psycopg.pq import TransactionStatus
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.storage import direct, fastsql, replanning
from remit.storage.driver_errors import (
    ConnectionWaitTimeoutError,
    DatabaseFault,
    database_fault,
    database_out_of_reach,
)
from remit.storage.engine import dispose, make_engine, single_statement
from remit.storage.fastsql import Statement
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio

BACKEND = Statement("SELECT pg_backend_pid() AS pid")


@pytest.fixture
async def engine(databases: WorkerDatabases) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(databases.core_url, pool_size=1)  # direct pool: at most 2 in use
    try:
        yield engine
    finally:
        await direct.close(engine)
        await dispose(engine)


async def _backend(engine: AsyncEngine) -> int:
    async with single_statement(engine) as connection:
        row = await BACKEND.first(connection, {})
    assert row is not None
    return int(row["pid"])


async def test_units_reuse_one_connection_in_autocommit_with_the_session_settings(
    engine: AsyncEngine,
) -> None:
    first = await _backend(engine)
    assert await _backend(engine) == first
    async with single_statement(engine) as connection:
        cursor = await connection.execute("SHOW lock_timeout")
        assert await cursor.fetchone() == ("10s",)
        assert connection.autocommit
        assert connection.info.transaction_status == TransactionStatus.IDLE


async def test_a_failed_statement_leaves_the_connection_usable(engine: AsyncEngine) -> None:
    before = await _backend(engine)
    with pytest.raises(psycopg.errors.DivisionByZero):
        async with single_statement(engine) as connection:
            await connection.execute("SELECT 1 / 0")
    assert await _backend(engine) == before


async def test_a_connection_the_server_dropped_fails_once_and_is_replaced(
    engine: AsyncEngine,
) -> None:
    dropped = await _backend(engine)
    async with engine.begin() as admin:
        await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped})
    with pytest.raises(psycopg.OperationalError):
        await _backend(engine)
    replacement = await _backend(engine)
    assert replacement != dropped
    assert await _backend(engine) == replacement


async def test_no_more_than_max_size_connections_are_in_use(engine: AsyncEngine) -> None:
    in_use = 0
    most = 0

    async def hold() -> None:
        nonlocal in_use, most
        async with single_statement(engine) as connection:
            in_use += 1
            most = max(most, in_use)
            await connection.execute("SELECT pg_sleep(0.05)")
            in_use -= 1

    await asyncio.gather(*(hold() for _ in range(6)))
    assert most == 2


async def test_idle_connections_end_with_close_or_with_their_engine(
    databases: WorkerDatabases,
) -> None:
    closed_by_call = make_engine(databases.core_url, pool_size=1)
    async with single_statement(closed_by_call) as connection:
        kept = connection
    await direct.close(closed_by_call)
    await dispose(closed_by_call)
    assert kept.closed

    forgotten = make_engine(databases.core_url, pool_size=1)
    async with single_statement(forgotten) as connection:
        left_open = connection
    assert not left_open.closed
    await forgotten.dispose()  # SQLAlchemy's pool only: the direct pool is left to the finalizer
    del forgotten
    gc.collect()
    assert left_open.closed, "the engine's finalizer hangs up its idle connections"


async def test_an_engine_not_made_by_make_engine_is_refused() -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    foreign = create_async_engine("postgresql+psycopg://nobody@127.0.0.1/none")
    try:
        with pytest.raises(LookupError):
            async with single_statement(foreign):
                pass
    finally:
        await dispose(foreign)


async def test_a_connection_left_inside_a_transaction_is_not_handed_out_again(
    engine: AsyncEngine,
) -> None:
    async with single_statement(engine) as connection:
        before = (await BACKEND.first(connection, {}) or {})["pid"]
        await connection.execute("BEGIN")
    after = await _backend(engine)
    assert after != before, "an open transaction must never reach the next unit"


async def test_a_direct_session_forgets_its_plans_at_spaced_uses(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replanning, "REPLAN_AFTER_USES", frozenset({2, 4}))
    backends, discarded = set(), []
    for use in range(1, 6):
        with fastsql.traced() as sent:
            backends.add(await _backend(engine))
        if replanning.DISCARD_PLANS in sent:
            discarded.append(use)
    # Counted per session: one direct session ran all five.
    assert len(backends) == 1
    assert discarded == [2, 4]


async def test_a_statement_waits_for_a_connection_no_longer_than_the_pool_timeout(
    databases: WorkerDatabases,
) -> None:
    """With every connection in use, a statement does not queue for as long as the load lasts:
    past the wait it fails as a temporary fault, which callers are told to retry."""
    engine = make_engine(databases.core_url, pool_size=1, pool_timeout_s=0.2)  # direct: 2
    release = asyncio.Event()
    taken = [asyncio.Event(), asyncio.Event()]

    async def hold(taking: asyncio.Event) -> None:
        async with single_statement(engine):
            taking.set()
            await release.wait()

    holders = [asyncio.create_task(hold(taking)) for taking in taken]
    try:
        for taking in taken:
            await taking.wait()
        started = asyncio.get_running_loop().time()
        with pytest.raises(ConnectionWaitTimeoutError) as waited:
            await asyncio.wait_for(_backend(engine), 30)
        # Its own 0.2 s, not the load's length (here until the test ends it): an order of
        # magnitude is all that is asked, the rest being a loaded machine's slack.
        assert 0.15 <= asyncio.get_running_loop().time() - started < 10
        assert database_fault(waited.value) is DatabaseFault.TEMPORARY
        assert not database_out_of_reach(waited.value)
    finally:
        release.set()
        await asyncio.gather(*holders)
    await _backend(engine)  # the slots all came back
    await dispose(engine)


async def test_a_transaction_waits_for_a_pooled_connection_no_longer_than_the_pool_timeout(
    databases: WorkerDatabases,
) -> None:
    engine = make_engine(databases.core_url, pool_size=1, pool_timeout_s=0.2)  # 1 + overflow 1
    try:
        async with engine.connect(), engine.connect():
            with pytest.raises(sqlalchemy.exc.TimeoutError) as waited:
                await asyncio.wait_for(engine.connect().__aenter__(), 30)
        assert database_fault(waited.value) is DatabaseFault.TEMPORARY
    finally:
        await dispose(engine)
