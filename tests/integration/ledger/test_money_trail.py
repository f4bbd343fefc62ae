"""Every cent the acquirer settles is in the ledger under the same reference, and `reconcile`
says so: payments against the real acquirer and the real ledger (`money_trail`)."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.domain import Pricing
from remit.acquirer.domain import SettlementKind
from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.ledger.chart import ACQUIRER_CLEARING, NETWORK_FEES
from remit.ledger.fees import processing_fee
from remit.ledger.objects import BalanceTransactionType
from remit.ledger.reconcile import Reconciliation, RowKind, RowStatus
from remit.ledger.repository import JournalRepository
from remit.payments.domain import CaptureMethod
from tests.integration.ledger.conftest import NewAccount
from tests.integration.ledger.money_trail import (
    ACQUIRER_GRACE,
    cancel,
    capture,
    money_trail,
    pay,
    refund,
)

pytestmark = pytest.mark.anyio


def summary(result: Reconciliation) -> list[tuple[str, str, str, int | None, int | None]]:
    return sorted(
        (r.status.value, r.kind.value, r.currency, r.ledger_amount, r.acquirer_amount)
        for r in result.rows
    )


async def test_every_kind_of_movement_reconciles_with_lost_responses_and_odd_currencies(
    core_engine: AsyncEngine,
    acquirer_engine: AsyncEngine,
    clock: FixedClock,
    new_account: NewAccount,
) -> None:
    """A sale, a partial capture (the rest released) with two partial refunds, a full refund
    and a capture whose responses were lost, a JPY and a KWD sale, a canceled authorization: each
    capture and refund is one settlement row and one balance transaction, matched; the
    released rest and the void are neither."""
    account = await new_account()
    async with money_trail(core_engine, acquirer_engine, clock) as trail:
        sale = await pay(trail, account, "sale", 1000)
        held = await pay(trail, account, "held", 1000, capture=CaptureMethod.MANUAL)
        await capture(trail, account, "held-capture", held.id, 600)
        await refund(trail, account, "held-refund-1", held.id, 100)
        await refund(trail, account, "held-refund-2", held.id, 200)
        trail.network.lose.append("refund")
        await refund(trail, account, "sale-refund", sale.id, None)
        yen = await pay(trail, account, "yen", 777, "jpy", capture=CaptureMethod.MANUAL)
        trail.network.lose.append("capture")
        await capture(trail, account, "yen-capture", yen.id, 555)
        await pay(trail, account, "dinar", 12_340, "kwd")
        canceled = await pay(trail, account, "canceled", 5000, capture=CaptureMethod.MANUAL)
        await cancel(trail, account, "cancel", canceled.id)
        trail.network.lose.append("authorize")
        await pay(trail, account, "yen-lost", 4321, "jpy")

        day = clock.now().date()
        clock.advance(timedelta(days=1).total_seconds())  # the day is over
        result = await trail.ledger.reconcile(day.isoformat())
        verified = await trail.ledger.verify()
    assert summary(result) == [
        ("matched", "capture", "jpy", 555, 555),
        ("matched", "capture", "jpy", 4321, 4321),
        ("matched", "capture", "kwd", 12_340, 12_340),
        ("matched", "capture", "usd", 600, 600),
        ("matched", "capture", "usd", 1000, 1000),
        ("matched", "refund", "usd", 100, 100),
        ("matched", "refund", "usd", 200, 200),
        ("matched", "refund", "usd", 1000, 1000),
    ]
    assert result.ok
    assert verified.ok, verified.differences


async def test_a_capture_recorded_in_the_ledger_after_midnight_reconciles_on_its_settlement_day(
    core_engine: AsyncEngine, acquirer_engine: AsyncEngine, new_account: NewAccount
) -> None:
    """The acquirer settles a capture at 23:59:59.5; its response is lost and the core finds
    out by looking it up a second later, so the ledger records it on the next day. It is one
    capture, settled and recorded: the settlement day pairs it, and the next day does not
    count it again as missing at the acquirer."""
    day = datetime(2031, 5, 6, tzinfo=UTC)
    clock = FixedClock(day + timedelta(hours=23, minutes=59, seconds=59))
    account = await new_account()
    async with money_trail(core_engine, acquirer_engine, clock) as trail:
        held = await pay(trail, account, "held", 1000, capture=CaptureMethod.MANUAL)
        clock.advance(0.5)
        trail.network.lose.append("capture")
        trail.network.finding_out_s = 1.0
        await capture(trail, account, "held-capture", held.id, 1000)
        assert clock.now().date() == (day + timedelta(days=1)).date()
        await pay(trail, account, "next-day-sale", 2000)
        # Both days are over, and their last operations' commits behind them (the grace).
        clock.advance((timedelta(days=1) + ACQUIRER_GRACE).total_seconds())

        settlement_day = await trail.ledger.reconcile(day.date().isoformat())
        next_day = await trail.ledger.reconcile((day + timedelta(days=1)).date().isoformat())
    assert [(r.status, r.kind, r.reference) for r in settlement_day.rows] == [
        (RowStatus.MATCHED, RowKind.CAPTURE, f"{held.latest_charge_id}_capture")
    ]
    assert [(r.status, r.ledger_amount) for r in next_day.rows] == [(RowStatus.MATCHED, 2000)]


async def test_today_reconciles_against_the_acquirer_as_a_partial_result(
    core_engine: AsyncEngine,
    acquirer_engine: AsyncEngine,
    clock: FixedClock,
    new_account: NewAccount,
) -> None:
    """The acquirer reports today only when asked for a partial report, as reconcile runs it
    only when asked for a partial result: reconcile asks for one then."""
    account = await new_account()
    async with money_trail(core_engine, acquirer_engine, clock) as trail:
        await pay(trail, account, "sale", 1000)
        result = await trail.ledger.reconcile(clock.now().date().isoformat(), allow_partial=True)
    assert result.partial
    assert summary(result) == [("matched", "capture", "usd", 1000, 1000)]


async def network_fee_legs(engine: AsyncEngine, account: str, charge_id: str) -> list[int]:
    """Every network_fees posting of a charge's capture (its own and its fee's transaction)."""
    async with engine.connect() as db:
        repo = JournalRepository(db)
        found = [
            await repo.get_transaction(account, f"{charge_id}:{step}")
            for step in ("capture", "fee")
        ]
    return [
        posting.amount_minor
        for transaction in found
        if transaction is not None
        for posting in transaction.postings
        if posting.ledger_account == NETWORK_FEES
    ]


async def test_the_networks_fee_is_booked_once_per_capture_and_clearing_meets_the_money_sent(
    core_engine: AsyncEngine,
    acquirer_engine: AsyncEngine,
    clock: FixedClock,
    new_account: NewAccount,
) -> None:
    """In USD, JPY (no minor unit) and KWD (three): sales, a partial capture, captures and a
    sale whose responses were lost and were found by looking them up, and a refund. Each
    capture books the fee its settlement row carries, once; acquirer_clearing then is minus
    what the network actually sends; reconciliation matches the fees; and the merchant's
    balance transactions carry only the platform's fee."""
    account = await new_account()
    async with money_trail(core_engine, acquirer_engine, clock) as trail:
        intents = [
            await pay(trail, account, "usd-sale", 10_000),
            await pay(trail, account, "jpy-sale", 777, "jpy"),
            await pay(trail, account, "kwd-sale", 12_340, "kwd"),
        ]
        for currency, amount, captured in (("usd", 5_000, 3_333), ("jpy", 9_000, 4_321),
                                           ("kwd", 20_000, 19_990)):  # fmt: skip
            held = await pay(
                trail, account, f"{currency}-held", amount, currency,
                capture=CaptureMethod.MANUAL,
            )  # fmt: skip
            trail.network.lose.append("capture")
            await capture(trail, account, f"{currency}-capture", held.id, captured)
            intents.append(held)
        trail.network.lose.append("authorize")
        intents.append(await pay(trail, account, "kwd-lost", 1_010, "kwd"))
        await refund(trail, account, "usd-refund", intents[0].id, 2_500)

        day = clock.now().date()
        settled = (await trail.acquirer.settlement_page(day, account)).rows
        clock.advance(timedelta(days=1).total_seconds())  # the day is over
        result = await trail.ledger.reconcile(day.isoformat(), account)
        verified = await trail.ledger.verify()
        listed, _ = await trail.ledger.list_balance_transactions(account, limit=100)
    captures = {row.reference: row for row in settled if row.kind is SettlementKind.CAPTURE}
    assert len(captures) == 7
    assert all(row.fee_minor > 0 for row in captures.values())
    for intent in intents:
        charge_id = intent.latest_charge_id
        assert charge_id is not None
        row = captures.get(charge_id) or captures[f"{charge_id}_capture"]
        assert await network_fee_legs(core_engine, account, charge_id) == [-row.fee_minor], (
            charge_id
        )

    async with core_engine.connect() as db:
        books = await JournalRepository(db).ledger_accounts_named(
            account, [ACQUIRER_CLEARING, NETWORK_FEES]
        )
    sent: dict[str, int] = {}
    withheld: dict[str, int] = {}
    for row in settled:
        sign = 1 if row.kind is SettlementKind.CAPTURE else -1
        sent[row.currency] = sent.get(row.currency, 0) + sign * (row.amount_minor - row.fee_minor)
        withheld[row.currency] = withheld.get(row.currency, 0) + row.fee_minor
    assert {(a.currency, a.posted_balance_minor) for a in books if a.name == ACQUIRER_CLEARING} == {
        (currency, -amount) for currency, amount in sent.items()
    }
    assert {(a.currency, a.posted_balance_minor) for a in books if a.name == NETWORK_FEES} == {
        (currency, -amount) for currency, amount in withheld.items()
    }

    assert result.ok, [r for r in result.rows if r.status is not RowStatus.MATCHED]
    assert len(result.rows) == 8
    assert all(r.ledger_fee == r.acquirer_fee for r in result.rows)
    assert verified.ok, verified.differences

    # The merchant is charged the platform's price, and sees nothing of the network's fee.
    pricing = Pricing()
    charges = [t for t in listed if t.type is BalanceTransactionType.CHARGE]
    assert len(charges) == 7
    for txn in charges:
        fee = processing_fee(txn.amount, txn.currency, pricing)
        assert (txn.fee, txn.net) == (fee, txn.amount - fee)
        assert [(d.amount, d.type) for d in txn.fee_details] == [(fee, "stripe_fee")]


