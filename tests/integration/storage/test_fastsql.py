"""The driver-level statements of the hot path, against a real PostgreSQL."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import BigInteger, Column, DateTime, MetaData, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.storage import fastsql
from remit.storage.engine import batched_unit, dispose, make_engine, single_statement
from remit.storage.fastsql import Statement, TableStatements, deferring, driver, holds

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
        await dispose(single)


# --- deferring ----------------------------------------------------------------------------------


def _thing(thing_id: str, amount_minor: int = 100) -> dict[str, object]:
    return {"account_id": "acct_1", "id": thing_id, "amount_minor": amount_minor, "created_at": AT}


_COUNT = Statement("SELECT count(*) AS n FROM fastsql_things")


class UntouchedError(Exception):
    pass


_THING_MISSING = "RMT01"
# Checks itself on the server (core migration 0009_require), as the payment path's fenced
# writes do.
_ADD = Statement(
    "WITH added AS (UPDATE fastsql_things SET amount_minor = amount_minor + 1 "
    "WHERE id = %(id)s RETURNING 1) "
    "SELECT remit_require(count(*) = 1, 'RMT01', 'no such thing') FROM added",
    refusals={_THING_MISSING: UntouchedError},
)


async def _stored_ids(engine: AsyncEngine) -> list[str]:
    async with engine.begin() as db:
        rows = await Statement("SELECT id FROM fastsql_things ORDER BY id").rows(db, {})
    return [row["id"] for row in rows]


async def test_deferred_writes_are_held_until_a_statement_needs_an_answer(
    core_engine: AsyncEngine,
) -> None:
    async with core_engine.begin() as db, deferring(db):
        await THINGS.insert(list(_thing("th_1"))).defer(db, _thing("th_1"))
        await _ADD.defer(db, {"id": "th_1"})
        assert holds(driver(db))
        # The read goes after the held writes, in the same round trip, and sees them.
        counted = await _COUNT.first(db, {})
        assert not holds(driver(db))
        await _ADD.defer(db, {"id": "th_1"})
        # A SQLAlchemy statement sends them first too.
        amount = (
            await db.execute(text("SELECT amount_minor FROM fastsql_things WHERE id = 'th_1'"))
        ).scalar_one()
    assert counted == {"n": 1}
    assert amount == 102


async def test_writes_still_held_at_the_end_of_the_block_are_sent_before_the_commit(
    core_engine: AsyncEngine,
) -> None:
    await _insert_deferred(core_engine, "th_1", "th_2", "th_3")
    assert await _stored_ids(core_engine) == ["th_1", "th_2", "th_3"]


async def _insert_then_update_nothing(engine: AsyncEngine, *, then_read: bool) -> None:
    async with engine.begin() as db, deferring(db):
        await THINGS.insert(list(_thing("th_1"))).defer(db, _thing("th_1"))
        await _ADD.defer(db, {"id": "th_missing"})
        if then_read:
            await _COUNT.first(db, {})
            pytest.fail("the read after a failed check must not return")


async def test_a_failed_check_fails_the_next_statement_and_nothing_is_committed(
    core_engine: AsyncEngine,
) -> None:
    with pytest.raises(UntouchedError):
        await _insert_then_update_nothing(core_engine, then_read=True)
    assert await _stored_ids(core_engine) == []


async def test_a_check_failing_at_the_end_of_the_block_prevents_the_commit(
    core_engine: AsyncEngine,
) -> None:
    with pytest.raises(UntouchedError):
        await _insert_then_update_nothing(core_engine, then_read=False)
    assert await _stored_ids(core_engine) == []


async def _insert_deferred(engine: AsyncEngine, *thing_ids: str) -> None:
    async with engine.begin() as db, deferring(db):
        for thing_id in thing_ids:
            await THINGS.insert(list(_thing(thing_id))).defer(db, _thing(thing_id))


async def test_a_server_error_in_held_writes_fails_the_unit(core_engine: AsyncEngine) -> None:
    async with core_engine.begin() as db:
        await THINGS.insert(list(_thing("th_1"))).run(db, _thing("th_1"))
    with pytest.raises(psycopg.errors.UniqueViolation):
        await _insert_deferred(core_engine, "th_2", "th_1")
    assert await _stored_ids(core_engine) == ["th_1"]
    # The connection is usable again for the next unit.
    await _insert_deferred(core_engine, "th_3")
    assert await _stored_ids(core_engine) == ["th_1", "th_3"]


async def _insert_then_fail(engine: AsyncEngine, used: list[psycopg.AsyncConnection[Any]]) -> None:
    async with engine.begin() as db, deferring(db):
        used.append(driver(db))
        await THINGS.insert(list(_thing("th_1"))).defer(db, _thing("th_1"))
        raise RuntimeError("the unit fails before anything needed an answer")


async def test_held_writes_are_dropped_when_the_block_fails(core_engine: AsyncEngine) -> None:
    used: list[psycopg.AsyncConnection[Any]] = []
    with pytest.raises(RuntimeError):
        await _insert_then_fail(core_engine, used)
    assert not holds(used[0])
    assert await _stored_ids(core_engine) == []


async def test_defer_outside_a_deferring_block_runs_and_is_refused_at_once(
    core_engine: AsyncEngine,
) -> None:
    async def add_to_a_missing_thing_outside_a_block() -> None:
        async with core_engine.begin() as db:
            await THINGS.insert(list(_thing("th_1"))).defer(db, _thing("th_1"))
            assert not holds(driver(db))
            await _ADD.defer(db, {"id": "th_missing"})
            pytest.fail("a refused write outside a block fails where it is made")

    with pytest.raises(UntouchedError):
        await add_to_a_missing_thing_outside_a_block()
    assert await _stored_ids(core_engine) == []


# --- batched units: the last writes travel with the COMMIT ------------------------------------


async def test_a_batched_unit_sends_its_last_writes_and_its_commit_together(
    core_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipelines: list[tuple[int, str | None]] = []
    send = fastsql._pipelined

    async def recorded(
        connection: psycopg.AsyncConnection[Any], held: list[Any], sql: str | None, *rest: Any
    ) -> Any:
        pipelines.append((len(held), sql))
        return await send(connection, held, sql, *rest)

    monkeypatch.setattr(fastsql, "_pipelined", recorded)
    async with batched_unit(core_engine) as db:
        await THINGS.insert(list(_thing("th_1"))).defer(db, _thing("th_1"))
        await _ADD.defer(db, {"id": "th_1"})
    assert pipelines == [(2, "COMMIT")]
    async with core_engine.begin() as db:
        assert await THINGS.select.first(db, {"account_id": "acct_1", "id": "th_1"}) == {
            **_thing("th_1", 101),
            "details": None,
        }


async def _batched_insert_then_add_to_a_missing_thing(engine: AsyncEngine) -> None:
    async with batched_unit(engine) as db:
        await THINGS.insert(list(_thing("th_1"))).defer(db, _thing("th_1"))
        await _ADD.defer(db, {"id": "th_missing"})


async def test_a_check_the_server_refuses_with_the_commit_commits_nothing(
    core_engine: AsyncEngine,
) -> None:
    with pytest.raises(UntouchedError):
        await _batched_insert_then_add_to_a_missing_thing(core_engine)
    assert await _stored_ids(core_engine) == []
    await _insert_deferred(core_engine, "th_2")  # the pooled connection is usable again
    assert await _stored_ids(core_engine) == ["th_2"]


async def test_a_refusal_is_translated_when_the_statement_runs_alone(
    core_engine: AsyncEngine,
) -> None:
    async with core_engine.begin() as db:
        await THINGS.insert(list(_thing("th_1"))).run(db, _thing("th_1"))

    async def add_to_a_missing_thing() -> None:
        async with core_engine.begin() as db:
            await _ADD.run(db, {"id": "th_missing"})

    with pytest.raises(UntouchedError):
        await add_to_a_missing_thing()
    assert await _stored_ids(core_engine) == ["th_1"]


class NamedRefusalError(Exception):
    """A refusal that names what the server's check found (its message)."""

    def __init__(self, found: str) -> None:
        super().__init__(found)
        self.found = found


