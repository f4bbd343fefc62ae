"""`remit ledger verify` leaves alone the generic postings made before their ids were refused.

Until 2026-12-06 PostTransaction and PostPendingTransaction (`journal.post`) took any id and
any account: `order_1:cancel` or `inv_7:refund` between a caller's own accounts, or a posting
to `payouts_in_transit`, are legitimate history, not the ledger's steps that lost their
balance transaction or payout row."""

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.ledger import journal
from remit.ledger.chart import PAID_OUT, PAYOUTS_IN_TRANSIT
from remit.ledger.domain import Posting, TransactionRequest
from remit.ledger.payouts import cancel_payout, create_payout
from remit.ledger.verify import DifferenceKind
from tests.integration.ledger.ledger_steps import charge_available_at_once, refund_held
from tests.integration.ledger.test_verify_tampering import tamper, verified

pytestmark = pytest.mark.anyio


async def _posted_by_a_caller(
    engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    transaction_id: str,
    *,
    to: str = "wallet",
    pending: bool = False,
    metadata: dict[str, str] | None = None,
) -> None:
    async with engine.begin() as db:
        await journal.post(
            db,
            account_id,
            TransactionRequest(
                transaction_id=transaction_id,
                postings=(Posting("world", -100, "usd"), Posting(to, 100, "usd")),
                pending=pending,
                metadata=metadata or {},
            ),
            now=clock.now(),
        )


@pytest.mark.parametrize(
    "transaction_id",
    [
        "order_1:cancel",
        "inv_7:refund",
        "sub_3:payout",
        "job_9:failure",
        "cart_2:capture",
        "ret_4:refund_failure",
        "ret_5:refund_release",
        # The ledger's id shape, but not its metadata: a caller's own choice of name.
        "ch_9:capture",
        "po_9:payout",
    ],
)
async def test_a_generic_posting_whose_id_ends_in_a_ledger_step(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, transaction_id: str
) -> None:
    await _posted_by_a_caller(core_engine, account_id, clock, transaction_id)
    report = await verified(core_engine, account_id, clock)
    assert report.ok, report.differences


async def test_an_open_generic_reservation_whose_id_ends_in_refund_hold(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await _posted_by_a_caller(core_engine, account_id, clock, "inv_8:refund_hold", pending=True)
    report = await verified(core_engine, account_id, clock)
    assert report.ok, report.differences


async def test_a_generic_reversal_whose_id_ends_in_refund_failure(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """A caller's metadata may say "reverses" without the ledger having reversed anything."""
    await _posted_by_a_caller(
        core_engine, account_id, clock, "inv_7:refund_failure", metadata={"reverses": "inv_7"}
    )
    report = await verified(core_engine, account_id, clock)
    assert report.ok, report.differences


@pytest.mark.parametrize("step", ["payout", "cancel", "failure", "paid"])
async def test_a_generic_posting_to_payouts_in_transit(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, step: str
) -> None:
    await _posted_by_a_caller(
        core_engine, account_id, clock, f"sub_3:{step}", to=PAYOUTS_IN_TRANSIT
    )
    report = await verified(core_engine, account_id, clock)
    assert not [d for d in report.differences if d.kind is DifferenceKind.PAYOUT_MISMATCH]


@pytest.mark.parametrize(
    ("transaction_id", "to", "pending"),
    [
        ("sub_4:paid", PAID_OUT, False),
        ("po_9:paid", PAID_OUT, False),  # the ledger's id shape, without its metadata
        ("sub_4:paid", PAYOUTS_IN_TRANSIT, True),
        ("sub_4:paid", PAID_OUT, True),
    ],
)
async def test_generic_postings_beside_payouts_leave_the_payouts_totals_alone(
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    transaction_id: str,
    to: str,
    pending: bool,
) -> None:
    """A posted one is counted in the ledger account's balance beside the payouts; an open
    reservation is not in the balance at all."""
    async with core_engine.begin() as db:
        await charge_available_at_once(db, account_id, clock)
        payout = await create_payout(
            db, account_id=account_id, amount=300, currency="usd", now=clock.now()
        )
    await _posted_by_a_caller(
        core_engine, account_id, clock, transaction_id, to=to, pending=pending
    )
    report = await verified(core_engine, account_id, clock)
    assert report.ok, report.differences
    await tamper(
        core_engine,
        account_id,
        f"UPDATE payouts SET amount = 299 WHERE id = '{payout.id}'",  # noqa: S608
    )
    report = await verified(core_engine, account_id, clock)
    assert {
        (d.ledger_account, d.expected_minor, d.actual_minor)
        for d in report.differences
        if d.kind is DifferenceKind.PAYOUT_MISMATCH and d.transaction_id is None
    } == {(PAYOUTS_IN_TRANSIT, 300, 299)}


async def test_the_ledgers_own_steps_are_still_held_to_their_rows_beside_legacy_postings(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    for transaction_id in ("order_1:cancel", "inv_7:refund", "sub_3:payout"):
        await _posted_by_a_caller(core_engine, account_id, clock, transaction_id)
    async with core_engine.begin() as db:
        await charge_available_at_once(db, account_id, clock)
        await refund_held(db, account_id, clock)
        payout = await create_payout(
            db, account_id=account_id, amount=300, currency="usd", now=clock.now()
        )
        await cancel_payout(db, account_id=account_id, payout_id=payout.id, now=clock.now())
    assert (await verified(core_engine, account_id, clock)).ok
    await tamper(
        core_engine,
        account_id,
        "DELETE FROM balance_transactions WHERE account_id = :a",
        "UPDATE payouts SET balance_transaction_id = NULL, failure_balance_transaction_id = NULL "
        "WHERE account_id = :a",
    )
    report = await verified(core_engine, account_id, clock)
    missing = {
        d.transaction_id
        for d in report.differences
        if d.kind is DifferenceKind.MISSING_BALANCE_TRANSACTION
    }
    assert missing == {
        "ch_1:capture",
        "re_1:refund_hold",
        f"{payout.id}:payout",
        f"{payout.id}:cancel",
    }
