"""Webhook endpoints remember their latest failed attempt, so a long silence breaks a run.

An endpoint is disabled once every delivery to it has failed for three days. The run of
failures was measured from its first failure to the latest, whatever lay between: an endpoint
whose deliveries had all run out of retries, quiet for days since, was disabled by the first
failure after, though it may have been mended meanwhile. `last_failed_at` lets a failure after
a silence longer than FAILURE_RUN_BREAK start a run of its own.

Endpoints failing at the upgrade take their latest failed attempt from the attempts recorded
(or, where none is left, the start of their run): a run already broken by a long silence is seen
as broken from the first failure after the upgrade.

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
        """
        UPDATE webhook_endpoints AS e
        SET last_failed_at = coalesce(
            (SELECT max(a.attempted_at) FROM webhook_delivery_attempts AS a
             WHERE a.endpoint_id = e.id AND NOT a.succeeded),
            e.failing_since)
        WHERE e.failing_since IS NOT NULL
        """
    )


def downgrade() -> None:
    op.drop_column("webhook_endpoints", "last_failed_at")
