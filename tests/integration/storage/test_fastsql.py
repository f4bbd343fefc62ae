"""The driver-level statements of the hot path, against a real PostgreSQL."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import BigInteger, Column, DateTime, MetaData, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.storage.engine import make_engine, single_statement
from remit.storage.fastsql import Statement, TableStatements, driver

pytestmark = pytest.mark.anyio

_things = Table(
    "fastsql_things",
    MetaData(),
    Column("account_id", Text, primary_key=True),
    Column("id", Text, primary_key=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("details", JSONB, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
THINGS = TableStatements(_things)
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
async def core_engine(core_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """The core database with a scratch table, dropped again so no other test sees it."""
    async with core_engine.begin() as db:
        await db.execute(text("DROP TABLE IF EXISTS fastsql_things"))
        await db.run_sync(lambda sync: _things.create(sync))
    yield core_engine
    async with core_engine.begin() as db:
        await db.execute(text("DROP TABLE fastsql_things"))


async def test_rows_round_trip_with_json_integers_and_times(core_engine: AsyncEngine) -> None:
    row = {
        "account_id": "acct_1",
        "id": "th_1",
        "amount_minor": 9_007_199_254_740_993,  # beyond a float's exact integers
        "details": {"nested": [1, "two", None]},
        "created_at": AT,
    }
    async with core_engine.begin() as db:
        await THINGS.insert(list(row)).run(db, row)
    async with core_engine.begin() as db:
        stored = await THINGS.select.first(db, {"account_id": "acct_1", "id": "th_1"})
        missing = await THINGS.select.first(db, {"account_id": "acct_2", "id": "th_1"})
    assert stored == row
    assert missing is None


async def test_update_touches_only_the_keyed_row_and_reports_it(core_engine: AsyncEngine) -> None:
    async with core_engine.begin() as db:
        for account in ("acct_1", "acct_2"):
            values = {"account_id": account, "id": "th_1", "amount_minor": 1, "created_at": AT}
            await THINGS.insert(list(values)).run(db, values)
    async with core_engine.begin() as db:
        changed = await THINGS.update(["amount_minor", "details"]).run(
            db, {"amount_minor": 5, "details": None, "account_id": "acct_1", "id": "th_1"}
        )
        nothing = await THINGS.update(["amount_minor"]).run(
            db, {"amount_minor": 5, "account_id": "acct_9", "id": "th_1"}
        )
        rows = await Statement(
            "SELECT account_id, amount_minor FROM fastsql_things ORDER BY account_id"
        ).rows(db, {})
    assert (changed, nothing) == (1, 0)
    assert rows == [
        {"account_id": "acct_1", "amount_minor": 5},
        {"account_id": "acct_2", "amount_minor": 1},
    ]


async def test_a_failed_unit_of_work_leaves_nothing(core_engine: AsyncEngine) -> None:
    values = {"account_id": "acct_1", "id": "th_1", "amount_minor": 1, "created_at": AT}

    async def failing_unit_of_work() -> None:
        async with core_engine.begin() as db:
            await THINGS.insert(list(values)).run(db, values)
            raise RuntimeError("the caller's step failed")

    with pytest.raises(RuntimeError):
        await failing_unit_of_work()
    async with core_engine.begin() as db:
        assert await THINGS.select.first(db, {"account_id": "acct_1", "id": "th_1"}) is None


def test_key_columns_are_never_assigned() -> None:
    with pytest.raises(ValueError, match="key columns"):
        THINGS.update(["id", "amount_minor"])


async def test_a_single_statement_unit_commits_as_it_runs(core_engine: AsyncEngine) -> None:
    values = {"account_id": "acct_1", "id": "th_1", "amount_minor": 1, "created_at": AT}
    async with single_statement(core_engine) as db:
        await THINGS.insert(list(values)).run(db, values)
        # No transaction is open: another connection sees the row before this block ends.
        async with core_engine.begin() as other:
            seen = await THINGS.select.first(other, {"account_id": "acct_1", "id": "th_1"})
        assert seen is not None
        assert driver(db).info.transaction_status == TransactionStatus.IDLE


async def test_a_connection_the_server_dropped_is_replaced_after_one_failure(
    core_engine: AsyncEngine,
) -> None:
    """The driver-level path bypasses SQLAlchemy's statement layer, but not its pool: a unit
    that fails on a dead connection discards it, and the next unit gets a live one."""
    single = make_engine(core_engine.url.render_as_string(hide_password=False), pool_size=1)
    try:
        async with single.begin() as db:
            backend = (await Statement("SELECT pg_backend_pid() AS pid").rows(db, {}))[0]["pid"]
        async with core_engine.begin() as admin:
            await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})

        async def on_the_dropped_connection() -> None:
            async with single.begin() as db:
                await THINGS.select.first(db, {"account_id": "acct_1", "id": "th_1"})

        # Raised by the driver itself, or by SQLAlchemy when it rolls the unit back.
        with pytest.raises((psycopg.OperationalError, DBAPIError)):
            await on_the_dropped_connection()
        async with single.begin() as db:
            again = (await Statement("SELECT pg_backend_pid() AS pid").rows(db, {}))[0]["pid"]
        assert again != backend
    finally:
        await single.dispose()
