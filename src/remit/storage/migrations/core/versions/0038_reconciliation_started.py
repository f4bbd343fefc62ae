"""Reconciliation runs record when they started, beside when they finished.

A run is stored once it has finished (`created_at`); `remit reconciliations` lists both ends,
so that a run that took long (a day of many settlements, an acquirer slow to answer) shows.
Runs stored before this migration never recorded their start: theirs stays NULL rather than
being guessed.

A nullable column without a default is added without rewriting the table or reading it.

Revision ID: 0038_reconciliation_started
Revises: 0037_pending_challenge_expiry
"""

import sqlalchemy as sa
from alembic import op

revision = "0038_reconciliation_started"
down_revision = "0037_pending_challenge_expiry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "reconciliations", sa.Column("started_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("reconciliations", "started_at")
