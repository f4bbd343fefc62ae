"""`batched_unit` on connections kept checked out between units, against a real PostgreSQL."""

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import psycopg
import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.storage import fastsql, kept, replanning
from remit.storage.engine import batched_unit, dispose, make_engine
from remit.storage.fastsql import Statement, driver
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio

BACKEND = Statement("SELECT pg_backend_pid() AS pid")
_INSERT = Statement("INSERT INTO kept_things (id) VALUES (%(id)s)")


@pytest.fixture
async def engine(databases: WorkerDatabases) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(databases.core_url, pool_size=2)
    async with engine.begin() as db:
        await db.execute(text("DROP TABLE IF EXISTS kept_things"))
        await db.execute(text("CREATE TABLE kept_things (id text PRIMARY KEY)"))
    try:
        yield engine
    finally:
        async with engine.begin() as db:
            await db.execute(text("DROP TABLE kept_things"))
        await dispose(engine)


async def _backend(db: AsyncConnection) -> int:
    row = await BACKEND.first(db, {})
    assert row is not None
    return int(row["pid"])


async def _stored(engine: AsyncEngine) -> list[str]:
    async with engine.begin() as db:
        rows = await Statement("SELECT id FROM kept_things ORDER BY id").rows(db, {})
    return [row["id"] for row in rows]


async def _checked_out(engine: AsyncEngine) -> int:
    return int(engine.sync_engine.pool.checkedout())  # type: ignore[attr-defined]


async def test_consecutive_units_run_on_one_kept_connection(engine: AsyncEngine) -> None:
    async with batched_unit(engine) as db:
        first = await _backend(db)
        await _INSERT.defer(db, {"id": "a"})
    async with batched_unit(engine) as db:
        assert await _backend(db) == first
        assert driver(db).info.transaction_status == TransactionStatus.INTRANS
    # Kept between units: checked out of SQLAlchemy's pool, idle in its transaction state.
    assert await _checked_out(engine) == 1
    assert await _stored(engine) == ["a"]


async def test_a_unit_without_held_writes_still_commits(engine: AsyncEngine) -> None:
    async with batched_unit(engine) as db:
        await _INSERT.run(db, {"id": "b"})
        assert driver(db).info.transaction_status == TransactionStatus.INTRANS
    assert await _stored(engine) == ["b"]


async def test_a_sqlalchemy_core_statement_in_a_unit_commits_with_it(engine: AsyncEngine) -> None:
    async with batched_unit(engine) as db:
        await _INSERT.defer(db, {"id": "c"})
        await db.execute(text("INSERT INTO kept_things (id) VALUES ('d')"))
        assert db.in_transaction()
    async with batched_unit(engine) as db:
        # SQLAlchemy's transaction ended with the unit: the next one starts clean.
        assert not db.in_transaction()
        await _INSERT.defer(db, {"id": "e"})
    assert await _stored(engine) == ["c", "d", "e"]


async def test_a_failed_unit_leaves_nothing_and_its_connection_is_kept(
    engine: AsyncEngine,
) -> None:
    async def refused() -> int:
        async with batched_unit(engine) as db:
            await _INSERT.run(db, {"id": "f"})
            await db.execute(text("INSERT INTO kept_things (id) VALUES ('g')"))
            raise RuntimeError(await _backend(db))

    with pytest.raises(RuntimeError) as raised:
        await refused()
    before = raised.value.args[0]
    async with batched_unit(engine) as db:
        assert await _backend(db) == before
        assert not db.in_transaction()
    assert await _stored(engine) == []


async def test_a_server_error_rolls_back_and_the_next_unit_works(engine: AsyncEngine) -> None:
    async def twice() -> None:
        async with batched_unit(engine) as db:
            await _INSERT.run(db, {"id": "h"})
            await _INSERT.run(db, {"id": "h"})

    with pytest.raises(psycopg.errors.UniqueViolation):
        await twice()
    async with batched_unit(engine) as db:
        await _INSERT.defer(db, {"id": "i"})
    assert await _stored(engine) == ["i"]


async def _cancel_in_its_statement(
    unit: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
) -> None:
    """Run `unit`, cancel it a moment after it says its long statement is about to start, and
    check that it ends with that cancellation."""
    started = asyncio.Event()
    task = asyncio.create_task(unit(started))
    await started.wait()
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancelled_unit_rolls_back(engine: AsyncEngine) -> None:
    async def slow_unit(started: asyncio.Event) -> None:
        async with batched_unit(engine) as db:
            await _INSERT.run(db, {"id": "j"})
            started.set()
            await Statement("SELECT pg_sleep(30)").run(db, {})

    await _cancel_in_its_statement(slow_unit)
    async with batched_unit(engine) as db:
        await _INSERT.defer(db, {"id": "k"})
    assert await _stored(engine) == ["k"]


async def test_a_connection_the_server_dropped_is_replaced_with_the_idle_ones(
    engine: AsyncEngine,
) -> None:
    """One failure on a dead connection, then a fresh one: the kept connections that sat idle
    beside it are given back too, since a lost server takes them all."""

    async def hold_two() -> tuple[int, int]:
        async with batched_unit(engine) as one, batched_unit(engine) as two:
            return await _backend(one), await _backend(two)

    first, second = await hold_two()
    async with engine.begin() as admin:
        # The last given back is the next taken.
        await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    with pytest.raises((psycopg.OperationalError, DBAPIError)):
        async with batched_unit(engine) as db:
            await _backend(db)
    async with batched_unit(engine) as db:
        assert await _backend(db) not in {first, second}
    assert await _checked_out(engine) == 1


