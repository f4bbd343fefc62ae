"""The card network's fee in the ledger: booked with the capture, borne by the platform, never
shown to the merchant, and compared by reconciliation."""

from datetime import datetime, timedelta

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.domain import Pricing
from remit.core.clock import FixedClock
from remit.ledger import postings as ledger
from remit.ledger.balances import read_balance
from remit.ledger.chart import ACQUIRER_CLEARING, AVAILABLE, FEES, NETWORK_FEES, PENDING
from remit.ledger.domain import LedgerError, Posting
from remit.ledger.grpc import reconciliation_message
from remit.ledger.messages import balance_message, balance_transaction_message
from remit.ledger.objects import BalanceTransaction
from remit.ledger.reconcile import Reconciliation, RowStatus, render_table
from remit.ledger.repository import JournalRepository
from remit.ledger.service import LedgerService
from remit.ledger.verify import verify_ledger
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from remit_api.ledger.v1 import ledger_pb2 as pb
from tests.integration.ledger.conftest import T0, NewAccount
from tests.integration.ledger.fake_acquirer import FakeAcquirer, serving, settlement_row
from tests.support.statements import statements_sent

pytestmark = pytest.mark.anyio
CHART = [ACQUIRER_CLEARING, PENDING, AVAILABLE, FEES, NETWORK_FEES]


async def balances(engine: AsyncEngine, account_id: str, currency: str = "usd") -> dict[str, int]:
    async with engine.connect() as db:
        found = await JournalRepository(db).ledger_accounts_named(account_id, CHART)
    return {a.name: a.posted_balance_minor for a in found if a.currency == currency}


async def assert_verified(engine: AsyncEngine, clock: FixedClock) -> None:
    async with engine.connect() as db:
        report = await verify_ledger(db, now=clock.now())
    assert report.ok, (report.differences, report.chain_breaks)


async def capture(
    engine: AsyncEngine,
    account_id: str,
    charge_id: str,
    gross: int,
    now: datetime,
    *,
    currency: str = "usd",
    network_fee: int | None,
    authorized: bool = False,
) -> BalanceTransaction:
    async with engine.begin() as db:
        if authorized:
            await ledger.record_authorization(
                db, account_id=account_id, charge_id=charge_id, amount_minor=gross * 2,
                currency=currency, now=now,
            )  # fmt: skip
        return await ledger.record_charge_captured(
            db, account_id=account_id, charge_id=charge_id, gross_minor=gross,
            currency=currency, now=now, network_fee_minor=network_fee,
        )  # fmt: skip


def merchant_view(txn: BalanceTransaction) -> pb.BalanceTransaction:
    """A balance transaction as the merchant sees it (`/v1/balance_transactions`), without its
    id, which differs between any two."""
    message = balance_transaction_message(txn)
    message.ClearField("id")
    return message


async def merchant_balance(engine: AsyncEngine, account_id: str) -> pb.Balance:
    async with engine.connect() as db:
        return balance_message(await read_balance(db, account_id, "usd"))


@pytest.mark.parametrize("authorized", [False, True], ids=["captured-at-once", "authorized"])
async def test_the_network_fee_moves_from_the_platform_and_the_merchant_sees_no_difference(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock, authorized: bool
) -> None:
    """100.00 captured, 3.20 the platform's price, 1.50 withheld by the network: the network
    sends 98.50, which acquirer_clearing shows; the merchant's pending balance and balance
    transaction are those of an account whose captures are booked without the network fee."""
    booked, legacy = await new_account(), await new_account()
    now = clock.now()
    txn = await capture(
        core_engine, booked, "ch_1", 10_000, now, network_fee=150, authorized=authorized
    )
    without = await capture(
        core_engine, legacy, "ch_1", 10_000, now, network_fee=None, authorized=authorized
    )
    assert await balances(core_engine, booked) == {
        ACQUIRER_CLEARING: -9_850,
        PENDING: 9_680,
        FEES: 320,
        NETWORK_FEES: -150,
    }
    assert await balances(core_engine, legacy) == {
        ACQUIRER_CLEARING: -10_000,
        PENDING: 9_680,
        FEES: 320,
    }
    assert merchant_view(txn) == merchant_view(without)
    assert [(d.amount, d.type) for d in txn.fee_details] == [(320, "stripe_fee")]
    assert await merchant_balance(core_engine, booked) == await merchant_balance(
        core_engine, legacy
    )
    listed, _ = await LedgerService(core_engine, clock).list_balance_transactions(booked, limit=10)
    assert [merchant_view(t) for t in listed] == [merchant_view(without)]
    async with core_engine.connect() as db:
        capture_txn = await JournalRepository(db).get_transaction(booked, "ch_1:capture")
    assert capture_txn is not None
    assert capture_txn.metadata["network_fee"] == "150"
    await assert_verified(core_engine, clock)


