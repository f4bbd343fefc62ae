"""CreateAccount and CreateApiKey take an idempotency key: the calls made under one, and what
each made (`remit.accounts.admin_requests`).

A new table, empty: nothing to fill. Earlier processes never read it; one still running
ignores the `idempotency-key` metadata of those calls, as it always did.

The downgrade drops it: a retry of a call made before then makes its account or key again.

Revision ID: 0060_admin_idempotency_keys
Revises: 0059_account_settings_in_bounds
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0060_admin_idempotency_keys"
down_revision = "0059_account_settings_in_bounds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_idempotency_keys",
        sa.Column("idempotency_key", sa.Text, primary_key=True),
        sa.Column("endpoint", sa.Text, nullable=False),
        sa.Column("request_digest", sa.LargeBinary, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("api_key_ids", ARRAY(sa.Text), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("admin_idempotency_keys")
