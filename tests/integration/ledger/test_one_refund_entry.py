"""A refund has one `refund` balance transaction, whichever process finishes it (core migration
0041): a process of the version before 0040, which wrote the row only when the refund posted,
finishing a refund that already has its row fails instead of writing a second one."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.payments.test_pending_refund_migration import _pending_refund

pytestmark = pytest.mark.anyio

# What a process of the earlier version writes when the refund posts: a row of its own (new id,
# the posting's ledger transaction) for the same refund.
_SECOND_ROW = text(
    "INSERT INTO balance_transactions (id, account_id, ledger_transaction_id, type, "
    "reporting_category, amount, fee, net, currency, status, available_on, created_at, "
    "fee_details, source_id, charge_id) "
    "SELECT 'txn_second', account_id, 'ltx_second', type, reporting_category, amount, fee, net, "
    "currency, status, available_on, created_at, fee_details, source_id, charge_id "
    "FROM balance_transactions WHERE account_id = :account AND type = :type"
)


async def test_a_second_refund_row_for_one_refund_is_refused(core_engine: AsyncEngine) -> None:
    account_id, _ = await _pending_refund(core_engine)
    async with core_engine.connect() as db:
        with pytest.raises(IntegrityError, match="ux_balance_transactions_refund_source"):
            await db.execute(_SECOND_ROW, {"account": account_id, "type": "refund"})
        await db.rollback()
    async with core_engine.connect() as db:
        rows = await db.execute(
            text(
                "SELECT count(*) FROM balance_transactions "
                "WHERE account_id = :account AND type = 'refund'"
            ),
            {"account": account_id},
        )
        assert rows.scalar_one() == 1


async def test_other_kinds_of_rows_for_one_source_are_not_limited(
    core_engine: AsyncEngine,
) -> None:
    """Only `refund` rows are counted: a refund's failure row names the same refund."""
    account_id, _ = await _pending_refund(core_engine)
    async with core_engine.begin() as db:
        await db.execute(
            text(
                "UPDATE balance_transactions SET type = 'refund_failure' "
                "WHERE account_id = :account AND type = 'refund'"
            ),
            {"account": account_id},
        )
        await db.execute(_SECOND_ROW, {"account": account_id, "type": "refund_failure"})
        rows = await db.execute(
            text(
                "SELECT count(*) FROM balance_transactions "
                "WHERE account_id = :account AND type = 'refund_failure'"
            ),
            {"account": account_id},
        )
        assert rows.scalar_one() == 2
