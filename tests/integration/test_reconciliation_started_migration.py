"""Core migration 0038 gives reconciliation runs a start time, left unknown for the runs stored
before it, and takes it away again on downgrade."""

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

FINISHED = datetime(2026, 11, 3, 1, 0, tzinfo=UTC)


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "reconciliation_started") as url:
        yield url


def _columns(url: str) -> set[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'reconciliations'"
        ).fetchall()
    return {str(row[0]) for row in rows}


def test_runs_stored_before_keep_no_start_and_downgrade_removes_the_column(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, "0036_unauthenticated_outcomes")
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO reconciliations (id, date, account_id, created_at, matched_count, "
            "missing_in_ledger_count, missing_at_acquirer_count, amount_mismatch_count) "
            "VALUES ('recon_before', '2026-11-02', NULL, %s, 1, 0, 0, 0)",
            (FINISHED,),
        )
    upgrade("core", scratch_core, "0038_reconciliation_started")
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        found = connection.execute(
            "SELECT id, started_at, created_at FROM reconciliations"
        ).fetchall()
    assert found == [("recon_before", None, FINISHED)]
    command.downgrade(alembic_config("core", scratch_core), "0036_unauthenticated_outcomes")
    assert "started_at" not in _columns(scratch_core)
    assert "created_at" in _columns(scratch_core)
