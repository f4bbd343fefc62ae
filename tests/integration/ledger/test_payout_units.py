"""Payouts in whole units of what a bank pays: `huf`, `twd` and `isk` are two-decimal on the
API, but paid out in multiples of 100 of their minor units."""

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.ledger import payouts
from remit.ledger import postings as ledger
from remit.ledger.jobs import create_automatic_payouts
from remit.ledger.service import LedgerService
from remit.ledger.verify import verify_ledger
from tests.integration.ledger.conftest import NewAccount

pytestmark = pytest.mark.anyio


async def fund(
    engine: AsyncEngine, account_id: str, clock: FixedClock, gross: int, currency: str
) -> int:
    """Capture a charge straight into the available balance; returns its net."""
    async with engine.begin() as db:
        txn = await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id=f"ch_{currency}_{gross}_{clock.now().timestamp()}",
            gross_minor=gross,
            currency=currency,
            now=clock.now(),
            bypass_pending=True,
        )
    return txn.net


async def available(service: LedgerService, account_id: str, currency: str) -> int:
    balance = await service.get_balance(account_id)
    return next(held.amount for held in balance.available if held.currency == currency)


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        (12_345, "huf", "Invalid amount (12345): a payout in huf must be a multiple of 100 "
         "(whole units of the currency), such as 12300 or 12400."),
        (155, "twd", "Invalid amount (155): a payout in twd must be a multiple of 100 (whole "
         "units of the currency), such as 100 or 200."),
        (50, "isk", "Invalid amount (50): a payout in isk must be a multiple of 100 (whole "
         "units of the currency), such as 100."),
    ],
)  # fmt: skip
async def test_a_manual_payout_of_a_fraction_of_a_whole_unit_is_refused_and_moves_nothing(
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    amount: int,
    currency: str,
    message: str,
) -> None:
    service = LedgerService(core_engine, clock)
    net = await fund(core_engine, account_id, clock, 100_000, currency)
    with pytest.raises(RemitError) as raised:
        await service.create_payout(account_id, amount=amount, currency=currency)
    refused = raised.value
    assert (refused.kind, refused.param, refused.message) == (
        ErrorKind.INVALID_ARGUMENT,
        "amount",
        message,
    )
    assert await available(service, account_id, currency) == net
    made, _ = await service.list_payouts(account_id, limit=10)
    assert made == []
    whole = amount - amount % 100 or 100
    paid = await service.create_payout(account_id, amount=whole, currency=currency)
    assert (paid.amount, paid.currency) == (whole, currency)


async def test_other_currencies_pay_out_any_number_of_minor_units(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    service = LedgerService(core_engine, clock)
    await fund(core_engine, account_id, clock, 100_000, "usd")
    await fund(core_engine, account_id, clock, 100_000, "kwd")
    assert (await service.create_payout(account_id, amount=155, currency="usd")).amount == 155
    assert (await service.create_payout(account_id, amount=1, currency="kwd")).amount == 1


async def test_an_automatic_payout_pays_whole_forints_and_leaves_the_rest_available(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock
) -> None:
    account_id = await new_account(automatic_payouts=True)
    service = LedgerService(core_engine, clock)
    # 1,000.00 huf less 2.9% + 0.30: 970.70 huf.
    net = await fund(core_engine, account_id, clock, 100_000, "huf")
    assert net == 97_070
    [payout] = await create_automatic_payouts(core_engine, now=clock.now())
    assert (payout.amount, payout.currency, payout.automatic) == (97_000, "huf", True)
    assert await available(service, account_id, "huf") == 70
    # The next day, 0.70 huf is no payout's worth: the account is not even owed one.
    clock.advance(timedelta(days=1).total_seconds())
    async with core_engine.connect() as db:
        assert await payouts.accounts_owed_automatic_payout(db, now=clock.now()) == []
    assert await create_automatic_payouts(core_engine, now=clock.now()) == []
    # With more funds the rest goes out with them, again in whole forints.
    later = await fund(core_engine, account_id, clock, 10_000, "huf")
    [second] = await create_automatic_payouts(core_engine, now=clock.now())
    assert second.amount == (70 + later) // 100 * 100
    assert await available(service, account_id, "huf") == (70 + later) % 100
    async with core_engine.connect() as db:
        assert (await verify_ledger(db, now=clock.now())).ok
