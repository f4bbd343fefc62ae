"""balance.available: recorded by every move into the available balance, once per account per
transaction, with the balance the move made; never by a move out of it."""

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.jsonview import JsonObject, to_json
from remit.ledger import postings as ledger
from remit.ledger.balances import read_balance
from remit.ledger.jobs import advance_payouts
from remit.ledger.messages import balance_message
from remit.ledger.objects import PayoutMethod, PayoutStatus
from remit.ledger.payouts import SUBMISSION_DELAY, cancel_payout, create_payout
from remit.ledger.tables import ledger_events
from remit.ledger.verify import verify_ledger
from remit.webhooks.tables import events

pytestmark = pytest.mark.anyio


async def _announced(engine: AsyncEngine, account_id: str) -> list[JsonObject]:
    """The data objects of the account's balance.available events, oldest first; each also in
    the ledger's own log, with the same data."""
    async with engine.connect() as db:
        outbox = await db.execute(
            select(events.c.data_object)
            .where(events.c.account_id == account_id, events.c.type == "balance.available")
            .order_by(events.c.created_at, events.c.id)
        )
        logged = await db.execute(
            select(ledger_events.c.data)
            .where(
                ledger_events.c.account_id == account_id,
                ledger_events.c.type == "balance.available",
            )
            .order_by(ledger_events.c.created_at, ledger_events.c.id)
        )
        shown = [dict(row) for row in outbox.scalars()]
    assert [dict(row) for row in logged.scalars()] == shown
    return shown


async def _balance_now(engine: AsyncEngine, account_id: str) -> JsonObject:
    async with engine.connect() as db:
        return to_json(balance_message(await read_balance(db, account_id, "usd")))


async def _verified(engine: AsyncEngine, clock: FixedClock) -> None:
    async with engine.connect() as db:
        report = await verify_ledger(db, now=clock.now())
    assert report.ok, (report.differences, report.chain_breaks)


async def _capture(
    engine: AsyncEngine, account_id: str, clock: FixedClock, charge_id: str, gross: int
) -> int:
    """A capture made available at once (pm_card_bypassPending); returns its net."""
    async with engine.begin() as db:
        txn = await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id=charge_id,
            gross_minor=gross,
            currency="usd",
            now=clock.now(),
            bypass_pending=True,
        )
    return txn.net


def _available(shown: JsonObject) -> list[tuple[object, object]]:
    amounts = shown["available"]
    assert isinstance(amounts, list)
    return [(a["amount"], a["currency"]) for a in amounts if isinstance(a, dict)]


