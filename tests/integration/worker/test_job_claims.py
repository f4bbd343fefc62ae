"""A job's end is recorded only under the claim that ran it, leases follow the database's
clock, and a job claimed past its attempt limit is failed rather than run again. Two workers
are driven by hand, step by step."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import FixedClock
from remit.worker.jobs import Job, claim_jobs, stage_job
from remit.worker.runner import Worker
from remit.worker.tables import jobs
from tests.support.jobs import run_out_job_leases

pytestmark = pytest.mark.anyio
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class SlowFirstAttempt:
    """The first attempt waits for `go` and then fails; every later one succeeds at once."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.go = asyncio.Event()
        self.ran: list[int] = []

    async def __call__(self, _db: AsyncConnection, job: Job) -> None:
        self.ran.append(job.attempts)
        if job.attempts == 1:
            self.started.set()
            await self.go.wait()
            raise RuntimeError("the first attempt failed late")


async def _row(engine: AsyncEngine) -> tuple[str, int]:
    async with engine.connect() as db:
        row = (await db.execute(select(jobs.c.status, jobs.c.attempts))).one()
    return row.status, row.attempts


async def test_a_late_failure_after_another_worker_finished_the_job_changes_nothing(
    core_engine: AsyncEngine,
) -> None:
    handler = SlowFirstAttempt()
    given_up: list[int] = []

    async def give_up(_db: AsyncConnection, job: Job) -> None:
        given_up.append(job.attempts)

    def worker() -> Worker:
        return Worker(engine=core_engine, handlers={"slow": handler}, clock=FixedClock(T0),
                      given_up={"slow": give_up})  # fmt: skip

    async with core_engine.begin() as db:
        await stage_job(db, "slow", {}, now=T0, max_attempts=2)
    first = asyncio.create_task(worker().run_once())
    await handler.started.wait()
    await run_out_job_leases(core_engine)  # the first worker is still at it
    assert await worker().run_once() == 1
    assert await _row(core_engine) == ("done", 2)

    handler.go.set()
    assert await first == 1
    assert handler.ran == [1, 2]
    assert await _row(core_engine) == ("done", 2)
    assert given_up == []


async def test_a_late_success_after_another_worker_took_the_job_is_rolled_back(
    core_engine: AsyncEngine,
) -> None:
    started, go = asyncio.Event(), asyncio.Event()
    rows_written: list[int] = []

    async def handler(db: AsyncConnection, job: Job) -> None:
        if job.attempts == 1:
            started.set()
            await go.wait()
        await db.execute(jobs.update().where(jobs.c.id == job.id).values(last_error="mark"))
        rows_written.append(job.attempts)

    def worker() -> Worker:
        return Worker(engine=core_engine, handlers={"slow": handler}, clock=FixedClock(T0))

    async with core_engine.begin() as db:
        await stage_job(db, "slow", {}, now=T0, max_attempts=3)
    first = asyncio.create_task(worker().run_once())
    await started.wait()
    await run_out_job_leases(core_engine)
    async with core_engine.begin() as db:
        [taken] = await claim_jobs(db, now=T0, limit=1)  # a second worker, mid-run
    go.set()
    assert await first == 1
    assert rows_written == [1]
    async with core_engine.connect() as db:
        row = (await db.execute(select(jobs.c.status, jobs.c.attempts, jobs.c.last_error))).one()
    # Still the second worker's: pending under its claim, and the first one's write undone.
    assert (row.status, row.attempts, row.last_error) == ("pending", taken.attempts, None)


async def test_a_worker_whose_clock_runs_ahead_does_not_take_over_a_running_job(
    core_engine: AsyncEngine,
) -> None:
    async with core_engine.begin() as db:
        await stage_job(db, "slow", {}, now=T0)
    async with core_engine.begin() as db:
        assert len(await claim_jobs(db, now=T0, limit=1, lease_s=60)) == 1
    ahead = T0 + timedelta(hours=1)
    async with core_engine.begin() as db:
        assert await claim_jobs(db, now=ahead, limit=1) == []
    await run_out_job_leases(core_engine)
    async with core_engine.begin() as db:
        assert [job.attempts for job in await claim_jobs(db, now=T0, limit=1)] == [2]


async def test_a_job_whose_every_attempt_died_with_its_worker_is_failed_and_given_up(
    core_engine: AsyncEngine,
) -> None:
    ran: list[int] = []
    given_up: list[int] = []

    async def handler(_db: AsyncConnection, job: Job) -> None:
        ran.append(job.attempts)

    async def give_up(_db: AsyncConnection, job: Job) -> None:
        given_up.append(job.attempts)

    async with core_engine.begin() as db:
        await stage_job(db, "deadly", {}, now=T0, max_attempts=2)
    for _ in range(2):  # claimed, then its worker died before recording anything
        async with core_engine.begin() as db:
            assert len(await claim_jobs(db, now=T0, limit=1)) == 1
        await run_out_job_leases(core_engine)

    worker = Worker(engine=core_engine, handlers={"deadly": handler}, clock=FixedClock(T0),
                    given_up={"deadly": give_up})  # fmt: skip
    assert await worker.run_once() == 1
    assert ran == []
    assert given_up == [2]
    assert await _row(core_engine) == ("failed", 2)
    assert await worker.run_once() == 0
