"""`remit ledger verify` finds what an ordinary database user could change outside the hash
chain: a pending transaction's outcome, a reversal's record, the balance transactions Stripe
shows, the ledger accounts' guards, and a charge refunded beyond its amount. Every change here
is one the database's triggers let through."""

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.ledger import journal, payouts
from remit.ledger import postings as ledger
from remit.ledger.domain import Posting, TransactionRequest
from remit.ledger.objects import Payout
from remit.ledger.verify import DifferenceKind, VerifyReport, verify_ledger
from tests.integration.ledger.ledger_steps import (
    charge_available_at_once,
    refund_held,
    refund_posted,
)

pytestmark = pytest.mark.anyio


async def verified(engine: AsyncEngine, account_id: str, clock: FixedClock) -> VerifyReport:
    async with engine.connect() as db:
        return await verify_ledger(db, account_id=account_id, now=clock.now())


async def tamper(engine: AsyncEngine, account_id: str, *statements: str) -> None:
    async with engine.begin() as db:
        for statement in statements:
            await db.execute(text(statement), {"a": account_id})


def kinds(report: VerifyReport) -> set[DifferenceKind]:
    return {difference.kind for difference in report.differences}


async def test_a_reservation_marked_voided_by_a_transaction_that_does_not_void_it(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        await ledger.record_authorization(
            db,
            account_id=account_id,
            charge_id="ch_1",
            amount_minor=1000,
            currency="usd",
            now=clock.now(),
        )
        await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_2",
            gross_minor=500,
            currency="usd",
            now=clock.now(),
        )
    assert (await verified(core_engine, account_id, clock)).ok
    await tamper(
        core_engine,
        account_id,
        "UPDATE ledger_transactions SET pending_status = 'voided', resolved_by = 'ch_2:capture' "
        "WHERE account_id = :a AND id = 'ch_1:authorization'",
        "UPDATE ledger_accounts SET pending_incoming_minor = 0, pending_outgoing_minor = 0 "
        "WHERE account_id = :a",
    )
    report = await verified(core_engine, account_id, clock)
    assert not report.ok
    [finding] = report.differences
    assert finding.kind is DifferenceKind.PENDING_OUTCOME_MISMATCH
    assert finding.transaction_id == "ch_1:authorization"
    assert "no transaction posts or voids it" in finding.description


