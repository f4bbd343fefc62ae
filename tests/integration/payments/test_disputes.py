"""Disputes against a real PostgreSQL: a capture of a card the network says will be disputed
stages the job that opens the dispute, the job takes the money back into the ledger, and the
merchant answers the dispute or accepts it; evidence submitted for Stripe's test outcomes
stages the job that decides it, which reinstates a won dispute's amount."""

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.errors import ErrorKind, RemitError
from remit.core.ids import new_id
from remit.core.jsonview import to_json
from remit.grpcutil.errors import detail_from_rpc_error
from remit.ledger import postings
from remit.ledger.balances import read_balance
from remit.ledger.messages import balance_message
from remit.ledger.objects import BalanceTransactionType
from remit.ledger.verify import verify_ledger
from remit.payments.charges import Refund, RefundStatus
from remit.payments.disputes import Dispute, DisputeStatus
from remit.payments.disputing import DECIDE_DISPUTE_JOB, OPEN_DISPUTE_JOB, DisputesService
from remit.payments.domain import CaptureMethod, NewPaymentIntent, PaymentIntent
from remit.payments.repository import ChargeRepository, RefundRepository
from remit.payments.service import ConfirmParams, Done, PaymentsService, Replay
from remit.payments.wiring import payment_hooks
from remit.webhooks.tables import events
from remit.worker.tables import jobs
from remit_api.payments.v1 import payments_pb2 as pb
from tests.integration.payments.conftest import payments_with_core_hooks
from tests.integration.payments.test_payments_service import call, pay, refund_intent, respond
from tests.integration.payments.test_refund_holds import RefundsHeldAtTheAcquirer
from tests.support.accounts import call_metadata

pytestmark = pytest.mark.anyio


@pytest.fixture
def payments(core_engine: AsyncEngine) -> PaymentsService:
    return payments_with_core_hooks(core_engine)


@pytest.fixture
def disputes(core_engine: AsyncEngine) -> DisputesService:
    return DisputesService(core_engine)


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    return (await AccountsService(core_engine).create_account(radar_enabled=False)).account.id


async def _dispute_jobs(engine: AsyncEngine) -> list[dict[str, object]]:
    async with engine.connect() as db:
        rows = await db.execute(select(jobs.c.payload).where(jobs.c.kind == OPEN_DISPUTE_JOB))
        return [dict(row.payload) for row in rows]


async def _run_dispute_jobs(engine: AsyncEngine, disputes: DisputesService) -> None:
    """What the worker does with each staged job, in a transaction of its own."""
    for payload in await _dispute_jobs(engine):
        async with engine.begin() as db:
            await disputes.open_expected(db, str(payload["account_id"]), str(payload["charge_id"]))


async def _event_types(engine: AsyncEngine, account_id: str) -> list[str]:
    """The account's dispute events, by type, in the order they were recorded (those of one
    transaction share their time, and are ordered among themselves as recorded)."""
    async with engine.connect() as db:
        rows = await db.execute(
            select(events.c.type)
            .where(events.c.account_id == account_id, events.c.type.like("charge.dispute.%"))
            .order_by(events.c.created_at, events.c.seq)
        )
        return list(rows.scalars())


async def _disputed_payment(
    payments: PaymentsService, disputes: DisputesService, engine: AsyncEngine, account_id: str
) -> PaymentIntent:
    intent = await pay(payments, account_id, "disputed", pm="pm_dispute", amount=2000)
    await _run_dispute_jobs(engine, disputes)
    return intent


async def test_a_captured_payment_of_the_dispute_card_is_disputed_once_by_its_job(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
) -> None:
    intent = await pay(payments, account_id, "disputed", pm="pm_dispute", amount=2000)
    assert intent.latest_charge_id is not None
    staged = await _dispute_jobs(core_engine)
    assert staged == [{"account_id": account_id, "charge_id": intent.latest_charge_id}]
    charge, _ = await payments.get_charge(account_id, intent.latest_charge_id)
    assert not charge.disputed  # not before the worker ran the job

    # The job run twice (a retry after a crash, or two workers) opens one dispute.
    await _run_dispute_jobs(core_engine, disputes)
    await _run_dispute_jobs(core_engine, disputes)

    found, more = await disputes.list_disputes(account_id, limit=10)
    assert not more
    assert len(found) == 1
    dispute, moved = found[0]
    assert dispute.id.startswith("dp_")
    assert (dispute.charge_id, dispute.payment_intent_id) == (charge.id, intent.id)
    assert (dispute.amount_minor, dispute.currency) == (2000, "usd")
    assert (dispute.reason.value, dispute.status) == ("fraudulent", DisputeStatus.NEEDS_RESPONSE)
    assert timedelta(days=7) <= dispute.evidence_due_by - dispute.created_at <= timedelta(days=21)
    assert (dispute.has_evidence, dispute.past_due, dispute.submission_count) == (False, False, 0)
    assert [txn.id for txn in moved] == list(dispute.balance_transaction_ids)
    (withdrawal,) = moved
    assert withdrawal.type is BalanceTransactionType.ADJUSTMENT
    assert withdrawal.reporting_category == "dispute"
    assert (withdrawal.amount, withdrawal.fee, withdrawal.net) == (-2000, 1500, -3500)
    assert (withdrawal.source_id, withdrawal.charge_id) == (dispute.id, charge.id)

    charge, _ = await payments.get_charge(account_id, charge.id)
    assert charge.disputed
    assert charge.dispute_id == dispute.id
    assert await _event_types(core_engine, account_id) == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
    ]
    async with core_engine.connect() as db:
        balance = await read_balance(db, account_id, "usd")
        report = await verify_ledger(db, account_id=account_id, now=dispute.created_at)
    # The charge's net waits in pending; the dispute takes its amount and fee from available.
    assert [(a.amount, a.currency) for a in balance.available] == [(-3500, "usd")]
    assert report.ok, (report.differences, report.chain_breaks)


