"""The money-movement API payments calls: captures, fees, availability, refunds, events."""

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.domain import Pricing
from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.ledger import journal
from remit.ledger import postings as ledger
from remit.ledger.balances import read_balance
from remit.ledger.chart import ACQUIRER_CLEARING, AVAILABLE, FEES, PENDING
from remit.ledger.domain import LedgerError, PendingStatus, Posting, TransactionRequest
from remit.ledger.fees import RefundFeePolicy
from remit.ledger.jobs import expire_authorizations, release_due_funds
from remit.ledger.objects import BalanceTransactionStatus, BalanceTransactionType
from remit.ledger.repository import JournalRepository
from remit.ledger.tables import ledger_events
from remit.ledger.verify import verify_ledger
from tests.integration.ledger.conftest import NewAccount
from tests.support.statements import statements_sent

pytestmark = pytest.mark.anyio


async def balances(engine: AsyncEngine, account_id: str, currency: str = "usd") -> dict[str, int]:
    async with engine.connect() as db:
        found = await JournalRepository(db).ledger_accounts_named(
            account_id, [ACQUIRER_CLEARING, PENDING, AVAILABLE, FEES]
        )
    return {a.name: a.posted_balance_minor for a in found if a.currency == currency}


async def assert_verified(engine: AsyncEngine, clock: FixedClock) -> None:
    async with engine.connect() as db:
        report = await verify_ledger(db, now=clock.now())
    assert report.ok, (report.differences, report.chain_breaks)


async def test_a_capture_puts_the_net_in_pending_and_the_fee_in_revenue(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        txn = await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_1",
            gross_minor=10_000,
            currency="usd",
            now=clock.now(),
        )
    assert txn.id.startswith("txn_")
    assert (txn.type, txn.amount, txn.fee, txn.net) == (
        BalanceTransactionType.CHARGE,
        10_000,
        320,
        9_680,
    )
    assert txn.fee_details[0].type == "stripe_fee"
    assert txn.status is BalanceTransactionStatus.PENDING
    assert txn.available_on == clock.now() + timedelta(days=2)
    assert (txn.source_id, txn.reporting_category) == ("ch_1", "charge")
    assert await balances(core_engine, account_id) == {
        ACQUIRER_CLEARING: -10_000,
        PENDING: 9_680,
        FEES: 320,
    }
    await assert_verified(core_engine, clock)


async def test_calling_capture_again_returns_the_same_balance_transaction(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        first = await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_1",
            gross_minor=500,
            currency="usd",
            now=clock.now(),
        )
        again = await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_1",
            gross_minor=500,
            currency="usd",
            now=clock.now(),
        )
        with pytest.raises(LedgerError) as raised:
            await ledger.record_charge_captured(
                db,
                account_id=account_id,
                charge_id="ch_1",
                gross_minor=501,
                currency="usd",
                now=clock.now(),
            )
    assert again == first
    assert raised.value.code == "transaction_exists_with_different_payload"
    assert (await balances(core_engine, account_id))[PENDING] == 500 - first.fee


async def test_a_partial_capture_of_an_authorization_releases_the_rest(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        await ledger.record_authorization(
            db,
            account_id=account_id,
            charge_id="ch_2",
            amount_minor=5_000,
            currency="usd",
            now=clock.now(),
        )
        pending = await JournalRepository(db).get_ledger_account(account_id, PENDING, "usd")
    assert pending is not None
    assert (pending.posted_balance_minor, pending.pending_incoming_minor) == (0, 5_000)
    async with core_engine.begin() as db:
        txn = await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_2",
            gross_minor=3_000,
            currency="usd",
            now=clock.now(),
        )
        repo = JournalRepository(db)
        pending = await repo.get_ledger_account(account_id, PENDING, "usd")
        authorization = await repo.get_transaction(account_id, "ch_2:authorization")
    assert pending is not None
    assert authorization is not None
    assert (pending.posted_balance_minor, pending.pending_incoming_minor) == (3_000 - txn.fee, 0)
    assert txn.fee == 117  # 2.9% of 30.00 = 0.87, plus 0.30
    assert authorization.pending_status is PendingStatus.POSTED
    await assert_verified(core_engine, clock)


