"""The ledger's background work, run by the worker as periodic tasks.

- release due funds: pending balance transactions whose `available_on` has passed move from
  pending to available; each account touched gets one `balance.available` event.
- expire authorizations: open pending transactions past their expiry are voided.
- advance payouts: the simulated bank moves due payouts to in_transit, then paid or failed;
  each account whose failed payouts gave their funds back gets one `balance.available` event.
- automatic payouts: once a day per account with `automatic_payouts`.

The first three work in batches, one database transaction per batch. Releases and payouts
claim rows with SKIP LOCKED, so several workers share the work. The expiry of authorizations
reads its rows without locking them, and each expiry holds its account's ledger turn until the
batch commits: copies of it would replay the same rows and keep up to a batch of accounts'
payments waiting, so it runs in one worker at a time (`remit.worker.alone`, `EXPIRE_TASK`).
Within a batch, accounts are handled in id order: every worker takes account chain locks in the
same order and two batches cannot deadlock. Each item of a batch runs in a savepoint: one that
fails is skipped, and the rest of the batch commits. Automatic payouts take one transaction per
account, so an account's ledger turn is held only while its own payout is made.

A run reads batches while they come back full, each one past the last row the one before it
read, in the order the rows are due: the items that failed are not read again by that run, so
a batch of items that fail every time, due before the others, does not hold back those behind
it. A skipped item is tried again on the next run: its failure may pass (the database out of
reach, a lock not granted in time). Each run logs the items it skipped once, together
(`remit.worker.skipped`). Due funds whose release the database refuses for its values
(`remit.storage.driver_errors.refused_for_its_values`: an available balance that would pass a
bigint's range, SQLSTATE 22003) would fail the same way on every run, so they are set aside
instead: recorded once in `balance_release_failures`, logged once, and claimed no more until an
operator retries it (`remit balance-release-failures retry`, `remit.ledger.release_failures`).
"""

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.core.logging import mask_sensitive
from remit.ledger import journal, payouts
from remit.ledger.available_events import announce_available
from remit.ledger.balance_repository import BalanceRepository, payout_due_at
from remit.ledger.objects import BalanceTransaction, Payout
from remit.ledger.postings import make_available
from remit.ledger.repository import JournalRepository
from remit.storage.driver_errors import refused_for_its_values
from remit.storage.outages import log_failure
from remit.worker.alone import run_alone
from remit.worker.runner import Periodic
from remit.worker.skipped import SkippedItems

log = logging.getLogger(__name__)

BATCH: Final = 200
EXPIRE_TASK: Final = "ledger-expire-authorizations"

T = TypeVar("T")
# Where a batch's rows stop, in the order its query reads them (the due time, then the id): the
# next batch of a run reads only past it.
Key = TypeVar("Key", tuple[datetime, str], tuple[datetime, str, str])


@dataclass(frozen=True)
class Batch(Generic[Key]):
    """What one batch claimed, how many of those it handled, and the key of the last row it
    claimed."""

    claimed: int
    done: int
    last: Key | None = None

    def another_may_follow(self, limit: int, after: Key | None) -> bool:
        # A full batch may leave work behind. The next one reads past this one's rows, those
        # that failed included (they wait for the next run), so a run moves on and ends.
        return self.claimed >= limit and self.last is not None and self.last != after


async def _isolated(
    db: AsyncConnection, item: str, work: Callable[[], Awaitable[T]], skipped: SkippedItems
) -> T | None:
    """Run one item's work in a savepoint; if it fails, undo only its writes, note it, go on."""
    try:
        async with db.begin_nested():
            return await work()
    except Exception as error:
        skipped.add(item, error)
        return None


def release_refusal(error: BaseException) -> str | None:
    """Why the database refused to move due funds for their values, as
    `balance_release_failures.error` keeps it (the SQLSTATE, the driver's error class and the
    first line of the server's message, masked); None when it failed for another reason."""
    state = refused_for_its_values(error)
    if state is None:
        return None
    said = str(error).strip().splitlines()
    return f"{state} {type(error).__name__}: {mask_sensitive(said[0] if said else '')}"


async def _release(
    db: AsyncConnection, txn: BalanceTransaction, now: datetime, skipped: SkippedItems
) -> BalanceTransaction | None:
    """Make `txn`'s funds available in a savepoint: the moved transaction when they moved;
    None when the database refused the move for its values and `txn` was set aside, or when
    it failed otherwise (noted in `skipped`: the next run tries it again)."""
    item = f"releasing {txn.id} of {txn.account_id}"
    try:
        async with db.begin_nested():
            return await make_available(db, txn, now=now)
    except Exception as error:
        reason = release_refusal(error)
        if reason is None:
            skipped.add(item, error)
            return None

    async def set_aside() -> bool:
        await BalanceRepository(db).set_aside_release(txn, error=reason, now=now)
        return True

    if not await _isolated(db, f"setting aside {txn.id} of {txn.account_id}", set_aside, skipped):
        return None
    log.error(
        "ledger job: %s failed for good (%s): set aside in balance_release_failures, not "
        "tried again by this job; once there is room, `remit balance-release-failures retry "
        "%s` moves it",
        item,
        reason,
        txn.id,
    )
    return None