# Refuses to add to a thing that has reached its limit, naming the amount it found.
_ADD_BELOW_LIMIT = Statement(
    "WITH added AS (UPDATE fastsql_things SET amount_minor = amount_minor + 1 "
    "WHERE id = %(id)s RETURNING amount_minor) "
    "SELECT remit_require(amount_minor <= %(limit)s, 'RMT02', CAST(amount_minor AS text)) "
    "FROM added"
)


async def test_a_call_s_own_refusal_is_made_from_the_server_s_message(
    core_engine: AsyncEngine,
) -> None:
    """A call gives refusals of its own, for the errors that name what it is about; the server's
    message reaches them, deferred with the COMMIT or run alone."""
    await _insert_deferred(core_engine, "th_1")
    refusals = {"RMT02": NamedRefusalError}
    with pytest.raises(NamedRefusalError) as deferred:
        async with batched_unit(core_engine) as db:
            await _ADD_BELOW_LIMIT.defer(db, {"id": "th_1", "limit": 100}, refusals)
    assert deferred.value.found == "101"
    with pytest.raises(NamedRefusalError) as alone:
        async with core_engine.begin() as db:
            await _ADD_BELOW_LIMIT.run(db, {"id": "th_1", "limit": 100}, refusals)
    assert alone.value.found == "101"