async def test_a_capture_made_available_at_once_announces_the_balance(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    net = await _capture(core_engine, account_id, clock, "ch_bypass", 2_000)
    (shown,) = await _announced(core_engine, account_id)
    assert shown == await _balance_now(core_engine, account_id)
    assert _available(shown) == [(net, "usd")]
    # A repeat of the capture moves nothing, and announces nothing.
    await _capture(core_engine, account_id, clock, "ch_bypass", 2_000)
    assert len(await _announced(core_engine, account_id)) == 1
    await _verified(core_engine, clock)


async def test_an_ordinary_capture_announces_nothing_until_its_funds_are_released(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_pending",
            gross_minor=2_000,
            currency="usd",
            now=clock.now(),
        )
    assert await _announced(core_engine, account_id) == []


async def test_a_payout_announces_nothing_and_its_cancel_announces_the_funds_back(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    net = await _capture(core_engine, account_id, clock, "ch_funds", 1_000)
    async with core_engine.begin() as db:
        payout = await create_payout(
            db, account_id=account_id, amount=400, currency="usd", now=clock.now()
        )
    assert len(await _announced(core_engine, account_id)) == 1  # the capture's only
    clock.advance(1)
    async with core_engine.begin() as db:
        canceled = await cancel_payout(
            db, account_id=account_id, payout_id=payout.id, now=clock.now()
        )
    assert canceled.status is PayoutStatus.CANCELED
    _, shown = await _announced(core_engine, account_id)
    assert shown == await _balance_now(core_engine, account_id)
    assert _available(shown) == [(net, "usd")]
    await _verified(core_engine, clock)


async def test_failed_payouts_of_one_batch_announce_their_account_once(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    net = await _capture(core_engine, account_id, clock, "ch_funds", 2_000)
    async with core_engine.begin() as db:
        for amount in (300, 500):
            await create_payout(
                db,
                account_id=account_id,
                amount=amount,
                currency="usd",
                now=clock.now(),
                method=PayoutMethod.INSTANT,
                metadata={"simulate_failure": "account_closed"},
            )
        # Paid, not failed: its funds do not come back.
        await create_payout(
            db,
            account_id=account_id,
            amount=100,
            currency="usd",
            now=clock.now(),
            method=PayoutMethod.INSTANT,
        )
    clock.advance(SUBMISSION_DELAY.total_seconds())
    async with core_engine.begin() as db:
        assert await advance_payouts(db, now=clock.now()) == 3
    _, shown = await _announced(core_engine, account_id)
    assert shown == await _balance_now(core_engine, account_id)
    assert _available(shown) == [(net - 100, "usd")]
    # The next run finds nothing to move, and announces nothing.
    clock.advance(timedelta(days=3).total_seconds())
    async with core_engine.begin() as db:
        await advance_payouts(db, now=clock.now())
    assert len(await _announced(core_engine, account_id)) == 2
    await _verified(core_engine, clock)


async def test_a_dispute_withdrawal_announces_nothing_and_its_reinstatement_announces_the_balance(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    net = await _capture(core_engine, account_id, clock, "ch_disputed", 2_000)
    withdrawal = ledger.dispute_withdrawal(
        "txn_withdrawal",
        account_id=account_id,
        dispute_id="dp_1",
        charge_id="ch_disputed",
        amount_minor=2_000,
        fee_minor=1_500,
        currency="usd",
        now=clock.now(),
    )
    async with core_engine.begin() as db:
        await ledger.record_dispute_funds_withdrawn(db, withdrawal, now=clock.now())
    assert len(await _announced(core_engine, account_id)) == 1  # the capture's only
    clock.advance(1)
    reinstatement = ledger.dispute_reinstatement(
        "txn_reinstatement",
        account_id=account_id,
        dispute_id="dp_1",
        charge_id="ch_disputed",
        amount_minor=2_000,
        currency="usd",
        now=clock.now(),
    )
    async with core_engine.begin() as db:
        await ledger.record_dispute_funds_reinstated(db, reinstatement, now=clock.now())
    _, shown = await _announced(core_engine, account_id)
    assert shown == await _balance_now(core_engine, account_id)
    assert _available(shown) == [(net - 1_500, "usd")]
    await _verified(core_engine, clock)


async def _hold_refund(
    engine: AsyncEngine, account_id: str, clock: FixedClock, refund_id: str, amount: int
) -> None:
    """A refund of "ch_refunded" created and held, the acquirer not yet answering."""
    async with engine.begin() as db:
        await ledger.record_refund_held(
            db,
            account_id=account_id,
            refund_id=refund_id,
            charge_id="ch_refunded",
            amount_minor=amount,
            currency="usd",
            now=clock.now(),
        )


async def _release_refund(
    engine: AsyncEngine, account_id: str, clock: FixedClock, refund_id: str
) -> None:
    async with engine.begin() as db:
        assert await ledger.record_refund_released(
            db, account_id=account_id, refund_id=refund_id, now=clock.now()
        )


async def test_a_held_refund_announces_nothing_and_its_release_announces_the_money_back(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """A pending refund the acquirer refused, or one canceled while it waited on the customer:
    both let go of its hold (`record_refund_released`), the money back in the available
    balance."""
    net = await _capture(core_engine, account_id, clock, "ch_refunded", 2_000)
    await _hold_refund(core_engine, account_id, clock, "re_held", 500)
    assert len(await _announced(core_engine, account_id)) == 1  # the capture's only
    clock.advance(1)
    await _release_refund(core_engine, account_id, clock, "re_held")
    _, shown = await _announced(core_engine, account_id)
    assert shown == await _balance_now(core_engine, account_id)
    assert _available(shown) == [(net, "usd")]
    # A repeat of the release moves nothing, and announces nothing.
    await _release_refund(core_engine, account_id, clock, "re_held")
    assert len(await _announced(core_engine, account_id)) == 2
    await _verified(core_engine, clock)


async def test_a_refund_announces_nothing_and_its_failure_announces_the_money_back(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """A refund the acquirer made and the card network could not deliver afterwards: its
    posting is reversed (`record_refund_failed`), the money back in the available balance."""
    net = await _capture(core_engine, account_id, clock, "ch_refunded", 2_000)
    await _hold_refund(core_engine, account_id, clock, "re_bounced", 500)
    async with core_engine.begin() as db:
        await ledger.record_refund(
            db,
            account_id=account_id,
            refund_id="re_bounced",
            charge_id="ch_refunded",
            amount_minor=500,
            currency="usd",
            now=clock.now(),
        )
    assert len(await _announced(core_engine, account_id)) == 1  # the capture's only
    clock.advance(1)
    for _ in range(2):  # the second, a repeat, moves nothing and announces nothing
        async with core_engine.begin() as db:
            await ledger.record_refund_failed(
                db, account_id=account_id, refund_id="re_bounced", now=clock.now()
            )
    _, shown = await _announced(core_engine, account_id)
    assert shown == await _balance_now(core_engine, account_id)
    assert _available(shown) == [(net, "usd")]
    await _verified(core_engine, clock)
