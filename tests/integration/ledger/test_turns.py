"""Postings of one account queue on the account's advisory lock (core migration 0018), before
any ledger row: the chain head and the balance rows are touched by one posting at a time. The
lock is keyed by a 64-bit hash of the account id (core migration 0039), so accounts whose ids
share a 32-bit hash do not share a turn."""

import asyncio
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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


# Two account ids with the same 32-bit hashtext, found by brute force over acct_turn1 to
# acct_turn300000: under migration 0018's key they shared one turn.
_HASH_ALIKE = ("acct_turn36321", "acct_turn251455")


async def _take_turn(db: AsyncConnection, account_id: str) -> None:
    await db.execute(text("SELECT ledger_wait_turn(:a)"), {"a": account_id})


async def test_accounts_whose_ids_hash_alike_in_32_bits_have_turns_of_their_own(
    core_engine: AsyncEngine,
) -> None:
    first, second = _HASH_ALIKE
    async with core_engine.connect() as db:
        alike = await db.scalar(
            text("SELECT hashtext(:a) = hashtext(:b)"), {"a": first, "b": second}
        )
    assert alike
    async with core_engine.connect() as holder, core_engine.connect() as other:
        await _take_turn(holder, first)
        # Waiting would fail the transaction rather than hang the test.
        await other.execute(text("SET LOCAL lock_timeout = '500ms'"))
        await _take_turn(other, second)
        # The first account's turn is still taken, one transaction at a time.
        with pytest.raises(DBAPIError) as waited:
            await _take_turn(other, first)
        assert isinstance(waited.value.orig, psycopg.errors.LockNotAvailable)
        await other.rollback()
        await holder.rollback()


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


def _turn_definition(url: str) -> str:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT pg_get_functiondef(CAST('ledger_wait_turn(text)' AS regprocedure))"
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_the_turn_is_keyed_by_64_bits_and_downgrade_brings_the_32_bit_key_back(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, "0038_reconciliation_started")
    narrow = _turn_definition(scratch_core)
    assert "pg_advisory_xact_lock(1818584167, hashtext(p_account_id))" in narrow
    upgrade("core", scratch_core, "0039_ledger_turn_64bit")
    assert "pg_advisory_xact_lock(hashtextextended(p_account_id, 1818584167))" in (
        _turn_definition(scratch_core)
    )
    command.downgrade(alembic_config("core", scratch_core), "0038_reconciliation_started")
    # Exactly the function as it was, to the byte.
    assert _turn_definition(scratch_core) == narrow