async def _release_batch(
    db: AsyncConnection,
    now: datetime,
    limit: int,
    after: tuple[datetime, str] | None,
    skipped: SkippedItems,
) -> tuple[Batch[tuple[datetime, str]], dict[str, list[BalanceTransaction]]]:
    due = await BalanceRepository(db).claim_due_balance_transactions(
        now=now, limit=limit, after=after
    )
    by_account: dict[str, list[BalanceTransaction]] = defaultdict(list)
    for txn in sorted(due, key=lambda t: (t.account_id, t.available_on, t.id)):
        moved = await _release(db, txn, now, skipped)
        if moved is not None:
            by_account[txn.account_id].append(moved)
    for account_id in by_account:

        async def announce(account_id: str = account_id) -> None:
            await announce_available(db, account_id, now)

        await _isolated(db, f"announcing the balance of {account_id}", announce, skipped)
    done = sum(map(len, by_account.values()))
    last = (due[-1].available_on, due[-1].id) if due else None
    return Batch(len(due), done, last), dict(by_account)


async def release_due_funds(
    db: AsyncConnection, *, now: datetime, limit: int = BATCH
) -> dict[str, list[BalanceTransaction]]:
    """Make one batch of due funds available; returns what moved, by account."""
    skipped = SkippedItems(log, "ledger job: releasing due funds")
    _, moved = await _release_batch(db, now, limit, None, skipped)
    skipped.report()
    return moved


async def _expire_batch(
    db: AsyncConnection,
    now: datetime,
    limit: int,
    after: tuple[datetime, str, str] | None,
    skipped: SkippedItems,
) -> Batch[tuple[datetime, str, str]]:
    due = await JournalRepository(db).due_open_pending(now, limit, after=after)
    done = 0
    for account_id, pending_id, _ in sorted(due):

        async def expire(account_id: str = account_id, pending_id: str = pending_id) -> bool:
            await journal.expire_pending(db, account_id, pending_id, now=now)
            return True

        item = f"expiring {pending_id} of {account_id}"
        done += bool(await _isolated(db, item, expire, skipped))
    last = (due[-1].expires_at, due[-1].account_id, due[-1].transaction_id) if due else None
    return Batch(len(due), done, last)


async def expire_authorizations(db: AsyncConnection, *, now: datetime, limit: int = BATCH) -> int:
    """Void open pending transactions whose expiry has passed; returns how many."""
    skipped = SkippedItems(log, "ledger job: expiring authorizations")
    done = (await _expire_batch(db, now, limit, None, skipped)).done
    skipped.report()
    return done


async def _advance_batch(
    db: AsyncConnection,
    now: datetime,
    limit: int,
    after: tuple[datetime, str] | None,
    skipped: SkippedItems,
) -> Batch[tuple[datetime, str]]:
    due = await BalanceRepository(db).claim_due_payouts(
        now=now, submission_delay=payouts.SUBMISSION_DELAY, limit=limit, after=after
    )
    done = 0
    returned: set[str] = set()
    for payout in sorted(due, key=lambda p: (p.account_id, p.id)):

        async def advance(payout: Payout = payout) -> Payout:
            return await payouts.advance_payout(db, payout, now=now)

        advanced = await _isolated(db, f"advancing {payout.id}", advance, skipped)
        done += advanced is not None
        if advanced is not None and payouts.returned_funds(payout, advanced):
            returned.add(advanced.account_id)
    for account_id in sorted(returned):

        async def announce(account_id: str = account_id) -> None:
            await announce_available(db, account_id, now)

        await _isolated(db, f"announcing the balance of {account_id}", announce, skipped)
    last = (payout_due_at(due[-1], payouts.SUBMISSION_DELAY), due[-1].id) if due else None
    return Batch(len(due), done, last)


async def advance_payouts(db: AsyncConnection, *, now: datetime, limit: int = BATCH) -> int:
    """Advance one batch of due payouts; returns how many moved on."""
    skipped = SkippedItems(log, "ledger job: advancing payouts")
    done = (await _advance_batch(db, now, limit, None, skipped)).done
    skipped.report()
    return done


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


async def _release_step(
    db: AsyncConnection,
    now: datetime,
    limit: int,
    after: tuple[datetime, str] | None,
    skipped: SkippedItems,
) -> Batch[tuple[datetime, str]]:
    return (await _release_batch(db, now, limit, after, skipped))[0]


# One batch of a task: claim up to `limit` rows due by `now` past `after`, handle them, note in
# `skipped` those that failed.
Step = Callable[[AsyncConnection, datetime, int, Key | None, SkippedItems], Awaitable[Batch[Key]]]


def ledger_tasks(engine: AsyncEngine, clock: Clock | None = None) -> list[Periodic]:
    time = clock or SystemClock()

    def batched(name: str, step: Step[Key], *, alone: bool = False) -> Periodic:
        async def run() -> None:
            await run_batches(engine, step, time, name=name)

        async def run_in_one_copy() -> None:
            await run_alone(engine, name, run)

        return Periodic(name, 5.0, run_in_one_copy if alone else run)

    async def automatic_payouts() -> None:
        await create_automatic_payouts(engine, now=time.now())

    return [
        batched("ledger-release-available-funds", _release_step),
        batched(EXPIRE_TASK, _expire_batch, alone=True),
        batched("ledger-advance-payouts", _advance_batch),
        Periodic("ledger-automatic-payouts", 600.0, automatic_payouts),
    ]


async def run_batches(
    engine: AsyncEngine,
    step: Step[Key],
    clock: Clock,
    limit: int = BATCH,
    *,
    name: str = "ledger job",
) -> int:
    """Run batches of a step, one transaction each, each past the rows of the one before,
    while they come back full; returns how many items were handled. The items that failed are
    logged once, together, when the run ends."""
    done = 0
    after: Key | None = None
    skipped = SkippedItems(log, name)
    try:
        while True:
            async with engine.begin() as db:
                batch = await step(db, clock.now(), limit, after, skipped)
            done += batch.done
            if not batch.another_may_follow(limit, after):
                return done
            after = batch.last
    finally:
        skipped.report()
