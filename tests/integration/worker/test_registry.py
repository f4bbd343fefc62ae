"""What the worker process is built to run."""

from pathlib import Path

import pytest

from remit.config import from_env
from remit.storage.engine import dispose, make_engine
from remit.worker.registry import VAULT_SWEEP_INTERVAL_S, build_worker
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
