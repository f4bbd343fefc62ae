"""Two refunds of one charge made at the same time: each checks what is left of the charge
under the account's posting lock, so the second is checked against the first, and a charge is
never refunded beyond its amount (payments locks the charge too; the ledger does not rely on
it)."""

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import FixedClock
from remit.ledger import postings as ledger
from remit.ledger.domain import LedgerError
from remit.ledger.objects import BalanceTransaction
from remit.ledger.verify import DifferenceKind, verify_ledger
from tests.integration.ledger.ledger_steps import charge_available_at_once
from tests.integration.ledger.test_verify_tampering import tamper

pytestmark = pytest.mark.anyio

Refund = Callable[[AsyncConnection, str], Awaitable[BalanceTransaction]]


async def charged(engine: AsyncEngine, account_id: str, clock: FixedClock) -> None:
    async with engine.begin() as db:
        await charge_available_at_once(db, account_id, clock)


async def both_at_once(engine: AsyncEngine, refund: Refund) -> BaseException | None:
    """The first refund, uncommitted, while the second is made; returns how the second ended."""
    async with engine.connect() as first, engine.connect() as second:
        await first.begin()
        await second.begin()
        await refund(first, "re_1")
        later = asyncio.ensure_future(refund(second, "re_2"))
        await asyncio.sleep(0.2)
        waited = not later.done()
        await first.commit()
        try:
            await later
        except LedgerError as error:
            await second.rollback()
            assert waited  # it waited for the first, and then saw its refund
            return error
        await second.commit()
        return None


@pytest.mark.parametrize(
    "record", [ledger.record_refund_held, ledger.record_refund], ids=["held", "without_hold"]
)
async def test_two_refunds_of_the_whole_charge_at_once(
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    record: Callable[..., Awaitable[BalanceTransaction]],
) -> None:
    """A refund held first, or one recorded without a hold: either way the second of two
    racing for the whole charge is refused."""
    await charged(core_engine, account_id, clock)

    async def refund(db: AsyncConnection, refund_id: str) -> BalanceTransaction:
        return await record(
            db,
            account_id=account_id,
            refund_id=refund_id,
            charge_id="ch_1",
            amount_minor=1000,
            currency="usd",
            now=clock.now(),
        )

    refused = await both_at_once(core_engine, refund)
    assert isinstance(refused, LedgerError)
    assert refused.code == "charge_already_refunded"


async def test_verify_finds_a_charge_refunded_beyond_its_amount(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """As two refunds racing past the check would have left it (here: a refund's row whose
    charge was changed, amounts and ledger transaction left as they are)."""
    await charged(core_engine, account_id, clock)
    async with core_engine.begin() as db:
        await charge_available_at_once(db, account_id, clock, charge_id="ch_2")
        for refund_id, charge_id in (("re_1", "ch_1"), ("re_2", "ch_2")):
            await ledger.record_refund_held(
                db,
                account_id=account_id,
                refund_id=refund_id,
                charge_id=charge_id,
                amount_minor=700,
                currency="usd",
                now=clock.now(),
            )
    await tamper(
        core_engine,
        account_id,
        "UPDATE balance_transactions SET charge_id = 'ch_1' "
        "WHERE account_id = :a AND source_id = 're_2'",
    )
    async with core_engine.connect() as db:
        report = await verify_ledger(db, account_id=account_id, now=clock.now())
    exceeded = [d for d in report.differences if d.kind is DifferenceKind.REFUNDS_EXCEED_CHARGE]
    assert [(d.expected_minor, d.actual_minor) for d in exceeded] == [(1000, 1400)]
