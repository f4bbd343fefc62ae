"""Periodic clean-up of the job table itself."""

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.worker.jobs import delete_finished_jobs
from remit.worker.runner import Periodic

FINISHED_JOB_RETENTION = timedelta(days=7)


def housekeeping_tasks(engine: AsyncEngine, clock: Clock | None = None) -> list[Periodic]:
    time = clock or SystemClock()

    async def prune_finished_jobs() -> None:
        async with engine.begin() as db:
            await delete_finished_jobs(db, older_than=time.now() - FINISHED_JOB_RETENTION)

    return [Periodic("prune-finished-jobs", 3600.0, prune_finished_jobs)]