@pytest.mark.parametrize("expiry_job_ran_first", [False, True])
async def test_a_capture_the_network_made_after_the_reservation_lapsed_is_still_recorded(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, expiry_job_ran_first: bool
) -> None:
    """A capture sent just before an authorization's 7 days end can be answered after them,
    and a capture resumed by a retry or the completer later still. The network took the money,
    so the ledger records it: directly, as an unreserved capture, with the lapsed reservation
    released under the expiry job's own id (whichever of the two comes second replays)."""
    async with core_engine.begin() as db:
        await ledger.record_authorization(
            db, account_id=account_id, charge_id="ch_lapsed", amount_minor=5_000,
            currency="usd", now=clock.now(),
        )  # fmt: skip
    clock.advance(timedelta(days=7).total_seconds() + 1)
    if expiry_job_ran_first:
        async with core_engine.begin() as db:
            assert await expire_authorizations(db, now=clock.now()) == 1
    async with core_engine.begin() as db:
        txn = await ledger.record_charge_captured(
            db, account_id=account_id, charge_id="ch_lapsed", gross_minor=5_000,
            currency="usd", now=clock.now(),
        )  # fmt: skip
    async with core_engine.begin() as db:
        assert await expire_authorizations(db, now=clock.now()) == 0
        repo = JournalRepository(db)
        authorization = await repo.get_transaction(account_id, "ch_lapsed:authorization")
        pending = await repo.get_ledger_account(account_id, PENDING, "usd")
    assert authorization is not None
    assert authorization.pending_status is PendingStatus.VOIDED
    assert authorization.resolved_by == "ch_lapsed:authorization:expired"
    assert pending is not None
    # The same balances as any capture of 50.00: the net in pending, nothing still reserved.
    assert (pending.posted_balance_minor, pending.pending_incoming_minor) == (5_000 - txn.fee, 0)
    assert txn.fee == 175  # 2.9% of 50.00 = 1.45, plus 0.30
    await assert_verified(core_engine, clock)


@pytest.mark.parametrize("lapse", ["held", "lapsed", "expired_by_the_job"])
async def test_a_capture_in_another_currency_than_its_authorization_is_refused(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, lapse: str
) -> None:
    """Whether the reservation still holds or lapsed before the capture is booked, the capture
    is the authorized charge's: one in another currency is refused, and nothing is posted."""
    async with core_engine.begin() as db:
        await ledger.record_authorization(
            db, account_id=account_id, charge_id="ch_fx", amount_minor=5_000,
            currency="usd", now=clock.now(),
        )  # fmt: skip
    if lapse != "held":
        clock.advance(timedelta(days=7).total_seconds() + 1)
    if lapse == "expired_by_the_job":
        async with core_engine.begin() as db:
            assert await expire_authorizations(db, now=clock.now()) == 1
    with pytest.raises(LedgerError) as raised:
        async with core_engine.begin() as db:
            await ledger.record_charge_captured(
                db, account_id=account_id, charge_id="ch_fx", gross_minor=5_000,
                currency="eur", now=clock.now(),
            )  # fmt: skip
    assert (raised.value.kind, raised.value.param) == (ErrorKind.INVALID_ARGUMENT, "currency")
    async with core_engine.connect() as db:
        captured = await JournalRepository(db).get_transaction(account_id, "ch_fx:capture")
    assert captured is None
    assert await balances(core_engine, account_id, "eur") == {}
    await assert_verified(core_engine, clock)


