"""The ledger's background work, run by the worker as periodic tasks.

- release due funds: pending balance transactions whose `available_on` has passed move from
  pending to available; each account touched gets one `balance.available` event.
- expire authorizations: open pending transactions past their expiry are voided.
- advance payouts: the simulated bank moves payouts to in_transit, then paid or failed.
- automatic payouts: once a day per account with `automatic_payouts`.

Each task works in batches, one database transaction per batch, and claims rows with SKIP
LOCKED, so several workers share the work. Within a batch, accounts are handled in id order:
every worker takes account chain locks in the same order and two batches cannot deadlock.
"""

from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.ledger import events, journal, payouts
from remit.ledger.balance_repository import BalanceRepository
from remit.ledger.balances import read_balance
from remit.ledger.messages import balance_message
from remit.ledger.objects import BalanceTransaction
from remit.ledger.postings import account_for, make_available
from remit.ledger.repository import JournalRepository
from remit.worker.runner import Periodic

BATCH: Final = 200


async def release_due_funds(
    db: AsyncConnection, *, now: datetime, limit: int = BATCH
) -> dict[str, list[BalanceTransaction]]:
    """Make one batch of due funds available; returns what moved, by account."""
    due = await BalanceRepository(db).claim_due_balance_transactions(now=now, limit=limit)
    by_account: dict[str, list[BalanceTransaction]] = defaultdict(list)
    for txn in sorted(due, key=lambda t: (t.account_id, t.available_on, t.id)):
        by_account[txn.account_id].append(await make_available(db, txn, now=now))
    for account_id in by_account:
        account = await account_for(db, account_id)
        balance = await read_balance(db, account_id, account.default_currency)
        await events.record_event(
            db,
            account_id=account_id,
            type=events.BALANCE_AVAILABLE,
            message=balance_message(balance),
            object_id=None,
            now=now,
        )
    return dict(by_account)


async def expire_authorizations(db: AsyncConnection, *, now: datetime, limit: int = BATCH) -> int:
    """Void open pending transactions whose expiry has passed; returns how many."""
    due = await JournalRepository(db).due_open_pending(now, limit)
    for account_id, pending_id in sorted(due):
        await journal.expire_pending(db, account_id, pending_id, now=now)
    return len(due)


async def advance_payouts(db: AsyncConnection, *, now: datetime, limit: int = BATCH) -> int:
    """Advance one batch of in-flight payouts; returns how many changed status."""
    in_flight = await BalanceRepository(db).claim_payouts_in_flight(limit=limit)
    changed = 0
    for payout in sorted(in_flight, key=lambda p: (p.account_id, p.id)):
        advanced = await payouts.advance_payout(db, payout, now=now)
        changed += advanced.status is not payout.status
    return changed


async def _release_count(db: AsyncConnection, now: datetime) -> int:
    return sum(map(len, (await release_due_funds(db, now=now)).values()))


async def _expire_count(db: AsyncConnection, now: datetime) -> int:
    return await expire_authorizations(db, now=now)


async def _advance_count(db: AsyncConnection, now: datetime) -> int:
    return await advance_payouts(db, now=now)


Step = Callable[[AsyncConnection, datetime], Awaitable[int]]


def ledger_tasks(engine: AsyncEngine, clock: Clock | None = None) -> list[Periodic]:
    time = clock or SystemClock()

    def batched(name: str, step: Step) -> Periodic:
        async def run() -> None:
            # Keep going while batches come back full.
            while True:
                async with engine.begin() as db:
                    done = await step(db, time.now())
                if done < BATCH:
                    return

        return Periodic(name, 5.0, run)

    async def automatic_payouts() -> None:
        async with engine.begin() as db:
            await payouts.create_automatic_payouts(db, now=time.now())

    return [
        batched("ledger-release-available-funds", _release_count),
        batched("ledger-expire-authorizations", _expire_count),
        batched("ledger-advance-payouts", _advance_count),
        Periodic("ledger-automatic-payouts", 600.0, automatic_payouts),
    ]
