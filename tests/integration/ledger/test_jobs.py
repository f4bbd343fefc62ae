"""The ledger's periodic jobs: what they claim, how batches follow one another, and how one
failing item or account leaves the rest of the work alone."""

import asyncio
import logging
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.ledger import jobs, journal, payouts
from remit.ledger import postings as ledger
from remit.ledger.chart import AVAILABLE
from remit.ledger.domain import MAX_POSTING_AMOUNT, PendingStatus, Posting, TransactionRequest
from remit.ledger.jobs import (
    EXPIRE_TASK,
    advance_payouts,
    create_automatic_payouts,
    release_due_funds,
)
from remit.ledger.objects import (
    BalanceTransaction,
    BalanceTransactionStatus,
    Payout,
    PayoutStatus,
)
from remit.ledger.payouts import SUBMISSION_DELAY
from remit.ledger.repository import JournalRepository
from remit.ledger.service import LedgerService
from remit.worker.alone import run_alone
from tests.integration.ledger.conftest import NewAccount
from tests.integration.ledger.test_payouts import available, fund

pytestmark = pytest.mark.anyio


async def _status(service: LedgerService, account_id: str, payout: Payout) -> PayoutStatus:
    return (await service.get_payout(account_id, payout.id)).status


async def test_due_payouts_are_reached_behind_a_full_batch_still_in_transit(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    service = LedgerService(core_engine, clock)
    await fund(core_engine, account_id, clock, 10_000)
    in_transit = [await service.create_payout(account_id, amount=10, currency="usd") for _ in "abc"]
    clock.advance(SUBMISSION_DELAY.total_seconds())
    async with core_engine.begin() as db:
        assert await advance_payouts(db, now=clock.now(), limit=3) == 3
    fresh = await service.create_payout(account_id, amount=10, currency="usd")
    clock.advance(SUBMISSION_DELAY.total_seconds())
    async with core_engine.begin() as db:
        assert await advance_payouts(db, now=clock.now(), limit=3) == 1
    assert await _status(service, account_id, fresh) is PayoutStatus.IN_TRANSIT
    assert {await _status(service, account_id, p) for p in in_transit} == {PayoutStatus.IN_TRANSIT}


async def test_payouts_not_yet_due_are_not_locked_by_the_job(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """A tick whose transaction is still open leaves a pending payout, not yet due,
    cancelable at once."""
    service = LedgerService(core_engine, clock)
    await fund(core_engine, account_id, clock, 1_000)
    payout = await service.create_payout(account_id, amount=100, currency="usd")
    async with core_engine.begin() as db:
        assert await advance_payouts(db, now=clock.now()) == 0
        canceled = await service.cancel_payout(account_id, payout.id)
    assert await _status(service, account_id, payout) is PayoutStatus.CANCELED
    assert canceled is not None


async def test_batches_follow_one_another_while_they_come_back_full(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    service = LedgerService(core_engine, clock)
    await fund(core_engine, account_id, clock, 10_000)
    made = [await service.create_payout(account_id, amount=10, currency="usd") for _ in "abcde"]
    clock.advance(SUBMISSION_DELAY.total_seconds())
    handled = await jobs.run_batches(core_engine, jobs._advance_batch, clock, limit=2)
    assert handled == 5
    assert {await _status(service, account_id, p) for p in made} == {PayoutStatus.IN_TRANSIT}


async def test_a_payout_that_fails_to_advance_skips_only_itself(
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = LedgerService(core_engine, clock)
    await fund(core_engine, account_id, clock, 1_000)
    broken = await service.create_payout(account_id, amount=100, currency="usd")
    sound = await service.create_payout(account_id, amount=200, currency="usd")
    real = payouts.advance_payout

    async def fails_after_writing(db: object, payout: Payout, *, now: object) -> Payout:
        advanced = await real(db, payout, now=now)  # type: ignore[arg-type]
        if payout.id == broken.id:
            raise RuntimeError("the bank's answer cannot be read")
        return advanced

    monkeypatch.setattr(payouts, "advance_payout", fails_after_writing)
    clock.advance(SUBMISSION_DELAY.total_seconds())
    with caplog.at_level(logging.ERROR, logger="remit.ledger.jobs"):
        async with core_engine.begin() as db:
            assert await advance_payouts(db, now=clock.now()) == 1
    assert await _status(service, account_id, sound) is PayoutStatus.IN_TRANSIT
    assert await _status(service, account_id, broken) is PayoutStatus.PENDING
    assert [r.getMessage() for r in caplog.records if broken.id in r.getMessage()]


async def test_funds_that_fail_to_move_skip_only_themselves(
    core_engine: AsyncEngine,
    new_account: NewAccount,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = await new_account(), await new_account()
    async with core_engine.begin() as db:
        for account_id in (first, second):
            await ledger.record_charge_captured(
                db,
                account_id=account_id,
                charge_id=f"ch_{account_id}",
                gross_minor=1_000,
                currency="usd",
                now=clock.now(),
            )
    broken = min(first, second)
    real = ledger.make_available

    async def fails_after_writing(db: object, txn: object, *, now: object) -> object:
        moved = await real(db, txn, now=now)  # type: ignore[arg-type]
        if moved.account_id == broken:
            raise RuntimeError("the row cannot be moved")
        return moved

    monkeypatch.setattr(jobs, "make_available", fails_after_writing)
    clock.advance(timedelta(days=3).total_seconds())
    with caplog.at_level(logging.ERROR, logger="remit.ledger.jobs"):
        async with core_engine.begin() as db:
            released = await release_due_funds(db, now=clock.now())
    assert list(released) == [max(first, second)]
    service = LedgerService(core_engine, clock)
    assert await available(service, broken) == 0
    assert await available(service, max(first, second)) > 0
    pending = await service.list_balance_transactions(broken, limit=10)
    assert {t.status for t in pending[0]} == {BalanceTransactionStatus.PENDING}
    assert [r for r in caplog.records if broken in r.getMessage()]


async def test_funds_whose_release_would_overflow_the_balance_are_set_aside_once(
    core_engine: AsyncEngine,
    new_account: NewAccount,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An available balance a release would take past a bigint's range fails the same way on
    every run (SQLSTATE 22003): the item is recorded once, logged once, and no longer
    claimed, and the batches go on to the funds behind it."""
    full, sound = await new_account(), await new_account()
    async with core_engine.begin() as db:
        # 2 * (2^62 - 1) = 2^63 - 2 available: one minor unit short of a bigint's largest.
        for number in range(2):
            legs = (
                Posting("outside", -MAX_POSTING_AMOUNT, "usd"),
                Posting(AVAILABLE, MAX_POSTING_AMOUNT, "usd"),
            )
            request = TransactionRequest(f"fill-{number}", legs)
            await journal.post(db, full, request, now=clock.now())
        captured = {
            account_id: await ledger.record_charge_captured(
                db,
                account_id=account_id,
                charge_id=f"ch_{account_id}",
                gross_minor=1_000,
                currency="usd",
                now=clock.now(),
            )
            for account_id in (full, sound)
        }
    stuck = captured[full].id
    clock.advance(timedelta(days=3).total_seconds())
    with caplog.at_level(logging.ERROR, logger="remit.ledger.jobs"):
        # One item per batch: the one set aside must not end the run before the other.
        assert await jobs.run_batches(core_engine, jobs._release_step, clock, limit=1) == 1
        assert await jobs.run_batches(core_engine, jobs._release_step, clock, limit=1) == 0
    said = [r for r in caplog.records if stuck in r.getMessage()]
    assert len(said) == 1
    assert "failed for good (22003" in said[0].getMessage()
    async with core_engine.connect() as db:
        recorded = (
            await db.execute(text("SELECT id, account_id, error FROM balance_release_failures"))
        ).all()
    assert [(row.id, row.account_id) for row in recorded] == [(stuck, full)]
    assert recorded[0].error.startswith("22003 NumericValueOutOfRange: bigint out of range")
    service = LedgerService(core_engine, clock)
    assert await available(service, full) == 2 * MAX_POSTING_AMOUNT
    assert await available(service, sound) == captured[sound].net
    left, _ = await service.list_balance_transactions(full, limit=10)
    assert {t.id: t.status for t in left}[stuck] is BalanceTransactionStatus.PENDING


async def test_one_failing_automatic_payout_does_not_stop_the_others(
    core_engine: AsyncEngine,
    new_account: NewAccount,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    accounts = sorted([await new_account(automatic_payouts=True) for _ in "ab"])
    nets = [await fund(core_engine, account_id, clock, 2_000) for account_id in accounts]
    broken, sound = accounts
    real = payouts.create_payout

    async def fails_after_writing(db: object, **kwargs: object) -> Payout:
        made = await real(db, **kwargs)  # type: ignore[arg-type]
        if made.account_id == broken:
            raise RuntimeError("the bank account cannot be reached")
        return made

    monkeypatch.setattr(payouts, "create_payout", fails_after_writing)
    with caplog.at_level(logging.ERROR, logger="remit.ledger.jobs"):
        created = await create_automatic_payouts(core_engine, now=clock.now())
    assert [(p.account_id, p.amount) for p in created] == [(sound, nets[1])]
    service = LedgerService(core_engine, clock)
    assert await available(service, broken) == nets[0]
    assert (await service.list_payouts(broken, limit=10))[0] == []
    assert [r for r in caplog.records if broken in r.getMessage()]


async def test_the_automatic_payout_sweep_does_not_wait_on_accounts_with_nothing_to_pay(
    core_engine: AsyncEngine, new_account: NewAccount, clock: FixedClock
) -> None:
    """An account with nothing to pay out is busy posting (it holds its ledger turn): the
    sweep goes past it rather than waiting for its turn."""
    busy = await new_account(automatic_payouts=True)
    owed = await new_account(automatic_payouts=True)
    net = await fund(core_engine, owed, clock, 2_000)
    async with core_engine.begin() as holder:
        await holder.execute(text("SELECT ledger_wait_turn(:a)"), {"a": busy})
        created = await create_automatic_payouts(core_engine, now=clock.now())
    assert [(p.account_id, p.amount) for p in created] == [(owed, net)]


def _left_for_the_next_run(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "remit.ledger.jobs" and "left for the next run" in r.getMessage()
    ]


async def test_due_funds_behind_a_full_batch_that_keeps_failing_are_released(
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Funds due first whose release fails every time fill whole batches: the run goes on past
    them to the funds behind, leaves them for the next run, and says so once."""
    async with core_engine.begin() as db:
        captured = [
            await ledger.record_charge_captured(
                db,
                account_id=account_id,
                charge_id=f"ch_{number}",
                gross_minor=1_000,
                currency="usd",
                now=clock.now(),
                available_on=clock.now() + timedelta(hours=number),
            )
            for number in range(3)
        ]
    failing = {txn.id for txn in captured[:2]}
    tried: list[str] = []
    real = ledger.make_available

    async def fails_for_the_first(db: object, txn: BalanceTransaction, *, now: object) -> object:
        tried.append(txn.id)
        if txn.id in failing:
            raise RuntimeError("the row cannot be moved")
        return await real(db, txn, now=now)  # type: ignore[arg-type]

    monkeypatch.setattr(jobs, "make_available", fails_for_the_first)
    clock.advance(timedelta(days=1).total_seconds())
    with caplog.at_level(logging.ERROR, logger="remit.ledger.jobs"):
        assert await jobs.run_batches(core_engine, jobs._release_step, clock, limit=2) == 1
    assert sorted(tried) == sorted(txn.id for txn in captured)
    said = _left_for_the_next_run(caplog)
    assert len(said) == 1
    assert "2 left for the next run" in said[0]
    assert all(txn_id in said[0] for txn_id in failing)
    service = LedgerService(core_engine, clock)
    left, _ = await service.list_balance_transactions(account_id, limit=10)
    assert {t.id: t.status for t in left} == {
        captured[0].id: BalanceTransactionStatus.PENDING,
        captured[1].id: BalanceTransactionStatus.PENDING,
        captured[2].id: BalanceTransactionStatus.AVAILABLE,
    }
    # The next run tries them again: their failure may have passed.
    tried.clear()
    assert await jobs.run_batches(core_engine, jobs._release_step, clock, limit=2) == 0
    assert sorted(tried) == sorted(failing)


async def test_authorizations_behind_a_full_batch_that_keeps_failing_expire(
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with core_engine.begin() as db:
        for number in range(3):
            await ledger.record_authorization(
                db,
                account_id=account_id,
                charge_id=f"ch_{number}",
                amount_minor=1_000,
                currency="usd",
                now=clock.now(),
                expires_at=clock.now() + timedelta(hours=number),
            )
    failing = {"ch_0:authorization", "ch_1:authorization"}
    real = journal.expire_pending

    async def fails_for_the_first(
        db: object, account: str, pending_id: str, *, now: object
    ) -> object:
        if pending_id in failing:
            raise RuntimeError("the reservation cannot be released")
        return await real(db, account, pending_id, now=now)  # type: ignore[arg-type]

    monkeypatch.setattr(journal, "expire_pending", fails_for_the_first)
    clock.advance(timedelta(days=1).total_seconds())
    with caplog.at_level(logging.ERROR, logger="remit.ledger.jobs"):
        assert await jobs.run_batches(core_engine, jobs._expire_batch, clock, limit=2) == 1
    assert len(_left_for_the_next_run(caplog)) == 1
    async with core_engine.connect() as db:
        statuses = {
            charge: (await JournalRepository(db).get_transaction(account_id, charge))
            for charge in ("ch_0:authorization", "ch_1:authorization", "ch_2:authorization")
        }
    assert {charge: t.pending_status for charge, t in statuses.items() if t is not None} == {
        "ch_0:authorization": PendingStatus.OPEN,
        "ch_1:authorization": PendingStatus.OPEN,
        "ch_2:authorization": PendingStatus.VOIDED,
    }


async def test_payouts_behind_a_full_batch_that_keeps_failing_advance(
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = LedgerService(core_engine, clock)
    await fund(core_engine, account_id, clock, 10_000)
    made = []
    for _ in range(3):
        made.append(await service.create_payout(account_id, amount=10, currency="usd"))
        clock.advance(1)
    failing = {payout.id for payout in made[:2]}
    real = payouts.advance_payout

    async def fails_for_the_first(db: object, payout: Payout, *, now: object) -> Payout:
        if payout.id in failing:
            raise RuntimeError("the bank's answer cannot be read")
        return await real(db, payout, now=now)  # type: ignore[arg-type]

    monkeypatch.setattr(payouts, "advance_payout", fails_for_the_first)
    clock.advance(SUBMISSION_DELAY.total_seconds())
    with caplog.at_level(logging.ERROR, logger="remit.ledger.jobs"):
        assert await jobs.run_batches(core_engine, jobs._advance_batch, clock, limit=2) == 1
    assert len(_left_for_the_next_run(caplog)) == 1
    assert [await _status(service, account_id, payout) for payout in made] == [
        PayoutStatus.PENDING,
        PayoutStatus.PENDING,
        PayoutStatus.IN_TRANSIT,
    ]


async def test_authorizations_are_expired_by_one_worker_copy_at_a_time(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """The expiry reads its rows without locking them: a second copy would replay them and hold
    the same accounts' ledger turns, so it skips its turn while another copy runs."""
    async with core_engine.begin() as db:
        await ledger.record_authorization(
            db,
            account_id=account_id,
            charge_id="ch_alone",
            amount_minor=1_000,
            currency="usd",
            now=clock.now(),
        )
    clock.advance(timedelta(days=8).total_seconds())
    [expiry] = [task for task in jobs.ledger_tasks(core_engine, clock) if task.name == EXPIRE_TASK]
    other_copy_inside, other_copy_done = asyncio.Event(), asyncio.Event()

    async def running_elsewhere() -> None:
        other_copy_inside.set()
        await other_copy_done.wait()

    async def status() -> PendingStatus | None:
        async with core_engine.connect() as db:
            txn = await JournalRepository(db).get_transaction(account_id, "ch_alone:authorization")
        assert txn is not None
        return txn.pending_status

    other_copy = asyncio.create_task(run_alone(core_engine, EXPIRE_TASK, running_elsewhere))
    await other_copy_inside.wait()
    await expiry.run()
    assert await status() is PendingStatus.OPEN
    other_copy_done.set()
    await other_copy
    await expiry.run()
    assert await status() is PendingStatus.VOIDED