async def test_a_voided_authorization_leaves_no_balance_and_voiding_twice_is_harmless(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        await ledger.record_authorization(
            db,
            account_id=account_id,
            charge_id="ch_3",
            amount_minor=700,
            currency="eur",
            now=clock.now(),
        )
        first = await ledger.record_authorization_voided(
            db, account_id=account_id, charge_id="ch_3", now=clock.now()
        )
        second = await ledger.record_authorization_voided(
            db, account_id=account_id, charge_id="ch_3", now=clock.now()
        )
        pending = await JournalRepository(db).get_ledger_account(account_id, PENDING, "eur")
    assert first.id == second.id == "ch_3:void"
    assert pending is not None
    assert (pending.posted_balance_minor, pending.pending_incoming_minor) == (0, 0)


async def test_funds_become_available_on_schedule_with_a_balance_available_event(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock
) -> None:
    account_id = await new_account(available_delay_days=3)
    async with core_engine.begin() as db:
        txn = await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_4",
            gross_minor=2_000,
            currency="usd",
            now=clock.now(),
        )
    clock.advance(timedelta(days=3).total_seconds() - 1)
    async with core_engine.begin() as db:
        assert await release_due_funds(db, now=clock.now()) == {}
    clock.advance(1)
    async with core_engine.begin() as db:
        released = await release_due_funds(db, now=clock.now())
        balance = await read_balance(db, account_id, "usd")
    assert [t.id for t in released[account_id]] == [txn.id]
    assert released[account_id][0].status is BalanceTransactionStatus.AVAILABLE
    assert [(a.currency, a.amount) for a in balance.available] == [("usd", txn.net)]
    assert [(a.currency, a.amount) for a in balance.pending] == [("usd", 0)]
    async with core_engine.connect() as db:
        events = (await db.execute(select(ledger_events))).all()
    assert [(e.type, e.account_id) for e in events] == [("balance.available", account_id)]
    assert events[0].data["object"] == "balance"
    assert events[0].data["available"][0]["amount"] == txn.net
    await assert_verified(core_engine, clock)


async def test_the_bypass_pending_card_makes_funds_available_at_once(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        txn = await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_5",
            gross_minor=1_000,
            currency="usd",
            now=clock.now(),
            bypass_pending=True,
        )
        balance = await read_balance(db, account_id, "usd")
    assert txn.status is BalanceTransactionStatus.AVAILABLE
    assert txn.available_on == clock.now()
    assert balance.available[0].amount == 1_000 - 59
    assert balance.pending[0].amount == 0
    await assert_verified(core_engine, clock)


@pytest.mark.parametrize(
    ("currency", "gross", "fee"),
    [("jpy", 10_000, 290), ("usd", 10_000, 320), ("kwd", 10_000, 590)],
)
async def test_fees_follow_each_currencys_exponent(
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    currency: str,
    gross: int,
    fee: int,
) -> None:
    async with core_engine.begin() as db:
        txn = await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_6",
            gross_minor=gross,
            currency=currency,
            now=clock.now(),
        )
    assert (txn.fee, txn.net) == (fee, gross - fee)


async def test_per_account_pricing_is_used(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock
) -> None:
    account_id = await new_account(pricing=Pricing(fee_percent_bps=150, fee_fixed_minor=0))
    async with core_engine.begin() as db:
        txn = await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_7",
            gross_minor=1_000,
            currency="usd",
            now=clock.now(),
        )
    assert txn.fee == 15


async def test_a_refund_keeps_the_fee_by_default_and_can_take_available_below_zero(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_8",
            gross_minor=1_000,
            currency="usd",
            now=clock.now(),
        )
        refund = await ledger.record_refund(
            db,
            account_id=account_id,
            refund_id="re_1",
            charge_id="ch_8",
            amount_minor=400,
            currency="usd",
            now=clock.now(),
        )
    assert (refund.type, refund.amount, refund.fee, refund.net) == (
        BalanceTransactionType.REFUND,
        -400,
        0,
        -400,
    )
    assert refund.status is BalanceTransactionStatus.AVAILABLE
    assert await balances(core_engine, account_id) == {
        ACQUIRER_CLEARING: -600,
        PENDING: 941,
        AVAILABLE: -400,
        FEES: 59,
    }
    await assert_verified(core_engine, clock)


async def test_proportional_fee_refunds_return_exactly_the_whole_fee(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        charge = await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_9",
            gross_minor=1_001,
            currency="usd",
            now=clock.now(),
        )
        refunds = [
            await ledger.record_refund(
                db,
                account_id=account_id,
                refund_id=f"re_{n}",
                charge_id="ch_9",
                amount_minor=amount,
                currency="usd",
                now=clock.now(),
                fee_policy=RefundFeePolicy.PROPORTIONAL,
            )
            for n, amount in enumerate((333, 333, 335))
        ]
        with pytest.raises(LedgerError) as raised:
            await ledger.record_refund(
                db,
                account_id=account_id,
                refund_id="re_9",
                charge_id="ch_9",
                amount_minor=1,
                currency="usd",
                now=clock.now(),
            )
    assert raised.value.code == "charge_already_refunded"
    assert -sum(r.fee for r in refunds) == charge.fee
    assert await balances(core_engine, account_id) == {
        ACQUIRER_CLEARING: 0,
        PENDING: charge.net,
        AVAILABLE: -charge.net,
        FEES: 0,
    }
    await assert_verified(core_engine, clock)


