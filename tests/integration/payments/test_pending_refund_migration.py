"""Core migration 0041: a refund still waiting for the acquirer when it runs gets the balance
transaction its hold writes since, named on the refund and kept when the refund succeeds; a
downgrade takes it away again, as the earlier version expects."""

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import Engine, event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.ledger import postings as ledger
from remit.ledger.balance_repository import BalanceRepository
from remit.ledger.balances import read_balance
from remit.ledger.objects import BalanceTransactionStatus, BalanceTransactionType
from remit.ledger.repository import JournalRepository
from remit.ledger.verify import verify_ledger
from remit.payments.charges import RefundStatus
from remit.payments.idempotency import KeyRecord
from remit.payments.service import Done
from remit.storage.embedded import EmbeddedCluster
from remit.storage.engine import dispose, make_engine
from remit.storage.migrate import alembic_config, upgrade
from tests.integration.payments.refund_ledger import (
    NET,
    ledger_payments,
    paid_and_made_available,
    respond,
)
from tests.integration.payments.test_payments_service import call
from tests.support.fake_network import FakeNetwork
from tests.support.postgres import scratch_database

pytestmark = pytest.mark.anyio

_BEFORE = "0040_one_refund_entry"
REFUND = 700


async def _pending_refund(engine: AsyncEngine) -> tuple[str, KeyRecord]:
    """An account with NET available and a refund of REFUND created, held and not yet sent to
    the acquirer; returns the account and the refund's unfinished request."""
    account_id = (await AccountsService(engine).create_account(radar_enabled=False)).account.id
    payments = ledger_payments(engine, FakeNetwork())
    intent_id = await paid_and_made_available(payments, engine, account_id)
    record = await payments._claim(call(account_id, "waits", endpoint="CreateRefund"))
    record = await payments._start_refund(record, None, intent_id, REFUND, None, {})
    return account_id, record


async def _named(engine: AsyncEngine, refund_id: str) -> str | None:
    async with engine.connect() as db:
        found = await db.execute(
            text("SELECT balance_transaction_id FROM refunds WHERE id = :id"), {"id": refund_id}
        )
        named: str | None = found.scalar_one()
    return named


async def _shown(engine: AsyncEngine, account_id: str) -> tuple[int, int]:
    """(sum of every balance transaction's net, the available balance shown)."""
    async with engine.connect() as db:
        nets = await BalanceRepository(db).net_by_status(account_id)
        balance = await read_balance(db, account_id, "usd")
    return sum(nets.values()), balance.available[0].amount


async def _assert_verified(engine: AsyncEngine) -> None:
    async with engine.connect() as db:
        report = await verify_ledger(db, now=datetime.now(UTC))
    assert report.ok, (report.differences, report.chain_breaks)


async def test_a_refund_pending_at_the_upgrade_shows_a_balance_transaction_it_keeps(
    pg_cluster: EmbeddedCluster,
) -> None:
    with scratch_database(pg_cluster, "pending_refund") as url:
        upgrade("core", url)
        engine = make_engine(url, pool_size=2)
        try:
            account_id, record = await _pending_refund(engine)
        finally:
            await dispose(engine)
        assert record.refund_id is not None
        refund_id = record.refund_id

        # The earlier version's state: the hold, and neither a balance transaction for it nor
        # one named on the refund (the balance already leaves the hold out).
        command.downgrade(alembic_config("core", url), _BEFORE)
        engine = make_engine(url, pool_size=2)
        try:
            assert await _named(engine, refund_id) is None
            assert await _shown(engine, account_id) == (NET, NET - REFUND)
        finally:
            await dispose(engine)

        upgrade("core", url)
        engine = make_engine(url, pool_size=2)
        try:
            shown_id = await _named(engine, refund_id)
            assert shown_id is not None
            async with engine.connect() as db:
                shown = await BalanceRepository(db).get_balance_transaction(account_id, shown_id)
                hold = await JournalRepository(db).get_transaction(
                    account_id, ledger.refund_hold_id_for(refund_id)
                )
            assert shown is not None
            assert hold is not None
            assert (shown.type, shown.amount, shown.fee, shown.net) == (
                BalanceTransactionType.REFUND,
                -REFUND,
                0,
                -REFUND,
            )
            assert (shown.status, shown.created_at, shown.available_on) == (
                BalanceTransactionStatus.AVAILABLE,
                hold.created_at,
                hold.created_at,
            )
            assert (shown.source_id, shown.ledger_transaction_id, shown.acquirer_reference) == (
                refund_id,
                hold.id,
                None,
            )
            assert await _shown(engine, account_id) == (NET - REFUND, NET - REFUND)
            await _assert_verified(engine)

            # The acquirer refunds it: the refund keeps the balance transaction it showed.
            payments = ledger_payments(engine, FakeNetwork())
            done = await payments.resume_refund(record, respond)
            assert isinstance(done, Done)
            assert (done.value.status, done.value.balance_transaction_id) == (
                RefundStatus.SUCCEEDED,
                shown_id,
            )
            assert await _shown(engine, account_id) == (NET - REFUND, NET - REFUND)
            await _assert_verified(engine)
        finally:
            await dispose(engine)


