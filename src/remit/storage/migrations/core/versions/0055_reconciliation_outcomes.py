"""Reconciliation runs count their outcome mismatches: refunds the ledger booked as failed that
the acquirer settled.

A refund that failed after it posted kept its place on the ledger's side as if it had been
made, and was matched against the acquirer's settlement of it, though the ledger had given its
money back. Reconciliation now marks such a refund failed; settled by the acquirer, it is a row
of the new status `outcome_mismatch`, which runs count as they count the others.

Runs stored before this revision count none, which is what they found. The reconciliations
table holds a few rows a day and only `remit reconcile` writes it; the column has a constant
default, so it is added without rewriting it.

Processes of the earlier version cannot read a run with such a row: GetReconciliation fails
there on the status it does not know. Upgrade the core before running `remit reconcile` with
this version. The downgrade turns such rows into amount mismatches, the status the earlier
version has for a pair that differs, and counts them so.

Revision ID: 0055_reconciliation_outcomes
Revises: 0054_reconciliation_differences
"""

import sqlalchemy as sa
from alembic import op

revision = "0055_reconciliation_outcomes"
down_revision = "0054_reconciliation_differences"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "reconciliations",
        sa.Column("outcome_mismatch_count", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.execute(
        "UPDATE reconciliation_rows SET status = 'amount_mismatch'"
        " WHERE status = 'outcome_mismatch'"
    )
    op.execute(
        "UPDATE reconciliations"
        " SET amount_mismatch_count = amount_mismatch_count + outcome_mismatch_count"
        " WHERE outcome_mismatch_count > 0"
    )
    op.drop_column("reconciliations", "outcome_mismatch_count")