async def test_a_partial_capture_books_the_fee_on_what_was_captured_once(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """An authorization of 60.00 captured for 20.00 (the rest released), and the capture
    recorded again by a retry: 0.30 of network fee, once."""
    now = clock.now()
    first = await capture(
        core_engine, account_id, "ch_p", 2_000, now, network_fee=30, authorized=True
    )
    again = await capture(core_engine, account_id, "ch_p", 2_000, now, network_fee=30)
    assert again == first
    async with core_engine.connect() as db:
        fee_txn = await JournalRepository(db).get_transaction(account_id, "ch_p:fee")
    assert fee_txn is not None
    assert sorted(fee_txn.postings, key=lambda p: p.ledger_account) == [
        Posting(ACQUIRER_CLEARING, 30, "usd"),
        Posting(FEES, first.fee, "usd"),
        Posting(NETWORK_FEES, -30, "usd"),
        Posting(PENDING, -first.fee, "usd"),
    ]
    assert await balances(core_engine, account_id) == {
        ACQUIRER_CLEARING: -1_970,
        PENDING: 2_000 - first.fee,
        FEES: first.fee,
        NETWORK_FEES: -30,
    }
    await assert_verified(core_engine, clock)


@pytest.mark.parametrize(
    ("currency", "gross", "network_fee"),
    [("jpy", 5_000, 75), ("kwd", 12_345, 185)],
)
async def test_the_network_fee_is_booked_in_the_capture_currencys_own_minor_units(
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    currency: str,
    gross: int,
    network_fee: int,
) -> None:
    txn = await capture(
        core_engine, account_id, "ch_c", gross, clock.now(), currency=currency,
        network_fee=network_fee,
    )  # fmt: skip
    assert await balances(core_engine, account_id, currency) == {
        ACQUIRER_CLEARING: -(gross - network_fee),
        PENDING: gross - txn.fee,
        FEES: txn.fee,
        NETWORK_FEES: -network_fee,
    }
    await assert_verified(core_engine, clock)


async def test_a_capture_the_platform_charges_nothing_for_still_books_the_networks_fee(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock
) -> None:
    """The platform's price can be nothing; the network's fee is still its cost. Booked from
    the platform's own fees, it would take them below zero, which their guard refuses."""
    free = await new_account(pricing=Pricing(fee_percent_bps=0, fee_fixed_minor=0))
    await capture(core_engine, free, "ch_free", 1_000, clock.now(), network_fee=15)
    await capture(
        core_engine, free, "ch_free_held", 1_000, clock.now(), network_fee=15, authorized=True
    )
    assert await balances(core_engine, free) == {
        ACQUIRER_CLEARING: -1_970,
        PENDING: 2_000,
        NETWORK_FEES: -30,
    }
    await assert_verified(core_engine, clock)


async def test_a_capture_without_an_authorization_still_posts_in_one_statement(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """The network fee rides in the capture's own posting: the payment's hot path sends no
    more statements for it."""
    await capture(core_engine, account_id, "ch_first", 1_000, clock.now(), network_fee=15)
    with statements_sent(core_engine) as statements:
        await capture(core_engine, account_id, "ch_second", 1_000, clock.now(), network_fee=15)
    assert len(statements) == 2, statements
    assert "ledger_post(" in statements[1]
    assert (await balances(core_engine, account_id))[NETWORK_FEES] == -30


async def test_a_network_fee_larger_than_the_capture_is_refused(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    with pytest.raises(LedgerError) as raised:
        await capture(core_engine, account_id, "ch_x", 100, clock.now(), network_fee=101)
    assert raised.value.param == "network_fee"


async def reconcile_with(
    engine: AsyncEngine, clock: FixedClock, fake: FakeAcquirer, account_id: str
) -> Reconciliation:
    """Reconcile T0's day the next day, once it is over, as the nightly run does."""
    clock.advance(timedelta(days=1).total_seconds())
    with serving(fake) as port:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            service = LedgerService(
                engine, clock, acquirer=acquirer_pb2_grpc.AcquirerServiceStub(channel)
            )
            result = await service.reconcile(T0.date().isoformat(), account_id)
            assert await service.get_reconciliation(result.id) == result
            return result


async def test_reconciliation_flags_a_fee_the_ledger_did_not_book(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """Same amounts, other fees: a fee mismatch, told apart from an amount mismatch. A capture
    booked before network fees were recorded has no fee to compare; a refund's is none."""
    now = clock.now()
    await capture(core_engine, account_id, "ch_ok", 1_000, now, network_fee=15)
    await capture(core_engine, account_id, "ch_fee", 2_000, now, network_fee=30)
    await capture(core_engine, account_id, "ch_free", 2_000, now, network_fee=0)
    await capture(core_engine, account_id, "ch_both", 3_000, now, network_fee=45)
    await capture(core_engine, account_id, "ch_old", 4_000, now, network_fee=None)
    async with core_engine.begin() as db:
        for refund_id in ("re_ok", "re_fee"):
            await ledger.record_refund(
                db, account_id=account_id, refund_id=refund_id, charge_id="ch_old",
                amount_minor=100, currency="usd", now=now,
            )  # fmt: skip
    fake = FakeAcquirer(
        [
            settlement_row("capture", "ch_ok", 1_000, account_id, fee=15),
            settlement_row("capture", "ch_fee", 2_000, account_id, fee=31),
            settlement_row("capture", "ch_free", 2_000, account_id, fee=30),
            settlement_row("capture", "ch_both", 3_001, account_id, fee=44),
            settlement_row("capture", "ch_old", 4_000, account_id, fee=60),
            settlement_row("refund", "re_ok", 100, account_id),
            settlement_row("refund", "re_fee", 100, account_id, fee=2),
        ]
    )
    result = await reconcile_with(core_engine, clock, fake, account_id)
    found = sorted(
        (r.reference, r.status, r.ledger_amount, r.ledger_fee, r.acquirer_fee) for r in result.rows
    )
    assert found == [
        ("ch_both", RowStatus.AMOUNT_MISMATCH, 3_000, 45, 44),
        ("ch_fee", RowStatus.FEE_MISMATCH, 2_000, 30, 31),
        ("ch_free", RowStatus.FEE_MISMATCH, 2_000, 0, 30),
        ("ch_ok", RowStatus.MATCHED, 1_000, 15, 15),
        ("ch_old", RowStatus.MATCHED, 4_000, None, 60),
        ("re_fee", RowStatus.FEE_MISMATCH, 100, 0, 2),
        ("re_ok", RowStatus.MATCHED, 100, 0, 0),
    ]
    assert not result.ok
    assert (result.count(RowStatus.FEE_MISMATCH), result.count(RowStatus.AMOUNT_MISMATCH)) == (3, 1)
    assert "amount mismatches 1, fee mismatches 3" in render_table(result)
    message = reconciliation_message(result)
    assert (message.fee_mismatch_count, message.amount_mismatch_count) == (3, 1)
    by_reference = {row.reference: row for row in message.rows}
    assert by_reference["ch_fee"].status == pb.RECONCILIATION_ROW_STATUS_FEE_MISMATCH
    assert (by_reference["ch_fee"].ledger_fee, by_reference["ch_fee"].acquirer_fee) == (30, 31)
    assert not by_reference["ch_old"].HasField("ledger_fee")
