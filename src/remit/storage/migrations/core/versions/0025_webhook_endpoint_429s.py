"""Webhook endpoints count the 429s honoured since they last answered 2xx.

A delivery answered `429 Retry-After` waits as asked, without a step of its retry schedule, up
to ten times; every pending delivery to one endpoint had ten of its own, so an endpoint asking
for pauses to everything was called ten times per pending event before any schedule stepped
on. The ten are now the endpoint's, shared by its deliveries, and given back by a success.

Revision ID: 0025_webhook_endpoint_429s
Revises: 0024_webhook_rolled_secrets
"""

import sqlalchemy as sa
from alembic import op

revision = "0025_webhook_endpoint_429s"
down_revision = "0024_webhook_rolled_secrets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "webhook_endpoints",
        sa.Column("rate_limits_honoured", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("webhook_endpoints", "rate_limits_honoured")
