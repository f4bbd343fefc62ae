"""A refund holds its money from its creation until the acquirer answers: a payout made while
it is in flight cannot take the same money, and the merchant sees it leave the balance then,
under the refund's balance transaction, which keeps its id when the refund posts."""

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.ledger import journal
from remit.ledger import postings as ledger
from remit.ledger.balance_repository import BalanceRepository
from remit.ledger.balances import read_balance
from remit.ledger.chart import ACQUIRER_CLEARING, AVAILABLE
from remit.ledger.domain import (
    LedgerAccount,
    LedgerError,
    PendingStatus,
    Posting,
    TransactionRequest,
)
from remit.ledger.jobs import expire_authorizations
from remit.ledger.objects import (
    BalanceTransaction,
    BalanceTransactionStatus,
    BalanceTransactionType,
)
from remit.ledger.payouts import PayoutError, create_payout
from remit.ledger.repository import JournalRepository
from remit.ledger.reserved import refuse_derived_id
from tests.integration.ledger.test_money_movements import assert_verified

pytestmark = pytest.mark.anyio

CHARGE = "ch_held"
NET = 941  # 1000 captured less the default 2.9% + 30 fee


async def _available(engine: AsyncEngine, account_id: str) -> LedgerAccount:
    async with engine.connect() as db:
        found = await JournalRepository(db).get_ledger_account(account_id, AVAILABLE, "usd")
    assert found is not None
    return found


async def _refund_rows(engine: AsyncEngine, account_id: str) -> list[BalanceTransaction]:
    async with engine.connect() as db:
        return await BalanceRepository(db).balance_transactions_for_charge(
            account_id,
            CHARGE,
            [BalanceTransactionType.REFUND, BalanceTransactionType.REFUND_FAILURE],
        )


async def _captured_and_held(
    engine: AsyncEngine, account_id: str, clock: FixedClock, *, refund: int = NET
) -> BalanceTransaction:
    """1000 captured straight into available (941 after the fee), then a refund held; returns
    the refund's balance transaction."""
    async with engine.begin() as db:
        await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id=CHARGE,
            gross_minor=1_000,
            currency="usd",
            now=clock.now(),
            bypass_pending=True,
        )
    async with engine.begin() as db:
        return await ledger.record_refund_held(
            db,
            account_id=account_id,
            refund_id="re_held",
            charge_id=CHARGE,
            amount_minor=refund,
            currency="usd",
            now=clock.now(),
            balance_transaction_id="txn_held",
        )


