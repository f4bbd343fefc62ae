"""Postings of one account queue on the account's advisory lock (core migration 0018), before
any ledger row: the chain head and the balance rows are touched by one posting at a time."""

import asyncio
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.ledger import journal
from remit.ledger.domain import Posting, TransactionRequest
from remit.ledger.repository import JournalRepository
from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.integration.ledger.conftest import NewAccount
from tests.support.locks import until_a_session_waits_on_a_lock
from tests.support.postgres import scratch_database

pytestmark = pytest.mark.anyio

_FUNCTIONS = {
    "ledger_post": "ledger_post(text, text, text, text, timestamptz, jsonb, text, text, "
    "timestamptz, bytea, bytea, text[], text[], text[], boolean[], boolean[], bigint[], "
    "bigint[], bigint[], integer[], bigint[])",
    "ledger_lock_for_posting": "ledger_lock_for_posting(text, text, text[], text[])",
}


async def _credit(
    engine: AsyncEngine, account_id: str, transaction_id: str, now: FixedClock
) -> None:
    async with engine.begin() as db:
        await journal.post(
            db,
            account_id,
            TransactionRequest(
                transaction_id=transaction_id,
                postings=(Posting("world", -100, "usd"), Posting("wallet", 100, "usd")),
            ),
            now=now.now(),
        )


async def _waiting_on(engine: AsyncEngine) -> list[str]:
    async with engine.begin() as db:
        rows = await db.execute(
            text(
                "SELECT wait_event FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
        return [str(row[0]) for row in rows]


async def test_a_posting_waits_for_its_accounts_turn_and_others_go_on(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock
) -> None:
    busy, other = await new_account(), await new_account()
    await _credit(core_engine, busy, "first", clock)  # the chain head and balances exist
    async with core_engine.connect() as holder:
        await holder.execute(text("SELECT ledger_wait_turn(:a)"), {"a": busy})
        waiting = asyncio.create_task(_credit(core_engine, busy, "second", clock))
        await until_a_session_waits_on_a_lock(core_engine, contender=waiting)
        # It waits on the advisory lock, not on a row of the ledger.
        assert await _waiting_on(core_engine) == ["advisory"]
        await _credit(core_engine, other, "elsewhere", clock)
        assert not waiting.done()
        await holder.rollback()
    await asyncio.wait_for(waiting, 10)


async def test_the_payouts_chain_lock_waits_for_the_turn_too(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock
) -> None:
    account = await new_account()
    await _credit(core_engine, account, "first", clock)

    async def lock_the_chain() -> tuple[int, str]:
        async with core_engine.begin() as db:
            return await JournalRepository(db).lock_chain(account)

    async with core_engine.connect() as holder:
        await holder.execute(text("SELECT ledger_wait_turn(:a)"), {"a": account})
        waiting = asyncio.create_task(lock_the_chain())
        await until_a_session_waits_on_a_lock(core_engine, contender=waiting)
        assert await _waiting_on(core_engine) == ["advisory"]
        await holder.rollback()
    assert (await asyncio.wait_for(waiting, 10))[0] == 1


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "ledger_turn") as url:
        yield url


def _definitions(url: str) -> dict[str, str]:
    with psycopg.connect(url) as connection:
        found = {}
        for name, signature in _FUNCTIONS.items():
            row = connection.execute(
                "SELECT pg_get_functiondef(CAST(%s AS regprocedure))", (signature,)
            ).fetchone()
            assert row is not None
            found[name] = str(row[0])
        return found


def _waits_for_turn(url: str) -> dict[str, bool]:
    return {
        name: "PERFORM ledger_wait_turn(p_account_id);" in definition
        for name, definition in _definitions(url).items()
    }


def _turn_function_exists(url: str) -> bool:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT to_regprocedure('ledger_wait_turn(text)')").fetchone()
    return row is not None and row[0] is not None


def test_the_migration_adds_the_turn_to_both_functions_and_takes_it_back(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, "0017_vault_sweep_watermark")
    before = _definitions(scratch_core)
    upgrade("core", scratch_core, "0018_ledger_turn")
    assert _waits_for_turn(scratch_core) == {"ledger_post": True, "ledger_lock_for_posting": True}
    assert _turn_function_exists(scratch_core)
    command.downgrade(alembic_config("core", scratch_core), "0017_vault_sweep_watermark")
    # Exactly the functions as they were, to the byte.
    assert _definitions(scratch_core) == before
    assert not _turn_function_exists(scratch_core)
    upgrade("core", scratch_core)
    assert _waits_for_turn(scratch_core) == {"ledger_post": True, "ledger_lock_for_posting": True}
