"""The journal: balanced postings, idempotent ids, two-phase transfers, guards, reversals."""

from dataclasses import replace
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.ledger import journal
from remit.ledger.domain import (
    BalanceChange,
    LedgerError,
    PendingStatus,
    Posting,
    TransactionKind,
    TransactionRequest,
    chain_hash,
)
from remit.ledger.repository import JournalRepository
from remit.ledger.tables import ledger_postings, ledger_transactions
from remit.storage import fastsql
from remit.storage.engine import batched_unit
from tests.support.statements import statements_sent

pytestmark = pytest.mark.anyio


def move(
    txid: str, source: str, target: str, amount: int, currency: str = "usd", **options: object
) -> TransactionRequest:
    return TransactionRequest(
        transaction_id=txid,
        postings=(Posting(source, -amount, currency), Posting(target, amount, currency)),
        **options,  # type: ignore[arg-type]
    )


async def balance(engine: AsyncEngine, account_id: str, name: str, currency: str = "usd") -> int:
    async with engine.connect() as db:
        found = await JournalRepository(db).get_ledger_account(account_id, name, currency)
    return 0 if found is None else found.posted_balance_minor


async def count_transactions(engine: AsyncEngine) -> int:
    async with engine.connect() as db:
        return int(
            (await db.execute(select(func.count()).select_from(ledger_transactions))).scalar_one()
        )


