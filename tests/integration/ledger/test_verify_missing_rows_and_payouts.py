"""`remit ledger verify` finds a ledger transaction Stripe shows that lost its balance
transaction, where the sums of the rows cannot (a row whose net is 0, or two rows that net to
zero deleted together), and a payout row that disagrees with the ledger's postings of it."""

from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.ledger import postings as ledger
from remit.ledger.jobs import advance_payouts
from remit.ledger.payouts import SUBMISSION_DELAY, cancel_payout, create_payout
from remit.ledger.verify import DifferenceKind
from tests.integration.ledger.ledger_steps import (
    charge_available_at_once,
    refund_held,
    refund_posted,
)
from tests.integration.ledger.test_verify_tampering import kinds, tamper, verified

pytestmark = pytest.mark.anyio


async def test_a_charge_whose_fee_took_its_whole_amount_loses_its_balance_transaction(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """Its net is 0: the balance transactions still add up to the balances without it."""
    async with core_engine.begin() as db:
        shown = await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_all_fee",
            gross_minor=50,
            currency="usd",
            now=clock.now(),
            fee_minor=50,
        )
    assert shown.net == 0
    assert (await verified(core_engine, account_id, clock)).ok
    await tamper(
        core_engine,
        account_id,
        f"DELETE FROM balance_transactions WHERE id = '{shown.id}'",  # noqa: S608
    )
    report = await verified(core_engine, account_id, clock)
    assert [(d.kind, d.transaction_id) for d in report.differences] == [
        (DifferenceKind.MISSING_BALANCE_TRANSACTION, "ch_all_fee:capture")
    ]


