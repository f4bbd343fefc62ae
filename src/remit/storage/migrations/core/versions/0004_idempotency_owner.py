"""Idempotency keys carry their claimant's fencing token.

Revision ID: 0004_idempotency_owner
Revises: 0003_payments
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_idempotency_owner"
down_revision = "0003_payments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("owner", sa.Text, nullable=True))
