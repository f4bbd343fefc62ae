"""A real vault over gRPC, on the worker's vault database, with an in-test acquirer."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.storage.engine import dispose, make_engine
from remit.vault.keystore import FileKeyStore
from tests.support.fake_acquirer import RecordingAcquirer, running_acquirer
from tests.support.postgres import WorkerDatabases
from tests.support.send_budgets import forwards_leave_a_loaded_vault_time
from tests.support.vault import RunningVault, empty_vault_database, running_vault

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def vault_engine(databases: WorkerDatabases) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(databases.vault_url, pool_size=5)
    try:
        yield engine
    finally:
        await empty_vault_database(engine)
        await dispose(engine)


@dataclass
class VaultHarness:
    vault: RunningVault
    acquirer: RecordingAcquirer
    keys: FileKeyStore
    clock: FixedClock
    engine: AsyncEngine


@pytest.fixture
async def harness(vault_engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[VaultHarness]:
    keys = FileKeyStore(tmp_path / "keys.json")
    keys.ensure_exists()
    clock = FixedClock(START)
    async with (
        running_acquirer() as (acquirer, target),
        running_vault(vault_engine, keys, {"acquirer": target}, clock=clock) as vault,
    ):
        yield VaultHarness(vault, acquirer, keys, clock, vault_engine)


@pytest.fixture(autouse=True)
def _forwards_leave_a_loaded_vault_time(monkeypatch: pytest.MonkeyPatch) -> None:
    forwards_leave_a_loaded_vault_time(monkeypatch)
