"""The database itself refuses a reversal that is not exactly the negation of the transaction it
reverses, or that reverses one already reversed or a reversal, and records the original as
reversed in the reversal's own statement (core migration 0072_ledger_reversals_negate,
`ledger_write_reversal`): the write fails with RM500 and nothing of it is written.

The journal builds a reversal from the original itself, so these tests write through the
repository, as a caller with a bug would, with balanced legs and the balance changes they make
(what 0063 and 0071 already check)."""

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
    LedgerError,
    LedgerTransaction,
    Posting,
    TransactionKind,
    TransactionRequest,
    balance_changes,
    chain_hash,
)
from remit.ledger.repository import JournalRepository
from remit.ledger.tables import ledger_transactions
from remit.storage.engine import batched_unit

pytestmark = pytest.mark.anyio

# `paid`, posted with these legs; `held`, reserved with them; `fee'd`, three legs.
PAID = (Posting("world", -500, "usd"), Posting("wallet", 500, "usd"))
FEED = (
    Posting("world", -500, "usd"),
    Posting("wallet", 470, "usd"),
    Posting("fees", 30, "usd"),
)


def negated(legs: tuple[Posting, ...]) -> tuple[Posting, ...]:
    return tuple(Posting(leg.ledger_account, -leg.amount_minor, leg.currency) for leg in legs)


async def _history(engine: AsyncEngine, clock: FixedClock, account_id: str) -> None:
    now = clock.now()
    async with engine.begin() as db:
        await journal.post(db, account_id, TransactionRequest("paid", PAID), now=now)
        await journal.post(db, account_id, TransactionRequest("feed", FEED), now=now)
        held = TransactionRequest("held", PAID, pending=True)
        await journal.post(db, account_id, held, now=now)


async def _write(
    engine: AsyncEngine,
    clock: FixedClock,
    account_id: str,
    legs: tuple[Posting, ...],
    metadata: Mapping[str, str],
    transaction_id: str = "reversal",
) -> None:
    """What the journal writes for a reversal (`journal._record`), with the given legs and
    metadata and the balance changes they make, but none of its checks."""
    now = clock.now()
    keys = {posting.key for posting in legs}
    async with batched_unit(engine) as db:
        repo = JournalRepository(db)
        locks = await repo.lock_for_posting(account_id, transaction_id)
        found = await repo.lock_ledger_accounts(account_id, keys)
        ids = {key: account.id for key, account in found.items()}
        ids |= await repo.create_ledger_accounts(
            account_id, keys - ids.keys(), non_negative=NON_NEGATIVE, now=now
        )
        last_sequence, last_hash = locks.chain
        unsigned = LedgerTransaction(
            account_id=account_id,
            id=transaction_id,
            sequence=last_sequence + 1,
            kind=TransactionKind.POSTED,
            postings=legs,
            metadata=dict(metadata),
            description=None,
            created_at=now,
            hash="",
            previous_hash=last_hash,
        )
        changes = balance_changes(TransactionKind.POSTED, legs)
        await repo.write_transaction(
            replace(unsigned, hash=chain_hash(last_hash, unsigned)),
            payload_digest="digest",
            ledger_account_ids=ids,
            changes={ids[key]: change for key, change in changes.items()},
            now=now,
        )


async def _state(engine: AsyncEngine, account_id: str) -> tuple[int, dict[str, str]]:
    """How many transactions the account has, and which were reversed by which."""
    t = ledger_transactions.c
    async with engine.connect() as db:
        count = await db.execute(
            select(func.count()).select_from(ledger_transactions).where(t.account_id == account_id)
        )
        reversed_by = await db.execute(
            select(t.id, t.reversed_by).where(
                t.account_id == account_id, t.reversed_by.is_not(None)
            )
        )
        return int(count.scalar_one()), {row.id: row.reversed_by for row in reversed_by}


