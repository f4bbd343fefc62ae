"""The due funds the release job set aside (`balance_release_failures`, core migration 0065):
read them, and try one again.

The release job sets aside funds whose move the database refuses for its values (an available
balance that would pass a bigint's range) and claims them no more, since they would fail the
same way on every run (`remit.ledger.jobs`). Once an operator has made room (paid out the
balance, say), a retry moves them now, as the job would have, in one transaction: the funds
made available, the set-aside row deleted and the account's `balance.available` event recorded
together. Refused again, the row stays, with the new refusal and its time.

A retry is safe beside running workers and beside another retry: it locks the balance
transaction's row first, and the job claims only pending rows not set aside, skipping those
locked. Whichever comes second finds the funds already available, and changes nothing.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Final

from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.ledger.available_events import announce_available
from remit.ledger.balance_repository import balance_transaction_from_row
from remit.ledger.jobs import release_refusal
from remit.ledger.objects import BalanceTransactionStatus
from remit.ledger.postings import make_available
from remit.ledger.tables import balance_release_failures, balance_transactions

# How long a retry waits for a lock (the balance transaction's row, the account's ledger turn)
# that a worker's batch holds, before it gives up and says to run it again.
LOCK_TIMEOUT_MS: Final = 5000


@dataclass(frozen=True)
class SetAsideRelease:
    """One balance transaction whose funds the release job set aside."""

    id: str
    account_id: str
    net: int  # minor units of `currency`
    currency: str
    available_on: datetime
    failed_at: datetime
    error: str


class RetryOutcome(Enum):
    RELEASED = "released"
    STILL_SET_ASIDE = "still_set_aside"
    # Nothing to do: another retry (or the job, before it was set aside) moved the funds.
    ALREADY_AVAILABLE = "already_available"
    # Pending and not set aside: the release job takes it once it is due.
    NOT_SET_ASIDE = "not_set_aside"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class RetryResult:
    outcome: RetryOutcome
    # The refusal, when it is still set aside.
    error: str | None = None


async def read_set_aside(db: AsyncConnection, *, limit: int) -> tuple[list[SetAsideRelease], bool]:
    """Up to `limit` set-aside releases, the latest set aside first, and whether there are
    more."""
    f, bt = balance_release_failures.c, balance_transactions.c
    rows = (
        await db.execute(
            select(f.id, f.account_id, f.failed_at, f.error, bt.net, bt.currency, bt.available_on)
            .join_from(balance_release_failures, balance_transactions, bt.id == f.id)
            .order_by(f.failed_at.desc(), f.id.desc())
            .limit(limit + 1)
        )
    ).all()
    listed = [
        SetAsideRelease(
            id=row.id,
            account_id=row.account_id,
            net=int(row.net),
            currency=row.currency,
            available_on=row.available_on,
            failed_at=row.failed_at,
            error=row.error,
        )
        for row in rows[:limit]
    ]
    return listed, len(rows) > limit


async def retry_release(db: AsyncConnection, txn_id: str, *, now: datetime) -> RetryResult:
    """Try once more, in `db`'s transaction, to make the set-aside funds of `txn_id`
    available. A lock not had within `LOCK_TIMEOUT_MS` raises the driver's error (SQLSTATE
    55P03), and nothing changes."""
    await db.execute(text(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"))
    row = (
        await db.execute(
            select(balance_transactions)
            .where(balance_transactions.c.id == txn_id)
            .with_for_update()
        )
    ).one_or_none()
    if row is None:
        return RetryResult(RetryOutcome.UNKNOWN)
    txn = balance_transaction_from_row(row)
    # Read under the row's lock: a retry that held it before this one has committed.
    set_aside = await db.scalar(
        select(balance_release_failures.c.id).where(balance_release_failures.c.id == txn_id)
    )
    if set_aside is None:
        if txn.status is BalanceTransactionStatus.AVAILABLE:
            return RetryResult(RetryOutcome.ALREADY_AVAILABLE)
        return RetryResult(RetryOutcome.NOT_SET_ASIDE)
    try:
        async with db.begin_nested():
            await make_available(db, txn, now=now)
    except Exception as error:
        reason = release_refusal(error)
        if reason is None:
            raise
        await db.execute(
            update(balance_release_failures)
            .where(balance_release_failures.c.id == txn_id)
            .values(failed_at=now, error=reason)
        )
        return RetryResult(RetryOutcome.STILL_SET_ASIDE, reason)
    await db.execute(
        delete(balance_release_failures).where(balance_release_failures.c.id == txn_id)
    )
    await announce_available(db, txn.account_id, now)
    return RetryResult(RetryOutcome.RELEASED)
