"""What the worker process is built to run."""

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.config import from_env
from remit.payments.service import EXPIRE_JOB, EXPIRY_RETRY_AFTER
from remit.storage.engine import dispose, make_engine
from remit.worker.jobs import Job
from remit.worker.registry import VAULT_SWEEP_INTERVAL_S, build_worker
from remit.worker.tables import jobs
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio


async def test_the_worker_sweeps_unreferenced_vault_cards_periodically(
    databases: WorkerDatabases, tmp_path: Path
) -> None:
    config = from_env(
        {
            "DATABASE_URL": databases.core_url,
            "REMIT_DATA_DIR": str(tmp_path),
            "REMIT_INTERNAL_TOKEN": "registry-test-token",
        }
    )
    engine = make_engine(databases.core_url)
    worker = build_worker(engine, config)
    try:
        intervals = {task.name: task.interval_s for task in worker.periodic}
        assert intervals["vault-unreferenced-card-sweep"] == VAULT_SWEEP_INTERVAL_S
        assert len(intervals) == len(worker.periodic)  # names are unique
    finally:
        for close in worker.on_stop:
            await close()
        await dispose(engine)


async def test_an_expiry_that_failed_for_good_is_staged_again_and_reported(
    core_engine: AsyncEngine,
    databases: WorkerDatabases,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Left failed, the authorization would stay held at the network and the intent
    requires_capture for ever."""
    config = from_env(
        {
            "DATABASE_URL": databases.core_url,
            "REMIT_DATA_DIR": str(tmp_path),
            "REMIT_INTERNAL_TOKEN": "registry-test-token",
        }
    )
    engine = core_engine
    worker = build_worker(engine, config)
    payload = {"account_id": "acct_1", "payment_intent_id": "pi_1"}
    failed = Job(id=41, kind=EXPIRE_JOB, payload=payload, account_id="acct_1", attempts=25,
                 max_attempts=25)  # fmt: skip
    try:
        async with engine.begin() as db:
            before = (await db.execute(select(func.now()))).scalar_one()
            await worker.given_up[EXPIRE_JOB](db, failed)
        async with engine.connect() as db:
            staged = (
                await db.execute(
                    select(jobs.c.payload, jobs.c.status, jobs.c.run_at).where(
                        jobs.c.kind == EXPIRE_JOB
                    )
                )
            ).all()
    finally:
        for close in worker.on_stop:
            await close()
    [again] = staged
    # The failed runs may have sent the release: the staged job looks it up before sending.
    assert (again.payload, again.status) == ({**payload, "sent_before": True}, "pending")
    assert again.run_at >= before + EXPIRY_RETRY_AFTER
    assert [r.levelname for r in caplog.records if "pi_1" in r.getMessage()] == ["ERROR"]
