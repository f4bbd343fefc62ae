"""A job's run is stopped before its claim's lease runs out, so that no second worker claims it
while the first still runs it (two voids of one authorization at once, attempts used twice as
fast, a job failed past its attempts while a run of it goes on). The stopped run's work is
rolled back and the job is tried again after its backoff."""

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import FixedClock
from remit.storage.engine import dispose, make_engine
from remit.worker.jobs import Job, stage_job
from remit.worker.leases import END_MARGIN_S, JobLease
from remit.worker.runner import JobHandler, Lane, Worker, backoff_for
from remit.worker.tables import jobs
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio
T0 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
# A short budget, for the test, and the margin after it that the worker's own leases keep for
# recording a run's end: on a loaded machine, stopping a statement and recording the failure
# has taken more than half a second. The lease is measured by the database's clock, which no
# test moves.
LEASE = JobLease(lease_s=0.3 + END_MARGIN_S, run_budget_s=0.3)


def _worker(engine: AsyncEngine, handler: JobHandler, clock: FixedClock) -> Worker:
    return Worker(engine=engine, handlers={"slow": handler}, clock=clock, lease=LEASE)


async def _row(engine: AsyncEngine) -> tuple[str, int, str | None, datetime, object]:
    async with engine.connect() as db:
        row = (
            await db.execute(
                select(
                    jobs.c.status,
                    jobs.c.attempts,
                    jobs.c.last_error,
                    jobs.c.run_at,
                    jobs.c.locked_until,
                )
            )
        ).one()
    return row.status, row.attempts, row.last_error, row.run_at, row.locked_until


async def test_a_run_longer_than_its_budget_ends_within_its_lease_and_runs_alone(
    core_engine: AsyncEngine,
) -> None:
    clock = FixedClock(T0)
    started = asyncio.Event()
    running: list[int] = []
    at_once: list[int] = []

    async def waits_on_a_step(db: AsyncConnection, job: Job) -> None:
        running.append(job.attempts)
        at_once.append(len(running))
        try:
            if job.attempts == 1:
                await db.execute(jobs.update().values(payload={"written": True}))
                started.set()
                await asyncio.Event().wait()  # a step that never answers
        finally:
            running.remove(job.attempts)

    async with core_engine.begin() as db:
        await stage_job(db, "slow", {}, now=T0, max_attempts=3)
    first = asyncio.create_task(_worker(core_engine, waits_on_a_step, clock).run_once())
    await started.wait()
    # Before its lease runs out (by the database's clock, which counts from the claim).
    done, _ = await asyncio.wait({first}, timeout=LEASE.lease_s - LEASE.run_budget_s)
    assert first in done, "the run was not stopped within its lease"
    assert await first == 1

    status, attempts, last_error, run_at, locked_until = await _row(core_engine)
    assert (status, attempts, locked_until) == ("pending", 1, None)
    assert last_error is not None
    assert last_error.startswith("JobOverranError: stopped after")
    assert run_at == T0 + backoff_for(1)  # tried again after its backoff, not at once
    async with core_engine.connect() as db:
        assert (await db.execute(select(jobs.c.payload))).scalar_one() == {}  # rolled back

    assert await _worker(core_engine, waits_on_a_step, clock).run_once() == 0
    clock.advance(backoff_for(1).total_seconds())
    assert await _worker(core_engine, waits_on_a_step, clock).run_once() == 1
    assert (await _row(core_engine))[:2] == ("done", 2)
    assert at_once == [1, 1]


async def test_a_run_stopped_mid_statement_is_recorded_and_its_connection_recovers(
    core_engine: AsyncEngine,
) -> None:
    clock = FixedClock(T0)

    async def waits_on_the_database(db: AsyncConnection, job: Job) -> None:
        if job.attempts == 1:
            await db.execute(text("SELECT pg_sleep(30)"))

    async with core_engine.begin() as db:
        await stage_job(db, "slow", {}, now=T0, max_attempts=3)
    worker = _worker(core_engine, waits_on_the_database, clock)
    assert await asyncio.wait_for(worker.run_once(), timeout=LEASE.lease_s) == 1
    status, attempts, last_error, _, _ = await _row(core_engine)
    assert (status, attempts) == ("pending", 1)
    assert last_error is not None
    assert last_error.startswith("JobOverranError")

    clock.advance(backoff_for(1).total_seconds())
    assert await worker.run_once() == 1
    assert (await _row(core_engine))[:2] == ("done", 2)


async def test_a_handler_s_own_timeout_is_its_own_failure(core_engine: AsyncEngine) -> None:
    async def times_out(_db: AsyncConnection, job: Job) -> None:
        raise TimeoutError("the endpoint did not answer")

    async with core_engine.begin() as db:
        await stage_job(db, "slow", {}, now=T0, max_attempts=3)
    assert await _worker(core_engine, times_out, FixedClock(T0)).run_once() == 1
    last_error = (await _row(core_engine))[2]
    assert last_error == "TimeoutError: the endpoint did not answer"


async def test_a_run_s_budget_counts_from_its_claim_not_from_its_connection(
    databases: WorkerDatabases,
) -> None:
    """A job's handler waits for a connection of the pool first (up to
    REMIT_DATABASE_POOL_TIMEOUT_S, 300 s at most). Its budget used to start only then, so a
    wait longer than the lease's end margin let the run go on past its lease, while a second
    worker claimed the job and ran it too. Here the wait alone outlasts the budget: the handler
    is not started, and the job is retried after its backoff."""
    engine = make_engine(databases.core_url, pool_size=1, pool_timeout_s=5)  # 2 connections
    wait_s = LEASE.run_budget_s + 0.2
    started: list[float] = []

    async def never_answers(_db: AsyncConnection, job: Job) -> None:
        started.append(asyncio.get_running_loop().time())
        await asyncio.Event().wait()

    class BusyPool(Worker):
        """Its pool's connections are all in use for `wait_s` once it has claimed."""

        async def _claim(self, limit: int, lane: Lane) -> list[Job]:
            claimed = await super()._claim(limit, lane)
            held = [await self.engine.connect() for _ in range(2)]

            async def give_back() -> None:
                await asyncio.sleep(wait_s)
                for connection in held:
                    await connection.close()

            self.giving_back = asyncio.create_task(give_back())
            return claimed

    clock = FixedClock(T0)
    try:
        async with engine.begin() as db:
            await stage_job(db, "slow", {}, now=T0, max_attempts=3)
        worker = BusyPool(engine=engine, handlers={"slow": never_answers}, clock=clock,
                          lease=LEASE)  # fmt: skip
        claimed_at = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(worker.run_once(), timeout=30) == 1
        await worker.giving_back
        assert started == [], (
            f"the handler started {started[0] - claimed_at:.2f} s after its claim, past its "
            f"{LEASE.run_budget_s} s budget"
        )
        status, attempts, last_error, run_at, locked_until = await _row(engine)
        assert (status, attempts, locked_until) == ("pending", 1, None)
        assert last_error is not None
        assert last_error.startswith("JobOverranError: stopped after")
        assert run_at == T0 + backoff_for(1)
    finally:
        await _truncate(engine)
        await dispose(engine)


async def _truncate(engine: AsyncEngine) -> None:
    async with engine.begin() as db:
        await db.execute(text("TRUNCATE jobs"))