async def test_a_payout_and_its_cancel_lose_their_balance_transactions_together(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        await charge_available_at_once(db, account_id, clock)
        payout = await create_payout(
            db, account_id=account_id, amount=500, currency="usd", now=clock.now()
        )
        await cancel_payout(db, account_id=account_id, payout_id=payout.id, now=clock.now())
    assert (await verified(core_engine, account_id, clock)).ok
    await tamper(
        core_engine,
        account_id,
        f"DELETE FROM balance_transactions WHERE source_id = '{payout.id}'",  # noqa: S608
    )
    report = await verified(core_engine, account_id, clock)
    missing = {
        d.transaction_id
        for d in report.differences
        if d.kind is DifferenceKind.MISSING_BALANCE_TRANSACTION
    }
    assert missing == {f"{payout.id}:payout", f"{payout.id}:cancel"}
    # The payout row names a balance transaction that is gone.
    assert kinds(report) == {
        DifferenceKind.MISSING_BALANCE_TRANSACTION,
        DifferenceKind.PAYOUT_MISMATCH,
    }


async def test_a_posted_refund_and_its_failure_lose_their_balance_transactions_together(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    now = clock.now()
    async with core_engine.begin() as db:
        await charge_available_at_once(db, account_id, clock)
        await refund_held(db, account_id, clock)
        await refund_posted(db, account_id, clock)
        await ledger.record_refund_failed(db, account_id=account_id, refund_id="re_1", now=now)
    # The hold was released by the refund's posting: neither shows a row of its own.
    assert (await verified(core_engine, account_id, clock)).ok
    await tamper(
        core_engine, account_id, "DELETE FROM balance_transactions WHERE source_id = 're_1'"
    )
    report = await verified(core_engine, account_id, clock)
    assert {(d.kind, d.transaction_id) for d in report.differences} == {
        (DifferenceKind.MISSING_BALANCE_TRANSACTION, "re_1:refund"),
        (DifferenceKind.MISSING_BALANCE_TRANSACTION, "re_1:refund_failure"),
    }


@pytest.mark.parametrize("deleted", ["refund_hold", "refund_release"])
async def test_a_released_refund_hold_loses_one_of_its_balance_transactions(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, deleted: str
) -> None:
    """A refund that failed before it posted shows a refund row (naming its hold) and a
    refund_failure row (naming the release): either one gone is named."""
    now = clock.now()
    async with core_engine.begin() as db:
        await charge_available_at_once(db, account_id, clock)
        await refund_held(db, account_id, clock)
        await ledger.record_refund_released(db, account_id=account_id, refund_id="re_1", now=now)
    assert (await verified(core_engine, account_id, clock)).ok
    await tamper(
        core_engine,
        account_id,
        "DELETE FROM balance_transactions "  # noqa: S608
        f"WHERE account_id = :a AND ledger_transaction_id = 're_1:{deleted}'",
    )
    report = await verified(core_engine, account_id, clock)
    assert (DifferenceKind.MISSING_BALANCE_TRANSACTION, f"re_1:{deleted}") in {
        (d.kind, d.transaction_id) for d in report.differences
    }


async def test_an_open_refund_hold_loses_its_balance_transaction(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        await charge_available_at_once(db, account_id, clock)
        await refund_held(db, account_id, clock)
    await tamper(
        core_engine, account_id, "DELETE FROM balance_transactions WHERE source_id = 're_1'"
    )
    report = await verified(core_engine, account_id, clock)
    assert (DifferenceKind.MISSING_BALANCE_TRANSACTION, "re_1:refund_hold") in {
        (d.kind, d.transaction_id) for d in report.differences
    }


@dataclass(frozen=True)
class Payouts:
    pending: str
    paid: str
    failed: str
    canceled: str


async def payouts_of_every_status(
    engine: AsyncEngine, account_id: str, clock: FixedClock
) -> Payouts:
    async with engine.begin() as db:
        await charge_available_at_once(db, account_id, clock, gross_minor=10_000)
        paid = await create_payout(
            db, account_id=account_id, amount=1_000, currency="usd", now=clock.now()
        )
        failed = await create_payout(
            db,
            account_id=account_id,
            amount=2_000,
            currency="usd",
            now=clock.now(),
            description="fail",
        )
        canceled = await create_payout(
            db, account_id=account_id, amount=700, currency="usd", now=clock.now()
        )
        await cancel_payout(db, account_id=account_id, payout_id=canceled.id, now=clock.now())
    clock.advance((SUBMISSION_DELAY + timedelta(days=2)).total_seconds())
    async with engine.begin() as db:
        assert await advance_payouts(db, now=clock.now()) == 2
        pending = await create_payout(
            db, account_id=account_id, amount=300, currency="usd", now=clock.now()
        )
    return Payouts(pending=pending.id, paid=paid.id, failed=failed.id, canceled=canceled.id)


_COLUMNS = (
    "account_id, amount, currency, status, arrival_date, automatic, method, source_type, "
    "balance_transaction_id, failure_balance_transaction_id, failure_code, failure_message, "
    "description, destination, statement_descriptor, metadata, created_at, updated_at"
)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("DELETE FROM payouts WHERE id = '{paid}'", "has no payout row"),
        (
            f"INSERT INTO payouts (id, {_COLUMNS}) SELECT 'po_made_up', {_COLUMNS} "  # noqa: S608
            "FROM payouts WHERE id = '{pending}'",
            "no ledger transaction put this payout's money in transit",
        ),
        (
            "UPDATE payouts SET amount = amount + 100 WHERE id = '{pending}'",
            "amount 400, the ledger put 300 in transit",
        ),
        ("UPDATE payouts SET currency = 'eur' WHERE id = '{pending}'", "currency eur"),
        (
            "UPDATE payouts SET status = 'paid' WHERE id = '{pending}'",
            "status paid, the ledger says pending or in_transit",
        ),
        (
            "UPDATE payouts SET status = 'in_transit' WHERE id = '{paid}'",
            "status in_transit, the ledger says paid",
        ),
        (
            "UPDATE payouts SET status = 'paid', failure_balance_transaction_id = NULL "
            "WHERE id = '{failed}'",
            "status paid, the ledger says failed",
        ),
        (
            "UPDATE payouts SET status = 'pending' WHERE id = '{canceled}'",
            "status pending, the ledger says canceled",
        ),
        (
            "UPDATE payouts SET balance_transaction_id = "
            "(SELECT balance_transaction_id FROM payouts WHERE id = '{failed}') "
            "WHERE id = '{paid}'",
            "balance_transaction",
        ),
        (
            "UPDATE payouts SET failure_balance_transaction_id = NULL WHERE id = '{failed}'",
            "failure_balance_transaction None",
        ),
        (
            "UPDATE payouts SET failure_balance_transaction_id = NULL WHERE id = '{canceled}'",
            "failure_balance_transaction None",
        ),
        (
            "UPDATE payouts SET failure_balance_transaction_id = balance_transaction_id "
            "WHERE id = '{canceled}'",
            "failure_balance_transaction txn_",
        ),
    ],
)
async def test_a_payout_row_that_disagrees_with_the_ledger(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, change: str, said: str
) -> None:
    made = await payouts_of_every_status(core_engine, account_id, clock)
    report = await verified(core_engine, account_id, clock)
    assert report.ok, report.differences
    await tamper(
        core_engine,
        account_id,
        change.format(
            pending=made.pending, paid=made.paid, failed=made.failed, canceled=made.canceled
        ),
    )
    report = await verified(core_engine, account_id, clock)
    found = [d for d in report.differences if d.kind is DifferenceKind.PAYOUT_MISMATCH]
    assert any(said in d.description for d in found), report.differences
