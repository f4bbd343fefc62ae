"""`remit balance-release-failures list` shows the due funds the release job set aside, and
`retry ID` moves one once room is made: idempotently, and never beside a worker's batch that
holds its row."""

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from remit.accounts.service import AccountsService
from remit.cli import main
from remit.core.clock import FixedClock, SystemClock
from remit.ledger import jobs, journal
from remit.ledger import postings as ledger
from remit.ledger.chart import AVAILABLE
from remit.ledger.domain import MAX_POSTING_AMOUNT, Posting, TransactionRequest
from remit.storage.engine import dispose, make_engine
from tests.integration.ledger.conftest import T0
from tests.support.command_databases import empty_core_database, name_every_database
from tests.support.postgres import WorkerDatabases

LIST = ["balance-release-failures", "list"]
RETRY = ["balance-release-failures", "retry"]


@pytest.fixture
def core_url(
    databases: WorkerDatabases, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    name_every_database(databases, monkeypatch, tmp_path)
    yield databases.core_url
    empty_core_database(databases.core_url)


def _set_aside(url: str) -> tuple[str, str, int]:
    """An account whose available balance is one unit short of a bigint's largest, and a
    capture of its due and set aside by the release job: (account, balance transaction, net)."""

    async def run() -> tuple[str, str, int]:
        engine = make_engine(url, pool_size=1)
        clock = FixedClock(T0)
        try:
            account = (await AccountsService(engine, clock).create_account()).account.id
            async with engine.begin() as db:
                for number in range(2):
                    legs = (
                        Posting("outside", -MAX_POSTING_AMOUNT, "usd"),
                        Posting(AVAILABLE, MAX_POSTING_AMOUNT, "usd"),
                    )
                    await journal.post(
                        db, account, TransactionRequest(f"fill-{number}", legs), now=clock.now()
                    )
                captured = await ledger.record_charge_captured(
                    db,
                    account_id=account,
                    charge_id="ch_full",
                    gross_minor=1_000,
                    currency="usd",
                    now=clock.now(),
                )
            clock.advance(timedelta(days=3).total_seconds())
            assert await jobs.run_batches(engine, jobs._release_step, clock) == 0
            return account, captured.id, captured.net
        finally:
            await dispose(engine)

    return asyncio.run(run())


def _make_room(url: str, account: str) -> None:
    async def run() -> None:
        engine = make_engine(url, pool_size=1)
        try:
            async with engine.begin() as db:
                legs = (
                    Posting(AVAILABLE, -MAX_POSTING_AMOUNT, "usd"),
                    Posting("outside", MAX_POSTING_AMOUNT, "usd"),
                )
                await journal.post(db, account, TransactionRequest("room", legs), now=T0)
        finally:
            await dispose(engine)

    asyncio.run(run())


def _release_job_run(url: str) -> int:
    async def run() -> int:
        engine = make_engine(url, pool_size=1)
        try:
            clock = FixedClock(T0 + timedelta(days=4))
            return await jobs.run_batches(engine, jobs._release_step, clock)
        finally:
            await dispose(engine)

    return asyncio.run(run())


def _state(url: str, txn_id: str) -> tuple[str, int, int]:
    """The balance transaction's status, its set-aside rows, the balance.available events."""

    async def run() -> tuple[str, int, int]:
        engine = make_engine(url, pool_size=1)
        try:
            async with engine.connect() as db:
                row = (
                    await db.execute(
                        text(
                            "SELECT status, (SELECT count(*) FROM balance_release_failures "
                            "WHERE id = :id) AS set_aside, (SELECT count(*) FROM ledger_events "
                            "WHERE type = 'balance.available') AS announced "
                            "FROM balance_transactions WHERE id = :id"
                        ),
                        {"id": txn_id},
                    )
                ).one()
            return row.status, row.set_aside, row.announced
        finally:
            await dispose(engine)

    return asyncio.run(run())


def test_a_set_aside_release_is_listed_and_retried_once_room_is_made(
    core_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(LIST) == 0
    assert capsys.readouterr().out == "no fund releases set aside\n"
    account, txn_id, net = _set_aside(core_url)

    assert main(LIST) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "1 fund release set aside, the latest first"
    assert lines[2].split()[1:] == [txn_id, account, str(net), "usd"]
    assert lines[3].startswith("    due ")
    assert "refused: 22003 NumericValueOutOfRange: bigint out of range" in lines[3]

    # No room yet: refused again, and still set aside.
    assert main([*RETRY, txn_id]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{txn_id}: still set aside, the database refused the move again: 22003")
    assert _state(core_url, txn_id) == ("pending", 1, 0)

    _make_room(core_url, account)
    assert main([*RETRY, txn_id]) == 0
    assert capsys.readouterr().out == f"{txn_id}: released, its funds are available\n"
    assert _state(core_url, txn_id) == ("available", 0, 1)

    # The release job after it, or another retry: nothing moves twice.
    assert _release_job_run(core_url) == 0
    assert main([*RETRY, txn_id]) == 0
    assert capsys.readouterr().out == f"{txn_id}: already available, nothing to do\n"
    assert _state(core_url, txn_id) == ("available", 0, 1)
    assert main(LIST) == 0
    capsys.readouterr()


def test_an_unknown_id_is_refused(core_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*RETRY, "txn_nothing"]) == 2
    assert capsys.readouterr().err == (
        "remit balance-release-failures retry: no balance transaction txn_nothing\n"
    )


def test_a_retry_waits_for_a_workers_batch_then_gives_up_changing_nothing(
    core_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's batch holding the balance transaction's row (as a claim does) is never
    raced: the retry waits for it, and past its lock timeout says to run it again (75)."""
    account, txn_id, _ = _set_aside(core_url)
    _make_room(core_url, account)
    monkeypatch.setattr("remit.ledger.release_failures.LOCK_TIMEOUT_MS", 200)

    async def held_while_retried() -> int:
        engine = make_engine(core_url, pool_size=1)
        try:
            async with engine.begin() as db:
                await db.execute(
                    text("SELECT 1 FROM balance_transactions WHERE id = :id FOR UPDATE"),
                    {"id": txn_id},
                )
                return await asyncio.to_thread(main, [*RETRY, txn_id])
        finally:
            await dispose(engine)

    assert asyncio.run(held_while_retried()) == 75
    assert capsys.readouterr().err == (
        f"remit balance-release-failures retry: {txn_id} or its account's ledger was held by "
        "another transaction (a worker's batch) for over 0.2 s; nothing changed: run it again\n"
    )
    assert _state(core_url, txn_id) == ("pending", 1, 0)


def _stamps(url: str, txn_id: str) -> tuple[datetime, datetime, datetime]:
    """The database's time now, and the times its release's posting and event were stamped."""

    async def run() -> tuple[datetime, datetime, datetime]:
        engine = make_engine(url, pool_size=1)
        try:
            async with engine.connect() as db:
                row = (
                    await db.execute(
                        text(
                            "SELECT clock_timestamp() AS now, (SELECT created_at FROM "
                            "ledger_transactions WHERE id = :posting) AS posted, (SELECT "
                            "created_at FROM ledger_events WHERE type = 'balance.available') "
                            "AS announced"
                        ),
                        {"posting": f"{txn_id}:available"},
                    )
                ).one()
            return row.now, row.posted, row.announced
        finally:
            await dispose(engine)

    return asyncio.run(run())


def test_a_retry_on_a_host_whose_clock_runs_behind_stamps_by_the_database(
    core_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    account, txn_id, _ = _set_aside(core_url)
    _make_room(core_url, account)
    before, _, _ = _stamps(core_url, txn_id)
    host_now = SystemClock.now
    # Three days behind: by its host's clock the release would be dated before the funds'
    # due time, and before events the release job recorded.
    monkeypatch.setattr(SystemClock, "now", lambda self: host_now(self) - timedelta(days=3))

    assert main([*RETRY, txn_id]) == 0
    assert capsys.readouterr().out == f"{txn_id}: released, its funds are available\n"
    after, posted, announced = _stamps(core_url, txn_id)
    assert before <= posted <= after
    assert before <= announced <= after