@pytest.mark.parametrize(
    ("currency", "amount", "fee"),
    [
        ("usd", 2000, 1500),  # $20.00 disputed, $15.00 fee
        ("jpy", 2000, 15),  # ¥2,000 disputed, ¥15 fee
        ("kwd", 2000, 15_000),  # 2.000 KWD disputed, 15.000 KWD fee
    ],
)
async def test_the_dispute_fee_is_fifteen_major_units_of_the_charges_currency(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
    currency: str,
    amount: int,
    fee: int,
) -> None:
    result = await payments.create_payment_intent(
        call(account_id, f"disputed-{currency}", body=f"pm_dispute{amount}{currency}".encode()),
        NewPaymentIntent(amount_minor=amount, currency=currency),
        respond,
        confirm=ConfirmParams(payment_method_id="pm_dispute"),
    )
    assert isinstance(result, Done)
    await _run_dispute_jobs(core_engine, disputes)
    ((dispute, moved),), _ = await disputes.list_disputes(account_id, limit=1)
    assert (dispute.amount_minor, dispute.currency) == (amount, currency)
    (withdrawal,) = moved
    assert (withdrawal.amount, withdrawal.fee, withdrawal.net, withdrawal.currency) == (
        -amount,
        fee,
        -amount - fee,
        currency,
    )
    assert [(d.amount, d.currency) for d in withdrawal.fee_details] == [(fee, currency)]
    async with core_engine.connect() as db:
        balance = await read_balance(db, account_id, currency)
        report = await verify_ledger(db, account_id=account_id, now=dispute.created_at)
    assert [(a.amount, a.currency) for a in balance.available] == [(-amount - fee, currency)]
    assert report.ok, (report.differences, report.chain_breaks)


async def test_a_separate_capture_stages_the_dispute_and_the_authorization_does_not(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
) -> None:
    held = await pay(
        payments, account_id, "held", pm="pm_dispute", amount=1500, capture=CaptureMethod.MANUAL
    )
    assert await _dispute_jobs(core_engine) == []
    captured = await payments.capture_payment_intent(
        call(account_id, "capture", endpoint="CapturePaymentIntent"), held.id, 1200, respond
    )
    assert isinstance(captured, Done)
    assert await _dispute_jobs(core_engine) == [
        {"account_id": account_id, "charge_id": held.latest_charge_id}
    ]
    await _run_dispute_jobs(core_engine, disputes)
    (shown,), _ = await disputes.list_disputes(account_id, limit=10, payment_intent_id=held.id)
    assert shown[0].amount_minor == 1200  # what was captured, not what was authorized


async def _ledger_verified(engine: AsyncEngine, account_id: str) -> None:
    async with engine.connect() as db:
        report = await verify_ledger(db, account_id=account_id, now=datetime.now(UTC))
    assert report.ok, (report.differences, report.chain_breaks)


async def test_a_charge_refunded_in_part_before_the_job_runs_is_disputed_for_the_rest(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
) -> None:
    # The worker was behind: the merchant refunded part of the payment before its dispute opened.
    intent = await pay(payments, account_id, "disputed", pm="pm_dispute", amount=5000)
    assert isinstance(await refund_intent(payments, account_id, "part", intent.id, 2000), Done)
    await _run_dispute_jobs(core_engine, disputes)

    ((dispute, moved),), _ = await disputes.list_disputes(account_id, limit=10)
    assert dispute.amount_minor == 3000  # the cardholder has 2000 back already
    (withdrawal,) = moved
    assert (withdrawal.amount, withdrawal.fee, withdrawal.net) == (-3000, 1500, -4500)
    async with core_engine.connect() as db:
        balance = await read_balance(db, account_id, "usd")
    # The refund and the dispute each took their own money from available: 2000, then 4500.
    assert [(a.amount, a.currency) for a in balance.available] == [(-6500, "usd")]
    await _ledger_verified(core_engine, account_id)


async def _job_runs_while_a_refund_is_pending(
    engine: AsyncEngine,
    disputes: DisputesService,
    account_id: str,
    *,
    refused: bool,
    amount: int | None = 1000,
) -> Refund:
    """A 5000 payment of the dispute card refunded `amount` (None: all of it), its dispute's
    job run while the acquirer holds the refund: nothing is opened then. The refund, settled
    afterwards (`refused`: failed), stages the job again."""
    network = RefundsHeldAtTheAcquirer()
    payments = payments_with_core_hooks(engine, network)
    intent = await pay(payments, account_id, "disputed", pm="pm_dispute", amount=5000)
    # The refund is recorded, and its money taken from the balance, before the acquirer
    # answers: the job runs while it is pending.
    refunding = asyncio.create_task(refund_intent(payments, account_id, "part", intent.id, amount))
    await asyncio.wait_for(network.arrived.wait(), 10)
    await _run_dispute_jobs(engine, disputes)
    assert await disputes.list_disputes(account_id, limit=10) == ([], False)
    assert intent.latest_charge_id is not None
    charge, refunds = await payments.get_charge(
        account_id, intent.latest_charge_id, with_refunds=True
    )
    assert not charge.disputed
    assert await _event_types(engine, account_id) == []

    (pending,) = refunds.first
    assert pending.status is RefundStatus.PENDING
    if refused:
        network.refuse(pending.id, "expired_or_canceled_card", "The card was canceled.")
    network.answer.set()
    refunded = await refunding
    assert isinstance(refunded, Done)
    # The settlement staged the job once more, which the worker then runs.
    assert await _dispute_jobs(engine) == [{"account_id": account_id, "charge_id": charge.id}] * 2
    await _run_dispute_jobs(engine, disputes)
    return refunded.value


