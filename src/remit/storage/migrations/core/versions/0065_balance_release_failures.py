"""Due funds the release job cannot move, recorded once instead of retried on every run.

The job that makes pending funds available posts each due balance transaction's net from the
account's pending ledger account to its available one. Running balances are bigints, and
although a single leg is at most 2^62 - 1, a balance fed by many can pass 2^63 - 1: the
posting then fails with SQLSTATE 22003 (numeric value out of range), and would again on every
run of the job, every five seconds, for ever, logging each time. A full batch of such items
would also stop the job from reaching the due funds behind them.

The job now records such an item in this table, once, and no longer claims it
(`remit.ledger.jobs`); an operator who has made room deletes the row to let the job try again.
A new table, empty: nothing to fill, and earlier processes never read it. The downgrade drops
it: the items it held are then claimed again.

Revision ID: 0065_balance_release_failures
Revises: 0064_ledger_outcomes_forward
"""

import sqlalchemy as sa
from alembic import op

revision = "0065_balance_release_failures"
down_revision = "0064_ledger_outcomes_forward"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "balance_release_failures",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_balance_release_failures"),
        sa.ForeignKeyConstraint(
            ["id"],
            ["balance_transactions.id"],
            name="fk_balance_release_failures_id_balance_transactions",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_balance_release_failures_account_id_accounts"
        ),
    )


def downgrade() -> None:
    op.drop_table("balance_release_failures")
