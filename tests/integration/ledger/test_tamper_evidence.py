"""The database keeps the ledger's history as the journal wrote it (core migrations 0005_ledger,
0064_ledger_outcomes_forward, 0070_ledger_history_no_truncate and 0082_ledger_posting_owner): a
transaction's outcome moves only forward, once, no table of the ledger or of its history can be
truncated, even by a TRUNCATE that cascades from another table, and no posting moves money on
another merchant's ledger account."""

import psycopg
import pytest
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.ledger import journal
from remit.ledger.domain import Posting, TransactionRequest
from tests.integration.ledger.conftest import NewAccount

pytestmark = pytest.mark.anyio


def move(txid: str, amount: int, *, pending: bool = False) -> TransactionRequest:
    return TransactionRequest(
        transaction_id=txid,
        postings=(Posting("world", -amount, "usd"), Posting("wallet", amount, "usd")),
        pending=pending,
    )


@pytest.fixture
async def history(core_engine: AsyncEngine, account_id: str, clock: FixedClock) -> str:
    """An open reservation (`open`), one posted (`held`, by `held-post`), one voided (`voided`,
    by `voided-void`), a transaction reversed (`paid`, by `paid-back`) and one not (`kept`)."""
    now = clock.now()
    async with core_engine.begin() as db:
        for txid in ("open", "held", "voided"):
            await journal.post(db, account_id, move(txid, 100, pending=True), now=now)
        await journal.post_pending(
            db, account_id, pending_transaction_id="held", transaction_id="held-post", now=now
        )
        await journal.void_pending(
            db, account_id, pending_transaction_id="voided", transaction_id="voided-void", now=now
        )
        for txid in ("paid", "kept"):
            await journal.post(db, account_id, move(txid, 50), now=now)
        await journal.reverse(
            db, account_id, transaction_id="paid", reversal_id="paid-back", now=now
        )
    return account_id


async def update(engine: AsyncEngine, account_id: str, txid: str, values: str) -> None:
    async with engine.begin() as db:
        await db.execute(
            text(
                f"UPDATE ledger_transactions SET {values} "  # noqa: S608 (the tests' own values)
                "WHERE account_id = :a AND id = :id"
            ),
            {"a": account_id, "id": txid},
        )


REFUSED_MOVES = {
    "posted back to open": ("held", "pending_status = 'open', resolved_by = NULL"),
    "posted to voided": ("held", "pending_status = 'voided'"),
    "voided to posted": ("voided", "pending_status = 'posted'"),
    "resolved by another": ("held", "resolved_by = 'voided-void'"),
    "resolution forgotten": ("held", "resolved_by = NULL"),
    "open to posted by no one": ("open", "pending_status = 'posted'"),
    "open to anything else": ("open", "pending_status = 'expired', resolved_by = 'x'"),
    "open resolved but left open": ("open", "resolved_by = 'x'"),
    "a posted transaction made pending": ("kept", "pending_status = 'open'"),
    "reversal forgotten": ("paid", "reversed_by = NULL"),
    "reversed by another": ("paid", "reversed_by = 'kept'"),
}


@pytest.mark.parametrize(("txid", "values"), REFUSED_MOVES.values(), ids=REFUSED_MOVES.keys())
async def test_an_outcome_cannot_move_back_or_sideways(
    core_engine: AsyncEngine, history: str, txid: str, values: str
) -> None:
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="cannot") as refused:
        await update(core_engine, history, txid, values)
    assert isinstance(refused.value.orig, psycopg.errors.RaiseException)


@pytest.mark.parametrize(
    ("txid", "values"),
    [
        ("open", "pending_status = 'posted', resolved_by = 'by-hand'"),
        ("open", "pending_status = 'voided', resolved_by = 'by-hand'"),
        ("kept", "reversed_by = 'by-hand'"),
        ("held", "pending_status = 'posted'"),  # unchanged: nothing moves
    ],
)
async def test_an_outcome_moves_forward_once(
    core_engine: AsyncEngine, history: str, txid: str, values: str
) -> None:
    await update(core_engine, history, txid, values)


@pytest.mark.parametrize(
    "statement",
    [
        "TRUNCATE ledger_transactions CASCADE",
        "TRUNCATE ledger_postings",
        "TRUNCATE ledger_accounts CASCADE",
        "TRUNCATE ledger_chains",
        "TRUNCATE accounts CASCADE",
    ],
)
async def test_no_ledger_table_can_be_truncated(
    core_engine: AsyncEngine, history: str, statement: str
) -> None:
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="TRUNCATE of ledger_") as refused:
        async with core_engine.begin() as db:
            await db.execute(text(statement))
    assert isinstance(refused.value.orig, psycopg.errors.RaiseException)
    async with core_engine.connect() as db:
        left = (await db.execute(text("SELECT count(*) FROM ledger_postings"))).scalar_one()
    assert left == 16


@pytest.mark.parametrize(
    "table",
    ["balance_transactions", "ledger_events", "payouts", "reconciliations", "reconciliation_rows"],
)
async def test_no_table_of_the_ledgers_history_can_be_truncated(
    core_engine: AsyncEngine, history: str, table: str
) -> None:
    with pytest.raises(sqlalchemy.exc.DBAPIError, match=f"TRUNCATE of {table} refused") as refused:
        async with core_engine.begin() as db:
            await db.execute(text(f"TRUNCATE {table} CASCADE"))
    assert isinstance(refused.value.orig, psycopg.errors.RaiseException)


async def test_a_posting_on_another_merchants_ledger_account_is_refused(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock
) -> None:
    """A posting's ledger account is its own merchant's (core migration 0082)."""
    victim, thief = await new_account(), await new_account()
    async with core_engine.begin() as db:
        await journal.post(db, victim, move("v1", 100), now=clock.now())
        await journal.post(db, thief, move("t1", 100), now=clock.now())
    with pytest.raises(sqlalchemy.exc.IntegrityError) as refused:
        async with core_engine.begin() as db:
            await db.execute(
                text(
                    "INSERT INTO ledger_postings "
                    "(account_id, transaction_id, ledger_account_id, amount_minor) "
                    "SELECT :v, 'v1', id, 1 FROM ledger_accounts "
                    "WHERE account_id = :t AND name = 'wallet'"
                ),
                {"v": victim, "t": thief},
            )
    assert isinstance(refused.value.orig, psycopg.errors.ForeignKeyViolation)
    assert "fk_ledger_postings_ledger_account_owner" in str(refused.value)