async def test_a_refund_still_pending_when_the_job_runs_is_disputed_for_the_rest_once_it_succeeds(
    core_engine: AsyncEngine, disputes: DisputesService, account_id: str
) -> None:
    refund = await _job_runs_while_a_refund_is_pending(
        core_engine, disputes, account_id, refused=False
    )
    assert refund.status is RefundStatus.SUCCEEDED

    ((dispute, _),), _ = await disputes.list_disputes(account_id, limit=10)
    assert dispute.amount_minor == 4000
    async with core_engine.connect() as db:
        balance = await read_balance(db, account_id, "usd")
    assert [(a.amount, a.currency) for a in balance.available] == [(-1000 - 4000 - 1500, "usd")]
    await _ledger_verified(core_engine, account_id)


async def test_a_refund_still_pending_when_the_job_runs_and_then_failing_is_disputed_in_full(
    core_engine: AsyncEngine, disputes: DisputesService, account_id: str
) -> None:
    refund = await _job_runs_while_a_refund_is_pending(
        core_engine, disputes, account_id, refused=True
    )
    assert refund.status is RefundStatus.FAILED

    # The failed refund's 1000 went back to the merchant and the charge: the cardholder
    # disputes all they paid.
    ((dispute, _),), _ = await disputes.list_disputes(account_id, limit=10)
    assert dispute.amount_minor == 5000
    async with core_engine.connect() as db:
        balance = await read_balance(db, account_id, "usd")
    assert [(a.amount, a.currency) for a in balance.available] == [(-5000 - 1500, "usd")]
    await _ledger_verified(core_engine, account_id)


async def test_a_refund_waiting_on_the_customer_holds_the_dispute_until_it_is_canceled(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
) -> None:
    """No remit flow leaves a card refund in `requires_action` yet; one that did (created,
    held, counted on the charge, not sent) would hold the dispute back until it settles. Its
    cancel settles it: the dispute opens, for all the charge holds."""
    intent = await pay(payments, account_id, "disputed", pm="pm_dispute", amount=5000)
    record = await payments._claim(call(account_id, "waits", endpoint="CreateRefund"))
    record = await payments._start_refund(record, None, intent.id, 1000, None, {})
    assert record.refund_id is not None
    async with core_engine.begin() as db:
        refunds = RefundRepository(db)
        waiting = await refunds.get(account_id, record.refund_id, for_update=True)
        assert waiting is not None
        await refunds.save(replace(waiting, status=RefundStatus.REQUIRES_ACTION))
    await _run_dispute_jobs(core_engine, disputes)
    assert await disputes.list_disputes(account_id, limit=10) == ([], False)

    canceled = await payments.cancel_refund(account_id, record.refund_id)
    assert isinstance(canceled, Done)
    assert canceled.value.status is RefundStatus.CANCELED
    # The cancel staged the job once more, which the worker then runs.
    assert intent.latest_charge_id is not None
    staged = {"account_id": account_id, "charge_id": intent.latest_charge_id}
    assert await _dispute_jobs(core_engine) == [staged] * 2
    await _run_dispute_jobs(core_engine, disputes)
    ((dispute, _),), _ = await disputes.list_disputes(account_id, limit=10)
    assert dispute.amount_minor == 5000
    # The canceled refund's hold went back; the dispute took all the charge and its fee.
    assert await _available(core_engine, account_id) == [(-5000 - 1500, "usd")]
    await _ledger_verified(core_engine, account_id)


async def _refund_fails_after_it_succeeded(engine: AsyncEngine, refund: Refund) -> None:
    """What the acquirer's report that a refund it made failed afterwards does, in one
    transaction: the refund ends failed, its charge (locked, as refund settlements lock it)
    stops counting it, and the core's hooks record it (the money back, the dispute's share)."""
    async with engine.begin() as db:
        refunds, charges = RefundRepository(db), ChargeRepository(db)
        before = await refunds.get(refund.account_id, refund.id, for_update=True)
        charge = await charges.get(refund.account_id, refund.charge_id, for_update=True)
        assert before is not None
        assert before.status is RefundStatus.SUCCEEDED
        assert charge is not None
        after = replace(
            before,
            status=RefundStatus.FAILED,
            failure_reason="expired_or_canceled_card",
            failure_balance_transaction_id=new_id("txn"),
        )
        charge_after = replace(
            charge, amount_refunded_minor=charge.amount_refunded_minor - before.amount_minor
        )
        await refunds.save(after)
        await charges.save(charge_after)
        await payment_hooks().refund_changed(db, before, after, charge_after)


async def _refunded_then_disputed(
    engine: AsyncEngine, payments: PaymentsService, disputes: DisputesService, account_id: str
) -> tuple[Refund, Dispute]:
    """A 5000 payment of the dispute card refunded 1000 before its dispute opened: the dispute
    is of the 4000 left."""
    intent = await pay(payments, account_id, "disputed", pm="pm_dispute", amount=5000)
    refunded = await refund_intent(payments, account_id, "part", intent.id, 1000)
    assert isinstance(refunded, Done)
    assert refunded.value.status is RefundStatus.SUCCEEDED
    await _run_dispute_jobs(engine, disputes)
    ((dispute, _),), _ = await disputes.list_disputes(account_id, limit=10)
    assert dispute.amount_minor == 4000
    return refunded.value, dispute


