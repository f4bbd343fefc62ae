"""Webhook deliveries count the steps of their retry schedule apart from their attempts.

A 429 whose Retry-After is honoured is an attempt, but it no longer moves the retry schedule on:
a burst of them used to use up the three days of retries in seconds. `retry_step` counts the
failed attempts that did move it on, and the next attempt is due one gap of that step after the
attempt before.

Before this revision every attempt was a step, so pending deliveries start from their attempt
count and carry on where their schedule was; finished ones keep 0, which nothing reads until a
redelivery starts them over at 0 anyway. A worker still running the code from before this
revision during a rolling upgrade leaves the steps it takes uncounted, which only shortens that
delivery's next gap; stopping the worker during the upgrade avoids even that.

Revision ID: 0019_webhook_retry_step
Revises: 0018_ledger_turn
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_webhook_retry_step"
down_revision = "0018_ledger_turn"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "webhook_deliveries",
        sa.Column("retry_step", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.execute("UPDATE webhook_deliveries SET retry_step = attempts WHERE status = 'pending'")


def downgrade() -> None:
    op.drop_column("webhook_deliveries", "retry_step")
