"""Stripe's balance, read from the running balances of two ledger accounts: O(1) in entries."""

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.ledger.chart import AVAILABLE, PENDING
from remit.ledger.objects import Balance, BalanceAmount
from remit.ledger.repository import JournalRepository


async def read_balance(db: AsyncConnection, account_id: str, default_currency: str) -> Balance:
    """Available and pending per currency; an account without activity shows its default
    currency at zero, as Stripe does."""
    accounts = await JournalRepository(db).ledger_accounts_named(account_id, [AVAILABLE, PENDING])
    currencies = sorted({a.currency for a in accounts}) or [default_currency]
    amounts = {(a.name, a.currency): a.posted_balance_minor for a in accounts}
    return Balance(
        available=tuple(BalanceAmount(amounts.get((AVAILABLE, c), 0), c) for c in currencies),
        pending=tuple(BalanceAmount(amounts.get((PENDING, c), 0), c) for c in currencies),
    )