async def test_a_refund_failing_after_the_dispute_opened_gives_the_dispute_its_money(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
) -> None:
    refund, opened = await _refunded_then_disputed(core_engine, payments, disputes, account_id)
    await _refund_fails_after_it_succeeded(core_engine, refund)

    # The cardholder got the 1000 neither as a refund nor through the dispute: the dispute now
    # covers all the charge holds, and takes the 1000 the failed refund gave back.
    dispute, moved = await disputes.get(account_id, opened.id)
    assert dispute.amount_minor == 5000
    assert dispute.status is DisputeStatus.NEEDS_RESPONSE
    assert [txn.id for txn in moved] == list(dispute.balance_transaction_ids)
    withdrawal, more = moved
    assert (withdrawal.amount, withdrawal.fee) == (-4000, 1500)
    assert more.type is BalanceTransactionType.ADJUSTMENT
    assert more.reporting_category == "dispute"
    assert (more.amount, more.fee, more.net) == (-1000, 0, -1000)  # one dispute, one fee
    assert (more.source_id, more.charge_id) == (dispute.id, dispute.charge_id)
    # The refund took 1000, its failure gave it back, the dispute took 5000 and its fee.
    assert await _available(core_engine, account_id) == [(-5000 - 1500, "usd")]
    types = await _event_types(core_engine, account_id)
    assert types.count("charge.dispute.funds_withdrawn") == 2
    await _ledger_verified(core_engine, account_id)

    # Won, the dispute reinstates all it took.
    await _submit(disputes, account_id, opened.id, {"uncategorized_text": "winning_evidence"})
    await _run_decision_jobs(core_engine, disputes)
    dispute, moved = await disputes.get(account_id, opened.id)
    assert dispute.status is DisputeStatus.WON
    assert [txn.amount for txn in moved] == [-4000, -1000, 5000]
    assert await _available(core_engine, account_id) == [(-1500, "usd")]
    await _ledger_verified(core_engine, account_id)


async def test_a_refund_failing_after_a_lost_dispute_gives_the_cardholder_the_rest(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
) -> None:
    refund, opened = await _refunded_then_disputed(core_engine, payments, disputes, account_id)
    assert isinstance(await disputes.close(account_id, opened.id), Done)
    await _refund_fails_after_it_succeeded(core_engine, refund)

    dispute, moved = await disputes.get(account_id, opened.id)
    assert (dispute.status, dispute.amount_minor) == (DisputeStatus.LOST, 5000)
    assert [txn.amount for txn in moved] == [-4000, -1000]
    assert await _available(core_engine, account_id) == [(-5000 - 1500, "usd")]
    await _ledger_verified(core_engine, account_id)


async def test_a_refund_failing_after_a_won_dispute_leaves_the_money_with_the_merchant(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
) -> None:
    refund, opened = await _refunded_then_disputed(core_engine, payments, disputes, account_id)
    await _submit(disputes, account_id, opened.id, {"uncategorized_text": "winning_evidence"})
    await _run_decision_jobs(core_engine, disputes)
    await _refund_fails_after_it_succeeded(core_engine, refund)

    # The issuer decided the charge is the merchant's: the dispute stays as it was decided,
    # and the money back is the merchant's, as after any failed refund.
    dispute, moved = await disputes.get(account_id, opened.id)
    assert (dispute.status, dispute.amount_minor) == (DisputeStatus.WON, 4000)
    assert [txn.amount for txn in moved] == [-4000, 4000]
    assert await _available(core_engine, account_id) == [(-1500, "usd")]
    await _ledger_verified(core_engine, account_id)


async def test_a_charge_refunded_in_full_before_the_job_runs_is_not_disputed(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    intent = await pay(payments, account_id, "disputed", pm="pm_dispute", amount=5000)
    assert isinstance(await refund_intent(payments, account_id, "all", intent.id, None), Done)
    with caplog.at_level(logging.INFO, logger="remit.payments.disputing"):
        await _run_dispute_jobs(core_engine, disputes)

    assert await disputes.list_disputes(account_id, limit=10) == ([], False)
    assert intent.latest_charge_id is not None
    charge, _ = await payments.get_charge(account_id, intent.latest_charge_id)
    assert not charge.disputed
    assert await _event_types(core_engine, account_id) == []
    assert any(
        record.levelno == logging.INFO and charge.id in record.getMessage()
        for record in caplog.records
    )
    async with core_engine.connect() as db:
        balance = await read_balance(db, account_id, "usd")
    # Only the refund left available: nothing was taken from the merchant twice.
    assert [(a.amount, a.currency) for a in balance.available] == [(-5000, "usd")]
    await _ledger_verified(core_engine, account_id)


async def _disputed_in_full_with_its_fee(
    engine: AsyncEngine, disputes: DisputesService, account_id: str
) -> None:
    """The 5000 charge's one dispute is of all it captured: the failed refund's money came
    back, and the dispute took it and its fee."""
    ((dispute, moved),), _ = await disputes.list_disputes(account_id, limit=10)
    assert dispute.amount_minor == 5000
    assert dispute.status is DisputeStatus.NEEDS_RESPONSE
    (withdrawal,) = moved
    assert (withdrawal.amount, withdrawal.fee, withdrawal.net) == (-5000, 1500, -6500)
    assert await _event_types(engine, account_id) == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
    ]
    # The refund took 5000, its failure gave it back, the dispute took 5000 and its fee.
    assert await _available(engine, account_id) == [(-5000 - 1500, "usd")]
    await _ledger_verified(engine, account_id)


