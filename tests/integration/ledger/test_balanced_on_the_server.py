"""The database itself refuses a posting whose legs do not sum to zero in every currency, or
whose balance changes are not the ones its legs make (core migration
0063_ledger_balanced_on_server: `ledger_post`, and `ledger_write_balanced` in the write of a
pending resolution or a reversal), whatever the caller computed: the statement fails with RM500
(an internal error to the core's callers) and nothing of the posting is written.

The journal's own validation (`validate_postings`) runs before either, so these tests call the
repository directly, as a caller with a bug would."""

from collections.abc import Mapping
from dataclasses import replace

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.ledger import journal
from remit.ledger.chart import NON_NEGATIVE
from remit.ledger.domain import (
    MAX_POSTING_AMOUNT,
    BalanceChange,
    LedgerTransaction,
    PendingStatus,
    Posting,
    TransactionKind,
    TransactionRequest,
    balance_changes,
    chain_hash,
)
from remit.ledger.repository import JournalRepository
from remit.ledger.tables import ledger_accounts, ledger_postings, ledger_transactions
from remit.storage.engine import batched_unit

pytestmark = pytest.mark.anyio


def unsigned(
    clock: FixedClock,
    account_id: str,
    txid: str,
    postings: tuple[Posting, ...],
    kind: TransactionKind = TransactionKind.POSTED,
) -> LedgerTransaction:
    return LedgerTransaction(
        account_id=account_id,
        id=txid,
        sequence=0,
        kind=kind,
        postings=postings,
        metadata={},
        description=None,
        created_at=clock.now(),
        hash="",
        previous_hash="",
        pending_status=PendingStatus.OPEN if kind is TransactionKind.PENDING else None,
    )


async def rows(engine: AsyncEngine) -> tuple[int, int, int]:
    """How many ledger transactions, postings and non-zero ledger accounts there are."""
    async with engine.connect() as db:
        transactions = (
            await db.execute(select(func.count()).select_from(ledger_transactions))
        ).scalar_one()
        postings = (
            await db.execute(select(func.count()).select_from(ledger_postings))
        ).scalar_one()
        moved = (
            await db.execute(
                select(func.count())
                .select_from(ledger_accounts)
                .where(
                    (ledger_accounts.c.posted_balance_minor != 0)
                    | (ledger_accounts.c.pending_incoming_minor != 0)
                    | (ledger_accounts.c.pending_outgoing_minor != 0)
                )
            )
        ).scalar_one()
    return int(transactions), int(postings), int(moved)


async def post_directly(
    engine: AsyncEngine,
    transaction: LedgerTransaction,
    changes: Mapping[tuple[str, str], BalanceChange] | None = None,
    *,
    answered: bool = True,
) -> None:
    async with batched_unit(engine) as db:
        await JournalRepository(db).post(
            transaction,
            payload_digest="digest",
            changes=balance_changes(transaction.kind, transaction.postings)
            if changes is None
            else changes,
            flagged_by_default=NON_NEGATIVE,
            answered=answered,
        )


UNBALANCED = {
    "short by one": (Posting("world", -500, "usd"), Posting("wallet", 499, "usd")),
    "zero overall, not per currency": (
        Posting("world", -500, "usd"),
        Posting("wallet", 500, "eur"),
    ),
    "one leg": (Posting("wallet", 500, "usd"),),
}


@pytest.mark.parametrize("answered", [True, False], ids=["answered", "deferred"])
@pytest.mark.parametrize("legs", UNBALANCED.values(), ids=UNBALANCED.keys())
async def test_ledger_post_refuses_legs_that_do_not_sum_to_zero_per_currency(
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    legs: tuple[Posting, ...],
    answered: bool,
) -> None:
    with pytest.raises(psycopg.Error, match="refused: its legs sum to") as refused:
        await post_directly(
            core_engine, unsigned(clock, account_id, "t-unbalanced", legs), answered=answered
        )
    assert refused.value.sqlstate == "RM500"
    assert await rows(core_engine) == (0, 0, 0)


MISMATCHED = {
    "posted moved by another amount": (
        TransactionKind.POSTED,
        {
            ("world", "usd"): BalanceChange(posted=-500),
            ("wallet", "usd"): BalanceChange(posted=400),
        },
    ),
    "posted reserved instead": (
        TransactionKind.POSTED,
        {
            ("world", "usd"): BalanceChange(pending_outgoing=500),
            ("wallet", "usd"): BalanceChange(pending_incoming=500),
        },
    ),
    "pending posted instead": (
        TransactionKind.PENDING,
        {
            ("world", "usd"): BalanceChange(posted=-500),
            ("wallet", "usd"): BalanceChange(posted=500),
        },
    ),
    "pending reserved the wrong way": (
        TransactionKind.PENDING,
        {
            ("world", "usd"): BalanceChange(pending_incoming=500),
            ("wallet", "usd"): BalanceChange(pending_outgoing=500),
        },
    ),
    "an account no leg names": (
        TransactionKind.POSTED,
        {
            ("world", "usd"): BalanceChange(posted=-500),
            ("wallet", "usd"): BalanceChange(posted=500),
            ("savings", "usd"): BalanceChange(posted=1),
        },
    ),
}


@pytest.mark.parametrize(("kind", "changes"), MISMATCHED.values(), ids=MISMATCHED.keys())
async def test_ledger_post_refuses_balance_changes_that_are_not_the_legs(
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    kind: TransactionKind,
    changes: dict[tuple[str, str], BalanceChange],
) -> None:
    legs = (Posting("world", -500, "usd"), Posting("wallet", 500, "usd"))
    with pytest.raises(psycopg.Error, match="are not the ones its legs make") as refused:
        await post_directly(core_engine, unsigned(clock, account_id, "t-m", legs, kind), changes)
    assert refused.value.sqlstate == "RM500"
    assert await rows(core_engine) == (0, 0, 0)