async def test_a_held_refund_leaves_nothing_for_a_payout_and_shows_as_debited(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    shown = await _captured_and_held(core_engine, account_id, clock)

    with pytest.raises(PayoutError) as refused:
        async with core_engine.begin() as db:
            await create_payout(
                db, account_id=account_id, amount=NET, currency="usd", now=clock.now()
            )
    assert (refused.value.code, refused.value.param) == ("balance_insufficient", "amount")
    assert "0 usd is available" in refused.value.message

    held = await _available(core_engine, account_id)
    assert (held.posted_balance_minor, held.pending_outgoing_minor) == (NET, NET)
    async with core_engine.connect() as db:
        balance = await read_balance(db, account_id, "usd")
    assert [(a.amount, a.currency) for a in balance.available] == [(0, "usd")]
    assert [a.amount for a in balance.pending] == [0]
    # Nothing is posted yet, but the merchant already sees the refund leave the balance, as
    # on Stripe: under the id it was given, available at once. It has no acquirer reference
    # yet (reconciliation has nothing of it to settle).
    assert await _refund_rows(core_engine, account_id) == [shown]
    assert (shown.id, shown.type, shown.reporting_category) == (
        "txn_held",
        BalanceTransactionType.REFUND,
        "refund",
    )
    assert (shown.amount, shown.fee, shown.net, shown.fee_details) == (-NET, 0, -NET, ())
    assert (shown.status, shown.available_on, shown.created_at) == (
        BalanceTransactionStatus.AVAILABLE,
        clock.now(),
        clock.now(),
    )
    assert (shown.source_id, shown.charge_id) == ("re_held", CHARGE)
    assert (shown.ledger_transaction_id, shown.acquirer_reference) == (
        ledger.refund_hold_id_for("re_held"),
        None,
    )
    await assert_verified(core_engine, clock)


async def test_holding_a_refund_again_writes_nothing_more(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    shown = await _captured_and_held(core_engine, account_id, clock, refund=300)
    async with core_engine.begin() as db:
        again = await ledger.record_refund_held(
            db,
            account_id=account_id,
            refund_id="re_held",
            charge_id=CHARGE,
            amount_minor=300,
            currency="usd",
            now=clock.now(),
            balance_transaction_id="txn_other",
        )
    assert again == shown
    assert await _refund_rows(core_engine, account_id) == [shown]
    assert (await _available(core_engine, account_id)).spendable_minor == NET - 300
    await assert_verified(core_engine, clock)


async def test_a_hold_beyond_what_remains_of_the_charge_is_refused(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await _captured_and_held(core_engine, account_id, clock, refund=700)
    with pytest.raises(LedgerError) as refused:
        async with core_engine.begin() as db:
            await ledger.record_refund_held(
                db,
                account_id=account_id,
                refund_id="re_more",
                charge_id=CHARGE,
                amount_minor=301,
                currency="usd",
                now=clock.now(),
            )
    assert (refused.value.code, refused.value.param) == ("amount_too_large", "amount")
    assert (await _available(core_engine, account_id)).spendable_minor == NET - 700
    await assert_verified(core_engine, clock)


async def test_a_refund_may_still_take_the_spendable_balance_below_zero(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    shown = await _captured_and_held(core_engine, account_id, clock, refund=1_000)
    assert shown.net == -1_000
    held = await _available(core_engine, account_id)
    assert held.spendable_minor == NET - 1_000
    async with core_engine.connect() as db:
        balance = await read_balance(db, account_id, "usd")
    assert balance.available[0].amount == NET - 1_000
    await assert_verified(core_engine, clock)


async def test_the_refund_posting_takes_over_from_its_hold(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    held = await _captured_and_held(core_engine, account_id, clock)
    clock.advance(60)

    async def refund() -> BalanceTransaction:
        async with core_engine.begin() as db:
            return await ledger.record_refund(
                db,
                account_id=account_id,
                refund_id="re_held",
                charge_id=CHARGE,
                amount_minor=NET,
                currency="usd",
                now=clock.now(),
            )

    first = await refund()
    again = await refund()
    assert again == first
    # The balance transaction the refund showed while pending, unchanged for the merchant (a
    # reconciliation keys on its id), now names the posting and the acquirer's reference.
    assert first == replace(
        held, ledger_transaction_id="re_held:refund", acquirer_reference="re_held"
    )
    assert await _refund_rows(core_engine, account_id) == [first]
    settled = await _available(core_engine, account_id)
    assert (settled.posted_balance_minor, settled.pending_outgoing_minor) == (0, 0)
    async with core_engine.connect() as db:
        repo = JournalRepository(db)
        hold = await repo.get_transaction(account_id, ledger.refund_hold_id_for("re_held"))
        clearing = await repo.get_ledger_account(account_id, ACQUIRER_CLEARING, "usd")
    assert hold is not None
    assert (hold.pending_status, hold.resolved_by) == (
        PendingStatus.VOIDED,
        "re_held:refund_release",
    )
    assert clearing is not None
    assert (clearing.posted_balance_minor, clearing.pending_incoming_minor) == (-1_000 + NET, 0)
    await assert_verified(core_engine, clock)


async def test_a_refund_that_fails_before_it_was_posted_gives_its_hold_back(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:

    held = await _captured_and_held(core_engine, account_id, clock)
    clock.advance(60)

    async def release() -> BalanceTransaction | None:
        async with core_engine.begin() as db:
            return await ledger.record_refund_released(
                db,
                account_id=account_id,
                refund_id="re_held",
                now=clock.now(),
                balance_transaction_id="txn_back",
            )

    failure = await release()
    assert await release() == failure
    back = await _available(core_engine, account_id)
    assert (back.posted_balance_minor, back.pending_outgoing_minor) == (NET, 0)
    # As on Stripe, the refund's balance transaction stays and a refund_failure gives the
    # money back, available at once.
    assert failure is not None
    assert await _refund_rows(core_engine, account_id) == [held, failure]
    assert (failure.id, failure.type, failure.reporting_category) == (
        "txn_back",
        BalanceTransactionType.REFUND_FAILURE,
        "refund_failure",
    )
    assert (failure.amount, failure.fee, failure.net) == (NET, 0, NET)
    assert (failure.status, failure.created_at) == (
        BalanceTransactionStatus.AVAILABLE,
        clock.now(),
    )
    assert (failure.source_id, failure.ledger_transaction_id) == (
        "re_held",
        "re_held:refund_release",
    )
    async with core_engine.begin() as db:
        payout = await create_payout(
            db, account_id=account_id, amount=NET, currency="usd", now=clock.now()
        )
    assert payout.amount == NET
    await assert_verified(core_engine, clock)


async def test_a_refund_created_before_holds_existed_resolves_without_one(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id=CHARGE,
            gross_minor=1_000,
            currency="usd",
            now=clock.now(),
            bypass_pending=True,
        )
        released = await ledger.record_refund_released(
            db, account_id=account_id, refund_id="re_old", now=clock.now()
        )
        refund = await ledger.record_refund(
            db,
            account_id=account_id,
            refund_id="re_old",
            charge_id=CHARGE,
            amount_minor=300,
            currency="usd",
            now=clock.now(),
        )
    assert released is None
    assert refund.amount == -300
    assert (await _available(core_engine, account_id)).posted_balance_minor == NET - 300
    await assert_verified(core_engine, clock)


async def _held_the_earlier_way(
    engine: AsyncEngine, account_id: str, clock: FixedClock, refund_id: str, amount: int
) -> None:
    """A hold as the ledger placed it before holds wrote the refund's balance transaction."""
    async with engine.begin() as db:
        await journal.post(
            db,
            account_id,
            TransactionRequest(
                transaction_id=ledger.refund_hold_id_for(refund_id),
                postings=(
                    Posting(AVAILABLE, -amount, "usd"),
                    Posting(ACQUIRER_CLEARING, amount, "usd"),
                ),
                pending=True,
                metadata={"charge": CHARGE, "refund": refund_id},
            ),
            now=clock.now(),
        )


async def test_a_hold_placed_before_holds_showed_a_refund_resolves_as_it_did(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id=CHARGE,
            gross_minor=1_000,
            currency="usd",
            now=clock.now(),
            bypass_pending=True,
        )
    await _held_the_earlier_way(core_engine, account_id, clock, "re_posts", 300)
    await _held_the_earlier_way(core_engine, account_id, clock, "re_fails", 200)
    async with core_engine.begin() as db:
        posted = await ledger.record_refund(
            db,
            account_id=account_id,
            refund_id="re_posts",
            charge_id=CHARGE,
            amount_minor=300,
            currency="usd",
            now=clock.now(),
            balance_transaction_id="txn_posted",
        )
        released = await ledger.record_refund_released(
            db, account_id=account_id, refund_id="re_fails", now=clock.now()
        )
    # The refund shows its balance transaction once posted, as it did; the failed one never
    # took anything the merchant saw, and gives nothing back they would see.
    assert (posted.id, posted.amount, posted.ledger_transaction_id) == (
        "txn_posted",
        -300,
        "re_posts:refund",
    )
    assert released is None
    assert await _refund_rows(core_engine, account_id) == [posted]
    settled = await _available(core_engine, account_id)
    assert (settled.posted_balance_minor, settled.pending_outgoing_minor) == (NET - 300, 0)
    await assert_verified(core_engine, clock)


async def test_the_expiry_job_never_lets_a_hold_go(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await _captured_and_held(core_engine, account_id, clock)
    async with core_engine.begin() as db:
        await expire_authorizations(db, now=clock.now() + timedelta(days=3650))
    async with core_engine.connect() as db:
        hold = await JournalRepository(db).get_transaction(
            account_id, ledger.refund_hold_id_for("re_held")
        )
    assert hold is not None
    assert (hold.pending_status, hold.expires_at) == (PendingStatus.OPEN, None)
    assert (await _available(core_engine, account_id)).spendable_minor == 0


@pytest.mark.parametrize("step", ["refund_hold", "refund_release"])
def test_generic_postings_cannot_take_the_ids_of_refund_holds(step: str) -> None:
    with pytest.raises(LedgerError) as refused:
        refuse_derived_id(f"re_1:{step}", "transaction_id")
    assert refused.value.param == "transaction_id"
