"""Canceling a refund ends it as a failed refund ends: its hold goes back to the available
balance under a refund_failure balance transaction (the refund's `failure_balance_transaction`),
the charge stops counting it, refund.updated and charge.refund.updated tell of it, all in the
cancel's own transaction, and nothing settles it afterwards.

Only a refund waiting on the customer (`requires_action`) can be canceled. No remit flow puts
a refund there yet: card refunds are created `pending`, with their hold, and the acquirer's
answer makes them `succeeded` or `failed`. The tests put a pending refund in `requires_action`
themselves, as a flow waiting on the customer would leave it: created, held, not yet sent.
"""

import logging
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.errors import RemitError
from remit.ledger import postings as ledger
from remit.ledger.balance_repository import BalanceRepository
from remit.ledger.balances import read_balance
from remit.ledger.domain import PendingStatus
from remit.ledger.objects import BalanceTransaction, BalanceTransactionType
from remit.ledger.payouts import create_payout
from remit.ledger.repository import JournalRepository
from remit.ledger.verify import verify_ledger
from remit.payments.charges import Refund, RefundStatus
from remit.payments.grpc import payment_intent_message
from remit.payments.idempotency import KeyRecord
from remit.payments.keyed import Keyed
from remit.payments.network import OperationOutcome
from remit.payments.repository import RefundRepository
from remit.payments.service import Done, PaymentsService, Replay
from remit.payments.tables import idempotency_keys
from remit.payments.wiring import payment_hooks
from remit.radar.gate import Radar
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.refund_ledger import (
    NET,
    ledger_payments,
    paid_and_made_available,
    respond,
)
from tests.integration.payments.test_payment_events import recorded
from tests.integration.payments.test_payments_service import call, refund_intent
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio

REFUND = 500


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
    assert await _shown_available(engine, account_id) == NET
    return intent_id


async def _waiting_on_the_customer(
    payments: PaymentsService, engine: AsyncEngine, account_id: str, intent_id: str
) -> KeyRecord:
    """A refund of REFUND created (held, counted on the charge) and not sent to the acquirer,
    then put in `requires_action`. Returns its CreateRefund key, left unfinished."""
    record = await payments._claim(call(account_id, "waits", endpoint="CreateRefund"))
    record = await payments._start_refund(record, None, intent_id, REFUND, None, {})
    assert record.refund_id is not None
    await _set_status(engine, account_id, record.refund_id, RefundStatus.REQUIRES_ACTION)
    return record


async def _set_status(
    engine: AsyncEngine, account_id: str, refund_id: str, status: RefundStatus
) -> None:
    async with engine.begin() as db:
        refunds = RefundRepository(db)
        refund = await refunds.get(account_id, refund_id, for_update=True)
        assert refund is not None
        await refunds.save(replace(refund, status=status))


def _keyed(account_id: str, key: str) -> Keyed[Refund]:
    return Keyed(call(account_id, key, endpoint="CancelRefund"), respond)


async def _shown_available(engine: AsyncEngine, account_id: str) -> int:
    async with engine.connect() as db:
        return (await read_balance(db, account_id, "usd")).available[0].amount


async def _hold_status(engine: AsyncEngine, account_id: str, refund_id: str) -> PendingStatus:
    async with engine.connect() as db:
        hold = await JournalRepository(db).get_transaction(
            account_id, ledger.refund_hold_id_for(refund_id)
        )
    assert hold is not None
    assert hold.pending_status is not None
    return hold.pending_status


async def _refund_rows(engine: AsyncEngine, account_id: str, charge_id: str) -> list[int]:
    return [row.amount for row in await _refund_entries(engine, account_id, charge_id)]


async def _refund_entries(
    engine: AsyncEngine, account_id: str, charge_id: str
) -> list[BalanceTransaction]:
    async with engine.connect() as db:
        return await BalanceRepository(db).balance_transactions_for_charge(
            account_id,
            charge_id,
            [BalanceTransactionType.REFUND, BalanceTransactionType.REFUND_FAILURE],
        )


async def _assert_verified(engine: AsyncEngine) -> None:
    async with engine.connect() as db:
        report = await verify_ledger(db, now=datetime.now(UTC))
    assert report.ok, (report.differences, report.chain_breaks)


async def _lease_runs_out(engine: AsyncEngine) -> None:
    async with engine.begin() as db:
        await db.execute(
            update(idempotency_keys).values(
                locked_until=None, last_run_at=func.now() - func.make_interval(0, 0, 0, 0, 0, 1)
            )
        )