async def test_the_largest_legs_still_balance_on_the_server(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """64 legs at the largest amount sum to zero, though their running sum passes a bigint's
    range on the way; posted, then reversed through the write of a resolution or reversal."""
    legs = tuple(
        Posting(f"acct{number}", MAX_POSTING_AMOUNT * (1 if number < 32 else -1), "usd")
        for number in range(64)
    )
    async with core_engine.begin() as db:
        await journal.post(db, account_id, TransactionRequest("t-big", legs), now=clock.now())
    async with core_engine.begin() as db:
        await journal.reverse(
            db, account_id, transaction_id="t-big", reversal_id="t-big-back", now=clock.now()
        )
    assert await rows(core_engine) == (2, 128, 0)


async def _write_directly(
    engine: AsyncEngine,
    clock: FixedClock,
    account_id: str,
    legs: tuple[Posting, ...],
    changes: Mapping[tuple[str, str], BalanceChange],
    *,
    kind: TransactionKind = TransactionKind.POSTED,
    released: tuple[Posting, ...] = (),
    pending_transaction_id: str | None = None,
) -> None:
    """A write of `legs` after the account's first posting, with `changes` as its balance
    changes: by default reversal-shaped (a POSTED transaction that releases nothing)."""
    async with engine.connect() as db:
        repo = JournalRepository(db)
        first = await repo.get_transaction(account_id, "t1")
        found = await repo.lock_ledger_accounts(account_id, changes)
    assert first is not None
    ids = {key: account.id for key, account in found.items()}
    second = replace(
        first,
        id="t2",
        kind=kind,
        sequence=2,
        previous_hash=first.hash,
        postings=legs,
        hash="",
        pending_status=None,
        pending_transaction_id=pending_transaction_id,
    )
    second = replace(second, hash=chain_hash(first.hash, second))
    async with batched_unit(engine) as db:
        await JournalRepository(db).write_transaction(
            second,
            payload_digest="digest",
            ledger_account_ids=ids,
            changes={ids[key]: change for key, change in changes.items()},
            released=released,
            now=clock.now(),
        )


async def _first_posting(engine: AsyncEngine, clock: FixedClock, account_id: str) -> None:
    request = TransactionRequest(
        "t1",
        (
            Posting("world", -500, "usd"),
            Posting("wallet", 500, "usd"),
            Posting("world", -7, "eur"),
            Posting("wallet", 7, "eur"),
        ),
    )
    async with engine.begin() as db:
        await journal.post(db, account_id, request, now=clock.now())


async def test_a_resolution_or_reversal_write_refuses_legs_that_do_not_sum_to_zero(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await _first_posting(core_engine, clock, account_id)
    # Zero overall, but not in either currency; the changes are the legs'.
    legs = (Posting("wallet", -5, "usd"), Posting("wallet", 5, "eur"))
    changes = balance_changes(TransactionKind.POSTED, legs)
    # Whichever currency it sums first (the ledger accounts go in id order).
    unbalanced = r"refused: its legs sum to (-5 in usd|5 in eur), not to zero"
    with pytest.raises(psycopg.Error, match=unbalanced) as refused:
        await _write_directly(core_engine, clock, account_id, legs, changes)
    assert refused.value.sqlstate == "RM500"
    assert await rows(core_engine) == (1, 4, 4)


async def test_a_resolution_or_reversal_write_refuses_changes_that_are_not_the_legs(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await _first_posting(core_engine, clock, account_id)
    legs = (Posting("wallet", -5, "usd"), Posting("world", 5, "usd"))
    changes = {
        ("wallet", "usd"): BalanceChange(posted=-5),
        ("world", "usd"): BalanceChange(posted=50),
    }
    with pytest.raises(psycopg.Error, match="are not the ones its legs") as refused:
        await _write_directly(core_engine, clock, account_id, legs, changes)
    assert refused.value.sqlstate == "RM500"
    assert await rows(core_engine) == (1, 4, 4)


async def test_a_resolution_write_refuses_a_release_that_is_not_the_pending_legs(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """A void's changes give back the reservation of the legs it releases, and no more."""
    legs = (Posting("world", -5, "usd"), Posting("wallet", 5, "usd"))
    async with core_engine.begin() as db:
        reserve = TransactionRequest("t1", legs, pending=True)
        await journal.post(db, account_id, reserve, now=clock.now())
    kind = TransactionKind.VOID_PENDING
    gives_back_more = balance_changes(kind, legs, released=legs)
    gives_back_more[("wallet", "usd")].pending_incoming -= 1
    with pytest.raises(psycopg.Error, match="are not the ones its legs and the legs it") as refused:
        await _write_directly(
            core_engine,
            clock,
            account_id,
            legs,
            gives_back_more,
            kind=kind,
            released=legs,
            pending_transaction_id="t1",
        )
    assert refused.value.sqlstate == "RM500"
    assert await rows(core_engine) == (1, 2, 2)
    # The same void with the changes its legs make is written.
    changes = balance_changes(kind, legs, released=legs)
    await _write_directly(
        core_engine,
        clock,
        account_id,
        legs,
        changes,
        kind=kind,
        released=legs,
        pending_transaction_id="t1",
    )
    assert await rows(core_engine) == (2, 4, 0)
