"""A refund waiting for the acquirer holds its money: a payout created meanwhile cannot pay
the same money out, and the refund's outcome settles the hold (posted on success, given back on
failure), whether the request itself, a replay or the completer finishes it. The refund shows
its balance transaction from its creation, the same one once it succeeded; a refund that
failed shows the one that gave its money back too."""

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.ledger import postings as ledger
from remit.ledger.balance_repository import BalanceRepository
from remit.ledger.balances import read_balance
from remit.ledger.chart import AVAILABLE
from remit.ledger.domain import LedgerAccount, LedgerTransaction, PendingStatus
from remit.ledger.objects import BalanceTransaction, BalanceTransactionType
from remit.ledger.payouts import PayoutError, create_payout
from remit.ledger.repository import JournalRepository
from remit.ledger.verify import verify_ledger
from remit.payments.charges import Refund, RefundStatus
from remit.payments.grpc import refund_message
from remit.payments.idempotency import KeyRecord
from remit.payments.ledger_postings import LedgerPostings
from remit.payments.network import OperationOutcome
from remit.payments.service import Done, PaymentsService, Replay
from remit.payments.tables import idempotency_keys
from tests.integration.payments.refund_ledger import (
    NET,
    ledger_payments,
    paid_and_made_available,
    respond,
)
from tests.integration.payments.test_payments_service import call, refund_intent
from tests.support.fake_network import FakeNetwork
from tests.support.statements import statements_sent

pytestmark = pytest.mark.anyio


