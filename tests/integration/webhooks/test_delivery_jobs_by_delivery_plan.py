"""The pending delivery jobs of a batch of deliveries are found by the index of pending
delivery jobs by delivery (core migration 0078), not by reading every pending delivery job:
when a deleted endpoint's batch removes its deliveries' queued jobs (holding the batch's
delivery row locks), and when the repair looks for the deliveries of a page with none."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.webhooks import deleted, repair
from tests.integration.webhooks.conftest import Bench
from tests.integration.webhooks.test_deleted_endpoints_plan import _add_pending

pytestmark = pytest.mark.anyio

_INDEX = "ix_jobs_pending_delivery"
_QUEUED = 200_000
_T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


async def _queue_deliveries(engine: AsyncEngine) -> None:
    async with engine.begin() as db:
        await db.execute(
            text(
                "INSERT INTO jobs (kind, payload, account_id, run_at, max_attempts, created_at)"
                " SELECT 'webhooks.deliver', jsonb_build_object('delivery_id', n, 'attempt', 1),"
                " 'acct_a', :at, 25, :at FROM generate_series(1, :count) AS n"
            ),
            {"at": _T0, "count": _QUEUED},
        )
    async with engine.connect() as db:
        await db.execute(text("ANALYZE jobs"))
        await db.commit()


async def test_a_batch_s_queued_jobs_are_found_by_delivery(core_engine: AsyncEngine) -> None:
    await _queue_deliveries(core_engine)
    ids = ",".join(f"'{n}'" for n in range(100_001, 101_001))
    sql = deleted.UNQUEUE.sql.replace("%(ids)s", "$1")
    async with core_engine.connect() as db:
        # As a prepared statement may be planned: for any ids.
        await db.execute(text("SET plan_cache_mode = force_generic_plan"))
        await db.exec_driver_sql(f"PREPARE unqueue (text[]) AS {sql}")
        plan = "\n".join(
            (
                await db.exec_driver_sql(
                    f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE unqueue(ARRAY[{ids}])"
                )
            )
            .scalars()
            .all()
        )
        await db.rollback()
    assert _INDEX in plan, plan
    assert "Seq Scan" not in plan, plan
    assert "ix_jobs_runnable" not in plan, plan


async def test_the_repair_finds_a_page_s_jobs_by_delivery(bench: Bench) -> None:
    """A whole page of overdue deliveries, among many queued delivery jobs."""
    await _queue_deliveries(bench.engine)
    endpoint = await bench.endpoint("https://overdue.example/hook")
    await _add_pending(bench, endpoint.id, repair.BATCH)
    async with bench.engine.begin() as db:
        await db.execute(
            text("UPDATE webhook_deliveries SET next_attempt_at = :at WHERE status = 'pending'"),
            {"at": _T0},
        )
        await db.execute(text("ANALYZE webhook_deliveries"))
    values = repair.batch_params(_T0 + repair.MARGIN * 2)
    async with bench.engine.connect() as db:
        plan = "\n".join(
            (await db.exec_driver_sql(f"EXPLAIN {repair.REPAIR_BATCH.sql}", values)).scalars().all()
        )
        await db.rollback()
    with_job = plan[plan.index("CTE with_job") : plan.index("CTE ended")]
    assert _INDEX in with_job, plan
    assert "Seq Scan on jobs" not in with_job, plan
