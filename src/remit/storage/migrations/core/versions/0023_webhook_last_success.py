"""Webhook endpoints remember their latest successful attempt, by when it was made.

Attempts are recorded in the order their POSTs end, not the order they were made: a failure
made before a success can be recorded after it, and started a run of failures that the success
had already ended. With `last_succeeded_at` such a failure starts no run.

Existing endpoints start with none: until their next success, failures count as they did.

Revision ID: 0023_webhook_last_success
Revises: 0022_released_authorizations
"""

import sqlalchemy as sa
from alembic import op

revision = "0023_webhook_last_success"
down_revision = "0022_released_authorizations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "webhook_endpoints",
        sa.Column("last_succeeded_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("webhook_endpoints", "last_succeeded_at")
