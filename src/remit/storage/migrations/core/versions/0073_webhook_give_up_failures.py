"""A webhook delivery counts the give-ups of its jobs that failed, and keeps why.

A delivery job that fails for good fails its delivery (`WebhookDeliverer.give_up`). When that
step failed too, the delivery stayed pending with no job; the worker's repair then staged a new
job for it, which could fail the same way hours later, and so on until the event was purged.
`give_up_failures` counts those failures and `give_up_error` keeps the latest one's reason: the
repair stages no job for a delivery that has reached `GIVE_UP_TRIES` (`remit.webhooks.repair`).

Columns with a constant default: added without rewriting the table. An earlier process running
beside this schema neither reads nor writes them; its give-ups are not counted, as before. The
downgrade drops them.

Revision ID: 0073_webhook_give_up_failures
Revises: 0072_ledger_reversals_negate
"""

import sqlalchemy as sa
from alembic import op

revision = "0073_webhook_give_up_failures"
down_revision = "0072_ledger_reversals_negate"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "webhook_deliveries",
        sa.Column("give_up_failures", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("webhook_deliveries", sa.Column("give_up_error", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("webhook_deliveries", "give_up_error")
    op.drop_column("webhook_deliveries", "give_up_failures")
