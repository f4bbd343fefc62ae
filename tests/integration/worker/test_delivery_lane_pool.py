"""The delivery lane takes its connections from a pool of its own (`Worker.network_engine`):
with every connection of the delivery lane held by a delivery whose transaction does not end
(a slow database), a payment job still gets a connection of the general pool and is done. With
one pool for both lanes, it waited behind the deliveries past the pool's timeout, and its
attempt failed."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import FixedClock
from remit.storage.engine import dispose, make_engine
from remit.worker.jobs import Job, stage_job
from remit.worker.runner import POLL_INTERVAL_S, AfterCommit, Worker, libpq_url
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio

DELIVER = "test.deliver"
PAYMENT = "test.payment"
_NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
# The connections of each pool below.
_POOL_CONNECTIONS = 2
# Only a payment job that never gets a connection waits this long.
_DONE_WITHIN_S = 30.0


@contextlib.asynccontextmanager
async def _engines(
    url: str, deliveries_wait_s: float
) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    # Two connections each (one and one more); the general pool's given up on after 0.3 s.
    general = make_engine(url, pool_size=1, pool_timeout_s=0.3)
    deliveries = make_engine(url, pool_size=1, pool_timeout_s=deliveries_wait_s)
    try:
        yield general, deliveries
    finally:
        await dispose(deliveries)
        await dispose(general)


async def _statuses(engine: AsyncEngine, kind: str) -> list[tuple[str, int]]:
    async with engine.begin() as db:
        rows = await db.execute(
            text("SELECT status, attempts FROM jobs WHERE kind = :kind ORDER BY id"),
            {"kind": kind},
        )
        return [(row.status, row.attempts) for row in rows]


@pytest.mark.parametrize(
    "deliveries_wait_s",
    [
        # The delivery lane's claims fail at once, and its loop pauses between them.
        0.3,
        # Its claim waits for a connection longer than the test lasts: with one loop claiming
        # for both lanes, the general lane's claims waited behind it.
        2 * _DONE_WITHIN_S,
    ],
)
async def test_a_payment_job_gets_a_connection_beside_slow_deliveries(
    databases: WorkerDatabases, core_engine: AsyncEngine, deliveries_wait_s: float
) -> None:
    # The deliveries hold their connections (their transactions open) until the test lets
    # them go, after the payment job is done: it cannot have waited for one of theirs, however
    # slowly a loaded machine runs it.
    holding: list[int] = []
    pool_held, release = asyncio.Event(), asyncio.Event()

    async def slow_delivery(db: AsyncConnection, job: Job) -> AfterCommit | None:
        await db.execute(text("SELECT 1"))
        holding.append(job.id)
        if len(holding) == _POOL_CONNECTIONS:
            pool_held.set()
        await release.wait()
        return None

    async def payment(db: AsyncConnection, job: Job) -> AfterCommit | None:
        await db.execute(text("SELECT 1"))
        return None

    async with core_engine.begin() as db:
        for number in range(4):
            await stage_job(db, DELIVER, {"n": number}, now=_NOW, account_id=f"acct_{number}")
    async with _engines(databases.core_url, deliveries_wait_s) as (general, deliveries):
        worker = Worker(
            engine=general,
            handlers={DELIVER: slow_delivery, PAYMENT: payment},
            clock=FixedClock(_NOW),
            network_kinds=frozenset({DELIVER}),
            network_slots=8,  # free slots left: the lane claims again while its pool is held
            network_engine=deliveries,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run_forever(libpq_url(databases.core_url), stop))
        try:
            await asyncio.wait_for(pool_held.wait(), _DONE_WITHIN_S)
            # Past a poll: the delivery lane, with free slots, has claimed again by now, and
            # its claim is failing or waiting for a connection of its held pool.
            await asyncio.sleep(2 * POLL_INTERVAL_S)
            async with core_engine.begin() as db:
                await stage_job(db, PAYMENT, {}, now=_NOW)
            deadline = asyncio.get_running_loop().time() + _DONE_WITHIN_S
            while (payments := await _statuses(core_engine, PAYMENT)) != [("done", 1)]:
                assert asyncio.get_running_loop().time() < deadline, payments
                await asyncio.sleep(0.02)
        finally:
            release.set()
            stop.set()
            await asyncio.wait_for(task, timeout=10)