REVERSES_PAID = {"reverses": "paid"}
REFUSED = {
    "a changed amount": (
        (Posting("world", 400, "usd"), Posting("wallet", -400, "usd")),
        REVERSES_PAID,
        "leg 1 is not the negation of leg 1 of paid",
    ),
    "a swapped account": (
        (Posting("world", 500, "usd"), Posting("savings", -500, "usd")),
        REVERSES_PAID,
        "leg 2 is not the negation of leg 2 of paid",
    ),
    "a missing leg": (
        (Posting("world", 500, "usd"), Posting("wallet", -500, "usd")),
        {"reverses": "feed"},
        "it has 2 legs, feed has 3",
    ),
    "a leg too many": (
        (*negated(PAID), Posting("fees", 1, "usd"), Posting("world", -1, "usd")),
        REVERSES_PAID,
        "it has 4 legs, paid has 2",
    ),
    "the original's legs, not negated": (PAID, REVERSES_PAID, "leg 1 is not the negation"),
    "no transaction named": (negated(PAID), {}, "its metadata names no transaction"),
    "a transaction that does not exist": (
        negated(PAID),
        {"reverses": "nothing"},
        "nothing is not a posted transaction",
    ),
    "a pending transaction": (
        negated(PAID),
        {"reverses": "held"},
        "held is not a posted transaction",
    ),
}


@pytest.mark.parametrize(("legs", "metadata", "message"), REFUSED.values(), ids=REFUSED.keys())
async def test_a_reversal_must_negate_exactly_what_it_reverses(
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    legs: tuple[Posting, ...],
    metadata: Mapping[str, str],
    message: str,
) -> None:
    await _history(core_engine, clock, account_id)
    with pytest.raises(psycopg.Error, match=message) as refused:
        await _write(core_engine, clock, account_id, legs, metadata)
    assert refused.value.sqlstate == "RM500"
    assert await _state(core_engine, account_id) == (3, {})


async def test_the_exact_negation_is_written_and_records_the_original_as_reversed(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await _history(core_engine, clock, account_id)
    await _write(core_engine, clock, account_id, negated(FEED), {"reverses": "feed"})
    assert await _state(core_engine, account_id) == (4, {"feed": "reversal"})


async def test_a_transaction_is_reversed_once(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await _history(core_engine, clock, account_id)
    await _write(core_engine, clock, account_id, negated(PAID), REVERSES_PAID)
    with pytest.raises(psycopg.Error, match="paid was already reversed by reversal") as refused:
        await _write(core_engine, clock, account_id, negated(PAID), REVERSES_PAID, "again")
    assert refused.value.sqlstate == "RM500"
    assert await _state(core_engine, account_id) == (4, {"paid": "reversal"})


async def test_a_reversal_is_not_reversed(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    await _history(core_engine, clock, account_id)
    async with core_engine.begin() as db:
        await journal.reverse(
            db, account_id, transaction_id="paid", reversal_id="paid:rev", now=clock.now()
        )
    with pytest.raises(psycopg.Error, match="paid:rev is itself the reversal of paid") as refused:
        await _write(core_engine, clock, account_id, PAID, {"reverses": "paid:rev"})
    assert refused.value.sqlstate == "RM500"
    # The journal refuses it before it writes anything.
    async with core_engine.begin() as db:
        with pytest.raises(LedgerError) as raised:
            await journal.reverse(
                db, account_id, transaction_id="paid:rev", reversal_id="again", now=clock.now()
            )
    assert raised.value.code == "transaction_is_reversal"
    assert await _state(core_engine, account_id) == (4, {"paid": "paid:rev"})


async def test_a_transaction_that_only_says_it_reverses_one_can_be_reversed(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """A caller's metadata may say "reverses": a reversal is one its original names back."""
    await _history(core_engine, clock, account_id)
    async with core_engine.begin() as db:
        request = TransactionRequest("says", PAID, metadata={"reverses": "paid"})
        await journal.post(db, account_id, request, now=clock.now())
        await journal.reverse(
            db, account_id, transaction_id="says", reversal_id="says:rev", now=clock.now()
        )
    assert await _state(core_engine, account_id) == (5, {"says": "says:rev"})
