"""Claims by lane: a fair claim takes every account's oldest due job before any account's
second, so one account's backlog of deliveries does not fill the delivery slots ahead of
another's; a lane's claim takes only its own kinds, through the index of runnable jobs by
kind, however many due jobs of other kinds are queued ahead of them."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.worker import jobs as job_queue
from remit.worker.jobs import (
    FAIR_CLAIM_MIN_WINDOW,
    FAIR_CLAIM_WINDOW,
    claim_jobs,
    fair_claim_window,
    stage_job,
)

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DELIVER = "webhooks.deliver"


async def _stage(engine: AsyncEngine, account_id: str | None, count: int, kind: str = DELIVER,
                 at: datetime = T0) -> None:  # fmt: skip
    async with engine.begin() as db:
        for number in range(count):
            await stage_job(db, kind, {"n": number}, now=at + timedelta(milliseconds=number),
                            account_id=account_id)  # fmt: skip


async def _claim(engine: AsyncEngine, limit: int, *, fair: bool, kinds: list[str]) -> list[str]:
    async with engine.begin() as db:
        claimed = await claim_jobs(db, now=T0 + timedelta(minutes=1), limit=limit, kinds=kinds,
                                   fair=fair)  # fmt: skip
    return [f"{job.account_id}:{job.payload['n']}" for job in claimed]


async def test_a_fair_claim_takes_each_account_s_oldest_job_before_anyone_s_next(
    core_engine: AsyncEngine,
) -> None:
    await _stage(core_engine, "acct_a", 16)
    await _stage(core_engine, "acct_b", 2, at=T0 + timedelta(seconds=1))
    await _stage(core_engine, "acct_c", 1, at=T0 + timedelta(seconds=2))
    first = await _claim(core_engine, 4, fair=True, kinds=[DELIVER])
    assert sorted(first) == ["acct_a:0", "acct_a:1", "acct_b:0", "acct_c:0"]
    # Then the next turn: B's second, and A's next oldest.
    second = await _claim(core_engine, 2, fair=True, kinds=[DELIVER])
    assert sorted(second) == ["acct_a:2", "acct_b:1"]


async def test_a_plain_claim_still_takes_the_oldest_jobs_first(core_engine: AsyncEngine) -> None:
    await _stage(core_engine, "acct_a", 16)
    await _stage(core_engine, "acct_b", 1, at=T0 + timedelta(seconds=1))
    assert await _claim(core_engine, 4, fair=False, kinds=[DELIVER]) == [
        "acct_a:0", "acct_a:1", "acct_a:2", "acct_a:3"
    ]  # fmt: skip


async def test_a_fair_claim_looks_only_so_far_ahead(core_engine: AsyncEngine) -> None:
    """Its read is bounded: a job past the window of the oldest due ones waits for the window
    to reach it, which the jobs ahead of it, claimed in turn, soon make."""
    assert fair_claim_window(1) == fair_claim_window(2) == FAIR_CLAIM_MIN_WINDOW
    assert fair_claim_window(64) == 64 * FAIR_CLAIM_WINDOW
    await _stage(core_engine, "acct_a", FAIR_CLAIM_MIN_WINDOW)
    await _stage(core_engine, "acct_b", 1, at=T0 + timedelta(seconds=1))
    assert await _claim(core_engine, 1, fair=True, kinds=[DELIVER]) == ["acct_a:0"]
    # One of A's claimed, B's job is within the window now.
    assert sorted(await _claim(core_engine, 2, fair=True, kinds=[DELIVER])) == [
        "acct_a:1", "acct_b:0"
    ]  # fmt: skip


async def test_a_fair_claim_locks_only_the_jobs_it_chose(core_engine: AsyncEngine) -> None:
    """A claim held open (its transaction not yet committed) has locked only the job it took:
    a concurrent claim takes the next oldest, passing over the held one (chosen again by its
    first read, then skipped, and left out of its second). B's job lies past the window."""
    await _stage(core_engine, "acct_a", 200)
    await _stage(core_engine, "acct_b", 1, at=T0 + timedelta(seconds=1))
    now = T0 + timedelta(minutes=1)
    async with core_engine.connect() as held, held.begin():
        first = await claim_jobs(held, now=now, limit=1, kinds=[DELIVER], fair=True)
        async with core_engine.begin() as db:
            second = await asyncio.wait_for(
                claim_jobs(db, now=now, limit=2, kinds=[DELIVER], fair=True), 30
            )
    assert [f"{job.account_id}:{job.payload['n']}" for job in first] == ["acct_a:0"]
    assert [f"{job.account_id}:{job.payload['n']}" for job in second] == [
        "acct_a:1", "acct_a:2"
    ]  # fmt: skip
    # Once the held claim commits, nothing it took is claimed again.
    assert await _claim(core_engine, 1, fair=True, kinds=[DELIVER]) == ["acct_a:3"]