def _count_checkouts(engine: AsyncEngine) -> list[object]:
    checkouts: list[object] = []
    event.listen(engine.sync_engine, "checkout", lambda *args: checkouts.append(args))
    return checkouts


async def test_kept_connections_spare_the_pool_until_they_are_old(
    databases: WorkerDatabases,
) -> None:
    for recycle_s, expected in ((3600.0, 1), (0.0, 3)):
        engine = make_engine(databases.core_url, pool_size=1)
        try:
            kept.attach(engine, max_idle=1, recycle_s=recycle_s)
            checkouts = _count_checkouts(engine)
            for _ in range(3):
                async with batched_unit(engine) as db:
                    await _backend(db)
            assert len(checkouts) == expected
        finally:
            await dispose(engine)


async def test_dispose_gives_every_kept_connection_back(engine: AsyncEngine) -> None:
    async with batched_unit(engine) as one, batched_unit(engine) as two:
        assert await _backend(one) != await _backend(two)
    assert await _checked_out(engine) == 2
    await kept.close(engine)
    assert await _checked_out(engine) == 0


async def test_a_kept_session_forgets_its_plans_at_spaced_units(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replanning, "REPLAN_AFTER_USES", frozenset({2, 4}))
    discarded = []
    for unit in range(1, 6):
        with fastsql.traced() as sent:
            async with batched_unit(engine) as db:
                await _backend(db)
        if "DISCARD PLANS" in sent:
            discarded.append(unit)
    # Counted per session: one kept session ran all five units.
    assert discarded == [2, 4]


async def test_a_unit_cancelled_in_a_sqlalchemy_statement_rolls_back_and_reports_the_cancel(
    engine: AsyncEngine,
) -> None:
    """SQLAlchemy invalidates its connection when a statement it runs is cancelled; the unit
    must still end with the cancellation, not with an error of its own clean-up."""

    async def slow_unit(started: asyncio.Event) -> None:
        async with batched_unit(engine) as db:
            await db.execute(text("INSERT INTO kept_things (id) VALUES ('l')"))
            started.set()
            await db.execute(text("SELECT pg_sleep(30)"))

    await _cancel_in_its_statement(slow_unit)
    async with batched_unit(engine) as db:
        await db.execute(text("INSERT INTO kept_things (id) VALUES ('m')"))
    assert await _stored(engine) == ["m"]


async def test_a_server_lost_under_a_sqlalchemy_statement_fails_once(engine: AsyncEngine) -> None:
    async with batched_unit(engine) as db:
        backend = await _backend(db)

    async def on_the_lost_connection() -> None:
        async with batched_unit(engine) as db:
            await db.execute(text("SELECT 1"))

    async with engine.begin() as admin:
        await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
    with pytest.raises(DBAPIError):
        await on_the_lost_connection()
    async with batched_unit(engine) as db:
        assert await _backend(db) != backend
        await db.execute(text("INSERT INTO kept_things (id) VALUES ('n')"))
    assert await _stored(engine) == ["n"]


async def test_a_commit_sqlalchemy_refuses_leaves_the_next_unit_clean(engine: AsyncEngine) -> None:
    """A deferred check fails at SQLAlchemy's COMMIT; its transaction, left inactive, is rolled
    back before the connection serves another unit."""
    async with engine.begin() as db:
        await db.execute(
            text(
                "ALTER TABLE kept_things ADD COLUMN ref text REFERENCES kept_things (id) "
                "DEFERRABLE INITIALLY DEFERRED"
            )
        )

    async def dangling() -> None:
        async with batched_unit(engine) as db:
            await db.execute(text("INSERT INTO kept_things (id, ref) VALUES ('o', 'nowhere')"))

    with pytest.raises(DBAPIError):
        await dangling()
    async with batched_unit(engine) as db:
        assert db.get_transaction() is None
        await db.execute(text("INSERT INTO kept_things (id) VALUES ('p')"))
    assert await _stored(engine) == ["p"]


async def test_a_unit_that_ends_after_dispose_began_keeps_nothing(engine: AsyncEngine) -> None:
    async with batched_unit(engine) as db:
        await _backend(db)
        await kept.close(engine)
    assert await _checked_out(engine) == 0


async def test_a_units_connection_kept_past_the_unit_runs_nothing(engine: AsyncEngine) -> None:
    async with batched_unit(engine) as first:
        stale = first
        backend = await _backend(first)
    async with batched_unit(engine) as second:
        # The same server session serves the next unit...
        assert await _backend(second) == backend
        # ...but the first unit's face of it refuses, so nothing lands in this transaction.
        with pytest.raises(kept.UnitEndedError, match="has ended"):
            await stale.execute(text("INSERT INTO kept_things (id) VALUES ('stray')"))
        with pytest.raises(RuntimeError, match="has ended"):
            await _INSERT.run(stale, {"id": "stray-driver"})
        with pytest.raises(RuntimeError, match="has ended"):
            await _INSERT.defer(stale, {"id": "stray-held"})
        await _INSERT.defer(second, {"id": "own"})
    assert await _stored(engine) == ["own"]
