"""The prune of ended jobs: done ones after 7 days, failed ones after 30, a bounded batch per
transaction, in one worker copy at a time."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import FixedClock
from remit.worker import housekeeping
from remit.worker.alone import run_alone
from remit.worker.jobs import delete_finished_jobs
from remit.worker.tables import jobs

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


async def _job(engine: AsyncEngine, name: str, status: str, *, ended_days_ago: float) -> None:
    ended = NOW - timedelta(days=ended_days_ago)
    async with engine.begin() as db:
        await db.execute(
            text(
                "INSERT INTO jobs (kind, payload, status, run_at, max_attempts, created_at, "
                "finished_at) VALUES (:kind, '{}', :status, :at, 25, :at, "
                "CASE WHEN :status = 'pending' THEN NULL ELSE CAST(:at AS timestamptz) END)"
            ),
            {"kind": name, "status": status, "at": ended},
        )


async def _left(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as db:
        return sorted((await db.execute(select(jobs.c.kind))).scalars())


async def test_done_jobs_go_after_7_days_and_failed_ones_after_30_a_batch_at_a_time(
    core_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(5):
        await _job(core_engine, f"old-done-{number}", "done", ended_days_ago=8)
    await _job(core_engine, "recent-done", "done", ended_days_ago=6)
    for number in range(3):
        await _job(core_engine, f"old-failed-{number}", "failed", ended_days_ago=31)
    await _job(core_engine, "failed-8-days-ago", "failed", ended_days_ago=8)
    await _job(core_engine, "pending", "pending", ended_days_ago=60)
    batches: list[tuple[str, int]] = []

    async def counting(db: AsyncConnection, **kwargs: object) -> int:
        deleted = await delete_finished_jobs(db, **kwargs)  # type: ignore[arg-type]
        batches.append((str(kwargs["status"]), deleted))
        return deleted

    monkeypatch.setattr(housekeeping, "delete_finished_jobs", counting)

    assert await housekeeping.prune_ended_jobs(core_engine, now=NOW, batch=2) == 8

    assert batches == [("done", 2), ("done", 2), ("done", 1), ("failed", 2), ("failed", 1)]
    assert await _left(core_engine) == ["failed-8-days-ago", "pending", "recent-done"]


async def test_the_prune_runs_in_one_worker_copy_at_a_time(core_engine: AsyncEngine) -> None:
    await _job(core_engine, "old-done", "done", ended_days_ago=8)
    [prune] = housekeeping.housekeeping_tasks(core_engine, FixedClock(NOW))
    other_copy_inside, other_copy_done = asyncio.Event(), asyncio.Event()

    async def running_elsewhere() -> None:
        other_copy_inside.set()
        await other_copy_done.wait()

    other_copy = asyncio.create_task(
        run_alone(core_engine, housekeeping.PRUNE_TASK, running_elsewhere)
    )
    await other_copy_inside.wait()
    await prune.run()
    assert await _left(core_engine) == ["old-done"]
    other_copy_done.set()
    await other_copy
    await prune.run()
    assert await _left(core_engine) == []
