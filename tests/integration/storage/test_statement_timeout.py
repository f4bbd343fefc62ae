"""The services' sessions carry a statement timeout, set by the connection's startup options
(no statement of its own): a statement stuck past it is cancelled by PostgreSQL, which frees
its connection, and the failure is the temporary fault a retry gets past. Engines made without
one (the admin commands, the tests) have no limit, and the ledger's verification lifts it for
its own transaction."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.config import ConfigError, statement_timeout_s
from remit.ledger import service as ledger_service
from remit.ledger.service import LedgerService
from remit.ledger.verify import VerifyReport
from remit.storage import direct
from remit.storage.driver_errors import DatabaseFault, database_fault
from remit.storage.engine import dispose, make_engine, single_statement
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio


# Short, for the statement that outlasts it, but long past what the others here take on a
# loaded machine: they must not be cancelled.
TIMEOUT_S = 1.0


@pytest.fixture
async def bounded(databases: WorkerDatabases) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(databases.core_url, pool_size=1, statement_timeout_s=TIMEOUT_S)
    try:
        yield engine
    finally:
        await direct.close(engine)
        await dispose(engine)


async def test_both_pools_sessions_carry_the_statement_timeout(bounded: AsyncEngine) -> None:
    async with bounded.begin() as db:
        assert await db.scalar(text("SHOW statement_timeout")) == "1s"
    async with single_statement(bounded) as connection:
        cursor = await connection.execute("SHOW statement_timeout")
        assert await cursor.fetchone() == ("1s",)


async def test_a_statement_past_it_is_cancelled_as_a_temporary_fault(
    bounded: AsyncEngine,
) -> None:
    with pytest.raises(OperationalError) as raised:
        async with bounded.begin() as db:
            await db.execute(text("SELECT pg_sleep(:s)"), {"s": 30 * TIMEOUT_S})
    assert database_fault(raised.value) is DatabaseFault.TEMPORARY
    # The connection is free again, for the next unit.
    async with bounded.begin() as db:
        assert await db.scalar(text("SELECT 1")) == 1


async def test_an_engine_made_without_one_has_no_limit(core_engine: AsyncEngine) -> None:
    async with core_engine.begin() as db:
        assert await db.scalar(text("SHOW statement_timeout")) == "0"


async def test_the_ledgers_verification_is_not_bounded_by_it(
    bounded: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[object] = []

    async def timeout_in_verify(db: AsyncConnection, **_: object) -> VerifyReport:
        seen.append(await db.scalar(text("SHOW statement_timeout")))
        return VerifyReport(
            transactions_checked=0, verified_at=datetime.now(UTC), differences=[], chain_breaks=[]
        )

    monkeypatch.setattr(ledger_service, "verify_ledger", timeout_in_verify)
    await LedgerService(bounded).verify()
    assert seen == ["0"]


def test_the_setting_has_a_generous_default_and_refuses_nonsense() -> None:
    assert statement_timeout_s({}) == 30.0
    assert statement_timeout_s({"REMIT_STATEMENT_TIMEOUT_S": "5"}) == 5.0
    for bad in ("0", "-1", "soon", "100000"):
        with pytest.raises(ConfigError, match="REMIT_STATEMENT_TIMEOUT_S"):
            statement_timeout_s({"REMIT_STATEMENT_TIMEOUT_S": bad})


async def test_options_the_database_url_gives_are_kept_beside_the_timeout(
    databases: WorkerDatabases,
) -> None:
    """Given to the driver, the timeout's options replaced those of an operator's URL (a
    `search_path`, say) on every connection of both pools."""
    separator = "&" if "?" in databases.core_url else "?"
    url = f"{databases.core_url}{separator}options=-c%20search_path%3Dpublic%2Cpg_catalog"
    engine = make_engine(url, pool_size=1, statement_timeout_s=TIMEOUT_S)
    try:
        async with engine.begin() as db:
            assert await db.scalar(text("SHOW statement_timeout")) == "1s"
            assert await db.scalar(text("SHOW search_path")) == "public,pg_catalog"
        async with single_statement(engine) as connection:
            cursor = await connection.execute("SHOW search_path")
            assert await cursor.fetchone() == ("public,pg_catalog",)
    finally:
        await direct.close(engine)
        await dispose(engine)
