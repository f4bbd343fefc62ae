"""The PostgreSQL job queue: staging, claiming under concurrency, leases, retries."""

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import FixedClock
from remit.worker.jobs import NOTIFY_CHANNEL, Job, claim_jobs, stage_job
from remit.worker.runner import Lane, Worker, libpq_url
from remit.worker.tables import jobs
from tests.support.jobs import run_out_job_leases
from tests.support.notifications import notifications

pytestmark = pytest.mark.anyio
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


async def test_a_job_staged_in_a_rolled_back_transaction_never_exists(
    core_engine: AsyncEngine,
) -> None:
    class AbortError(Exception):
        pass

    async def stage_then_fail() -> None:
        async with core_engine.begin() as db:
            await stage_job(db, "noop", {"n": 1}, now=T0)
            raise AbortError

    with pytest.raises(AbortError):
        await stage_then_fail()
    async with core_engine.begin() as db:
        assert await claim_jobs(db, now=T0, limit=10) == []


async def test_concurrent_claimers_never_get_the_same_job(core_engine: AsyncEngine) -> None:
    async with core_engine.begin() as db:
        for n in range(60):
            await stage_job(db, "noop", {"n": n}, now=T0)

    async def claim() -> list[int]:
        async with core_engine.begin() as db:
            return [job.id for job in await claim_jobs(db, now=T0, limit=7)]

    batches = await asyncio.gather(*(claim() for _ in range(12)))
    claimed = [job_id for batch in batches for job_id in batch]
    assert len(claimed) == 60
    assert len(set(claimed)) == 60


async def test_a_claimed_job_returns_to_the_queue_when_its_lease_expires(
    core_engine: AsyncEngine,
) -> None:
    async with core_engine.begin() as db:
        await stage_job(db, "noop", {}, now=T0)
    async with core_engine.begin() as db:
        first = await claim_jobs(db, now=T0, limit=1, lease_s=30)
    async with core_engine.begin() as db:
        assert await claim_jobs(db, now=T0, limit=1) == []
    await run_out_job_leases(core_engine)
    async with core_engine.begin() as db:
        again = await claim_jobs(db, now=T0, limit=1)
    assert [j.id for j in again] == [first[0].id]
    assert again[0].attempts == 2


async def test_the_same_dedupe_key_stages_one_job(core_engine: AsyncEngine) -> None:
    async with core_engine.begin() as db:
        await stage_job(db, "expire", {"a": 1}, now=T0, dedupe_key="expire:pi_1")
        await stage_job(db, "expire", {"a": 2}, now=T0, dedupe_key="expire:pi_1")
    async with core_engine.begin() as db:
        claimed = await claim_jobs(db, now=T0, limit=10)
    assert [dict(j.payload) for j in claimed] == [{"a": 1}]


async def test_a_failing_handler_is_retried_with_backoff_then_marked_failed(
    core_engine: AsyncEngine,
) -> None:
    clock = FixedClock(T0)
    calls: list[int] = []

    async def always_fails(_db: AsyncConnection, job: Job) -> None:
        calls.append(job.attempts)
        raise RuntimeError("receiver down")

    worker = Worker(engine=core_engine, handlers={"flaky": always_fails}, clock=clock)
    async with core_engine.begin() as db:
        await stage_job(db, "flaky", {}, now=T0, max_attempts=3)

    assert await worker.run_once() == 1
    assert await worker.run_once() == 0  # not due until the backoff has passed
    clock.advance(4.1)
    assert await worker.run_once() == 1
    clock.advance(8.1)
    assert await worker.run_once() == 1
    clock.advance(3600)
    assert await worker.run_once() == 0
    assert calls == [1, 2, 3]
    async with core_engine.connect() as db:
        row = (await db.execute(select(jobs.c.status, jobs.c.last_error))).one()
    assert row.status == "failed"
    assert "receiver down" in row.last_error


