"""Core migration 0034 keeps the runs stored before it, the latest of each day and scope as
that day's result."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

T0 = datetime(2026, 11, 3, 1, 0, tzinfo=UTC)


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "reconciliation_runs") as url:
        yield url


def test_earlier_runs_of_a_day_and_scope_are_superseded_by_its_latest(scratch_core: str) -> None:
    upgrade("core", scratch_core, "0033_off_session_setup")
    runs = [
        ("recon_a1", "2026-11-02", None, 0),
        ("recon_a2", "2026-11-02", None, 1),
        ("recon_a3", "2026-11-02", None, 2),
        ("recon_b1", "2026-11-02", "acct_1B", 1),
        ("recon_c1", "2026-11-01", None, 0),
    ]
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        for run_id, day, account, hours in runs:
            connection.execute(
                "INSERT INTO reconciliations (id, date, account_id, created_at, matched_count, "
                "missing_in_ledger_count, missing_at_acquirer_count, amount_mismatch_count) "
                "VALUES (%s, %s, %s, %s, 0, 0, 0, 0)",
                (run_id, day, account, T0 + timedelta(hours=hours)),
            )
    upgrade("core", scratch_core, "0034_reconciliation_runs")
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        found = connection.execute(
            "SELECT id, superseded_by, partial FROM reconciliations ORDER BY id"
        ).fetchall()
        assert found == [
            ("recon_a1", "recon_a3", False),
            ("recon_a2", "recon_a3", False),
            ("recon_a3", None, False),
            ("recon_b1", None, False),
            ("recon_c1", None, False),
        ]
        with pytest.raises(psycopg.errors.UniqueViolation):
            connection.execute(
                "INSERT INTO reconciliations (id, date, account_id, created_at, matched_count, "
                "missing_in_ledger_count, missing_at_acquirer_count, amount_mismatch_count) "
                "VALUES ('recon_a4', '2026-11-02', NULL, now(), 0, 0, 0, 0)"
            )
    command.downgrade(alembic_config("core", scratch_core), "0033_off_session_setup")
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        columns = connection.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'reconciliations'"
        ).fetchall()
    assert ("superseded_by",) not in columns
    assert ("partial",) not in columns
