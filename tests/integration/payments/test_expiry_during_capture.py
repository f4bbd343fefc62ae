"""A capture or cancel whose ledger posting runs just as the ledger's own expiry job voids the
authorization's reservation: the network has acted already, so the request must book it, and the
books must balance.

The expiry job (`ledger-expire-authorizations`) is made to run, in its own transaction, right
after the capture or cancel has read the reservation. Read under the account's chain lock, the
job waits for the request to commit; read without it, the job voids the reservation first.
Against a real PostgreSQL, with the ledger's hooks and an in-process card network."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.ledger import jobs
from remit.ledger import postings as ledger
from remit.ledger.domain import LedgerTransaction, PendingStatus
from remit.ledger.repository import JournalRepository
from remit.ledger.verify import verify_ledger
from remit.payments.domain import CaptureMethod, Status
from remit.payments.service import Done, PaymentsService
from tests.integration.payments.refund_ledger import ledger_payments
from tests.integration.payments.test_payments_service import call, pay, respond
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio

# Past the 7 days an authorization is reserved for.
EXPIRY_RUNS_AT = datetime.now(UTC) + timedelta(days=8)


async def _expire_now_or_wait(engine: AsyncEngine) -> asyncio.Task[int]:
    """Run the ledger's expiry job in a transaction of its own; return once it has committed,
    or once it waits on a lock the request holds (it then finishes after the request)."""
    started = asyncio.Event()
    pid: list[int] = []

    async def expire() -> int:
        async with engine.begin() as db:
            pid.append(int((await db.execute(text("SELECT pg_backend_pid()"))).scalar_one()))
            started.set()
            return await jobs.expire_authorizations(db, now=EXPIRY_RUNS_AT)

    job = asyncio.create_task(expire())
    await started.wait()
    while not job.done():
        async with engine.connect() as db:
            waiting = (
                await db.execute(
                    text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": pid[0]},
                )
            ).scalar_one_or_none()
        if waiting == "Lock":
            break
        await asyncio.sleep(0.02)
    return job


@contextmanager
def expiry_when_read(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, reservation_id: str
) -> Iterator[list[asyncio.Task[int]]]:
    """The first read of `reservation_id` is followed at once by a run of the expiry job (see
    `_expire_now_or_wait`), before the reader goes on with what it read; yields the job's task
    once it is made."""
    jobs_run: list[asyncio.Task[int]] = []
    read = JournalRepository.get_transaction

    async def read_after_the_expiry(
        self: JournalRepository, account_id: str, transaction_id: str
    ) -> LedgerTransaction | None:
        found = await read(self, account_id, transaction_id)
        if transaction_id == reservation_id and not jobs_run:
            jobs_run.append(await _expire_now_or_wait(engine))
        return found

    monkeypatch.setattr(JournalRepository, "get_transaction", read_after_the_expiry)
    yield jobs_run
    monkeypatch.setattr(JournalRepository, "get_transaction", read)


async def _books_balance(engine: AsyncEngine, account_id: str) -> None:
    async with engine.connect() as db:
        report = await verify_ledger(db, account_id=account_id, now=datetime.now(UTC))
    assert not report.differences
    assert not report.chain_breaks


async def _reservation(engine: AsyncEngine, account_id: str, charge_id: str) -> LedgerTransaction:
    async with engine.connect() as db:
        found = await JournalRepository(db).get_transaction(
            account_id, ledger.authorization_id_for(charge_id)
        )
    assert found is not None
    return found


@pytest.fixture
def payments(core_engine: AsyncEngine, network: FakeNetwork) -> PaymentsService:
    return ledger_payments(core_engine, network)


async def test_a_capture_posting_as_the_expiry_job_runs_is_booked(
    payments: PaymentsService,
    core_engine: AsyncEngine,
    account_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held = await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)
    assert held.latest_charge_id is not None
    reservation_id = ledger.authorization_id_for(held.latest_charge_id)
    with expiry_when_read(core_engine, monkeypatch, reservation_id) as jobs_run:
        captured = await payments.capture_payment_intent(
            call(account_id, "capture", endpoint="CapturePaymentIntent"), held.id, None, respond
        )
    assert jobs_run, "the expiry job never ran"
    await jobs_run[0]
    assert isinstance(captured, Done)
    assert captured.value.status is Status.SUCCEEDED
    charge, _ = await payments.get_charge(account_id, held.latest_charge_id)
    assert charge.captured
    async with core_engine.connect() as db:
        booked = await JournalRepository(db).get_transaction(
            account_id, f"{held.latest_charge_id}:capture"
        )
    assert booked is not None
    await _books_balance(core_engine, account_id)


async def test_a_cancel_releasing_as_the_expiry_job_runs_ends_with_the_release_booked_once(
    payments: PaymentsService,
    core_engine: AsyncEngine,
    account_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held = await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)
    assert held.latest_charge_id is not None
    reservation_id = ledger.authorization_id_for(held.latest_charge_id)
    with expiry_when_read(core_engine, monkeypatch, reservation_id) as jobs_run:
        canceled = await payments.cancel_payment_intent(
            call(account_id, "cancel", endpoint="CancelPaymentIntent"), held.id, None, respond
        )
    assert jobs_run, "the expiry job never ran"
    await jobs_run[0]
    assert isinstance(canceled, Done)
    assert canceled.value.status is Status.CANCELED
    reservation = await _reservation(core_engine, account_id, held.latest_charge_id)
    assert reservation.pending_status is PendingStatus.VOIDED
    await _books_balance(core_engine, account_id)