async def test_a_failed_refund_returns_its_money(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_10",
            gross_minor=1_000,
            currency="usd",
            now=clock.now(),
            bypass_pending=True,
        )
        await ledger.record_refund(
            db,
            account_id=account_id,
            refund_id="re_10",
            charge_id="ch_10",
            amount_minor=1_000,
            currency="usd",
            now=clock.now(),
        )
        failure = await ledger.record_refund_failed(
            db, account_id=account_id, refund_id="re_10", now=clock.now()
        )
        # The refunded amount can be refunded again once the first refund failed.
        await ledger.record_refund(
            db,
            account_id=account_id,
            refund_id="re_11",
            charge_id="ch_10",
            amount_minor=1_000,
            currency="usd",
            now=clock.now(),
        )
    assert (failure.type, failure.amount, failure.net) == (
        BalanceTransactionType.REFUND_FAILURE,
        1_000,
        1_000,
    )
    assert failure.reporting_category == "refund_failure"
    await assert_verified(core_engine, clock)


async def test_a_capture_reads_once_posts_in_one_statement_and_writes_its_balance_transaction(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """Balance transaction, pricing and authorization are read together; the posting is one
    statement (`ledger_post`), which also writes the balance transaction."""

    async def capture(charge_id: str) -> None:
        async with core_engine.begin() as db:
            await ledger.record_charge_captured(
                db,
                account_id=account_id,
                charge_id=charge_id,
                gross_minor=1_000,
                currency="usd",
                now=clock.now(),
            )

    await capture("ch_first")
    with statements_sent(core_engine) as statements:
        await capture("ch_second")
    assert len(statements) == 2, statements
    assert "ledger_post(" in statements[1]
    assert "INSERT INTO balance_transactions" in statements[1]
    assert (await balances(core_engine, account_id))[PENDING] == 2 * (1_000 - 59)
    await assert_verified(core_engine, clock)


async def test_capturing_for_an_unknown_account_is_not_found(
    core_engine: AsyncEngine, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        with pytest.raises(RemitError) as raised:
            await ledger.record_charge_captured(
                db,
                account_id="acct_missing",
                charge_id="ch_1",
                gross_minor=1_000,
                currency="usd",
                now=clock.now(),
            )
    assert raised.value.kind is ErrorKind.NOT_FOUND
    assert raised.value.param == "account"


async def test_a_capture_whose_ledger_transaction_exists_without_its_balance_transaction_writes_it(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """The balance transaction rides on the ledger write; when the ledger transaction replays
    (it was recorded, its balance transaction was not), the balance transaction is written on
    its own and the money moves once."""
    async with core_engine.begin() as db:
        await journal.post(
            db,
            account_id,
            TransactionRequest(
                transaction_id="ch_1:capture",
                postings=(
                    Posting(ACQUIRER_CLEARING, -1_000, "usd"),
                    Posting(PENDING, 941, "usd"),
                    Posting(FEES, 59, "usd"),
                ),
                metadata={"charge": "ch_1"},
            ),
            now=clock.now(),
        )
    async with core_engine.begin() as db:
        txn = await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_1",
            gross_minor=1_000,
            currency="usd",
            now=clock.now(),
        )
    async with core_engine.begin() as db:
        again = await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_1",
            gross_minor=1_000,
            currency="usd",
            now=clock.now(),
        )
    assert (txn.amount, txn.fee, txn.net) == (1_000, 59, 941)
    assert again == txn
    assert await balances(core_engine, account_id) == {
        ACQUIRER_CLEARING: -1_000,
        PENDING: 941,
        FEES: 59,
    }
