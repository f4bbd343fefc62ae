"""A refund has one `refund` balance transaction, whichever process finishes it (core migration
0040): a process of the version before 0041, which wrote the row only when the refund posted,
finishing a refund that already has its row fails instead of writing a second one."""

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.storage.embedded import EmbeddedCluster
from remit.storage.engine import dispose, make_engine
from remit.storage.migrate import alembic_config, upgrade
from tests.integration.payments.test_pending_refund_migration import _pending_refund
from tests.support.postgres import scratch_database

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


_DUPLICATE_ROW = text(
    "INSERT INTO balance_transactions (id, account_id, ledger_transaction_id, type, "
    "reporting_category, amount, fee, net, currency, status, available_on, created_at, "
    "fee_details, source_id) "
    "VALUES (:id, :account, :ledger_id, 'refund', 'refund', -100, 0, -100, 'usd', 'available', "
    "now(), now(), '[]', 're_twice')"
)

_INDEX = text(
    "SELECT count(*) FROM pg_class WHERE relname = 'ux_balance_transactions_refund_source'"
)


async def test_the_index_migration_names_refunds_already_written_twice(
    pg_cluster: EmbeddedCluster,
) -> None:
    """Refunds with two `refund` rows before the index stop the upgrade with their names,
    leaving no invalid index behind; once one row is left, the upgrade goes on."""
    with scratch_database(pg_cluster, "one_refund_entry_dup") as url:
        upgrade("core", url)
        engine = make_engine(url, pool_size=2)
        try:
            account_id = (
                await AccountsService(engine).create_account(radar_enabled=False)
            ).account.id
        finally:
            await dispose(engine)
        command.downgrade(alembic_config("core", url), "0039_ledger_turn_64bit")
        engine = make_engine(url, pool_size=2)
        try:
            async with engine.begin() as db:
                for n in (1, 2):
                    await db.execute(
                        _DUPLICATE_ROW,
                        {"id": f"txn_twice_{n}", "account": account_id, "ledger_id": f"ltx_{n}"},
                    )
        finally:
            await dispose(engine)

        with pytest.raises(RuntimeError, match=f"re_twice \\(account {account_id}, 2 rows\\)"):
            upgrade("core", url)

        engine = make_engine(url, pool_size=2)
        try:
            async with engine.begin() as db:
                assert (await db.execute(_INDEX)).scalar_one() == 0
                await db.execute(text("DELETE FROM balance_transactions WHERE id = 'txn_twice_2'"))
        finally:
            await dispose(engine)
        upgrade("core", url)
