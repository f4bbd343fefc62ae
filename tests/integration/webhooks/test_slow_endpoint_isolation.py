"""One account's endpoint that hangs holds few of a worker's slots: other accounts' deliveries,
and the payment jobs (an authorization's expiry, say), run at once beside it.

The worker used to run every job kind in its 8 slots, oldest first, and let an endpoint hold 16
attempts at once: 16 events of an account whose endpoint hung filled every slot for the sender's
whole timeout, batch after batch, and another account's delivery, or an expiry, waited behind
all of them."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.storage.engine import dispose, make_engine
from remit.webhooks.delivery import DeliverySettings
from remit.webhooks.outbox import record_event
from remit.webhooks.sender import WebhookSender
from remit.webhooks.service import WebhooksService
from remit.webhooks.urls import UrlPolicy
from remit.webhooks.worker import WebhookWorkerParts, webhook_worker_parts
from remit.worker import runner
from remit.worker.jobs import Job, stage_job
from remit.worker.runner import Worker
from tests.integration.webhooks.conftest import StartReceiver
from tests.support.postgres import WorkerDatabases
from tests.support.receiver import Receiver, Reply

pytestmark = pytest.mark.anyio

# A payment job, run in the worker's general slots (as `payments.expire_authorization` is).
RECOVERY_JOB = "test.recovery"
# The sender's timeout: the hanging endpoint's attempts hold their slots until the test lets
# them go, or until this.
HANG_S = 30.0
# What must happen while those attempts hang happens within this, however loaded the machine:
# under HANG_S, so that it cannot have waited for the attempts' timeout instead.
WHILE_HANGING_S = HANG_S / 2
# Only deliveries that never end wait this long.
ENDED_WITHIN_S = 30.0


class Accounts:
    def __init__(self, engine: AsyncEngine, clock: FixedClock, policy: UrlPolicy) -> None:
        self.engine, self.clock = engine, clock
        self.service = WebhooksService(engine, policy=policy, clock=clock)

    async def with_endpoint(self, url: str) -> str:
        account = await AccountsService(self.engine, self.clock).create_account()
        await self.service.create_endpoint(account.account.id, url=url, enabled_events=["*"])
        return account.account.id

    async def record(self, account_id: str, count: int = 1) -> None:
        for number in range(count):
            async with self.engine.begin() as db:
                await record_event(db, account_id=account_id, type="customer.created",
                                   data_object={"id": f"cus_{number}", "object": "customer"},
                                   now=self.clock.now())  # fmt: skip


def production_worker(
    engine: AsyncEngine, parts: WebhookWorkerParts, clock: FixedClock, **handlers: object
) -> Worker:
    """The worker wired as `remit.worker.registry` wires it: deliveries in slots of their own,
    their POSTs made before their jobs' transactions."""
    recovery = handlers.get("recovery")
    assert callable(recovery)
    return Worker(
        engine=engine,
        handlers={**parts.handlers, RECOVERY_JOB: recovery},
        clock=clock,
        given_up=parts.given_up,
        network_kinds=parts.network_kinds,
        preparers=parts.preparers,
    )


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[None]:
    """The worker's `run_forever` for the block's length."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_forever(None, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def _pending_deliveries(engine: AsyncEngine) -> int:
    async with engine.begin() as db:
        count = await db.scalar(
            text("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")
        )
    return int(count or 0)


async def _until_none_pending(engine: AsyncEngine, timeout_s: float) -> None:
    """Until every delivery has ended (the worker records each as it succeeds)."""
    started = time.monotonic()
    while await _pending_deliveries(engine):
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"deliveries still pending after {timeout_s} s")
        await asyncio.sleep(0.02)


async def _until(done: Callable[[], bool], timeout_s: float) -> float:
    """How long it took `done` to hold; fails past `timeout_s`."""
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"not done within {timeout_s} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_a_hanging_endpoint_does_not_hold_up_other_accounts_or_the_payment_jobs(
    core_engine: AsyncEngine,
    start_receiver: StartReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner, "POLL_INTERVAL_S", 0.05)
    hang = asyncio.Event()
    slow = await start_receiver(lambda _: Reply(hold=hang))
    fast = await start_receiver()
    clock = FixedClock(datetime.now(UTC))
    policy = UrlPolicy(allow_internal=True)
    accounts = Accounts(core_engine, clock, policy)
    a, b = await accounts.with_endpoint(slow.url), await accounts.with_endpoint(fast.url)
    # The endpoint hangs for longer than the test waits: each attempt holds its slot until
    # the hang is let go at the end.
    parts = webhook_worker_parts(core_engine, policy, clock=clock,
                                 sender=WebhookSender(policy, timeout_s=HANG_S))  # fmt: skip
    recovered: list[Job] = []

    async def recover(_db: AsyncConnection, job: Job) -> None:
        recovered.append(job)

    worker = production_worker(core_engine, parts, clock, recovery=recover)
    try:
        await accounts.record(a, 16)
        async with running(worker):
            await _until(
                lambda: slow.in_flight == DeliverySettings().max_concurrent_per_endpoint,
                WHILE_HANGING_S,
            )
            await accounts.record(b)
            async with core_engine.begin() as db:
                await stage_job(db, RECOVERY_JOB, {}, now=clock.now())
            # While every attempt to A's endpoint still hangs.
            await _until(lambda: len(fast.received) == 1 and len(recovered) == 1, WHILE_HANGING_S)
            assert len(slow.received) == slow.in_flight == 4, "A's endpoint holds only its share"
            hang.set()
            # A's other deliveries, parked meanwhile, follow once its endpoint answers.
            await _until_none_pending(core_engine, ENDED_WITHIN_S)
        assert len(slow.received) == 16
    finally:
        hang.set()
        await accounts.service.close()
        await parts.close()


async def test_a_delivery_holds_no_database_connection_while_its_endpoint_answers(
    databases: WorkerDatabases,
    start_receiver: StartReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A delivery's job transaction opens once the endpoint has answered: the database pool,
    here of 2 connections, does not bound how many POSTs are in flight."""
    monkeypatch.setattr(runner, "POLL_INTERVAL_S", 0.05)
    # Waited for long: once the endpoints answer, three deliveries record their ends at once
    # over the two connections, a loaded machine's slow transactions making the third wait.
    engine = make_engine(databases.core_url, pool_size=1, pool_timeout_s=10)
    hang = asyncio.Event()
    clock = FixedClock(datetime.now(UTC))
    policy = UrlPolicy(allow_internal=True)
    accounts = Accounts(engine, clock, policy)
    receivers: list[Receiver] = []
    for _ in range(3):
        receiver = await start_receiver(lambda _: Reply(hold=hang))
        receivers.append(receiver)
        await accounts.record(await accounts.with_endpoint(receiver.url))
    parts = webhook_worker_parts(engine, policy, clock=clock,
                                 sender=WebhookSender(policy, timeout_s=HANG_S))  # fmt: skip

    async def recover(_db: AsyncConnection, job: Job) -> None:
        return None

    worker = production_worker(engine, parts, clock, recovery=recover)
    try:
        async with running(worker):
            await _until(
                lambda: all(receiver.in_flight == 1 for receiver in receivers), WHILE_HANGING_S
            )
            hang.set()
            await _until_none_pending(engine, ENDED_WITHIN_S)
    finally:
        hang.set()
        await accounts.service.close()
        await parts.close()
        await dispose(engine)
