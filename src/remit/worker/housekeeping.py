"""Periodic clean-up of the job table itself.

Ended jobs are kept a while and then deleted: done ones `FINISHED_JOB_RETENTION` after they
finished, failed ones `FAILED_JOB_RETENTION` after, so that an operator has time to see them
(`remit jobs failed`). The prune deletes `PRUNE_BATCH` jobs per transaction, through the index of
ended jobs, so that a backlog (a first run on a busy platform) neither holds its row locks nor
grows its transaction without bound; and it runs in one worker copy at a time, since copies
would only read the same rows and wait on each other's deletes.
"""

from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.worker.alone import run_alone
from remit.worker.jobs import delete_finished_jobs
from remit.worker.runner import Periodic

FINISHED_JOB_RETENTION: Final = timedelta(days=7)
FAILED_JOB_RETENTION: Final = timedelta(days=30)
PRUNE_BATCH: Final = 10_000
PRUNE_TASK: Final = "prune-finished-jobs"


async def prune_ended_jobs(engine: AsyncEngine, *, now: datetime, batch: int = PRUNE_BATCH) -> int:
    """Delete the jobs past their retention, a transaction per batch; returns how many."""
    deleted = 0
    for status, retention in (("done", FINISHED_JOB_RETENTION), ("failed", FAILED_JOB_RETENTION)):
        while True:
            async with engine.begin() as db:
                count = await delete_finished_jobs(
                    db, status=status, older_than=now - retention, limit=batch
                )
            deleted += count
            if count < batch:
                break
    return deleted


def housekeeping_tasks(engine: AsyncEngine, clock: Clock | None = None) -> list[Periodic]:
    time = clock or SystemClock()

    async def prune() -> None:
        await prune_ended_jobs(engine, now=time.now())

    async def prune_in_one_copy() -> None:
        await run_alone(engine, PRUNE_TASK, prune)

    return [Periodic(PRUNE_TASK, 3600.0, prune_in_one_copy)]
