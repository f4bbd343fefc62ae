"""The ledger's background work, run by the worker as periodic tasks.

- release due funds: pending balance transactions whose `available_on` has passed move from
  pending to available; each account touched gets one `balance.available` event.
- expire authorizations: open pending transactions past their expiry are voided.
- advance payouts: the simulated bank moves due payouts to in_transit, then paid or failed.
- automatic payouts: once a day per account with `automatic_payouts`.

The first three work in batches, one database transaction per batch, and claim rows with SKIP
LOCKED, so several workers share the work. Within a batch, accounts are handled in id order:
every worker takes account chain locks in the same order and two batches cannot deadlock. Each
item of a batch runs in a savepoint: one that fails is logged and skipped, and the rest of the
batch commits. Automatic payouts take one transaction per account, so an account's ledger turn
is held only while its own payout is made.

A skipped item is tried again on the next run: its failure may pass (the database out of
reach, a lock not granted in time). Due funds whose release the database refuses for its
values (`remit.storage.driver_errors.refused_for_its_values`: an available balance that would
pass a bigint's range, SQLSTATE 22003) would fail the same way on every run, so they are set
aside instead: recorded once in `balance_release_failures`, logged once, and claimed no more
until an operator deletes that row.
"""

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.core.logging import mask_sensitive
from remit.ledger import events, journal, payouts
from remit.ledger.balance_repository import BalanceRepository
from remit.ledger.balances import read_balance
from remit.ledger.messages import balance_message
from remit.ledger.objects import BalanceTransaction, Payout
from remit.ledger.postings import account_for, make_available
from remit.ledger.repository import JournalRepository
from remit.storage.driver_errors import refused_for_its_values
from remit.storage.outages import log_failure
from remit.worker.runner import Periodic

log = logging.getLogger(__name__)

BATCH: Final = 200

T = TypeVar("T")


@dataclass(frozen=True)
class Batch:
    """What one batch claimed, how many of those it handled, and how many it set aside (they
    will not be claimed again)."""

    claimed: int
    done: int
    set_aside: int = 0

    def another_may_follow(self, limit: int) -> bool:
        # A full batch may leave work behind; one in which every item failed would only claim
        # the same failing items again (not those set aside: the next batch claims others).
        return self.claimed >= limit and self.done + self.set_aside > 0


async def _isolated(db: AsyncConnection, item: str, work: Callable[[], Awaitable[T]]) -> T | None:
    """Run one item's work in a savepoint; if it fails, undo only its writes, log, go on."""
    try:
        async with db.begin_nested():
            return await work()
    except Exception as error:
        log_failure(log, f"ledger job: {item} (skipped until the next run)", error)
        return None


async def _release(
    db: AsyncConnection, txn: BalanceTransaction, now: datetime
) -> tuple[BalanceTransaction | None, bool]:
    """Make `txn`'s funds available in a savepoint: (the moved transaction, False) when they
    moved; (None, True) when the database refused the move for its values and `txn` was set
    aside; (None, False) when it failed otherwise (logged; the next run tries it again)."""
    item = f"releasing {txn.id} of {txn.account_id}"
    try:
        async with db.begin_nested():
            return await make_available(db, txn, now=now), False
    except Exception as error:
        state = refused_for_its_values(error)
        if state is None:
            log_failure(log, f"ledger job: {item} (skipped until the next run)", error)
            return None, False
        said = str(error).strip().splitlines()
        reason = f"{state} {type(error).__name__}: {mask_sensitive(said[0] if said else '')}"

    async def set_aside() -> bool:
        await BalanceRepository(db).set_aside_release(txn, error=reason, now=now)
        return True

    if not await _isolated(db, f"setting aside {txn.id} of {txn.account_id}", set_aside):
        return None, False
    log.error(
        "ledger job: %s failed for good (%s): set aside in balance_release_failures, not "
        "tried again until its row there is deleted",
        item,
        reason,
    )
    return None, True


