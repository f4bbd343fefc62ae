"""Stripe's balance, read from the running balances of two ledger accounts: O(1) in entries."""

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.ledger.chart import AVAILABLE, PENDING
from remit.ledger.domain import LedgerAccount
from remit.ledger.objects import Balance, BalanceAmount
from remit.ledger.repository import JournalRepository


def shown_minor(name: str, posted_minor: int, pending_outgoing_minor: int) -> int:
    """What Stripe's balance shows of the ledger account `name`. The available balance shows
    what can be spent: a refund still waiting for the acquirer holds its amount (pending
    outgoing), which Stripe has already debited when the refund was created (and which its
    balance transaction shows). The pending balance has no holds on it."""
    return posted_minor - pending_outgoing_minor if name == AVAILABLE else posted_minor


def _shown(account: LedgerAccount) -> int:
    return shown_minor(account.name, account.posted_balance_minor, account.pending_outgoing_minor)


async def read_balance(db: AsyncConnection, account_id: str, default_currency: str) -> Balance:
    """Available and pending per currency; an account without activity shows its default
    currency at zero, as Stripe does."""
    return balance_of(await read_balance_accounts(db, account_id), default_currency)


async def read_balance_accounts(db: AsyncConnection, account_id: str) -> list[LedgerAccount]:
    """The ledger accounts the balance is read from (`balance_of`): available and pending, in
    each currency the account has used."""
    return await JournalRepository(db).ledger_accounts_named(account_id, [AVAILABLE, PENDING])


def balance_of(accounts: Sequence[LedgerAccount], default_currency: str) -> Balance:
    """The balance `accounts` make; `default_currency` at zero when there are none."""
    currencies = sorted({a.currency for a in accounts}) or [default_currency]
    amounts = {(a.name, a.currency): _shown(a) for a in accounts}
    return Balance(
        available=tuple(BalanceAmount(amounts.get((AVAILABLE, c), 0), c) for c in currencies),
        pending=tuple(BalanceAmount(amounts.get((PENDING, c), 0), c) for c in currencies),
    )
