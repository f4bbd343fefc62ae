"""A refund's balance transaction exists from the refund's creation, as on Stripe: the balance
transactions add up to the balance whatever refunds are pending, posted or failed, and an
automatic payout lists the pending refunds that reduced it among the rows it paid out."""

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.ledger import postings as ledger
from remit.ledger.balance_repository import BalanceRepository, TimeRange
from remit.ledger.balances import read_balance
from remit.ledger.fees import RefundFeePolicy
from remit.ledger.jobs import create_automatic_payouts
from remit.ledger.objects import BalanceTransaction, BalanceTransactionStatus, Payout
from tests.integration.ledger.conftest import NewAccount
from tests.integration.ledger.test_money_movements import assert_verified

pytestmark = pytest.mark.anyio


async def _captured(
    engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    charge_id: str,
    gross: int,
    *,
    available_at_once: bool = True,
) -> BalanceTransaction:
    async with engine.begin() as db:
        return await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id=charge_id,
            gross_minor=gross,
            currency="usd",
            now=clock.now(),
            bypass_pending=available_at_once,
        )


async def _held(
    engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    refund_id: str,
    charge_id: str,
    amount: int,
    fee_policy: RefundFeePolicy = RefundFeePolicy.KEEP,
) -> BalanceTransaction:
    async with engine.begin() as db:
        return await ledger.record_refund_held(
            db,
            account_id=account_id,
            refund_id=refund_id,
            charge_id=charge_id,
            amount_minor=amount,
            currency="usd",
            now=clock.now(),
            fee_policy=fee_policy,
        )


async def _posted(
    engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    refund_id: str,
    charge_id: str,
    amount: int,
) -> BalanceTransaction:
    async with engine.begin() as db:
        return await ledger.record_refund(
            db,
            account_id=account_id,
            refund_id=refund_id,
            charge_id=charge_id,
            amount_minor=amount,
            currency="usd",
            now=clock.now(),
        )


async def _released(
    engine: AsyncEngine, account_id: str, clock: FixedClock, refund_id: str
) -> BalanceTransaction | None:
    async with engine.begin() as db:
        return await ledger.record_refund_released(
            db, account_id=account_id, refund_id=refund_id, now=clock.now()
        )


async def _listed(
    engine: AsyncEngine, account_id: str, payout_id: str | None = None
) -> list[BalanceTransaction]:
    async with engine.connect() as db:
        rows, has_more = await BalanceRepository(db).list_balance_transactions(
            account_id,
            limit=100,
            starting_after=None,
            ending_before=None,
            created=TimeRange(),
            payout_id=payout_id,
            source_id=None,
            type=None,
            currency=None,
        )
    assert not has_more
    return rows


async def _assert_adding_up(engine: AsyncEngine, account_id: str) -> tuple[int, int]:
    """Every listed balance transaction's net sums to available + pending, the available ones
    to available and the pending ones to pending; returns (available, pending)."""
    listed = await _listed(engine, account_id)
    async with engine.connect() as db:
        balance = await read_balance(db, account_id, "usd")
    available, pending = balance.available[0].amount, balance.pending[0].amount
    assert sum(t.net for t in listed) == available + pending
    assert sum(t.net for t in listed if t.status is BalanceTransactionStatus.AVAILABLE) == (
        available
    )
    assert sum(t.net for t in listed if t.status is BalanceTransactionStatus.PENDING) == pending
    return available, pending