async def _release_batch(
    db: AsyncConnection, now: datetime, limit: int
) -> tuple[Batch, dict[str, list[BalanceTransaction]]]:
    due = await BalanceRepository(db).claim_due_balance_transactions(now=now, limit=limit)
    by_account: dict[str, list[BalanceTransaction]] = defaultdict(list)
    set_aside = 0
    for txn in sorted(due, key=lambda t: (t.account_id, t.available_on, t.id)):
        moved, aside = await _release(db, txn, now)
        if moved is not None:
            by_account[txn.account_id].append(moved)
        set_aside += aside
    for account_id in by_account:

        async def announce(account_id: str = account_id) -> None:
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

        await _isolated(db, f"announcing the balance of {account_id}", announce)
    done = sum(map(len, by_account.values()))
    return Batch(len(due), done, set_aside), dict(by_account)


async def release_due_funds(
    db: AsyncConnection, *, now: datetime, limit: int = BATCH
) -> dict[str, list[BalanceTransaction]]:
    """Make one batch of due funds available; returns what moved, by account."""
    _, moved = await _release_batch(db, now, limit)
    return moved


async def _expire_batch(db: AsyncConnection, now: datetime, limit: int) -> Batch:
    due = await JournalRepository(db).due_open_pending(now, limit)
    done = 0
    for account_id, pending_id in sorted(due):

        async def expire(account_id: str = account_id, pending_id: str = pending_id) -> bool:
            await journal.expire_pending(db, account_id, pending_id, now=now)
            return True

        done += bool(await _isolated(db, f"expiring {pending_id} of {account_id}", expire))
    return Batch(len(due), done)


async def expire_authorizations(db: AsyncConnection, *, now: datetime, limit: int = BATCH) -> int:
    """Void open pending transactions whose expiry has passed; returns how many."""
    return (await _expire_batch(db, now, limit)).done


async def _advance_batch(db: AsyncConnection, now: datetime, limit: int) -> Batch:
    due = await BalanceRepository(db).claim_due_payouts(
        now=now, submission_delay=payouts.SUBMISSION_DELAY, limit=limit
    )
    done = 0
    for payout in sorted(due, key=lambda p: (p.account_id, p.id)):

        async def advance(payout: Payout = payout) -> Payout:
            return await payouts.advance_payout(db, payout, now=now)

        done += await _isolated(db, f"advancing {payout.id}", advance) is not None
    return Batch(len(due), done)


async def advance_payouts(db: AsyncConnection, *, now: datetime, limit: int = BATCH) -> int:
    """Advance one batch of due payouts; returns how many moved on."""
    return (await _advance_batch(db, now, limit)).done


async def create_automatic_payouts(engine: AsyncEngine, *, now: datetime) -> list[Payout]:
    """Make today's automatic payouts, one transaction per account owed one; an account that
    fails is logged and left for the next run, and the others go on."""
    async with engine.begin() as db:
        owed = await payouts.accounts_owed_automatic_payout(db, now=now)
    created: list[Payout] = []
    for account_id in owed:
        try:
            async with engine.begin() as db:
                created += await payouts.create_automatic_payouts(db, account_id, now=now)
        except Exception as error:
            log_failure(log, f"ledger job: the automatic payout of {account_id}", error)
    return created


async def _release_step(db: AsyncConnection, now: datetime, limit: int) -> Batch:
    return (await _release_batch(db, now, limit))[0]


Step = Callable[[AsyncConnection, datetime, int], Awaitable[Batch]]


def ledger_tasks(engine: AsyncEngine, clock: Clock | None = None) -> list[Periodic]:
    time = clock or SystemClock()

    def batched(name: str, step: Step) -> Periodic:
        async def run() -> None:
            await run_batches(engine, step, time)

        return Periodic(name, 5.0, run)

    async def automatic_payouts() -> None:
        await create_automatic_payouts(engine, now=time.now())

    return [
        batched("ledger-release-available-funds", _release_step),
        batched("ledger-expire-authorizations", _expire_batch),
        batched("ledger-advance-payouts", _advance_batch),
        Periodic("ledger-automatic-payouts", 600.0, automatic_payouts),
    ]


async def run_batches(engine: AsyncEngine, step: Step, clock: Clock, limit: int = BATCH) -> int:
    """Run batches of a step, one transaction each, while they come back full; returns how
    many items were handled."""
    done = 0
    while True:
        async with engine.begin() as db:
            batch = await step(db, clock.now(), limit)
        done += batch.done
        if not batch.another_may_follow(limit):
            return done