async def test_a_refund_in_full_failing_after_the_job_found_it_succeeded_is_disputed_in_full(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
) -> None:
    # The worker was behind: the merchant refunded all the payment, and the job then opened
    # no dispute. The acquirer reports afterwards that the refund failed: the cardholder has
    # the money neither way, and disputes all they paid.
    intent = await pay(payments, account_id, "disputed", pm="pm_dispute", amount=5000)
    refunded = await refund_intent(payments, account_id, "all", intent.id, None)
    assert isinstance(refunded, Done)
    assert refunded.value.status is RefundStatus.SUCCEEDED
    await _run_dispute_jobs(core_engine, disputes)
    assert await disputes.list_disputes(account_id, limit=10) == ([], False)

    await _refund_fails_after_it_succeeded(core_engine, refunded.value)
    # Staged by the capture, by the refund's settlement, and once more by its failure.
    assert intent.latest_charge_id is not None
    staged = {"account_id": account_id, "charge_id": intent.latest_charge_id}
    assert await _dispute_jobs(core_engine) == [staged] * 3
    await _run_dispute_jobs(core_engine, disputes)

    charge, _ = await payments.get_charge(account_id, intent.latest_charge_id)
    assert charge.disputed
    await _disputed_in_full_with_its_fee(core_engine, disputes, account_id)


async def test_a_refund_in_full_failing_after_its_settlement_staged_the_job_is_disputed_in_full(
    core_engine: AsyncEngine, disputes: DisputesService, account_id: str
) -> None:
    # The refund was pending when the job first ran; its success staged the job again, under
    # the refund's key, and that run found the charge refunded in full. Its later failure
    # still stages the job once more.
    refund = await _job_runs_while_a_refund_is_pending(
        core_engine, disputes, account_id, refused=False, amount=None
    )
    assert (refund.status, refund.amount_minor) == (RefundStatus.SUCCEEDED, 5000)
    assert await disputes.list_disputes(account_id, limit=10) == ([], False)

    await _refund_fails_after_it_succeeded(core_engine, refund)
    staged = {"account_id": account_id, "charge_id": refund.charge_id}
    assert await _dispute_jobs(core_engine) == [staged] * 3
    await _run_dispute_jobs(core_engine, disputes)
    await _disputed_in_full_with_its_fee(core_engine, disputes, account_id)


async def test_a_payment_with_an_ordinary_card_stages_no_dispute(
    core_engine: AsyncEngine, payments: PaymentsService, account_id: str
) -> None:
    intent = await pay(payments, account_id, "ordinary")
    assert intent.status.value == "succeeded"
    assert await _dispute_jobs(core_engine) == []


async def test_a_refund_of_a_disputed_charge_is_refused_and_the_refusal_is_kept_under_its_key(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
) -> None:
    intent = await _disputed_payment(payments, disputes, core_engine, account_id)
    with pytest.raises(RemitError) as refused:
        await refund_intent(payments, account_id, "refund", intent.id, None)
    assert (refused.value.kind, refused.value.code, refused.value.param) == (
        ErrorKind.FAILED_PRECONDITION,
        "charge_disputed",
        "payment_intent",
    )
    replayed = await refund_intent(payments, account_id, "refund", intent.id, None)
    assert isinstance(replayed, Replay)
    assert replayed.code != 0


async def test_evidence_is_given_then_submitted_and_a_submitted_dispute_cannot_be_closed(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
) -> None:
    await _disputed_payment(payments, disputes, core_engine, account_id)
    ((opened, _),), _ = await disputes.list_disputes(account_id, limit=1)

    staged = await disputes.update(
        account_id,
        opened.id,
        evidence={"product_description": "A blue mug", "customer_name": "Jo"},
        metadata={"case": "7"},
        clear_metadata=False,
        unset_metadata=[],
        submit=False,
    )
    assert isinstance(staged, Done)
    dispute, _ = staged.value
    assert dispute.status is DisputeStatus.NEEDS_RESPONSE
    assert dispute.has_evidence
    assert dict(dispute.metadata) == {"case": "7"}

    submitted = await disputes.update(
        account_id,
        opened.id,
        evidence={"customer_name": ""},
        metadata={},
        clear_metadata=False,
        unset_metadata=[],
        submit=True,
    )
    assert isinstance(submitted, Done)
    dispute, _ = submitted.value
    assert dispute.status is DisputeStatus.UNDER_REVIEW
    assert dict(dispute.evidence) == {"product_description": "A blue mug"}
    assert (dispute.submission_count, dispute.past_due) == (1, False)

    with pytest.raises(RemitError) as refused:
        await disputes.close(account_id, opened.id)
    assert (refused.value.kind, refused.value.code) == (
        ErrorKind.FAILED_PRECONDITION,
        "dispute_not_closable",
    )
    assert await _event_types(core_engine, account_id) == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.updated",
        "charge.dispute.updated",
    ]  # the refused close told of nothing


async def test_a_dispute_accepted_is_lost_and_another_account_cannot_reach_it(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
) -> None:
    await _disputed_payment(payments, disputes, core_engine, account_id)
    ((opened, _),), _ = await disputes.list_disputes(account_id, limit=1)
    other = (await AccountsService(core_engine).create_account()).account.id
    with pytest.raises(RemitError) as missing:
        await disputes.get(other, opened.id)
    assert (missing.value.kind, missing.value.code) == (ErrorKind.NOT_FOUND, "resource_missing")
    with pytest.raises(RemitError):
        await disputes.close(other, opened.id)

    closed = await disputes.close(account_id, opened.id)
    assert isinstance(closed, Done)
    assert closed.value[0].status is DisputeStatus.LOST
    again = await disputes.close(account_id, opened.id)
    assert isinstance(again, Done)
    assert again.value[0].status is DisputeStatus.LOST
    assert await _event_types(core_engine, account_id) == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.closed",  # once: the second close changed nothing
    ]


