"""A job whose handler finds it claimed before it was due (`NotDueError`): the clock that
scheduled it, or the worker's, is off, and it runs again when due, its attempt not counted
against its limit."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import FixedClock
from remit.worker.jobs import (
    DEFAULT_MAX_ATTEMPTS,
    ClaimLostError,
    Job,
    NotDueError,
    claim_jobs,
    complete_job,
    reschedule_job,
    stage_job,
)
from remit.worker.runner import Worker
from remit.worker.tables import jobs

pytestmark = pytest.mark.anyio
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


async def test_a_job_claimed_before_it_was_due_is_put_back_until_then(
    core_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    due = T0 + timedelta(days=2)
    clock = FixedClock(T0)
    ran: list[int] = []

    async def not_yet(db: AsyncConnection, job: Job) -> None:
        ran.append(job.attempts)
        # Its work so far is rolled back with the put-back.
        await db.execute(insert(jobs).values(kind="side-effect", payload={}, run_at=T0,
                                             max_attempts=1, created_at=T0))  # fmt: skip
        if clock.now() < due:
            raise NotDueError(due)

    worker = Worker(engine=core_engine, handlers={"early": not_yet}, clock=clock)
    async with core_engine.begin() as db:
        await stage_job(db, "early", {}, now=T0)
    assert await worker.run_once() == 1
    async with core_engine.connect() as db:
        row = (await db.execute(select(jobs).where(jobs.c.kind == "early"))).one()
        side_effects = (await db.execute(select(jobs).where(jobs.c.kind == "side-effect"))).all()
    # The attempt is not counted against the limit: the limit grows with it.
    assert (row.status, row.run_at, row.locked_until) == ("pending", due, None)
    assert (row.attempts, row.max_attempts) == (1, DEFAULT_MAX_ATTEMPTS + 1)
    assert side_effects == []
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "claimed before it was due" in warning.getMessage()

    assert await worker.run_once() == 0  # not claimed again before it is due
    clock.advance(timedelta(days=2).total_seconds())
    assert await worker.run_once() == 1
    async with core_engine.connect() as db:
        assert (
            await db.execute(select(jobs.c.status).where(jobs.c.kind == "early"))
        ).scalar_one() == "done"
    assert ran == [1, 2]


async def test_a_put_back_gives_an_older_claim_no_second_life(core_engine: AsyncEngine) -> None:
    """A claim is the job's attempt count: a put-back that took it back gave the next claim the
    number of an older one, whose stalled worker could then record its end under it."""
    async with core_engine.begin() as db:
        await stage_job(db, "early", {}, now=T0)
    async with core_engine.begin() as db:
        [stalled] = await claim_jobs(db, now=T0, limit=1)
    async with core_engine.begin() as db:  # its lease runs out while its worker stalls
        await db.execute(update(jobs).values(locked_until=T0))
    async with core_engine.begin() as db:
        [newer] = await claim_jobs(db, now=T0, limit=1)
    assert newer.attempts == stalled.attempts + 1
    async with core_engine.begin() as db:
        await reschedule_job(db, newer, run_at=T0 + timedelta(days=2))
    with pytest.raises(ClaimLostError):
        async with core_engine.begin() as db:
            await complete_job(db, stalled, now=T0)
    async with core_engine.connect() as db:
        status = (await db.execute(select(jobs.c.status))).scalar_one()
    assert status == "pending"


async def test_put_backs_are_not_counted_as_runs(
    core_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker whose clock runs a little ahead may claim and put back a job many times: a
    failure after that backs off as a first failure, and the job's runs read as runs."""
    seen: list[tuple[int, int, int]] = []
    clock = FixedClock(T0)
    due = T0 + timedelta(seconds=1)

    async def flaky(db: AsyncConnection, job: Job) -> None:
        seen.append((job.tries, job.max_tries, job.put_backs))
        if clock.now() < due:
            raise NotDueError(due)
        raise RuntimeError("transient")

    worker = Worker(engine=core_engine, handlers={"early": flaky}, clock=clock)
    async with core_engine.begin() as db:
        await stage_job(db, "early", {}, now=T0, max_attempts=2)
    for _ in range(3):  # claimed, as its clock says, and put back each time
        async with core_engine.begin() as db:
            await db.execute(update(jobs).values(run_at=T0))
        assert await worker.run_once() == 1
    clock.advance(1)
    assert await worker.run_once() == 1
    async with core_engine.connect() as db:
        row = (await db.execute(select(jobs))).one()
    assert seen == [(1, 2, 0), (1, 2, 1), (1, 2, 2), (1, 2, 3)]
    assert (row.attempts, row.max_attempts, row.put_backs) == (4, 5, 3)
    assert row.status == "pending"
    assert row.run_at == due + timedelta(seconds=2)  # backoff_for(1), not backoff_for(4)

    caplog.clear()
    clock.advance(2)
    assert await worker.run_once() == 1
    async with core_engine.connect() as db:
        row = (await db.execute(select(jobs))).one()
    assert row.status == "failed"
    assert seen[-1] == (2, 2, 3)
    [gave_up] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "failed for good after 2 attempts" in gave_up.getMessage()
