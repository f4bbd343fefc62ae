"""Reconciliation rows say what the two sides hold otherwise.

A row that was not matched said only its status, and the ledger's and the acquirer's amounts
and fees: a pair in another currency, for another merchant or another authorization showed as
an amount mismatch with equal amounts. `differences` holds, for each field the two sides
disagree on, what each holds: `[{"field", "ledger", "acquirer"}]`.

Rows stored before this revision get an empty list (what differed was not kept); running the
day's reconciliation again stores a run that says it. The column has a constant default, so it
is added without rewriting the table.

Revision ID: 0054_reconciliation_differences
Revises: 0053_idempotency_request_path
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0054_reconciliation_differences"
down_revision = "0053_idempotency_request_path"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "reconciliation_rows",
        sa.Column("differences", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    )


def downgrade() -> None:
    op.drop_column("reconciliation_rows", "differences")