async def _changes_told(engine: AsyncEngine, account_id: str) -> list[tuple[str, object]]:
    """The account's dispute updates and closes, oldest first, with their previous_attributes."""
    async with engine.connect() as db:
        rows = await db.execute(
            select(events.c.type, events.c.previous_attributes)
            .where(
                events.c.account_id == account_id,
                events.c.type.in_(["charge.dispute.updated", "charge.dispute.closed"]),
            )
            .order_by(events.c.created_at, events.c.seq)
        )
        return [(row.type, row.previous_attributes) for row in rows]


async def test_updates_and_closes_tell_what_they_changed(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
) -> None:
    await pay(payments, account_id, "answered", pm="pm_dispute")
    await pay(payments, account_id, "accepted", pm="pm_dispute")
    await _run_dispute_jobs(core_engine, disputes)
    ((answered, _), (accepted, _)), _ = await disputes.list_disputes(account_id, limit=2)

    async def update(evidence: dict[str, str], metadata: dict[str, str], submit: bool) -> None:
        done = await disputes.update(
            account_id,
            answered.id,
            evidence=evidence,
            metadata=metadata,
            clear_metadata=False,
            unset_metadata=[],
            submit=submit,
        )
        assert isinstance(done, Done)

    await update({}, {"case": "7"}, submit=False)
    await update({"product_description": "A blue mug"}, {}, submit=False)
    await update({}, {}, submit=True)
    assert isinstance(await disputes.close(account_id, accepted.id), Done)

    assert await _changes_told(core_engine, account_id) == [
        # A key added to the metadata was not there before.
        ("charge.dispute.updated", {"metadata": {"case": None}}),
        (
            "charge.dispute.updated",
            {
                "evidence": {"product_description": None},
                "evidence_details": {"has_evidence": False},
            },
        ),
        (
            "charge.dispute.updated",
            {
                "status": "needs_response",
                "evidence_details": {
                    "submission_count": 0,
                    "submission_method": "not_submitted",
                },
            },
        ),
        ("charge.dispute.closed", {"status": "needs_response"}),
    ]


async def test_disputes_are_listed_newest_first_and_filtered_by_charge(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
) -> None:
    first = await pay(payments, account_id, "first", pm="pm_dispute")
    second = await pay(payments, account_id, "second", pm="pm_dispute")
    await _run_dispute_jobs(core_engine, disputes)
    listed, more = await disputes.list_disputes(account_id, limit=1)
    assert more
    assert listed[0][0].payment_intent_id in (first.id, second.id)
    rest, more = await disputes.list_disputes(account_id, limit=10, starting_after=listed[0][0].id)
    assert not more
    assert {d.payment_intent_id for d, _ in [*listed, *rest]} == {first.id, second.id}
    assert listed[0][0].created_at >= rest[0][0].created_at
    by_charge, _ = await disputes.list_disputes(
        account_id, limit=10, charge_id=first.latest_charge_id
    )
    assert [d.payment_intent_id for d, _ in by_charge] == [first.id]
    with pytest.raises(RemitError) as unknown:
        await disputes.list_disputes(account_id, limit=10, starting_after="dp_missing")
    assert unknown.value.kind is ErrorKind.NOT_FOUND


# --- The issuer's decision, as Stripe's test mode makes it ----------------------------------


async def _decision_jobs(engine: AsyncEngine) -> list[dict[str, object]]:
    async with engine.connect() as db:
        rows = await db.execute(select(jobs.c.payload).where(jobs.c.kind == DECIDE_DISPUTE_JOB))
        return [dict(row.payload) for row in rows]


async def _run_decision_jobs(engine: AsyncEngine, disputes: DisputesService) -> None:
    """What the worker does with each staged decision, in a transaction of its own."""
    for payload in await _decision_jobs(engine):
        async with engine.begin() as db:
            await disputes.decide_submitted(
                db, str(payload["account_id"]), str(payload["dispute_id"])
            )


async def _submit(
    disputes: DisputesService, account_id: str, dispute_id: str, evidence: dict[str, str]
) -> Dispute:
    submitted = await disputes.update(
        account_id,
        dispute_id,
        evidence=evidence,
        metadata={},
        clear_metadata=False,
        unset_metadata=[],
        submit=True,
    )
    assert isinstance(submitted, Done)
    return submitted.value[0]


async def _opened_dispute(
    core_engine: AsyncEngine, payments: PaymentsService, disputes: DisputesService, account_id: str
) -> Dispute:
    await _disputed_payment(payments, disputes, core_engine, account_id)
    ((dispute, _),), _ = await disputes.list_disputes(account_id, limit=1)
    return dispute


async def _available(engine: AsyncEngine, account_id: str) -> list[tuple[int, str]]:
    async with engine.connect() as db:
        balance = await read_balance(db, account_id, "usd")
    return [(a.amount, a.currency) for a in balance.available]


async def _verified(engine: AsyncEngine, account_id: str, now: datetime) -> None:
    async with engine.connect() as db:
        report = await verify_ledger(db, account_id=account_id, now=now)
    assert report.ok, (report.differences, report.chain_breaks)


