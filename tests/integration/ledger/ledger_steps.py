"""Ledger steps many tests start from, with the ids and amounts they mostly use: charge ch_1
captured in USD and available at once, and refund re_1 of it held and posted."""

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.clock import FixedClock
from remit.ledger import postings as ledger


async def charge_available_at_once(
    db: AsyncConnection,
    account_id: str,
    clock: FixedClock,
    *,
    charge_id: str = "ch_1",
    gross_minor: int = 1000,
) -> None:
    """A charge captured in USD with its funds available at once."""
    await ledger.record_charge_captured(
        db,
        account_id=account_id,
        charge_id=charge_id,
        gross_minor=gross_minor,
        currency="usd",
        now=clock.now(),
        bypass_pending=True,
    )


async def refund_held(
    db: AsyncConnection,
    account_id: str,
    clock: FixedClock,
    *,
    charge_id: str = "ch_1",
    amount_minor: int = 400,
) -> None:
    """Refund re_1 of a USD charge held: its amount set aside until the refund posts."""
    await ledger.record_refund_held(
        db,
        account_id=account_id,
        refund_id="re_1",
        charge_id=charge_id,
        amount_minor=amount_minor,
        currency="usd",
        now=clock.now(),
    )


async def refund_posted(
    db: AsyncConnection,
    account_id: str,
    clock: FixedClock,
    *,
    charge_id: str = "ch_1",
    amount_minor: int = 400,
) -> None:
    """Refund re_1 of a USD charge posted (releasing its hold, if it was held)."""
    await ledger.record_refund(
        db,
        account_id=account_id,
        refund_id="re_1",
        charge_id=charge_id,
        amount_minor=amount_minor,
        currency="usd",
        now=clock.now(),
    )