async def test_a_job_failed_for_good_is_given_up_once_even_if_giving_up_fails(
    core_engine: AsyncEngine,
) -> None:
    """The kind's give-up step runs once the job has failed for good, in the failing
    transaction under a savepoint: should its own statement fail too (aborting what it ran
    in), the job stays failed and is not claimed ever again, its error saying first that its
    give-up failed (what `remit jobs failed` shows), then its own."""
    clock = FixedClock(T0)
    given_up: list[int] = []

    async def always_fails(_db: AsyncConnection, job: Job) -> None:
        raise RuntimeError("cannot render")

    async def give_up(db: AsyncConnection, job: Job) -> None:
        given_up.append(job.attempts)
        await db.execute(text("SELECT 1 / 0"))

    worker = Worker(
        engine=core_engine,
        handlers={"doomed": always_fails},
        clock=clock,
        given_up={"doomed": give_up},
    )
    async with core_engine.begin() as db:
        await stage_job(db, "doomed", {}, now=T0, max_attempts=2)
    for _ in range(6):
        await worker.run_once()
        clock.advance(3600)  # past every backoff and every lease
    assert given_up == [2]
    async with core_engine.connect() as db:
        row = (await db.execute(select(jobs.c.status, jobs.c.attempts, jobs.c.last_error))).one()
    assert (row.status, row.attempts) == ("failed", 2)
    assert row.last_error == (
        "its give-up step failed (DataError: (psycopg.errors.DivisionByZero) division by zero);"
        " RuntimeError: cannot render"
    )


async def test_a_worker_claims_no_more_jobs_than_it_runs_at_once(core_engine: AsyncEngine) -> None:
    """A job claimed but left waiting for a turn would see its lease run out while it waited,
    and another worker would claim it again: a batch is as large as the concurrency, and the
    rest stay unclaimed for any worker."""
    running: list[int] = []
    most = 0

    async def slow(_db: AsyncConnection, job: Job) -> None:
        nonlocal most
        running.append(job.id)
        most = max(most, len(running))
        await asyncio.sleep(0.05)
        running.remove(job.id)

    worker = Worker(
        engine=core_engine, handlers={"slow": slow}, clock=FixedClock(T0), concurrency=2
    )
    async with core_engine.begin() as db:
        for n in range(5):
            await stage_job(db, "slow", {"n": n}, now=T0)
    assert await worker.run_once() == 2
    assert most == 2
    async with core_engine.connect() as db:
        unclaimed = (
            await db.execute(
                select(func.count()).where(
                    jobs.c.status == "pending", jobs.c.locked_until.is_(None)
                )
            )
        ).scalar_one()
    assert unclaimed == 3


async def test_one_slow_job_does_not_hold_the_worker_s_other_slots_idle(
    core_engine: AsyncEngine,
) -> None:
    """A slot is claimed for again as soon as its job ends: jobs staged behind a slow one (a
    webhook delivery waiting out its timeout) run meanwhile in the worker's other slot."""
    release = asyncio.Event()
    done: list[int] = []

    async def work(_db: AsyncConnection, job: Job) -> None:
        if job.payload["slow"]:
            await release.wait()
        done.append(int(str(job.payload["n"])))

    worker = Worker(
        engine=core_engine, handlers={"work": work}, clock=FixedClock(T0), concurrency=2
    )
    async with core_engine.begin() as db:
        await stage_job(db, "work", {"n": 0, "slow": True}, now=T0)
        for n in range(1, 4):
            await stage_job(db, "work", {"n": n, "slow": False}, now=T0)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run_forever(None, stop))
    try:
        for _ in range(200):
            if len(done) == 3:
                break
            await asyncio.sleep(0.05)
        assert sorted(done) == [1, 2, 3]  # all while the slow one still runs
    finally:
        release.set()
        stop.set()
        await running
    assert sorted(done) == [0, 1, 2, 3]


async def test_a_handler_that_succeeds_completes_its_job_once(core_engine: AsyncEngine) -> None:
    seen: list[object] = []

    async def record(_db: AsyncConnection, job: Job) -> None:
        seen.append(job.payload["n"])

    worker = Worker(engine=core_engine, handlers={"record": record}, clock=FixedClock(T0))
    async with core_engine.begin() as db:
        for n in range(5):
            await stage_job(db, "record", {"n": n}, now=T0)
    assert await worker.drain() == 5
    assert sorted(seen) == [0, 1, 2, 3, 4]  # type: ignore[type-var]
    assert await worker.drain() == 0


async def test_workers_are_woken_when_a_staged_job_commits_and_not_before(
    core_engine: AsyncEngine,
) -> None:
    url = libpq_url(core_engine.url.render_as_string(hide_password=False))
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as listener:
        await listener.execute(f"LISTEN {NOTIFY_CHANNEL}")

        async def received(expected: int = 0) -> list[str]:
            return [note.payload for note in await notifications(listener, expected)]

        async with core_engine.begin() as db:
            await stage_job(db, "noop", {}, now=T0)
            assert await received() == []
        assert await received(1) == ["noop"]

        async with core_engine.begin() as db:
            await stage_job(db, "expire", {}, now=T0, dedupe_key="expire:pi_1")
        async with core_engine.begin() as db:
            await stage_job(db, "expire", {}, now=T0, dedupe_key="expire:pi_1")
            await stage_job(db, "noop", {}, now=T0)
        # The second staging of the deduplicated job added nothing, so woke no one for it.
        assert await received(2) == ["expire", "noop"]