async def test_winning_evidence_wins_the_dispute_once_and_reinstates_its_amount(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
) -> None:
    opened = await _opened_dispute(core_engine, payments, disputes, account_id)
    submitted = await _submit(
        disputes, account_id, opened.id, {"uncategorized_text": "winning_evidence"}
    )
    # Decided after the submission commits, by the worker: until then it is under review.
    assert submitted.status is DisputeStatus.UNDER_REVIEW
    assert await _decision_jobs(core_engine) == [
        {"account_id": account_id, "dispute_id": opened.id}
    ]

    # The job run twice (a retry after a crash, or two workers) decides once.
    await _run_decision_jobs(core_engine, disputes)
    await _run_decision_jobs(core_engine, disputes)

    dispute, moved = await disputes.get(account_id, opened.id)
    assert dispute.status is DisputeStatus.WON
    assert dispute.submission_count == 1
    assert [txn.id for txn in moved] == list(dispute.balance_transaction_ids)
    withdrawal, reinstatement = moved
    assert withdrawal.reporting_category == "dispute"
    assert reinstatement.type is BalanceTransactionType.ADJUSTMENT
    assert reinstatement.reporting_category == "dispute_reversal"
    assert (reinstatement.amount, reinstatement.fee, reinstatement.net) == (2000, 0, 2000)
    assert (reinstatement.source_id, reinstatement.charge_id) == (dispute.id, dispute.charge_id)
    # The amount comes back; the dispute fee stays taken.
    assert await _available(core_engine, account_id) == [(-1500, "usd")]
    assert await _event_types(core_engine, account_id) == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_reinstated",
    ]
    closed_from = dict(await _changes_told(core_engine, account_id))["charge.dispute.closed"]
    assert isinstance(closed_from, dict)
    assert closed_from["status"] == "under_review"
    assert [txn["id"] for txn in closed_from["balance_transactions"]] == [withdrawal.id]
    charge, _ = await payments.get_charge(account_id, dispute.charge_id)
    assert charge.disputed  # a won dispute is still the charge's dispute
    await _verified(core_engine, account_id, dispute.updated_at)

    # Decided, it takes no evidence and no close.
    with pytest.raises(RemitError) as refused:
        await _submit(disputes, account_id, opened.id, {"customer_name": "Jo"})
    assert refused.value.code == "dispute_not_updatable"
    with pytest.raises(RemitError) as unclosable:
        await disputes.close(account_id, opened.id)
    assert unclosable.value.code == "dispute_not_closable"


async def _balances_announced(engine: AsyncEngine, account_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as db:
        rows = await db.execute(
            select(events.c.data_object).where(
                events.c.account_id == account_id, events.c.type == "balance.available"
            )
        )
        return [dict(row) for row in rows.scalars()]


async def test_a_won_dispute_announces_the_balance_its_reinstatement_made_once(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
) -> None:
    opened = await _opened_dispute(core_engine, payments, disputes, account_id)
    # The withdrawal takes from the available balance: no balance.available.
    assert await _balances_announced(core_engine, account_id) == []
    await _submit(disputes, account_id, opened.id, {"uncategorized_text": "winning_evidence"})
    await _run_decision_jobs(core_engine, disputes)
    await _run_decision_jobs(core_engine, disputes)
    (shown,) = await _balances_announced(core_engine, account_id)
    assert [(a["amount"], a["currency"]) for a in shown["available"]] == [(-1500, "usd")]
    async with core_engine.connect() as db:
        balance = await read_balance(db, account_id, "usd")
    assert shown == to_json(balance_message(balance))


async def test_losing_evidence_loses_the_dispute_and_moves_no_money(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
) -> None:
    opened = await _opened_dispute(core_engine, payments, disputes, account_id)
    await _submit(disputes, account_id, opened.id, {"uncategorized_text": "losing_evidence"})
    await _run_decision_jobs(core_engine, disputes)
    await _run_decision_jobs(core_engine, disputes)

    dispute, moved = await disputes.get(account_id, opened.id)
    assert dispute.status is DisputeStatus.LOST
    assert [txn.reporting_category for txn in moved] == ["dispute"]
    assert await _available(core_engine, account_id) == [(-3500, "usd")]
    assert await _event_types(core_engine, account_id) == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.updated",
        "charge.dispute.closed",
    ]
    assert dict(await _changes_told(core_engine, account_id))["charge.dispute.closed"] == {
        "status": "under_review"
    }
    await _verified(core_engine, account_id, dispute.updated_at)
    # Closing a lost dispute again changes nothing.
    again = await disputes.close(account_id, opened.id)
    assert isinstance(again, Done)
    assert again.value[0].status is DisputeStatus.LOST


async def test_staged_winning_evidence_is_decided_when_submitted_without_more(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
) -> None:
    opened = await _opened_dispute(core_engine, payments, disputes, account_id)
    staged = await disputes.update(
        account_id,
        opened.id,
        evidence={"uncategorized_text": "winning_evidence"},
        metadata={},
        clear_metadata=False,
        unset_metadata=[],
        submit=False,
    )
    assert isinstance(staged, Done)
    assert await _decision_jobs(core_engine) == []  # staged evidence is not sent to the issuer
    await _submit(disputes, account_id, opened.id, {})
    await _run_decision_jobs(core_engine, disputes)
    dispute, _ = await disputes.get(account_id, opened.id)
    assert dispute.status is DisputeStatus.WON


async def test_other_evidence_stays_under_review(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
) -> None:
    opened = await _opened_dispute(core_engine, payments, disputes, account_id)
    await _submit(
        disputes,
        account_id,
        opened.id,
        {"uncategorized_text": "Winning_Evidence", "product_description": "winning_evidence"},
    )
    assert await _decision_jobs(core_engine) == []
    # A decision job run all the same (none is staged for it) leaves it as it is.
    async with core_engine.begin() as db:
        await disputes.decide_submitted(db, account_id, opened.id)
    dispute, moved = await disputes.get(account_id, opened.id)
    assert dispute.status is DisputeStatus.UNDER_REVIEW
    assert len(moved) == 1