async def test_a_refund_hold_marked_posted_by_its_release(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """The release voided the hold; calling it posted (by the same transaction) is a lie."""
    async with core_engine.begin() as db:
        await charge_available_at_once(db, account_id, clock)
    async with core_engine.begin() as db:
        await refund_held(db, account_id, clock)
    async with core_engine.begin() as db:
        await ledger.record_refund_released(
            db, account_id=account_id, refund_id="re_1", now=clock.now()
        )
    assert (await verified(core_engine, account_id, clock)).ok
    # The trigger allows no move from voided; a superuser's, replayed, is what is left.
    await tamper(
        core_engine,
        account_id,
        "SET LOCAL session_replication_role = replica",
        "UPDATE ledger_transactions SET pending_status = 'posted' "
        "WHERE account_id = :a AND id = 're_1:refund_hold'",
    )
    report = await verified(core_engine, account_id, clock)
    [finding] = report.differences
    assert finding.kind is DifferenceKind.PENDING_OUTCOME_MISMATCH
    assert "expected voided by re_1:refund_release" in finding.description


def _move(txid: str, amount: int) -> TransactionRequest:
    return TransactionRequest(
        transaction_id=txid,
        postings=(Posting("world", -amount, "usd"), Posting("wallet", amount, "usd")),
    )


async def test_a_transaction_marked_reversed_by_one_that_does_not_reverse_it(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        for txid in ("paid", "kept"):
            await journal.post(db, account_id, _move(txid, 50), now=clock.now())
    assert (await verified(core_engine, account_id, clock)).ok
    # Marked reversed, it could never be reversed: an ordinary statement may do that.
    await tamper(
        core_engine,
        account_id,
        "UPDATE ledger_transactions SET reversed_by = 'kept' WHERE account_id = :a AND id = 'paid'",
    )
    report = await verified(core_engine, account_id, clock)
    [finding] = report.differences
    assert finding.kind is DifferenceKind.REVERSAL_MISMATCH
    assert finding.transaction_id == "paid"
    assert "which reverses nothing" in finding.description


async def test_a_refund_failure_not_recorded_on_the_refund_it_reverses(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        await charge_available_at_once(db, account_id, clock)
        await refund_posted(db, account_id, clock, amount_minor=300)
        await ledger.record_refund_failed(
            db, account_id=account_id, refund_id="re_1", now=clock.now()
        )
    assert (await verified(core_engine, account_id, clock)).ok
    await tamper(
        core_engine,
        account_id,
        "SET LOCAL session_replication_role = replica",
        "UPDATE ledger_transactions SET reversed_by = NULL "
        "WHERE account_id = :a AND id = 're_1:refund'",
    )
    report = await verified(core_engine, account_id, clock)
    [finding] = report.differences
    assert finding.kind is DifferenceKind.REVERSAL_MISMATCH
    assert finding.transaction_id == "re_1:refund_failure"


async def captured(engine: AsyncEngine, account_id: str, clock: FixedClock) -> str:
    """A charge of 1000 captured after its authorization, its fee booked apart (`ch_1:fee`);
    returns its balance transaction's id."""
    async with engine.begin() as db:
        await ledger.record_authorization(
            db,
            account_id=account_id,
            charge_id="ch_1",
            amount_minor=1000,
            currency="usd",
            now=clock.now(),
        )
        txn = await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_1",
            gross_minor=1000,
            currency="usd",
            now=clock.now(),
            fee_minor=59,
        )
    return txn.id


async def test_a_charges_amount_and_fee_raised_together(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """Its net, all Stripe's view adds up, is unchanged; its fee no longer is its fee_details'
    sum either."""
    txn_id = await captured(core_engine, account_id, clock)
    assert (await verified(core_engine, account_id, clock)).ok
    await tamper(
        core_engine,
        account_id,
        f"UPDATE balance_transactions SET amount = amount + 100, fee = fee + 100 "  # noqa: S608
        f"WHERE id = '{txn_id}'",
    )
    report = await verified(core_engine, account_id, clock)
    assert {(d.kind, d.expected_minor, d.actual_minor) for d in report.differences} == {
        (DifferenceKind.BALANCE_TRANSACTION_MISMATCH, 59, 159),
        (DifferenceKind.BALANCE_TRANSACTION_MISMATCH, 1000, 1100),
        (DifferenceKind.BALANCE_TRANSACTION_MISMATCH, 159, 59),
    }
    assert {d.description.split(": ")[1].split(" ")[0] for d in report.differences} == {
        "fee",
        "amount",
        "fee_details",
    }


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ("type = 'transfer'", "type transfer is not one the ledger writes"),
        # The ledger's adjustments are disputes' withdrawals (`dp:dispute`), never a capture.
        ("type = 'adjustment'", "an adjustment of ch_1 is not this ledger transaction"),
        ("type = 'payout'", "a payout of ch_1 is not this ledger transaction"),
        ("source_id = 'ch_other'", "a charge of ch_other is not this ledger transaction"),
        ("charge_id = 'ch_other'", "names charge ch_other, the ledger ch_1"),
        ("ledger_transaction_id = 'ch_9:capture'", "its ledger transaction does not exist"),
        ("status = 'available'", "available, but no posting made its net available"),
        ("net = 0", "net is not amount less fee"),
    ],
)
async def test_a_charges_balance_transaction_relabelled(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, values: str, said: str
) -> None:
    txn_id = await captured(core_engine, account_id, clock)
    await tamper(
        core_engine,
        account_id,
        f"UPDATE balance_transactions SET {values} WHERE id = '{txn_id}'",  # noqa: S608
    )
    report = await verified(core_engine, account_id, clock)
    assert any(said in d.description for d in report.differences), report.differences


async def every_movement(engine: AsyncEngine, account_id: str, clock: FixedClock) -> None:
    """Charges both ways, refunds held, released, posted and failed, a payout paid back, a
    dispute withdrawn and won."""
    from remit.ledger.payouts import cancel_payout, create_payout

    await captured(engine, account_id, clock)
    now = clock.now()
    async with engine.begin() as db:
        await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_2",
            gross_minor=2000,
            currency="usd",
            now=now,
            bypass_pending=True,
            network_fee_minor=20,
        )
        for refund_id, amount in (("re_1", 300), ("re_2", 200), ("re_3", 100)):
            await ledger.record_refund_held(
                db,
                account_id=account_id,
                refund_id=refund_id,
                charge_id="ch_2",
                amount_minor=amount,
                currency="usd",
                now=now,
            )
        await ledger.record_refund_released(db, account_id=account_id, refund_id="re_1", now=now)
        await ledger.record_refund(
            db,
            account_id=account_id,
            refund_id="re_2",
            charge_id="ch_2",
            amount_minor=200,
            currency="usd",
            now=now,
        )
        await ledger.record_refund_failed(db, account_id=account_id, refund_id="re_2", now=now)
        payout = await create_payout(db, account_id=account_id, amount=500, currency="usd", now=now)
        await cancel_payout(db, account_id=account_id, payout_id=payout.id, now=now)
    await disputed_and_won(engine, account_id, clock)


