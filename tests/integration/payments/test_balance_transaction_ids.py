"""A captured charge and a succeeded refund name the balance transaction the ledger wrote for
them, in the same database transaction (`balance_transaction` on the wire)."""

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.ledger.balance_repository import BalanceRepository
from remit.ledger.objects import BalanceTransaction, BalanceTransactionType
from remit.payments.charges import Refund
from remit.payments.domain import CaptureMethod
from remit.payments.grpc import charge_message, refund_message
from remit.payments.service import Done, PaymentsService
from remit.storage.embedded import EmbeddedCluster
from remit.storage.engine import dispose, make_engine
from remit.storage.migrate import alembic_config, upgrade
from tests.integration.payments.conftest import payments_with_core_hooks
from tests.integration.payments.test_payments_service import call, pay, refund_intent, respond
from tests.support.postgres import scratch_database

pytestmark = pytest.mark.anyio


@pytest.fixture
def payments(core_engine: AsyncEngine) -> PaymentsService:
    return payments_with_core_hooks(core_engine)


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    return (await AccountsService(core_engine).create_account(radar_enabled=False)).account.id


async def _ledger_rows(
    engine: AsyncEngine, account_id: str, charge_id: str
) -> dict[BalanceTransactionType, list[BalanceTransaction]]:
    async with engine.connect() as db:
        rows = await BalanceRepository(db).balance_transactions_for_charge(
            account_id, charge_id, list(BalanceTransactionType)
        )
    found: dict[BalanceTransactionType, list[BalanceTransaction]] = {}
    for row in rows:
        found.setdefault(row.type, []).append(row)
    return found


async def test_a_charge_captured_at_once_names_its_balance_transaction(
    payments: PaymentsService, core_engine: AsyncEngine, account_id: str
) -> None:
    intent = await pay(payments, account_id, "bt-auto", amount=2_000)
    assert intent.latest_charge_id is not None
    charge, _ = await payments.get_charge(account_id, intent.latest_charge_id)
    (written,) = (await _ledger_rows(core_engine, account_id, charge.id))[
        BalanceTransactionType.CHARGE
    ]
    assert charge.balance_transaction_id == written.id
    assert (written.amount, written.source_id) == (2_000, charge.id)
    assert charge_message(charge).balance_transaction == written.id


async def test_a_manual_charge_names_its_balance_transaction_once_captured(
    payments: PaymentsService, core_engine: AsyncEngine, account_id: str
) -> None:
    held = await pay(payments, account_id, "bt-manual", capture=CaptureMethod.MANUAL)
    assert held.latest_charge_id is not None
    authorized, _ = await payments.get_charge(account_id, held.latest_charge_id)
    assert authorized.balance_transaction_id is None
    assert not charge_message(authorized).HasField("balance_transaction")

    captured = await payments.capture_payment_intent(
        call(account_id, "bt-capture", endpoint="CapturePaymentIntent"), held.id, 600, respond
    )
    assert isinstance(captured, Done)
    charge, _ = await payments.get_charge(account_id, held.latest_charge_id)
    (written,) = (await _ledger_rows(core_engine, account_id, charge.id))[
        BalanceTransactionType.CHARGE
    ]
    assert charge.balance_transaction_id == written.id
    assert written.amount == 600


async def test_each_succeeded_refund_names_its_own_balance_transaction(
    payments: PaymentsService, core_engine: AsyncEngine, account_id: str
) -> None:
    intent = await pay(payments, account_id, "bt-refunded")

    async def refund(key: str, amount: int) -> Refund:
        done = await refund_intent(payments, account_id, key, intent.id, amount)
        assert isinstance(done, Done)
        return done.value

    first, second = await refund("bt-r1", 300), await refund("bt-r2", 700)
    assert intent.latest_charge_id is not None
    written = (await _ledger_rows(core_engine, account_id, intent.latest_charge_id))[
        BalanceTransactionType.REFUND
    ]
    by_source = {row.source_id: (row.id, row.amount) for row in written}
    assert by_source == {
        first.id: (first.balance_transaction_id, -300),
        second.id: (second.balance_transaction_id, -700),
    }
    assert refund_message(first).balance_transaction == first.balance_transaction_id


async def test_the_migration_gives_rows_written_before_it_their_balance_transaction(
    pg_cluster: EmbeddedCluster,
) -> None:
    """Charges and refunds written before core migration 0011 get the id of the balance
    transaction the ledger already wrote for them; downgrading drops the columns again."""
    with scratch_database(pg_cluster, "backfill") as url:
        upgrade("core", url)
        engine = make_engine(url, pool_size=2)
        try:
            account = (await AccountsService(engine).create_account(radar_enabled=False)).account.id
            service = payments_with_core_hooks(engine)
            intent = await pay(service, account, "backfilled")
            refunded = await refund_intent(service, account, "backfilled-refund", intent.id, 400)
            assert isinstance(refunded, Done)
            before = await _ids(engine)
            assert None not in before.values()
            assert len(before) == 2
        finally:
            await dispose(engine)

        command.downgrade(alembic_config("core", url), "0010_ledger_post")
        upgrade("core", url)

        engine = make_engine(url, pool_size=2)
        try:
            assert await _ids(engine) == before
        finally:
            await dispose(engine)


async def _ids(engine: AsyncEngine) -> dict[str, str | None]:
    async with engine.connect() as db:
        rows = await db.execute(
            text(
                "SELECT id, balance_transaction_id FROM charges "
                "UNION ALL SELECT id, balance_transaction_id FROM refunds"
            )
        )
        return {row.id: row.balance_transaction_id for row in rows}