async def test_the_migration_downgrades_cleanly(pg_cluster: EmbeddedCluster) -> None:
    with scratch_database(pg_cluster, "pending_refund_down") as url:
        upgrade("core", url)
        command.downgrade(alembic_config("core", url), _BEFORE)
        engine = make_engine(url, pool_size=2)
        try:
            async with engine.connect() as db:
                columns = await db.execute(
                    text(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = 'refunds'"
                    )
                )
                assert "failure_balance_transaction_id" not in set(columns.scalars())
        finally:
            await dispose(engine)
        upgrade("core", url)


async def test_a_refund_an_earlier_process_wrote_meanwhile_is_not_written_twice(
    pg_cluster: EmbeddedCluster,
) -> None:
    """A refund whose `refund` row an earlier process wrote while the migration read the open
    holds keeps that row alone: the migration writes none, and the upgrade goes on."""
    with scratch_database(pg_cluster, "pending_refund_raced") as url:
        upgrade("core", url)
        engine = make_engine(url, pool_size=2)
        try:
            account_id, record = await _pending_refund(engine)
        finally:
            await dispose(engine)
        assert record.refund_id is not None
        command.downgrade(alembic_config("core", url), _BEFORE)
        engine = make_engine(url, pool_size=2)
        try:
            async with engine.begin() as db:
                await db.execute(
                    text(
                        "INSERT INTO balance_transactions (id, account_id, "
                        "ledger_transaction_id, type, reporting_category, amount, fee, net, "
                        "currency, status, available_on, created_at, fee_details, source_id) "
                        "VALUES ('txn_earlier', :account, 'ltx_earlier', 'refund', 'refund', "
                        ":amount, 0, :amount, 'usd', 'available', now(), now(), '[]', :refund)"
                    ),
                    {"account": account_id, "amount": -REFUND, "refund": record.refund_id},
                )
        finally:
            await dispose(engine)

        upgrade("core", url)
        engine = make_engine(url, pool_size=2)
        try:
            assert await _named(engine, record.refund_id) is None
            async with engine.connect() as db:
                rows = await db.execute(
                    text(
                        "SELECT id FROM balance_transactions "
                        "WHERE account_id = :account AND type = 'refund'"
                    ),
                    {"account": account_id},
                )
                assert list(rows.scalars()) == ["txn_earlier"]
        finally:
            await dispose(engine)


async def test_the_downgrade_keeps_a_pending_refund_row_a_payout_includes(
    pg_cluster: EmbeddedCluster,
) -> None:
    """A payout that took the row of a refund still waiting for the acquirer would no longer
    add up without it: the downgrade refuses, naming the refund and payout, changing nothing."""
    with scratch_database(pg_cluster, "pending_refund_paid_out") as url:
        upgrade("core", url)
        engine = make_engine(url, pool_size=2)
        try:
            _, record = await _pending_refund(engine)
            assert record.refund_id is not None
            shown_id = await _named(engine, record.refund_id)
            async with engine.begin() as db:
                await db.execute(
                    text("UPDATE balance_transactions SET payout_id = 'po_took_it' WHERE id = :id"),
                    {"id": shown_id},
                )
        finally:
            await dispose(engine)

        with pytest.raises(RuntimeError, match=f"{record.refund_id} \\(in payout po_took_it\\)"):
            command.downgrade(alembic_config("core", url), _BEFORE)

        engine = make_engine(url, pool_size=2)
        try:
            assert await _named(engine, record.refund_id) == shown_id
        finally:
            await dispose(engine)


async def test_the_refunds_table_is_locked_only_after_the_holds_are_read(
    pg_cluster: EmbeddedCluster,
) -> None:
    """Adding the column locks refunds until the migration commits: it comes after the scan of
    the open holds, so that scan never blocks refunds."""
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    with scratch_database(pg_cluster, "pending_refund_lock") as url:
        upgrade("core", url, _BEFORE)
        event.listen(Engine, "before_cursor_execute", record)
        try:
            upgrade("core", url, "0041_pending_refund_entries")
        finally:
            event.remove(Engine, "before_cursor_execute", record)

    def first(fragment: str) -> int:
        return next(n for n, statement in enumerate(statements) if fragment in statement)

    assert first("lt.pending_status = 'open'") < first("ALTER TABLE refunds ADD COLUMN")
