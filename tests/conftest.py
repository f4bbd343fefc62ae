"""Fixtures shared by every test: a real PostgreSQL (never SQLite), fresh for each worker."""

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.storage.embedded import EmbeddedCluster
from remit.storage.engine import dispose, make_engine
from tests.support.postgres import WorkerDatabases, start_test_cluster, worker_databases


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[EmbeddedCluster]:
    cluster = start_test_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def databases(pg_cluster: EmbeddedCluster) -> Iterator[WorkerDatabases]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with worker_databases(pg_cluster, worker) as databases:
        yield databases


async def _truncate_all(engine: AsyncEngine) -> None:
    async with engine.begin() as db:
        rows = await db.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
        )
        tables = [f'"{row[0]}"' for row in rows]
        if tables:
            # The ledger's tables refuse TRUNCATE (core migration 0064_ledger_outcomes_forward)
            # unless triggers are off, as they are for this transaction alone.
            await db.execute(text("SET LOCAL session_replication_role = replica"))
            await db.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def core_engine(databases: WorkerDatabases) -> AsyncIterator[AsyncEngine]:
    """The worker's core database, emptied after each test."""
    engine = make_engine(databases.core_url, pool_size=5)
    try:
        yield engine
    finally:
        await _truncate_all(engine)
        await dispose(engine)


@pytest.fixture
async def acquirer_engine(databases: WorkerDatabases) -> AsyncIterator[AsyncEngine]:
    """The worker's acquirer database, emptied after each test."""
    engine = make_engine(databases.acquirer_url, pool_size=5)
    try:
        yield engine
    finally:
        await _truncate_all(engine)
        await dispose(engine)