async def test_the_balance_transactions_add_up_to_the_balance_whatever_refunds_do(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock
) -> None:
    account_id = await new_account()
    sale = await _captured(core_engine, account_id, clock, "ch_sale", 10_000)
    later = await _captured(
        core_engine, account_id, clock, "ch_later", 4_000, available_at_once=False
    )
    assert await _assert_adding_up(core_engine, account_id) == (sale.net, later.net)

    # Partial refunds waiting for the acquirer: out of available from their creation, one of
    # them giving back its share of the fee.
    waiting = await _held(core_engine, account_id, clock, "re_waiting", "ch_sale", 1_000)
    shared = await _held(
        core_engine,
        account_id,
        clock,
        "re_shared",
        "ch_later",
        2_000,
        fee_policy=RefundFeePolicy.PROPORTIONAL,
    )
    assert shared.fee < 0
    assert await _assert_adding_up(core_engine, account_id) == (
        sale.net + waiting.net + shared.net,
        later.net,
    )

    # Refunds that succeed, and one that fails before and one after it was posted.
    clock.advance(60)
    await _held(core_engine, account_id, clock, "re_done", "ch_sale", 2_000)
    done = await _posted(core_engine, account_id, clock, "re_done", "ch_sale", 2_000)
    shared_posted = await _posted(core_engine, account_id, clock, "re_shared", "ch_later", 2_000)
    assert (shared_posted.id, shared_posted.fee, shared_posted.net) == (
        shared.id,
        shared.fee,
        shared.net,
    )
    await _held(core_engine, account_id, clock, "re_refused", "ch_sale", 3_000)
    refused = await _released(core_engine, account_id, clock, "re_refused")
    assert refused is not None
    bounced = await _held(core_engine, account_id, clock, "re_bounced", "ch_sale", 500)
    await _posted(core_engine, account_id, clock, "re_bounced", "ch_sale", 500)
    async with core_engine.begin() as db:
        bounced_back = await ledger.record_refund_failed(
            db, account_id=account_id, refund_id="re_bounced", now=clock.now()
        )
    assert bounced_back.net == -bounced.net
    available, pending = await _assert_adding_up(core_engine, account_id)
    assert (available, pending) == (sale.net + waiting.net + shared.net + done.net, later.net)

    # The pending charge's funds become available: still adding up.
    clock.advance(timedelta(days=3).total_seconds())
    async with core_engine.begin() as db:
        for due in await BalanceRepository(db).claim_due_balance_transactions(
            now=clock.now(), limit=10, account_id=account_id
        ):
            await ledger.make_available(db, due, now=clock.now())
    assert await _assert_adding_up(core_engine, account_id) == (available + pending, 0)
    await assert_verified(core_engine, clock)


async def _automatic_payout(engine: AsyncEngine, clock: FixedClock) -> Payout:
    (payout,) = await create_automatic_payouts(engine, now=clock.now())
    return payout


def _paid_in(listed: list[BalanceTransaction], payout: Payout) -> int:
    """What the rows listed under a payout bring in, the payout's own row left out."""
    return sum(t.net for t in listed if t.id != payout.balance_transaction_id)


async def test_an_automatic_payout_lists_the_pending_refund_that_reduced_it(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock
) -> None:
    account_id = await new_account(automatic_payouts=True)
    sale = await _captured(core_engine, account_id, clock, "ch_sale", 1_000)
    held = await _held(core_engine, account_id, clock, "re_pending", "ch_sale", 300)
    payout = await _automatic_payout(core_engine, clock)
    assert payout.amount == sale.net - 300

    listed = await _listed(core_engine, account_id, payout.id)
    assert {t.id for t in listed} == {sale.id, held.id, payout.balance_transaction_id}
    assert _paid_in(listed, payout) == payout.amount

    # The refund posts: the same row, still among the payout's.
    clock.advance(60)
    posted = await _posted(core_engine, account_id, clock, "re_pending", "ch_sale", 300)
    assert (posted.id, posted.payout_id) == (held.id, payout.id)
    assert await _listed(core_engine, account_id, payout.id) == [
        posted if t.id == posted.id else t for t in listed
    ]
    assert await _assert_adding_up(core_engine, account_id) == (0, 0)
    clock.advance(timedelta(days=1).total_seconds())
    assert await create_automatic_payouts(core_engine, now=clock.now()) == []
    await assert_verified(core_engine, clock)


async def test_a_pending_refund_that_fails_after_a_payout_is_paid_out_by_the_next(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock
) -> None:
    account_id = await new_account(automatic_payouts=True)
    sale = await _captured(core_engine, account_id, clock, "ch_sale", 1_000)
    held = await _held(core_engine, account_id, clock, "re_refused", "ch_sale", 300)
    first = await _automatic_payout(core_engine, clock)
    assert {t.id for t in await _listed(core_engine, account_id, first.id)} == {
        sale.id,
        held.id,
        first.balance_transaction_id,
    }

    clock.advance(60)
    back = await _released(core_engine, account_id, clock, "re_refused")
    assert back is not None
    assert await _assert_adding_up(core_engine, account_id) == (300, 0)
    clock.advance(timedelta(days=1).total_seconds())
    second = await _automatic_payout(core_engine, clock)
    assert second.amount == 300
    listed = await _listed(core_engine, account_id, second.id)
    assert {t.id for t in listed} == {back.id, second.balance_transaction_id}
    assert _paid_in(listed, second) == second.amount
    await assert_verified(core_engine, clock)
