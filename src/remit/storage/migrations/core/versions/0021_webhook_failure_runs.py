"""Webhook endpoints remember their latest failed attempt, so a long silence breaks a run.

An endpoint is disabled once every delivery to it has failed for three days. The run of
failures was measured from its first failure to the latest, whatever lay between: an endpoint
whose deliveries had all run out of retries, quiet for days since, was disabled by the first
failure after, though it may have been mended meanwhile. `last_failed_at` lets a failure after
a silence longer than FAILURE_RUN_BREAK start a run of its own.

Endpoints failing at the upgrade carry on as they were: their latest failure is taken to be
now, so their runs stay unbroken.

Revision ID: 0021_webhook_failure_runs
Revises: 0020_payment_method_choice
"""

import sqlalchemy as sa
from alembic import op

revision = "0021_webhook_failure_runs"
down_revision = "0020_payment_method_choice"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "webhook_endpoints", sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(
        "UPDATE webhook_endpoints SET last_failed_at = now() WHERE failing_since IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_column("webhook_endpoints", "last_failed_at")