async def test_a_decision_that_dies_before_its_commit_is_made_whole_by_the_next_run(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened = await _opened_dispute(core_engine, payments, disputes, account_id)
    await _submit(disputes, account_id, opened.id, {"uncategorized_text": "winning_evidence"})

    class CrashError(Exception):
        pass

    async def crash(*args: object, **kwargs: object) -> None:
        raise CrashError

    # The worker dies after the dispute, its events and balance transaction were written, at
    # the ledger's posting: the job's transaction rolls back whole.
    with monkeypatch.context() as patched:
        patched.setattr(postings, "record_dispute_funds_reinstated", crash)
        with pytest.raises(CrashError):
            await _run_decision_jobs(core_engine, disputes)
    dispute, moved = await disputes.get(account_id, opened.id)
    assert dispute.status is DisputeStatus.UNDER_REVIEW
    assert len(moved) == 1
    assert "charge.dispute.closed" not in await _event_types(core_engine, account_id)

    await _run_decision_jobs(core_engine, disputes)
    dispute, moved = await disputes.get(account_id, opened.id)
    assert dispute.status is DisputeStatus.WON
    assert len(moved) == 2
    assert await _available(core_engine, account_id) == [(-1500, "usd")]
    types = await _event_types(core_engine, account_id)
    assert (
        types.count("charge.dispute.closed"),
        types.count("charge.dispute.funds_reinstated"),
    ) == (
        1,
        1,
    )
    await _verified(core_engine, account_id, dispute.updated_at)


async def test_a_second_submission_is_refused_and_stages_no_second_decision(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
) -> None:
    opened = await _opened_dispute(core_engine, payments, disputes, account_id)
    await _submit(disputes, account_id, opened.id, {"uncategorized_text": "losing_evidence"})
    # A second submission is refused (the dispute is under review) and stages nothing.
    with pytest.raises(RemitError):
        await _submit(disputes, account_id, opened.id, {})
    assert len(await _decision_jobs(core_engine)) == 1


# --- UpdateDispute over gRPC -------------------------------------------------------------


async def _two_disputes(
    engine: AsyncEngine, payments: PaymentsService, disputes: DisputesService, account_id: str
) -> tuple[str, str]:
    await pay(payments, account_id, "first", pm="pm_dispute")
    await pay(payments, account_id, "second", pm="pm_dispute")
    await _run_dispute_jobs(engine, disputes)
    ((first, _), (second, _)), _ = await disputes.list_disputes(account_id, limit=2)
    return first.id, second.id


async def test_an_update_over_grpc_submits_the_evidence_it_gives_unless_submit_is_false(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
    payments_stub: Any,
) -> None:
    answered_id, staged_id = await _two_disputes(core_engine, payments, disputes, account_id)
    caller = call_metadata(account_id)

    # `submit` unset: Stripe's default, true, for a request that gives evidence.
    answered = await payments_stub.UpdateDispute(
        pb.UpdateDisputeRequest(
            id=answered_id, evidence=pb.DisputeEvidence(uncategorized_text="winning_evidence")
        ),
        metadata=caller,
    )
    assert answered.dispute.status == pb.DISPUTE_STATUS_UNDER_REVIEW
    assert answered.dispute.evidence_details.submission_count == 1
    # The submission asked Stripe's test mode for a decision: its job is staged.
    assert await _decision_jobs(core_engine) == [
        {"account_id": account_id, "dispute_id": answered_id}
    ]

    # Metadata alone submits nothing; evidence given with submit false is only staged.
    relabeled = await payments_stub.UpdateDispute(
        pb.UpdateDisputeRequest(id=staged_id, metadata={"case": "7"}), metadata=caller
    )
    assert relabeled.dispute.status == pb.DISPUTE_STATUS_NEEDS_RESPONSE
    assert dict(relabeled.dispute.metadata) == {"case": "7"}
    staged = await payments_stub.UpdateDispute(
        pb.UpdateDisputeRequest(
            id=staged_id,
            evidence=pb.DisputeEvidence(uncategorized_text="winning_evidence"),
            submit=False,
        ),
        metadata=caller,
    )
    assert staged.dispute.status == pb.DISPUTE_STATUS_NEEDS_RESPONSE
    assert staged.dispute.evidence_details.has_evidence
    assert staged.dispute.evidence_details.submission_count == 0
    assert len(await _decision_jobs(core_engine)) == 1


async def test_an_update_over_grpc_cannot_give_an_appeal_or_enhanced_evidence(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    disputes: DisputesService,
    account_id: str,
    payments_stub: Any,
) -> None:
    dispute_id, _ = await _two_disputes(core_engine, payments, disputes, account_id)
    shown = await payments_stub.GetDispute(
        pb.GetDisputeRequest(id=dispute_id), metadata=call_metadata(account_id)
    )
    appealing = pb.DisputeEvidence(customer_name="Jo")
    appealing.appeal.card.reason_for_filing = "The cardholder signed for it."
    # As a request that copies the dispute's own evidence sets it: empty, but present.
    copied = pb.DisputeEvidence()
    copied.CopyFrom(shown.dispute.evidence)
    copied.customer_name = "Jo"
    assert copied.HasField("enhanced_evidence")

    for name, evidence in (("appeal", appealing), ("enhanced_evidence", copied)):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await payments_stub.UpdateDispute(
                pb.UpdateDisputeRequest(id=dispute_id, evidence=evidence),
                metadata=call_metadata(account_id),
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        detail = detail_from_rpc_error(refused.value)
        assert detail is not None
        assert (detail.code, detail.param) == ("parameter_invalid", f"evidence[{name}]")
        assert f"evidence.{name}" in (refused.value.details() or "")

    dispute, _ = await disputes.get(account_id, dispute_id)
    assert (dispute.status, dict(dispute.evidence)) == (DisputeStatus.NEEDS_RESPONSE, {})
