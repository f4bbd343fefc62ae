"""The databases an in-process `remit` command runs against in tests: each one named by URL,
so that none is started embedded under the data directory, and the core emptied after."""

import asyncio
from pathlib import Path

import pytest

from remit.storage.engine import dispose, make_engine
from tests.conftest import _truncate_all
from tests.support.postgres import WorkerDatabases


def name_every_database(
    databases: WorkerDatabases, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", databases.core_url)
    monkeypatch.setenv("VAULT_DATABASE_URL", databases.vault_url)
    monkeypatch.setenv("ACQUIRER_DATABASE_URL", databases.acquirer_url)
    monkeypatch.setenv("REMIT_DATA_DIR", str(tmp_path))


def empty_core_database(core_url: str) -> None:
    async def clean() -> None:
        engine = make_engine(core_url, pool_size=1)
        try:
            await _truncate_all(engine)
        finally:
            await dispose(engine)

    asyncio.run(clean())