class RefundsHeldAtTheAcquirer(FakeNetwork):
    """Holds each refund call until the test lets it through (or refuses it)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()
        self.answer = asyncio.Event()

    async def refund(
        self, *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome:
        self.arrived.set()
        await self.answer.wait()
        return await super().refund(
            authorization_id=authorization_id, amount_minor=amount_minor, reference=reference
        )


@pytest.fixture
def network() -> RefundsHeldAtTheAcquirer:
    return RefundsHeldAtTheAcquirer()


@pytest.fixture
def payments(core_engine: AsyncEngine, network: FakeNetwork) -> PaymentsService:
    return ledger_payments(core_engine, network)


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    return (await AccountsService(core_engine).create_account(radar_enabled=False)).account.id


async def _paid_and_available(
    payments: PaymentsService, engine: AsyncEngine, account_id: str
) -> str:
    """A 1000 payment whose NET is available; returns the intent id."""
    intent_id = await paid_and_made_available(payments, engine, account_id)
    assert (await _available(engine, account_id)).spendable_minor == NET
    return intent_id


async def _available(engine: AsyncEngine, account_id: str) -> LedgerAccount:
    async with engine.connect() as db:
        found = await JournalRepository(db).get_ledger_account(account_id, AVAILABLE, "usd")
    assert found is not None
    return found


async def _shown_available(engine: AsyncEngine, account_id: str) -> int:
    async with engine.connect() as db:
        return (await read_balance(db, account_id, "usd")).available[0].amount


async def _hold(engine: AsyncEngine, account_id: str, refund_id: str) -> LedgerTransaction:
    async with engine.connect() as db:
        found = await JournalRepository(db).get_transaction(
            account_id, ledger.refund_hold_id_for(refund_id)
        )
    assert found is not None
    return found


async def _rows(engine: AsyncEngine, account_id: str, refund: Refund) -> list[tuple[str, int]]:
    return [(row.type.value, row.amount) for row in await _entries(engine, account_id, refund)]


async def _entries(
    engine: AsyncEngine, account_id: str, refund: Refund
) -> list[BalanceTransaction]:
    async with engine.connect() as db:
        return await BalanceRepository(db).balance_transactions_for_charge(
            account_id,
            refund.charge_id,
            [BalanceTransactionType.REFUND, BalanceTransactionType.REFUND_FAILURE],
        )


async def _payout(engine: AsyncEngine, account_id: str, amount: int) -> None:
    async with engine.begin() as db:
        await create_payout(
            db, account_id=account_id, amount=amount, currency="usd", now=datetime.now(UTC)
        )


async def _assert_verified(engine: AsyncEngine) -> None:
    async with engine.connect() as db:
        report = await verify_ledger(db, now=datetime.now(UTC))
    assert report.ok, (report.differences, report.chain_breaks)


async def test_a_payout_cannot_take_the_money_of_a_refund_in_flight(
    payments: PaymentsService,
    network: RefundsHeldAtTheAcquirer,
    core_engine: AsyncEngine,
    account_id: str,
) -> None:
    intent_id = await _paid_and_available(payments, core_engine, account_id)
    refunding = asyncio.create_task(
        refund_intent(payments, account_id, "refund-in-flight", intent_id, NET)
    )
    await network.arrived.wait()

    with pytest.raises(PayoutError) as refused:
        await _payout(core_engine, account_id, NET)
    assert refused.value.code == "balance_insufficient"
    assert await _shown_available(core_engine, account_id) == 0
    pending = await payments.get_refund(
        account_id, await _pending_refund_id(payments, account_id, intent_id)
    )
    (shown,) = await _entries(core_engine, account_id, pending)
    assert pending.balance_transaction_id == shown.id
    assert refund_message(pending).balance_transaction == shown.id
    assert (shown.amount, shown.source_id) == (-NET, pending.id)

    network.answer.set()
    done = await refunding
    assert isinstance(done, Done)
    assert done.value.status is RefundStatus.SUCCEEDED
    # The same balance transaction: a merchant's reconciliation keyed on it still finds it.
    assert done.value.balance_transaction_id == shown.id
    assert done.value.failure_balance_transaction_id is None
    settled = await _available(core_engine, account_id)
    assert (settled.posted_balance_minor, settled.pending_outgoing_minor) == (0, 0)
    assert [row.id for row in await _entries(core_engine, account_id, done.value)] == [shown.id]
    assert await _rows(core_engine, account_id, done.value) == [("refund", -NET)]
    hold = await _hold(core_engine, account_id, done.value.id)
    assert hold.pending_status is PendingStatus.VOIDED
    await _assert_verified(core_engine)


async def test_a_refused_refund_gives_its_money_back_to_the_balance(
    payments: PaymentsService,
    network: RefundsHeldAtTheAcquirer,
    core_engine: AsyncEngine,
    account_id: str,
) -> None:
    intent_id = await _paid_and_available(payments, core_engine, account_id)
    refunding = asyncio.create_task(
        refund_intent(payments, account_id, "refund-refused", intent_id, 500)
    )
    await network.arrived.wait()
    assert await _shown_available(core_engine, account_id) == NET - 500
    refund_id = await _pending_refund_id(payments, account_id, intent_id)
    network.refuse(refund_id, "expired_or_canceled_card", "The card was canceled.")
    network.answer.set()
    done = await refunding
    assert isinstance(done, Done)
    assert done.value.status is RefundStatus.FAILED

    assert await _shown_available(core_engine, account_id) == NET
    # As on Stripe: the refund's balance transaction stays, a refund_failure gives it back.
    shown, back = await _entries(core_engine, account_id, done.value)
    assert [(row.type.value, row.amount) for row in (shown, back)] == [
        ("refund", -500),
        ("refund_failure", 500),
    ]
    assert (done.value.balance_transaction_id, done.value.failure_balance_transaction_id) == (
        shown.id,
        back.id,
    )
    message = refund_message(done.value)
    assert (message.balance_transaction, message.failure_balance_transaction) == (
        shown.id,
        back.id,
    )
    hold = await _hold(core_engine, account_id, done.value.id)
    assert hold.pending_status is PendingStatus.VOIDED
    await _payout(core_engine, account_id, NET)
    await _assert_verified(core_engine)


async def _pending_refund_id(payments: PaymentsService, account_id: str, intent_id: str) -> str:
    intent = await payments.get_payment_intent(account_id, intent_id)
    assert intent.latest_charge_id is not None
    _, refunds = await payments.get_charge(account_id, intent.latest_charge_id, with_refunds=True)
    (pending,) = refunds.first
    assert pending.status is RefundStatus.PENDING
    return pending.id


async def test_a_replayed_refund_holds_and_posts_once(
    payments: PaymentsService,
    network: RefundsHeldAtTheAcquirer,
    core_engine: AsyncEngine,
    account_id: str,
) -> None:
    network.answer.set()
    intent_id = await _paid_and_available(payments, core_engine, account_id)
    first = await refund_intent(payments, account_id, "refund-once", intent_id, 400)
    again = await refund_intent(payments, account_id, "refund-once", intent_id, 400)
    assert isinstance(first, Done)
    assert isinstance(again, Replay)
    assert await _rows(core_engine, account_id, first.value) == [("refund", -400)]
    assert (await _hold(core_engine, account_id, first.value.id)).pending_status is (
        PendingStatus.VOIDED
    )
    settled = await _available(core_engine, account_id)
    assert (settled.posted_balance_minor, settled.pending_outgoing_minor) == (NET - 400, 0)
    await _assert_verified(core_engine)


async def test_the_completer_settles_the_hold_of_an_abandoned_refund(
    payments: PaymentsService,
    network: RefundsHeldAtTheAcquirer,
    core_engine: AsyncEngine,
    account_id: str,
) -> None:
    intent_id = await _paid_and_available(payments, core_engine, account_id)
    # The request creates its refund, then goes away before the acquirer is asked.
    record = await payments._claim(call(account_id, "abandoned", endpoint="CreateRefund"))
    record = await payments._start_refund(record, None, intent_id, 700, None, {})
    assert record.refund_id is not None
    assert (await _hold(core_engine, account_id, record.refund_id)).pending_status is (
        PendingStatus.OPEN
    )
    with pytest.raises(PayoutError):
        await _payout(core_engine, account_id, NET)
    async with core_engine.begin() as db:
        await db.execute(
            update(idempotency_keys).values(
                locked_until=None, last_run_at=func.now() - func.make_interval(0, 0, 0, 0, 0, 1)
            )
        )

    async def resume(found: KeyRecord) -> object:
        return await payments.resume_refund(found, respond)

    network.answer.set()
    assert await payments.complete_abandoned(resume) == 1
    refund = await payments.get_refund(account_id, record.refund_id)
    assert refund.status is RefundStatus.SUCCEEDED
    assert await _rows(core_engine, account_id, refund) == [("refund", -700)]
    assert (await _hold(core_engine, account_id, refund.id)).pending_status is (
        PendingStatus.VOIDED
    )
    settled = await _available(core_engine, account_id)
    assert (settled.posted_balance_minor, settled.pending_outgoing_minor) == (NET - 700, 0)
    await _assert_verified(core_engine)


async def test_a_refund_that_fails_after_it_succeeded_is_credited_back(
    payments: PaymentsService,
    network: RefundsHeldAtTheAcquirer,
    core_engine: AsyncEngine,
    account_id: str,
) -> None:
    network.answer.set()
    intent_id = await _paid_and_available(payments, core_engine, account_id)
    done = await refund_intent(payments, account_id, "refund-bounced", intent_id, 600)
    assert isinstance(done, Done)
    succeeded = done.value
    charge, _ = await payments.get_charge(account_id, succeeded.charge_id)
    failed = replace(
        succeeded,
        status=RefundStatus.FAILED,
        failure_reason="unknown",
        failure_balance_transaction_id="txn_bounced_back",
    )
    async with core_engine.begin() as db:
        await LedgerPostings().refund_changed(db, succeeded, failed, charge)
    assert await _rows(core_engine, account_id, succeeded) == [
        ("refund", -600),
        ("refund_failure", 600),
    ]
    shown, back = await _entries(core_engine, account_id, succeeded)
    assert (shown.id, back.id) == (succeeded.balance_transaction_id, "txn_bounced_back")
    assert await _shown_available(core_engine, account_id) == NET
    await _assert_verified(core_engine)


async def test_a_refund_holds_its_money_under_the_ledgers_lock_taken_last(
    payments: PaymentsService,
    network: RefundsHeldAtTheAcquirer,
    core_engine: AsyncEngine,
    account_id: str,
) -> None:
    """The hold checks what is left of the charge under the account's posting lock (so that
    two refunds of a charge are checked one after the other), taken once the refund, the
    charge and the events are written: under it, the ledger's read of the charge's rows, its
    hold (`ledger_post`) and the attempt's advance of its own idempotency key (fenced by the
    request's token: it waits for no one), which the hold was always sent with."""
    intent_id = await _paid_and_available(payments, core_engine, account_id)
    with statements_sent(core_engine) as statements:
        refunding = asyncio.ensure_future(
            refund_intent(payments, account_id, "refund-locked", intent_id, 400)
        )
        await network.arrived.wait()
        sent = list(statements)
    network.answer.set()
    assert isinstance(await refunding, Done)
    locks = [i for i, sql in enumerate(sent) if "ledger_lock_for_posting(" in sql]
    assert len(locks) == 1, sent
    before, held = sent[: locks[0]], sent[locks[0] + 1 :]
    assert any('INSERT INTO "refunds"' in sql for sql in before), before
    assert any("INSERT INTO events" in sql for sql in before), before
    assert "FROM balance_transactions" in held[0], held
    assert "ledger_post(" in held[1], held
    assert "UPDATE idempotency_keys" in held[2], held