async def test_a_day_just_over_reconciles_only_as_partial_until_the_acquirers_grace_passes(
    core_engine: AsyncEngine, acquirer_engine: AsyncEngine, new_account: NewAccount
) -> None:
    """Just after midnight a capture the acquirer stamped late yesterday may still be
    committing: its report of yesterday is partial, and so is the reconciliation over it, until
    the acquirer's grace has passed."""
    day = datetime(2031, 5, 6, tzinfo=UTC)
    clock = FixedClock(day + timedelta(hours=23, minutes=59))
    account = await new_account()
    async with money_trail(core_engine, acquirer_engine, clock) as trail:
        await pay(trail, account, "late-sale", 1000)
        clock.advance(90)  # 00:00:30 the next day
        early = await trail.ledger.reconcile(day.date().isoformat(), allow_partial=True)
        with pytest.raises(RemitError) as not_yet:
            await trail.ledger.reconcile(day.date().isoformat())
        clock.advance((ACQUIRER_GRACE - timedelta(seconds=30)).total_seconds())
        late = await trail.ledger.reconcile(day.date().isoformat())
    assert early.partial
    # Not a refusal: the nightly run is told to run again once the grace has passed.
    assert (not_yet.value.kind, not_yet.value.should_retry) == (ErrorKind.UNAVAILABLE, True)
    assert not late.partial
    assert [row.status for row in late.rows] == [RowStatus.MATCHED]