async def test_a_canceled_refund_gives_its_held_money_back_once(
    payments: PaymentsService, core_engine: AsyncEngine, account_id: str
) -> None:
    intent_id = await _paid_and_available(payments, core_engine, account_id)
    record = await _waiting_on_the_customer(payments, core_engine, account_id, intent_id)
    assert record.refund_id is not None
    assert await _shown_available(core_engine, account_id) == NET - REFUND

    done = await payments.cancel_refund(account_id, record.refund_id, _keyed(account_id, "c1"))
    assert isinstance(done, Done)
    assert done.value.status is RefundStatus.CANCELED
    assert await _shown_available(core_engine, account_id) == NET
    assert await _hold_status(core_engine, account_id, record.refund_id) is PendingStatus.VOIDED
    # The refund's balance transaction stays; a refund_failure gives its money back.
    shown, back = await _refund_entries(core_engine, account_id, done.value.charge_id)
    assert (shown.amount, back.type, back.amount) == (
        -REFUND,
        BalanceTransactionType.REFUND_FAILURE,
        REFUND,
    )
    assert (done.value.balance_transaction_id, done.value.failure_balance_transaction_id) == (
        shown.id,
        back.id,
    )

    # A replay of the cancel, and another cancel, give nothing back a second time.
    again = await payments.cancel_refund(account_id, record.refund_id, _keyed(account_id, "c1"))
    assert isinstance(again, Replay)
    with pytest.raises(RemitError) as refused:
        await payments.cancel_refund(account_id, record.refund_id)
    assert refused.value.code == "refund_not_cancelable"
    assert await _shown_available(core_engine, account_id) == NET
    await _assert_verified(core_engine)
    # All of it is the merchant's again: it can be paid out.
    async with core_engine.begin() as db:
        await create_payout(
            db, account_id=account_id, amount=NET, currency="usd", now=datetime.now(UTC)
        )
    await _assert_verified(core_engine)


async def test_a_canceled_refund_no_longer_counts_on_its_charge(
    payments: PaymentsService, core_engine: AsyncEngine, account_id: str
) -> None:
    intent_id = await _paid_and_available(payments, core_engine, account_id)
    record = await _waiting_on_the_customer(payments, core_engine, account_id, intent_id)
    assert record.refund_id is not None
    assert record.charge_id is not None
    held, _ = await payments.get_charge(account_id, record.charge_id)
    assert held.amount_refunded_minor == REFUND

    await payments.cancel_refund(account_id, record.refund_id)

    charge, _ = await payments.get_charge(account_id, record.charge_id)
    assert (charge.amount_refunded_minor, charge.refunded, charge.refundable_minor) == (
        0,
        False,
        1000,
    )
    # The whole charge can be refunded again, through its intent.
    whole = await refund_intent(payments, account_id, "whole", intent_id, 1000)
    assert isinstance(whole, Done)
    assert whole.value.status is RefundStatus.SUCCEEDED
    charge, _ = await payments.get_charge(account_id, record.charge_id)
    assert (charge.amount_refunded_minor, charge.refunded) == (1000, True)
    await _assert_verified(core_engine)


async def test_a_cancel_records_both_refund_updates_and_nothing_about_the_charge_refunded(
    payments: PaymentsService, core_engine: AsyncEngine, account_id: str
) -> None:
    intent_id = await _paid_and_available(payments, core_engine, account_id)
    record = await _waiting_on_the_customer(payments, core_engine, account_id, intent_id)
    assert record.refund_id is not None
    before = len(await recorded(core_engine, account_id))

    await payments.cancel_refund(account_id, record.refund_id, _keyed(account_id, "c2"))
    await payments.cancel_refund(account_id, record.refund_id, _keyed(account_id, "c2"))

    made = (await recorded(core_engine, account_id))[before:]
    # The held money back in the available balance announces it, last (the ledger's).
    assert [kind for kind, _ in made] == [
        "refund.updated",
        "charge.refund.updated",
        "balance.available",
    ]
    [(_, updated), (_, charge_refund_updated), (_, available)] = made
    assert available["object"]["available"] == [  # type: ignore[index]
        {"amount": NET, "currency": "usd", "source_types": {"card": NET}}
    ]
    assert updated["object"]["id"] == record.refund_id  # type: ignore[index]
    assert updated["object"]["status"] == "canceled"  # type: ignore[index]
    assert updated["previous"] == {
        "status": "requires_action",
        "failure_balance_transaction": None,
    }
    assert charge_refund_updated == updated