async def test_every_movement_shows_balance_transactions_that_verify(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """None is a finding: the row checks know every balance transaction the ledger writes, and
    the reporting category of each."""
    await every_movement(core_engine, account_id, clock)
    report = await verified(core_engine, account_id, clock)
    assert report.ok, report.differences


@pytest.mark.parametrize(
    ("step", "category", "expected"),
    [
        # A won dispute's reinstatement shown as the withdrawal, or as no dispute at all.
        ("dispute_reversal", "dispute", "dispute_reversal"),
        ("dispute_reversal", "other_adjustment", "dispute_reversal"),
        ("dispute", "dispute_reversal", "dispute"),
        ("dispute", "other_adjustment", "dispute"),
        ("capture", "refund", "charge"),
        ("refund_hold", "refund_failure", "refund"),
        ("refund", "charge", "refund"),
        ("refund_release", "refund", "refund_failure"),
        ("refund_failure", "refund", "refund_failure"),
        ("payout", "payout_reversal", "payout"),
        ("cancel", "payout", "payout_reversal"),
    ],
)
async def test_a_balance_transaction_reported_in_another_category(
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    step: str,
    category: str,
    expected: str,
) -> None:
    """Its amounts, type and source still match its posting: the category alone is wrong."""
    await every_movement(core_engine, account_id, clock)
    async with core_engine.begin() as db:
        [ledger_transaction_id] = (
            await db.execute(
                # One row of the step (there are two captures and three refund holds).
                text(
                    "UPDATE balance_transactions SET reporting_category = :category "
                    "WHERE account_id = :a AND ledger_transaction_id = ("
                    "  SELECT min(ledger_transaction_id) FROM balance_transactions"
                    "  WHERE account_id = :a AND split_part(ledger_transaction_id, ':', 2) = :step"
                    ") RETURNING ledger_transaction_id"
                ),
                {"a": account_id, "category": category, "step": step},
            )
        ).scalars()
    report = await verified(core_engine, account_id, clock)
    [finding] = report.differences
    assert finding.kind is DifferenceKind.BALANCE_TRANSACTION_MISMATCH
    assert finding.transaction_id == ledger_transaction_id
    assert finding.description.endswith(f"reporting category {category}, the ledger {expected}")


async def disputed_and_won(engine: AsyncEngine, account_id: str, clock: FixedClock) -> str:
    """ch_1's dispute dp_1, withdrawn then won: the reinstatement's balance transaction id."""
    now = clock.now()
    withdrawal = ledger.dispute_withdrawal(
        "txn_dp_withdrawn",
        account_id=account_id,
        dispute_id="dp_1",
        charge_id="ch_1",
        amount_minor=1000,
        fee_minor=1500,
        currency="usd",
        now=now,
    )
    reinstatement = ledger.dispute_reinstatement(
        "txn_dp_reinstated",
        account_id=account_id,
        dispute_id="dp_1",
        charge_id="ch_1",
        amount_minor=1000,
        currency="usd",
        now=now,
    )
    async with engine.begin() as db:
        await ledger.record_dispute_funds_withdrawn(db, withdrawal, now=now)
    async with engine.begin() as db:
        await ledger.record_dispute_funds_reinstated(db, reinstatement, now=now)
    return reinstatement.id


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ("amount = amount + 100, net = net + 100", "net 1100, the ledger moved 1000"),
        # The dispute fee shown as returned, which the reinstatement does not do.
        ("fee = -1500, net = net + 1500", "fee -1500, the ledger moved 0"),
        ("source_id = 'dp_2'", "adjustment of dp_2 is not this ledger transaction"),
        ("charge_id = 'ch_2'", "names charge ch_2, the ledger ch_1"),
        ("status = 'pending'", "pending, not available"),
    ],
)
async def test_a_won_disputes_reinstatement_relabelled(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, values: str, said: str
) -> None:
    await captured(core_engine, account_id, clock)
    txn_id = await disputed_and_won(core_engine, account_id, clock)
    assert (await verified(core_engine, account_id, clock)).ok
    await tamper(
        core_engine,
        account_id,
        f"UPDATE balance_transactions SET {values} WHERE id = '{txn_id}'",  # noqa: S608
    )
    report = await verified(core_engine, account_id, clock)
    assert any(said in d.description for d in report.differences), report.differences