async def test_a_lane_claims_only_its_own_kinds(core_engine: AsyncEngine) -> None:
    await _stage(core_engine, "acct_a", 5)
    await _stage(core_engine, None, 1, kind="payments.expire", at=T0 + timedelta(seconds=1))
    assert await _claim(core_engine, 8, fair=False, kinds=["payments.expire"]) == ["None:0"]
    assert len(await _claim(core_engine, 8, fair=True, kinds=[DELIVER])) == 5


async def test_a_fair_claim_needs_its_kinds(core_engine: AsyncEngine) -> None:
    async with core_engine.begin() as db:
        with pytest.raises(ValueError, match="kinds"):
            await claim_jobs(db, now=T0, limit=1, fair=True)


async def _plan(engine: AsyncEngine, sql: str, values: dict[str, object]) -> str:
    """EXPLAIN of the claim, with its values written in (and rolled back)."""
    for name, value in values.items():
        literal = (
            f"'{value.isoformat()}'::timestamptz" if isinstance(value, datetime)
            else "ARRAY[" + ",".join(f"'{kind}'" for kind in value) + "]"
            if isinstance(value, list) else str(value)
        )  # fmt: skip
        sql = sql.replace(f":{name}", literal)
    async with engine.connect() as db:
        rows = (await db.exec_driver_sql(f"EXPLAIN {sql}")).scalars().all()
        await db.rollback()
    return "\n".join(rows)


async def test_each_lane_s_claim_reads_its_own_kinds_through_the_index_by_kind(
    core_engine: AsyncEngine,
) -> None:
    """With 50,000 deliveries due ahead of them, the payment jobs' claim does not read past
    them, nor does the deliveries' fair claim read them all."""
    async with core_engine.begin() as db:
        await db.execute(text(
            "INSERT INTO jobs (kind, payload, account_id, run_at, max_attempts, created_at)"
            " SELECT :kind, '{}', 'acct_' || (n % 100), :at + n * interval '1 ms', 25, :at"
            " FROM generate_series(1, 50000) AS n"
        ), {"kind": DELIVER, "at": T0})  # fmt: skip
        await db.execute(text(
            "INSERT INTO jobs (kind, payload, run_at, max_attempts, created_at)"
            " SELECT 'payments.expire', '{}', :at, 25, :at FROM generate_series(1, 20) AS n"
        ), {"at": T0 + timedelta(seconds=1)})  # fmt: skip
    async with core_engine.connect() as db:
        await db.execute(text("ANALYZE jobs"))
        await db.commit()
    now = T0 + timedelta(minutes=1)
    general = await _plan(core_engine, job_queue._CLAIM_KINDS.text, {
        "now": now, "lease_s": 60, "limit": 8, "kinds": ["other", "payments.expire"]
    })  # fmt: skip
    assert "ix_jobs_runnable_kind" in general, general
    fair = await _plan(core_engine, job_queue._FAIR_CLAIM_ONE_KIND.text, {
        "now": now, "lease_s": 60, "limit": 64, "window": fair_claim_window(64),
        "kind": f"'{DELIVER}'", "passed": [],
    })  # fmt: skip
    assert "ix_jobs_runnable_kind" in fair, fair
    # Read in the window's order, and only as far as the window: nothing sorted under it.
    window = fair[fair.index("Subquery Scan on due") : fair.index("CTE locked")]
    assert "Sort" not in window, fair
    assert "Seq Scan" not in window, fair
    # Only the jobs chosen are locked, by their primary key.
    locked = fair[fair.index("CTE locked") : fair.index("CTE claimed")]
    assert "LockRows" in locked, fair
    assert "pk_jobs" in locked, fair
