"""Many postings at once on one account: none is lost, a guarded account never overdraws."""

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.errors import RemitError
from remit.ledger import journal
from remit.ledger import postings as ledger
from remit.ledger.domain import LedgerError, Posting, TransactionRequest
from remit.ledger.repository import JournalRepository
from remit.ledger.service import LedgerService
from remit.ledger.verify import verify_ledger
from tests.support.locks import until_a_session_waits_on_a_lock

pytestmark = pytest.mark.anyio

WRITERS = 40


async def test_simultaneous_postings_on_one_account_lose_no_update(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async def credit(n: int) -> None:
        async with core_engine.begin() as db:
            await journal.post(
                db,
                account_id,
                TransactionRequest(
                    transaction_id=f"credit-{n}",
                    postings=(Posting("world", -(n + 1), "usd"), Posting("wallet", n + 1, "usd")),
                ),
                now=clock.now(),
            )

    await asyncio.gather(*(credit(n) for n in range(WRITERS)))
    async with core_engine.connect() as db:
        wallet = await JournalRepository(db).get_ledger_account(account_id, "wallet", "usd")
        report = await verify_ledger(db, account_id=account_id, now=clock.now())
    assert wallet is not None
    assert wallet.posted_balance_minor == sum(range(1, WRITERS + 1))
    assert report.transactions_checked == WRITERS
    assert report.ok, (report.differences, report.chain_breaks)


async def test_simultaneous_debits_never_overdraw_a_guarded_account(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    async with core_engine.begin() as db:
        await journal.post(
            db,
            account_id,
            TransactionRequest(
                transaction_id="fund",
                postings=(Posting("world", -1_000, "usd"), Posting("wallet", 1_000, "usd")),
            ),
            now=clock.now(),
        )

    refusals: list[str | None] = []

    async def debit(n: int) -> bool:
        try:
            async with core_engine.begin() as db:
                await journal.post(
                    db,
                    account_id,
                    TransactionRequest(
                        transaction_id=f"debit-{n}",
                        postings=(Posting("wallet", -70, "usd"), Posting("shop", 70, "usd")),
                        guards=frozenset({"wallet"}),
                    ),
                    now=clock.now(),
                )
        except LedgerError as error:
            refusals.append(error.code)
            return False
        return True

    outcomes = await asyncio.gather(*(debit(n) for n in range(WRITERS)))
    async with core_engine.connect() as db:
        wallet = await JournalRepository(db).get_ledger_account(account_id, "wallet", "usd")
        report = await verify_ledger(db, account_id=account_id, now=clock.now())
    assert sum(outcomes) == 1_000 // 70
    assert set(refusals) == {"balance_insufficient"}
    assert wallet is not None
    assert wallet.posted_balance_minor == 1_000 - 70 * (1_000 // 70)
    assert report.ok


async def test_simultaneous_payouts_and_captures_never_overdraw_the_available_balance(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    service = LedgerService(core_engine, clock)
    async with core_engine.begin() as db:
        funded = await ledger.record_charge_captured(
            db,
            account_id=account_id,
            charge_id="ch_seed",
            gross_minor=10_000,
            currency="usd",
            now=clock.now(),
            bypass_pending=True,
        )

    refusals: list[str | None] = []

    async def payout() -> int:
        try:
            made = await service.create_payout(account_id, amount=1_000, currency="usd")
        except RemitError as error:
            refusals.append(error.code)
            return 0
        return made.amount

    async def capture(n: int) -> int:
        async with core_engine.begin() as db:
            txn = await ledger.record_charge_captured(
                db,
                account_id=account_id,
                charge_id=f"ch_{n}",
                gross_minor=500,
                currency="usd",
                now=clock.now(),
            )
        return txn.net

    results = await asyncio.gather(
        *(payout() for _ in range(WRITERS // 2)), *(capture(n) for n in range(WRITERS // 2))
    )
    paid = sum(results[: WRITERS // 2])
    balance = await service.get_balance(account_id)
    assert paid == 9_000  # 9 payouts of 10.00 fit into 96.80 available
    assert set(refusals) == {"balance_insufficient"}
    assert balance.available[0].amount == funded.net - paid
    assert balance.pending[0].amount == sum(results[WRITERS // 2 :])
    async with core_engine.connect() as db:
        assert (await verify_ledger(db, account_id=account_id, now=clock.now())).ok


@pytest.mark.parametrize("same_payload", [True, False])
async def test_a_retry_that_waited_on_the_chain_head_sees_what_the_holder_committed(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, same_payload: bool
) -> None:
    """The lock phase reads the transaction id after it holds the chain head, with a fresh
    snapshot: a retry queued behind the first attempt replays (or refuses) what that attempt
    committed, rather than writing the id a second time."""
    first = TransactionRequest(
        transaction_id="same",
        postings=(Posting("world", -300, "usd"), Posting("wallet", 300, "usd")),
    )
    retry = (
        first
        if same_payload
        else TransactionRequest(
            transaction_id="same",
            postings=(Posting("world", -301, "usd"), Posting("wallet", 301, "usd")),
        )
    )
    async with core_engine.begin() as db:  # the chain head exists before the race
        await journal.post(db, account_id, move_request("warm-up"), now=clock.now())
    posted, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with core_engine.begin() as db:
            await journal.post(db, account_id, first, now=clock.now())
            posted.set()
            await release.wait()

    async def retrier() -> bool:
        await posted.wait()
        async with core_engine.begin() as db:
            return (await journal.post(db, account_id, retry, now=clock.now())).replayed

    holding = asyncio.create_task(holder())
    retrying = asyncio.create_task(retrier())
    await posted.wait()
    # The retry, queued on the chain head.
    await until_a_session_waits_on_a_lock(core_engine, contender=retrying)
    assert not retrying.done()
    release.set()
    await holding
    if same_payload:
        assert await retrying
    else:
        with pytest.raises(LedgerError) as refused:
            await retrying
        assert refused.value.code == "transaction_exists_with_different_payload"
    async with core_engine.connect() as db:
        wallet = await JournalRepository(db).get_ledger_account(account_id, "wallet", "usd")
        report = await verify_ledger(db, account_id=account_id, now=clock.now())
    assert wallet is not None
    assert wallet.posted_balance_minor == 1 + 300
    assert report.transactions_checked == 2
    assert report.ok, (report.differences, report.chain_breaks)


def move_request(transaction_id: str) -> TransactionRequest:
    return TransactionRequest(
        transaction_id=transaction_id,
        postings=(Posting("world", -1, "usd"), Posting("wallet", 1, "usd")),
    )
