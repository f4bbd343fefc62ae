"""The worker tells the time by the database's clock, never its host's: a host whose clock runs
ahead must not make it void, release, take over or delete anything early."""

import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.config import PlatformConfig, from_env
from remit.core.clock import SystemClock
from remit.payments.idempotency import RecoveryPoint, digest
from remit.payments.service import EXPIRE_JOB
from remit.payments.tables import idempotency_keys
from remit.storage import database_clock
from remit.storage.database_clock import DatabaseClock
from remit.worker.database_clock import READING_TASK_NAME, WORKER
from remit.worker.jobs import stage_job
from remit.worker.registry import prepare_worker
from remit.worker.tables import jobs
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio
HOST_AHEAD = timedelta(days=3)


class Monotonic:
    """A monotonic clock a test moves."""

    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


async def _database_now(engine: AsyncEngine) -> datetime:
    async with engine.connect() as db:
        value = (await db.execute(select(func.clock_timestamp()))).scalar_one()
    assert isinstance(value, datetime)
    return value


@pytest.fixture
def host_clock_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's clock, as everything that tells the time by it reads it, three days ahead."""
    host_now = SystemClock.now
    monkeypatch.setattr(SystemClock, "now", lambda self: host_now(self) + HOST_AHEAD)


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    return (await AccountsService(core_engine).create_account()).account.id


@pytest.fixture
def config(databases: WorkerDatabases, tmp_path: Path) -> PlatformConfig:
    return from_env(
        {
            "DATABASE_URL": databases.core_url,
            "REMIT_DATA_DIR": str(tmp_path),
            "REMIT_INTERNAL_TOKEN": "clock-test-token",
        }
    )


async def test_the_clock_tells_the_database_s_time_carried_on_the_monotonic_clock(
    core_engine: AsyncEngine, host_clock_ahead: None
) -> None:
    monotonic = Monotonic()
    before = await _database_now(core_engine)
    clock = await DatabaseClock.read_from(core_engine, WORKER, monotonic=monotonic)
    after = await _database_now(core_engine)
    assert before <= clock.now() <= after
    read = clock.now()
    monotonic.seconds += 3600  # an hour by the host's monotonic clock: its wall clock is not read
    assert clock.now() == read + timedelta(hours=1)
    await clock.read()  # the database says it was not an hour: its time wins
    assert before <= clock.now() <= await _database_now(core_engine)


async def test_a_worker_on_a_host_whose_clock_runs_ahead_acts_on_the_database_s_time(
    core_engine: AsyncEngine, config: PlatformConfig, account_id: str, host_clock_ahead: None
) -> None:
    now = await _database_now(core_engine)
    async with core_engine.begin() as db:
        # An authorization's expiry, due tomorrow.
        await stage_job(db, EXPIRE_JOB, {"account_id": account_id, "payment_intent_id": "pi_1"},
                        now=now, run_at=now + timedelta(days=1))  # fmt: skip
        common = {"account_id": account_id, "request_digest": digest("CapturePaymentIntent", b""),
                  "request_body": b"", "endpoint": "CapturePaymentIntent"}  # fmt: skip
        # A request the core runs now, and holds for its lease.
        await db.execute(
            idempotency_keys.insert().values(
                key="live", recovery_point=RecoveryPoint.ATTEMPT_CREATED.value, owner="the-core",
                created_at=now - timedelta(minutes=10), last_run_at=now - timedelta(minutes=10),
                locked_until=now + timedelta(seconds=20), **common,
            )
        )  # fmt: skip
        # A request over an hour ago, whose key a retry may present for a day.
        await db.execute(
            idempotency_keys.insert().values(
                key="recent", recovery_point=RecoveryPoint.FINISHED.value, response_code=0,
                created_at=now - timedelta(hours=1), last_run_at=now - timedelta(hours=1),
                **common,
            )
        )  # fmt: skip
    worker = await prepare_worker(core_engine, config)
    try:
        tasks = {task.name: task for task in worker.periodic}
        assert tasks[READING_TASK_NAME].interval_s == database_clock.READ_EVERY_S
        assert await worker.run_once() == 0
        await tasks["idempotency-completer"].run()
        await tasks["idempotency-reaper"].run()
    finally:
        for close in worker.on_stop:
            await close()
    async with core_engine.connect() as db:
        keys = {row.key: row for row in await db.execute(select(idempotency_keys))}
        job = (await db.execute(select(jobs.c.status, jobs.c.attempts))).one()
    assert set(keys) == {"live", "recent"}
    assert (keys["live"].owner, keys["live"].last_failure_code) == ("the-core", None)
    assert (job.status, job.attempts) == ("pending", 0)


class HostClock:
    """The host's wall clock, set off from the real time by a test."""

    def __init__(self, ahead: timedelta) -> None:
        self.ahead = ahead

    def now(self) -> datetime:
        return datetime.now(UTC) + self.ahead


async def test_a_host_clock_off_the_database_s_is_said_once_reminded_and_ended(
    core_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    host, monotonic = HostClock(timedelta(seconds=30)), Monotonic()
    with caplog.at_level(logging.INFO, logger=database_clock.log.name):
        clock = await DatabaseClock.read_from(core_engine, WORKER, max_skew=timedelta(seconds=5),
                                              monotonic=monotonic, host=host)  # fmt: skip
        for _ in range(2):  # a read every 30s: one reminder a minute
            monotonic.seconds += 30
            await clock.read()
        host.ahead = timedelta(seconds=1)
        monotonic.seconds += 30
        await clock.read()
        await clock.read()
        host.ahead = timedelta(seconds=-10)
        await clock.read()
    said = [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name == database_clock.log.name
    ]
    assert [level for level, _ in said] == ["WARNING", "WARNING", "INFO", "WARNING"]
    found, reminder, ended, behind = (message for _, message in said)
    assert re.match(
        r"the host's clock is (29\.9|30\.\d)s ahead of the database's, more than the 5s allowed "
        r"\(REMIT_WORKER_MAX_CLOCK_SKEW_S\): the worker runs on",
        found,
    )
    assert "decides every due time, lease, expiry and retention by the database's clock" in found
    assert reminder.startswith("the host's clock is still, after 60s, ")
    assert ended.startswith("the host's clock agrees with the database's again")
    assert ended.endswith("after 90s")
    assert re.match(r"the host's clock is (9\.9|10\.0)s behind the database's", behind)