async def test_a_won_disputes_reinstatement_deleted(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await captured(core_engine, account_id, clock)
    txn_id = await disputed_and_won(core_engine, account_id, clock)
    await tamper(
        core_engine,
        account_id,
        f"DELETE FROM balance_transactions WHERE id = '{txn_id}'",  # noqa: S608
    )
    report = await verified(core_engine, account_id, clock)
    assert any(
        "dp_1:dispute_reversal: no balance transaction shows it" in d.description
        for d in report.differences
    ), report.differences


async def test_a_chart_accounts_guard_lifted(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await captured(core_engine, account_id, clock)
    await tamper(
        core_engine,
        account_id,
        "UPDATE ledger_accounts SET non_negative = false WHERE account_id = :a AND name = 'fees'",
        "UPDATE ledger_accounts SET non_negative = true "
        "WHERE account_id = :a AND name = 'acquirer_clearing'",
    )
    report = await verified(core_engine, account_id, clock)
    assert {(d.kind, d.ledger_account) for d in report.differences} == {
        (DifferenceKind.ACCOUNT_FLAG_MISMATCH, "fees"),
        (DifferenceKind.ACCOUNT_FLAG_MISMATCH, "acquirer_clearing"),
    }


async def disputed_then_refund_failed(
    engine: AsyncEngine, account_id: str, clock: FixedClock
) -> str:
    """ch_1's dispute dp_1 withdrawn, then the withdrawal of the 300 its refund re_1 gave back
    by failing after the dispute opened: that withdrawal's balance transaction id."""
    now = clock.now()
    taken = []
    for refund_id, amount, fee in ((None, 700, 1500), ("re_1", 300, 0)):
        taken.append(
            ledger.dispute_withdrawal(
                f"txn_dp_{refund_id or 'opened'}",
                account_id=account_id,
                dispute_id="dp_1",
                charge_id="ch_1",
                amount_minor=amount,
                fee_minor=fee,
                currency="usd",
                now=now,
                refund_id=refund_id,
            )
        )
    async with engine.begin() as db:
        for withdrawal in taken:
            await ledger.record_dispute_funds_withdrawn(db, withdrawal, now=now)
    return taken[-1].id


async def test_a_disputes_withdrawal_of_a_failed_refund_verifies(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await captured(core_engine, account_id, clock)
    txn_id = await disputed_then_refund_failed(core_engine, account_id, clock)
    async with core_engine.connect() as db:
        (ledger_id, metadata) = (
            await db.execute(
                text(
                    "SELECT t.id, t.metadata FROM ledger_transactions AS t "
                    "JOIN balance_transactions AS bt ON bt.ledger_transaction_id = t.id "
                    "AND bt.account_id = t.account_id WHERE bt.id = :id"
                ),
                {"id": txn_id},
            )
        ).one()
    assert ledger_id == "dp_1:re_1:dispute"
    assert metadata == {"dispute": "dp_1", "charge": "ch_1", "refund": "re_1"}
    report = await verified(core_engine, account_id, clock)
    assert report.ok, report.differences


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ("amount = amount - 100, net = net - 100", "net -400, the ledger moved -300"),
        ("source_id = 'dp_2'", "adjustment of dp_2 is not this ledger transaction"),
        ("source_id = 're_1'", "adjustment of re_1 is not this ledger transaction"),
        ("reporting_category = 'dispute_reversal'", "the ledger dispute"),
        ("charge_id = 'ch_2'", "names charge ch_2, the ledger ch_1"),
    ],
)
async def test_a_disputes_withdrawal_of_a_failed_refund_relabelled(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, values: str, said: str
) -> None:
    await captured(core_engine, account_id, clock)
    txn_id = await disputed_then_refund_failed(core_engine, account_id, clock)
    await tamper(
        core_engine,
        account_id,
        f"UPDATE balance_transactions SET {values} WHERE id = '{txn_id}'",  # noqa: S608
    )
    report = await verified(core_engine, account_id, clock)
    assert any(said in d.description for d in report.differences), report.differences


async def test_a_disputes_withdrawal_of_a_failed_refund_deleted(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await captured(core_engine, account_id, clock)
    txn_id = await disputed_then_refund_failed(core_engine, account_id, clock)
    await tamper(
        core_engine,
        account_id,
        f"DELETE FROM balance_transactions WHERE id = '{txn_id}'",  # noqa: S608
    )
    report = await verified(core_engine, account_id, clock)
    assert any(
        "dp_1:re_1:dispute: no balance transaction shows it" in d.description
        for d in report.differences
    ), report.differences


@pytest.mark.parametrize(
    ("fee_details", "expected", "actual", "said"),
    [
        ("""'[{"amount": 60, "currency": "usd", "description": "Remit processing fees",
           "type": "stripe_fee"}]'""", 59, 60, "fee_details add up to 60, not its fee"),
        ("'[]'", 59, 0, "fee_details add up to 0, not its fee"),
        ("""'[{"amount": 59, "currency": "eur", "description": "Remit processing fees",
           "type": "stripe_fee"}]'""", 0, 0, "a fee detail of 59 is in eur, not the row's usd"),
        ("""'[{"amount": "59", "currency": "usd"}]'""", 0, 0,
         "fee_details is not a list of amounts in a currency"),
        ("'{}'", 0, 0, "fee_details is not a list of amounts in a currency"),
    ],
)  # fmt: skip
async def test_a_charges_fee_details_no_longer_its_fee(
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    fee_details: str,
    expected: int,
    actual: int,
    said: str,
) -> None:
    """Stripe shows `fee_details` as the fee's breakdown: rewritten alone, with the fee, net and
    amount left as the ledger moved them, they are a finding of their own."""
    txn_id = await captured(core_engine, account_id, clock)
    await tamper(
        core_engine,
        account_id,
        f"UPDATE balance_transactions SET fee_details = {fee_details} "  # noqa: S608
        f"WHERE id = '{txn_id}'",
    )
    report = await verified(core_engine, account_id, clock)
    [finding] = report.differences
    assert (finding.kind, finding.expected_minor, finding.actual_minor) == (
        DifferenceKind.BALANCE_TRANSACTION_MISMATCH,
        expected,
        actual,
    )
    assert finding.description.endswith(said)
    assert finding.transaction_id == "ch_1:capture"


async def _paid_out_in_usd_and_eur(
    engine: AsyncEngine, account_id: str, clock: FixedClock
) -> tuple[Payout, Payout]:
    async with engine.begin() as db:
        for currency in ("usd", "eur"):
            await ledger.record_charge_captured(
                db,
                account_id=account_id,
                charge_id=f"ch_{currency}",
                gross_minor=1000,
                currency=currency,
                now=clock.now(),
                bypass_pending=True,
            )
        in_usd = await payouts.create_payout(
            db, account_id=account_id, amount=500, currency="usd", now=clock.now()
        )
        in_eur = await payouts.create_payout(
            db, account_id=account_id, amount=500, currency="eur", now=clock.now()
        )
    return in_usd, in_eur


async def test_a_row_listed_under_a_payout_of_another_currency(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    _, in_eur = await _paid_out_in_usd_and_eur(core_engine, account_id, clock)
    assert (await verified(core_engine, account_id, clock)).ok
    await tamper(
        core_engine,
        account_id,
        f"UPDATE balance_transactions SET payout_id = '{in_eur.id}' "  # noqa: S608
        "WHERE account_id = :a AND source_id = 'ch_usd'",
    )
    report = await verified(core_engine, account_id, clock)
    [finding] = report.differences
    assert (finding.kind, finding.currency, finding.transaction_id) == (
        DifferenceKind.BALANCE_TRANSACTION_MISMATCH,
        "usd",
        "ch_usd:capture",
    )
    assert finding.description.endswith(f"listed under payout {in_eur.id}, which pays out eur")


async def test_a_row_listed_under_a_payout_that_does_not_exist(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await _paid_out_in_usd_and_eur(core_engine, account_id, clock)
    await tamper(
        core_engine,
        account_id,
        "UPDATE balance_transactions SET payout_id = 'po_missing' "
        "WHERE account_id = :a AND source_id = 'ch_eur'",
    )
    report = await verified(core_engine, account_id, clock)
    [finding] = report.differences
    assert finding.kind is DifferenceKind.BALANCE_TRANSACTION_MISMATCH
    assert finding.description.endswith("listed under payout po_missing, which does not exist")