async def test_a_refused_cancel_changes_nothing(
    payments: PaymentsService, core_engine: AsyncEngine, account_id: str
) -> None:
    """A pending refund is at the acquirer: it cannot be canceled, and keeps its hold."""
    intent_id = await _paid_and_available(payments, core_engine, account_id)
    record = await _waiting_on_the_customer(payments, core_engine, account_id, intent_id)
    assert record.refund_id is not None
    await _set_status(core_engine, account_id, record.refund_id, RefundStatus.PENDING)
    before = len(await recorded(core_engine, account_id))

    with pytest.raises(RemitError) as refused:
        await payments.cancel_refund(account_id, record.refund_id)

    assert refused.value.code == "refund_not_cancelable"
    assert (await payments.get_refund(account_id, record.refund_id)).status is (
        RefundStatus.PENDING
    )
    assert await _shown_available(core_engine, account_id) == NET - REFUND
    assert await _hold_status(core_engine, account_id, record.refund_id) is PendingStatus.OPEN
    assert len(await recorded(core_engine, account_id)) == before


async def test_the_completer_never_sends_nor_settles_a_canceled_refund(
    payments: PaymentsService, network: FakeNetwork, core_engine: AsyncEngine, account_id: str
) -> None:
    intent_id = await _paid_and_available(payments, core_engine, account_id)
    record = await _waiting_on_the_customer(payments, core_engine, account_id, intent_id)
    assert record.refund_id is not None
    assert record.charge_id is not None
    await payments.cancel_refund(account_id, record.refund_id)
    await _lease_runs_out(core_engine)

    async def resume(found: KeyRecord) -> object:
        return await payments.resume_refund(found, respond)

    assert await payments.complete_abandoned(resume) == 1

    assert record.refund_id not in network.sent
    refund = await payments.get_refund(account_id, record.refund_id)
    assert refund.status is RefundStatus.CANCELED
    assert await _refund_rows(core_engine, account_id, record.charge_id) == [-REFUND, REFUND]
    assert await _shown_available(core_engine, account_id) == NET
    # The abandoned request is answered with the refund as it stands, and is not tried again.
    replayed = await payments.create_refund(
        call(account_id, "waits", endpoint="CreateRefund"),
        charge_id=None,
        payment_intent_id=intent_id,
        amount_minor=REFUND,
        reason=None,
        metadata={},
        respond=respond,
    )
    assert isinstance(replayed, Replay)
    assert replayed.body == f"{record.refund_id}:canceled".encode()
    await _assert_verified(core_engine)


class CanceledWhileInFlight(FakeNetwork):
    """The acquirer refunds, but the refund is canceled in remit while the call is out."""

    def __init__(self) -> None:
        super().__init__()
        self.meanwhile: list[object] = []
        self.cancel_first: tuple[PaymentsService, AsyncEngine, str] | None = None

    async def refund(
        self, *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome:
        assert self.cancel_first is not None
        payments, engine, account_id = self.cancel_first
        await _set_status(engine, account_id, reference, RefundStatus.REQUIRES_ACTION)
        self.meanwhile.append(await payments.cancel_refund(account_id, reference))
        return await super().refund(
            authorization_id=authorization_id, amount_minor=amount_minor, reference=reference
        )


async def test_an_answer_arriving_after_the_cancel_does_not_make_the_refund_succeed(
    core_engine: AsyncEngine, account_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    network = CanceledWhileInFlight()
    payments = PaymentsService(
        core_engine,
        network,
        FakeMethods(),
        present=payment_intent_message,
        hooks=payment_hooks(),
        radar=Radar(challenge_base_url="http://127.0.0.1"),
    )
    network.cancel_first = (payments, core_engine, account_id)
    intent_id = await _paid_and_available(payments, core_engine, account_id)

    with caplog.at_level(logging.ERROR, logger="remit.payments.service"):
        done = await refund_intent(payments, account_id, "raced", intent_id, REFUND)

    assert isinstance(done, Done)
    assert done.value.status is RefundStatus.CANCELED
    # The money left at the acquirer with nothing in the ledger: an operator is told.
    assert [r for r in caplog.records if "was canceled while the acquirer" in r.getMessage()]
    assert [type(result) for result in network.meanwhile] == [Done]
    refund = await payments.get_refund(account_id, done.value.id)
    assert refund.status is RefundStatus.CANCELED
    # What the merchant saw while it was pending, given back: nothing of it is posted.
    shown, back = await _refund_entries(core_engine, account_id, refund.charge_id)
    assert (refund.balance_transaction_id, refund.failure_balance_transaction_id) == (
        shown.id,
        back.id,
    )
    assert (shown.amount, back.amount, shown.ledger_transaction_id) == (
        -REFUND,
        REFUND,
        ledger.refund_hold_id_for(refund.id),
    )
    charge, _ = await payments.get_charge(account_id, refund.charge_id)
    assert charge.amount_refunded_minor == 0
    assert await _shown_available(core_engine, account_id) == NET
    await _assert_verified(core_engine)
