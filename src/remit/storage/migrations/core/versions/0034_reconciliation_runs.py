"""Reconciliation runs say whether they were partial and which later run superseded them.

A day reconciled before it is over (UTC) compares only what has settled so far; such a run is
marked partial. Every run of a day stays stored, and a new run supersedes the earlier ones of
the same date and account scope: the one not superseded is the day's result, and a unique
partial index keeps it to one. Runs stored before this migration are marked superseded by the
latest run of their date and scope.

The reconciliations table holds a few rows a day and only `remit reconcile` writes it, so it is
altered in place.

Revision ID: 0034_reconciliation_runs
Revises: 0033_off_session_setup
"""

import sqlalchemy as sa
from alembic import op

revision = "0034_reconciliation_runs"
down_revision = "0033_off_session_setup"
branch_labels = None
depends_on = None

_CURRENT = "uq_reconciliations_current"


def upgrade() -> None:
    op.add_column(
        "reconciliations",
        sa.Column("partial", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    )
    op.add_column("reconciliations", sa.Column("superseded_by", sa.Text(), nullable=True))
    op.execute(
        """
        UPDATE reconciliations AS earlier
        SET superseded_by = latest.id
        FROM (
            SELECT DISTINCT ON (date, coalesce(account_id, '')) id, date, account_id
            FROM reconciliations
            ORDER BY date, coalesce(account_id, ''), created_at DESC, id DESC
        ) AS latest
        WHERE earlier.date = latest.date
          AND coalesce(earlier.account_id, '') = coalesce(latest.account_id, '')
          AND earlier.id <> latest.id
        """
    )
    op.create_index(
        _CURRENT,
        "reconciliations",
        ["date", sa.text("coalesce(account_id, '')")],
        unique=True,
        postgresql_where=sa.text("superseded_by IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(_CURRENT, table_name="reconciliations")
    op.drop_column("reconciliations", "superseded_by")
    op.drop_column("reconciliations", "partial")
