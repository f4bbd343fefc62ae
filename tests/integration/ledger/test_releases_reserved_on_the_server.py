"""The database itself refuses a pending resolution whose legs, or whose released legs, are not
what the pending transaction reserved as stored, even when its balance changes are the ones
those legs make (core migration 0071_ledger_releases_reserved, `ledger_write_releases`): the
write fails with RM500 and nothing of it is written.

The journal reads the reservation and checks a partial post (`validate_partial_post`) before
it writes, so these tests write through the repository, as a caller with a bug would."""

from dataclasses import dataclass, replace

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.ledger import journal
from remit.ledger.chart import NON_NEGATIVE
from remit.ledger.domain import (
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

RESERVED = (Posting("world", -500, "usd"), Posting("wallet", 500, "usd"))
POST = TransactionKind.POST_PENDING
VOID = TransactionKind.VOID_PENDING


@dataclass(frozen=True)
class Resolution:
    kind: TransactionKind
    legs: tuple[Posting, ...]
    released: tuple[Posting, ...] = RESERVED
    pending_transaction_id: str | None = "reserved"
    # A reversal names the transaction it reverses (core 0072 checks it negates that one).
    metadata: tuple[tuple[str, str], ...] = ()


async def _reserve(engine: AsyncEngine, clock: FixedClock, account_id: str) -> None:
    """`reserved` (RESERVED, pending) and `posted` (the same legs, posted)."""
    async with engine.begin() as db:
        await journal.post(
            db, account_id, TransactionRequest("reserved", RESERVED, pending=True), now=clock.now()
        )
        await journal.post(db, account_id, TransactionRequest("posted", RESERVED), now=clock.now())


async def _write(
    engine: AsyncEngine, clock: FixedClock, account_id: str, resolution: Resolution
) -> None:
    """What the journal writes for a resolution (`journal._record`), with the given legs and
    released legs and the balance changes they make, but none of its checks."""
    now = clock.now()
    keys = {posting.key for posting in resolution.legs + resolution.released}
    async with batched_unit(engine) as db:
        repo = JournalRepository(db)
        locks = await repo.lock_for_posting(account_id, "resolution")
        found = await repo.lock_ledger_accounts(account_id, keys)
        ids = {key: account.id for key, account in found.items()}
        ids |= await repo.create_ledger_accounts(
            account_id, keys - ids.keys(), non_negative=NON_NEGATIVE, now=now
        )
        last_sequence, last_hash = locks.chain
        unsigned = LedgerTransaction(
            account_id=account_id,
            id="resolution",
            sequence=last_sequence + 1,
            kind=resolution.kind,
            postings=resolution.legs,
            metadata=dict(resolution.metadata),
            description=None,
            created_at=now,
            hash="",
            previous_hash=last_hash,
            pending_transaction_id=resolution.pending_transaction_id,
        )
        changes = balance_changes(resolution.kind, resolution.legs, resolution.released)
        await repo.write_transaction(
            replace(unsigned, hash=chain_hash(last_hash, unsigned)),
            payload_digest="digest",
            ledger_account_ids=ids,
            changes={ids[key]: change for key, change in changes.items()},
            released=resolution.released,
            now=now,
        )


async def _transactions(engine: AsyncEngine) -> int:
    async with engine.connect() as db:
        count = await db.execute(select(func.count()).select_from(ledger_transactions))
        return int(count.scalar_one())


REFUSED = {
    "a post larger than reserved": (
        Resolution(POST, (Posting("world", -600, "usd"), Posting("wallet", 600, "usd"))),
        "leg 1 is not within what reserved reserved",
    ),
    "a post on an account not reserved": (
        Resolution(POST, (Posting("world", -500, "usd"), Posting("savings", 500, "usd"))),
        "leg 2 is not within",
    ),
    "a post against the reserved sign": (
        Resolution(POST, (Posting("world", 500, "usd"), Posting("wallet", -500, "usd"))),
        "leg 1 is not within",
    ),
    "a void of other legs": (
        Resolution(VOID, (Posting("world", -400, "usd"), Posting("wallet", 400, "usd"))),
        "leg 1 is not within",
    ),
    "a void of fewer legs": (
        Resolution(VOID, ()),
        "a void records the 2 legs reserved reserved, not 0",
    ),
    "a release of less than reserved": (
        Resolution(
            VOID,
            (Posting("world", -400, "usd"), Posting("wallet", 400, "usd")),
            released=(Posting("world", -400, "usd"), Posting("wallet", 400, "usd")),
        ),
        "released leg 1 is not one reserved reserved",
    ),
    "a release of one leg twice": (
        Resolution(
            POST,
            RESERVED,
            released=(Posting("wallet", 500, "usd"), Posting("wallet", 500, "usd")),
        ),
        "released leg",
    ),
    "a resolution of a posted transaction": (
        Resolution(POST, RESERVED, pending_transaction_id="posted"),
        "posted is not an open pending transaction",
    ),
    "a resolution of nothing": (
        Resolution(VOID, RESERVED, pending_transaction_id=None),
        "none is not an open pending transaction",
    ),
    "a reversal that releases": (
        Resolution(
            TransactionKind.POSTED,
            (Posting("world", 500, "usd"), Posting("wallet", -500, "usd")),
            pending_transaction_id=None,
        ),
        "a posted transaction releases no pending transaction",
    ),
}


@pytest.mark.parametrize(("resolution", "message"), REFUSED.values(), ids=REFUSED.keys())
async def test_a_resolution_must_keep_to_what_was_reserved(
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    resolution: Resolution,
    message: str,
) -> None:
    await _reserve(core_engine, clock, account_id)
    with pytest.raises(psycopg.Error, match=message) as refused:
        await _write(core_engine, clock, account_id, resolution)
    assert refused.value.sqlstate == "RM500"
    assert await _transactions(core_engine) == 2


ALLOWED = {
    "the whole reservation posted": Resolution(POST, RESERVED),
    "part of it posted": Resolution(
        POST, (Posting("world", -200, "usd"), Posting("wallet", 200, "usd"))
    ),
    "the reservation voided": Resolution(VOID, RESERVED),
    "a reversal": Resolution(
        TransactionKind.POSTED,
        (Posting("world", 500, "usd"), Posting("wallet", -500, "usd")),
        released=(),
        pending_transaction_id=None,
        metadata=(("reverses", "posted"),),
    ),
}


@pytest.mark.parametrize("resolution", ALLOWED.values(), ids=ALLOWED.keys())
async def test_a_resolution_within_the_reservation_is_written(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, resolution: Resolution
) -> None:
    await _reserve(core_engine, clock, account_id)
    await _write(core_engine, clock, account_id, resolution)
    assert await _transactions(core_engine) == 3