async def test_a_posted_transaction_moves_money_and_chains_onto_the_previous_one(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        first = await journal.post(
            db, account_id, move("t1", "world", "wallet", 500), now=clock.now()
        )
        second = await journal.post(
            db, account_id, move("t2", "wallet", "savings", 200), now=clock.now()
        )
    assert (first.transaction.sequence, second.transaction.sequence) == (1, 2)
    assert first.transaction.previous_hash == ""
    assert second.transaction.previous_hash == first.transaction.hash
    assert await balance(core_engine, account_id, "world") == -500
    assert await balance(core_engine, account_id, "wallet") == 300
    assert await balance(core_engine, account_id, "savings") == 200


async def test_postings_that_do_not_sum_to_zero_are_refused(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    request = TransactionRequest(
        transaction_id="bad",
        postings=(Posting("world", -500, "usd"), Posting("wallet", 499, "usd")),
    )
    async with core_engine.begin() as db:
        with pytest.raises(LedgerError) as raised:
            await journal.post(db, account_id, request, now=clock.now())
    assert raised.value.code == "transaction_unbalanced"
    assert await count_transactions(core_engine) == 0


async def test_a_retry_with_the_same_id_replays_and_another_payload_is_a_named_error(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        first = await journal.post(
            db, account_id, move("t1", "world", "wallet", 500), now=clock.now()
        )
    clock.advance(30)
    async with core_engine.begin() as db:
        again = await journal.post(
            db, account_id, move("t1", "world", "wallet", 500), now=clock.now()
        )
    assert again.replayed
    assert again.transaction == first.transaction
    async with core_engine.begin() as db:
        with pytest.raises(LedgerError) as raised:
            await journal.post(db, account_id, move("t1", "world", "wallet", 501), now=clock.now())
    assert raised.value.code == "transaction_exists_with_different_payload"
    assert await balance(core_engine, account_id, "wallet") == 500
    assert await count_transactions(core_engine) == 1


async def test_a_pending_transaction_reserves_then_posts_partially_and_releases_the_rest(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        await journal.post(db, account_id, move("fund", "world", "wallet", 1000), now=clock.now())
        await journal.post(
            db, account_id, move("hold", "wallet", "merchant", 800, pending=True), now=clock.now()
        )
        wallet = await JournalRepository(db).get_ledger_account(account_id, "wallet", "usd")
    assert wallet is not None
    assert (wallet.posted_balance_minor, wallet.pending_outgoing_minor) == (1000, 800)
    async with core_engine.begin() as db:
        posted = await journal.post_pending(
            db,
            account_id,
            pending_transaction_id="hold",
            transaction_id="capture",
            postings=(Posting("wallet", -300, "usd"), Posting("merchant", 300, "usd")),
            now=clock.now(),
        )
        repo = JournalRepository(db)
        wallet = await repo.get_ledger_account(account_id, "wallet", "usd")
        merchant = await repo.get_ledger_account(account_id, "merchant", "usd")
        hold = await repo.get_transaction(account_id, "hold")
    assert posted.transaction.kind is TransactionKind.POST_PENDING
    assert wallet is not None
    assert merchant is not None
    assert hold is not None
    assert (wallet.posted_balance_minor, wallet.pending_outgoing_minor) == (700, 0)
    assert (merchant.posted_balance_minor, merchant.pending_incoming_minor) == (300, 0)
    assert (hold.pending_status, hold.resolved_by) == (PendingStatus.POSTED, "capture")
    async with core_engine.begin() as db:
        with pytest.raises(LedgerError) as raised:
            await journal.void_pending(
                db,
                account_id,
                pending_transaction_id="hold",
                transaction_id="void",
                now=clock.now(),
            )
    assert raised.value.code == "pending_transaction_already_posted"


async def test_a_partial_post_cannot_exceed_the_reservation(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        await journal.post(
            db, account_id, move("hold", "world", "merchant", 100, pending=True), now=clock.now()
        )
    async with core_engine.begin() as db:
        with pytest.raises(LedgerError) as raised:
            await journal.post_pending(
                db,
                account_id,
                pending_transaction_id="hold",
                transaction_id="capture",
                postings=(Posting("world", -101, "usd"), Posting("merchant", 101, "usd")),
                now=clock.now(),
            )
    assert raised.value.code == "amount_too_large"


async def test_a_void_releases_the_reservation_and_an_expired_one_can_only_be_voided(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    expiry = clock.now() + timedelta(hours=1)
    async with core_engine.begin() as db:
        await journal.post(db, account_id, move("fund", "world", "wallet", 100), now=clock.now())
        await journal.post(
            db,
            account_id,
            move("h1", "wallet", "shop", 60, pending=True, expires_at=expiry),
            now=clock.now(),
        )
        await journal.void_pending(
            db, account_id, pending_transaction_id="h1", transaction_id="v1", now=clock.now()
        )
        await journal.post(
            db,
            account_id,
            move("h2", "wallet", "shop", 60, pending=True, expires_at=expiry),
            now=clock.now(),
        )
    clock.advance(3601)
    async with core_engine.begin() as db:
        with pytest.raises(LedgerError) as raised:
            await journal.post_pending(
                db, account_id, pending_transaction_id="h2", transaction_id="c2", now=clock.now()
            )
    assert raised.value.code == "pending_transaction_expired"
    from remit.ledger.jobs import expire_authorizations

    async with core_engine.begin() as db:
        assert await expire_authorizations(db, now=clock.now()) == 1
        wallet = await JournalRepository(db).get_ledger_account(account_id, "wallet", "usd")
        h2 = await JournalRepository(db).get_transaction(account_id, "h2")
    assert wallet is not None
    assert h2 is not None
    assert (wallet.posted_balance_minor, wallet.pending_outgoing_minor) == (100, 0)
    assert (h2.pending_status, h2.resolved_by) == (PendingStatus.VOIDED, "h2:expired")


async def test_a_guarded_account_never_goes_negative_and_a_refused_posting_writes_nothing(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        await journal.post(db, account_id, move("fund", "world", "wallet", 100), now=clock.now())
    async with core_engine.begin() as db:
        async with core_engine.connect() as other:
            before = int(
                (
                    await other.execute(select(func.count()).select_from(ledger_postings))
                ).scalar_one()
            )
        with pytest.raises(LedgerError) as raised:
            await journal.post(
                db,
                account_id,
                move("over", "wallet", "shop", 101, guards=frozenset({"wallet"})),
                now=clock.now(),
            )
        # The caller's transaction is still usable and, committed, holds nothing from the try.
    assert raised.value.code == "balance_insufficient"
    async with core_engine.connect() as db:
        after = int(
            (await db.execute(select(func.count()).select_from(ledger_postings))).scalar_one()
        )
        assert await JournalRepository(db).get_transaction(account_id, "over") is None
        assert await JournalRepository(db).get_ledger_account(account_id, "shop", "usd") is None
    assert after == before
    assert await balance(core_engine, account_id, "wallet") == 100


async def test_a_reservation_counts_against_a_guard(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    guard = frozenset({"wallet"})
    async with core_engine.begin() as db:
        await journal.post(db, account_id, move("fund", "world", "wallet", 100), now=clock.now())
        await journal.post(
            db,
            account_id,
            move("hold", "wallet", "shop", 70, pending=True, guards=guard),
            now=clock.now(),
        )
    async with core_engine.begin() as db:
        with pytest.raises(LedgerError):
            await journal.post(
                db, account_id, move("spend", "wallet", "shop", 31, guards=guard), now=clock.now()
            )
    async with core_engine.begin() as db:
        await journal.post(
            db, account_id, move("spend", "wallet", "shop", 30, guards=guard), now=clock.now()
        )
    assert await balance(core_engine, account_id, "wallet") == 70


async def test_a_reversal_negates_a_transaction_once(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        await journal.post(db, account_id, move("t1", "world", "wallet", 250), now=clock.now())
        reversal = await journal.reverse(
            db, account_id, transaction_id="t1", reversal_id="t1:rev", now=clock.now()
        )
    assert reversal.transaction.metadata == {"reverses": "t1"}
    assert await balance(core_engine, account_id, "wallet") == 0
    async with core_engine.begin() as db:
        with pytest.raises(LedgerError) as raised:
            await journal.reverse(
                db, account_id, transaction_id="t1", reversal_id="t1:rev2", now=clock.now()
            )
    assert raised.value.code == "transaction_already_reversed"


async def test_postings_cannot_be_edited_in_place(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        await journal.post(db, account_id, move("t1", "world", "wallet", 250), now=clock.now())
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError, match="append-only"):
        async with core_engine.begin() as db:
            await db.execute(ledger_postings.update().values(amount_minor=1))


async def test_a_posting_is_one_statement(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """Chain head, replay check, ledger account locks, guards, hash and write in one statement
    (`ledger_post`), so the chain head is never held across a round trip to the client. A
    replay is that statement plus the read of the recorded transaction."""
    async with core_engine.begin() as db:
        await journal.post(db, account_id, move("t1", "world", "wallet", 500), now=clock.now())
    with statements_sent(core_engine) as statements:
        async with core_engine.begin() as db:
            await journal.post(db, account_id, move("t2", "wallet", "world", 200), now=clock.now())
            posted = len(statements)
            replay = await journal.post(
                db, account_id, move("t2", "wallet", "world", 200), now=clock.now()
            )
    assert posted == 1, statements
    assert "ledger_post(" in statements[0]
    assert replay.replayed
    assert len(statements) == 1 + 3  # the posting, the transaction, its postings
    assert await balance(core_engine, account_id, "wallet") == 300


async def test_the_server_hashes_a_posting_exactly_as_the_chain_is_verified(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """`ledger_post` learns the sequence under the chain head's lock and hashes on the server;
    the hash must be the one `chain_hash` recomputes, whatever the metadata and description
    hold (quotes, the word "sequence", non-ASCII text)."""
    request = TransactionRequest(
        transaction_id="t-hash",
        postings=(Posting("world", -700, "usd"), Posting("wallet", 700, "usd")),
        metadata={"sequence": "0", "note": 'say "sequence":0 twice: "sequence":0'},
        description='Caf\u00e9 "sequence":0',
    )
    async with core_engine.begin() as db:
        first = await journal.post(
            db, account_id, move("t0", "world", "wallet", 1), now=clock.now()
        )
        posted = await journal.post(db, account_id, request, now=clock.now())
    stored = posted.transaction
    assert (stored.sequence, stored.previous_hash) == (2, first.transaction.hash)
    assert stored.hash == chain_hash(stored.previous_hash, stored)
    async with core_engine.connect() as db:
        read_back = await JournalRepository(db).get_transaction(account_id, "t-hash")
    assert read_back == stored


async def test_a_refused_guard_names_the_account_and_what_it_lacks(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        await journal.post(db, account_id, move("fund", "world", "wallet", 100), now=clock.now())
        await journal.post(
            db,
            account_id,
            move("hold", "wallet", "escrow", 30, pending=True),
            now=clock.now(),
        )
    async with core_engine.begin() as db:
        with pytest.raises(LedgerError) as raised:
            await journal.post(
                db,
                account_id,
                move("over", "wallet", "shop", 71, guards=frozenset({"wallet"})),
                now=clock.now(),
            )
    assert raised.value.message == ("Insufficient funds in wallet (usd): 70 available, 71 needed.")


async def test_a_refused_id_is_not_remembered_and_goes_through_once_the_money_is_there(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """By design (see `journal`'s docstring): a refusal leaves nothing behind, so the same
    request with the same id, sent again later, is judged on the balances of then."""
    spend = move("spend", "wallet", "shop", 80, guards=frozenset({"wallet"}))
    async with core_engine.begin() as db:
        await journal.post(db, account_id, move("fund", "world", "wallet", 50), now=clock.now())
    async with core_engine.begin() as db:
        with pytest.raises(LedgerError, match="Insufficient funds"):
            await journal.post(db, account_id, spend, now=clock.now())
    async with core_engine.begin() as db:
        await journal.post(db, account_id, move("more", "world", "wallet", 50), now=clock.now())
        retried = await journal.post(db, account_id, spend, now=clock.now())
    assert not retried.replayed
    assert await balance(core_engine, account_id, "shop") == 80


async def test_an_unanswered_posting_goes_out_with_the_commit_and_replays_on_the_server(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """`post_unanswered` sends nothing until the unit commits; the same posting again writes
    nothing more."""
    request = move("t-unanswered", "world", "wallet", 250)
    with statements_sent(core_engine) as statements:
        async with batched_unit(core_engine) as db:
            await journal.post_unanswered(db, account_id, request, now=clock.now())
            assert fastsql.holds(fastsql.driver(db))
    assert len(statements) == 1
    assert "ledger_post(" in statements[0]
    async with batched_unit(core_engine) as db:
        await journal.post_unanswered(db, account_id, request, now=clock.now())
    assert await count_transactions(core_engine) == 1
    assert await balance(core_engine, account_id, "wallet") == 250


@pytest.mark.parametrize(
    "clash",
    [
        pytest.param(move("t-taken", "world", "wallet", 251), id="id taken by another payload"),
        pytest.param(
            move("t-guarded", "wallet", "shop", 251, guards=frozenset({"wallet"})),
            id="guard refuses",
        ),
    ],
)
async def test_an_unanswered_posting_that_cannot_be_written_fails_its_unit_on_the_server(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, clash: TransactionRequest
) -> None:
    async with core_engine.begin() as db:
        await journal.post(db, account_id, move("t-taken", "world", "wallet", 250), now=clock.now())

    async def post_both() -> None:
        async with batched_unit(core_engine) as db:
            await journal.post_unanswered(
                db, account_id, move("t-other", "world", "savings", 5), now=clock.now()
            )
            await journal.post_unanswered(db, account_id, clash, now=clock.now())

    with pytest.raises(psycopg.Error, match="was not recorded") as refused:
        await post_both()
    assert refused.value.sqlstate == "RM500"
    assert await count_transactions(core_engine) == 1
    assert await balance(core_engine, account_id, "wallet") == 250
    assert await balance(core_engine, account_id, "savings") == 0


async def test_a_posting_writes_its_chain_head_once(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """The head is locked without being written and then advanced: one new row version per
    posting on the ledger's hottest row, not two."""
    # This backend's counts not yet reported (from earlier transactions too); no report is
    # made inside a transaction, so the difference across the postings is theirs alone.
    updates = text(
        "SELECT coalesce(sum(n_tup_upd), 0) FROM pg_stat_xact_user_tables "
        "WHERE relname = 'ledger_chains'"
    )
    async with core_engine.begin() as db:
        await journal.post(db, account_id, move("t-first", "world", "wallet", 100), now=clock.now())
    async with core_engine.begin() as db:
        before = (await db.execute(updates)).scalar_one()
        for number in range(3):
            await journal.post(
                db, account_id, move(f"t-head-{number}", "world", "wallet", 100), now=clock.now()
            )
        after = (await db.execute(updates)).scalar_one()
    assert after - before == 3


async def test_a_write_that_misses_a_ledger_account_fails_on_the_server(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """The write checks itself (migration 0009_require): it may go out together with its
    COMMIT, so a write that touched fewer ledger accounts than it meant to must fail the
    transaction on the server, not after it."""
    async with core_engine.begin() as db:
        first = await journal.post(
            db, account_id, move("t1", "world", "wallet", 500), now=clock.now()
        )
    async with core_engine.connect() as db:
        repo = JournalRepository(db)
        world = await repo.get_ledger_account(account_id, "world", "usd")
        wallet = await repo.get_ledger_account(account_id, "wallet", "usd")
    assert world is not None
    assert wallet is not None
    second = replace(first.transaction, id="t2", sequence=2, previous_hash=first.transaction.hash)

    async def write_with_a_missing_account() -> None:
        async with batched_unit(core_engine) as db:
            await JournalRepository(db).write_transaction(
                second,
                payload_digest="digest",
                ledger_account_ids={("world", "usd"): world.id, ("wallet", "usd"): wallet.id},
                changes={
                    world.id: BalanceChange(posted=-500),
                    wallet.id: BalanceChange(posted=500),
                    "la_missing": BalanceChange(posted=0),
                },
                now=clock.now(),
            )

    with pytest.raises(psycopg.Error, match="did not update all 3") as refused:
        await write_with_a_missing_account()
    assert refused.value.sqlstate == "RM500"
    assert await count_transactions(core_engine) == 1
    assert await balance(core_engine, account_id, "wallet") == 500
