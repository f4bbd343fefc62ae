"""Core migrations 0054 and 0055: rows stored before say nothing of what differed and runs count
no outcome mismatch; the downgrade turns outcome mismatches into the amount mismatches the
earlier version knows, and counts them so."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

FINISHED = datetime(2026, 11, 3, 1, 0, tzinfo=UTC)
BEFORE = "0053_idempotency_request_path"
RUN = (
    "INSERT INTO reconciliations (id, date, account_id, created_at, matched_count, "
    "missing_in_ledger_count, missing_at_acquirer_count, amount_mismatch_count) "
    "VALUES (%s, '2026-11-02', NULL, %s, 0, 0, 0, 1)"
)
ROW = (
    "INSERT INTO reconciliation_rows (reconciliation_id, status, kind, reference, "
    "authorization_id, account_id, currency, ledger_amount, acquirer_amount) "
    "VALUES (%s, %s, 'refund', 're_1', 'auth_1', 'acct_1', 'usd', 300, 300)"
)


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "reconciliation_outcomes") as url:
        yield url


def test_earlier_rows_say_no_differences_and_a_downgrade_keeps_outcome_mismatches_readable(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, BEFORE)
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        connection.execute(RUN, ("recon_before", FINISHED))
        connection.execute(ROW, ("recon_before", "amount_mismatch"))
    upgrade("core", scratch_core, "0055_reconciliation_outcomes")
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        before = connection.execute(
            "SELECT differences FROM reconciliation_rows WHERE reconciliation_id = 'recon_before'"
        ).fetchall()
        assert before == [([],)]
        counted = connection.execute(
            "SELECT outcome_mismatch_count FROM reconciliations WHERE id = 'recon_before'"
        ).fetchall()
        assert counted == [(0,)]
        connection.execute(
            "UPDATE reconciliations SET superseded_by = 'recon_after' WHERE id = 'recon_before'"
        )
        connection.execute(RUN, ("recon_after", FINISHED))
        connection.execute(
            "UPDATE reconciliations SET amount_mismatch_count = 0, outcome_mismatch_count = 1 "
            "WHERE id = 'recon_after'"
        )
        connection.execute(ROW, ("recon_after", "outcome_mismatch"))
        connection.execute(
            "UPDATE reconciliation_rows SET differences = %s WHERE reconciliation_id = %s",
            (json.dumps([{"field": "outcome", "ledger": "failed", "acquirer": "settled"}]),
             "recon_after"),
        )  # fmt: skip

    command.downgrade(alembic_config("core", scratch_core), BEFORE)
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT reconciliation_id, status FROM reconciliation_rows ORDER BY id"
        ).fetchall()
        runs = connection.execute(
            "SELECT id, amount_mismatch_count FROM reconciliations ORDER BY id"
        ).fetchall()
    assert rows == [("recon_before", "amount_mismatch"), ("recon_after", "amount_mismatch")]
    assert runs == [("recon_after", 1), ("recon_before", 1)]