async def test_the_worker_keeps_claiming_after_the_database_fails_it(
    core_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database restart used to end `run_forever` with the error, and `remit serve` with it."""
    monkeypatch.setattr("remit.worker.runner.POLL_INTERVAL_S", 0.01)
    ran: list[Mapping[str, object]] = []

    async def handler(db: AsyncConnection, job: Job) -> None:
        ran.append(job.payload)

    class FailingAtFirst(Worker):
        failures_left = 3

        async def _claim(self, limit: int, lane: Lane) -> list[Job]:
            if self.failures_left:
                self.failures_left -= 1
                raise psycopg.OperationalError("the connection is lost")
            return await super()._claim(limit, lane)

    worker = FailingAtFirst(core_engine, {"resilience": handler})
    async with core_engine.begin() as db:
        await stage_job(db, "resilience", {"n": 1}, now=datetime.now(UTC))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run_forever(None, stop))
    for _ in range(500):
        if ran:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(running, timeout=30)
    assert worker.failures_left == 0
    assert ran == [{"n": 1}]


async def test_a_stopping_worker_waits_for_its_running_jobs_only_so_long(
    core_engine: AsyncEngine,
) -> None:
    """A job that never ends (a handler stuck on a call without a timeout) must not keep a
    stopping worker past the supervisor's grace, which would kill it with SIGKILL: the job is
    cancelled after its `stop_drain_s`, its claim left to run out (claimed jobs are leased)."""
    started = asyncio.Event()
    cancelled: list[bool] = []

    async def stuck(_db: AsyncConnection, job: Job) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    worker = Worker(
        engine=core_engine, handlers={"stuck": stuck}, clock=FixedClock(T0), stop_drain_s=0.2
    )
    async with core_engine.begin() as db:
        await stage_job(db, "stuck", {}, now=T0)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run_forever(None, stop))
    await asyncio.wait_for(started.wait(), 10)
    stop.set()
    await asyncio.wait_for(running, timeout=30)
    assert cancelled == [True]


async def test_the_error_a_job_failed_with_is_stored_masked(core_engine: AsyncEngine) -> None:
    """An exception's message may quote a card number, a key or a database URL: none of it
    reaches `jobs.last_error`, whoever reads the column (not only `remit jobs failed`)."""

    async def fails_quoting_secrets(_db: AsyncConnection, job: Job) -> None:
        raise RuntimeError(
            "declined 4242 4242 4242 4242 (also 4000056655665556) with sk_test_abcdef123456 "
            "via postgresql://remit:s3cret@db/remit"
        )

    worker = Worker(
        engine=core_engine, handlers={"leaky": fails_quoting_secrets}, clock=FixedClock(T0)
    )
    async with core_engine.begin() as db:
        await stage_job(db, "leaky", {}, now=T0, max_attempts=1)
    assert await worker.run_once() == 1
    async with core_engine.connect() as db:
        stored = (await db.execute(select(jobs.c.status, jobs.c.last_error))).one()
        # Every stored error, as a dump or a replica of the column would hold it.
        digits = await db.scalar(
            text("SELECT count(*) FROM jobs WHERE regexp_replace(last_error, '[ -]', '', 'g') "
                 "~ '(4242424242424242|4000056655665556)'")
        )  # fmt: skip
    assert stored.status == "failed"
    assert digits == 0
    assert stored.last_error == (
        "RuntimeError: declined [card ****4242] (also [card ****5556]) with "
        "sk_test_********3456 via postgresql://***@db/remit"
    )


async def test_waiting_for_notifications_by_count_keeps_extra_ones_of_the_same_commit(
    core_engine: AsyncEngine,
) -> None:
    """The tests' notification helper shows a notification beyond those expected, sent by the
    same commit, so that an assertion on what a commit sends can fail."""
    url = libpq_url(core_engine.url.render_as_string(hide_password=False))
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as listener:
        await listener.execute("LISTEN ch_a")
        await listener.execute("LISTEN ch_b")
        async with await psycopg.AsyncConnection.connect(url) as sender:
            await sender.execute("NOTIFY ch_a, 'a'")
            await sender.execute("NOTIFY ch_b, 'b'")
            await sender.commit()
        got = await notifications(listener, 1)
    assert sorted((note.channel, note.payload) for note in got) == [("ch_a", "a"), ("ch_b", "b")]
