"""The vault: encrypted cards, test-card tokens, forwarded authorizations, the audit log.

Revision ID: 0001_vault
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001_vault"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cards",
        sa.Column("token", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("kek_name", sa.Text, nullable=False),
        sa.Column("kek_version", sa.Integer, nullable=False),
        sa.Column("wrapped_data_key", sa.LargeBinary, nullable=False),
        sa.Column("number_ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("cvc_ciphertext", sa.LargeBinary, nullable=True),
        sa.Column("cvc_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("brand", sa.Text, nullable=False),
        sa.Column("last4", sa.Text, nullable=False),
        sa.Column("exp_month", sa.Integer, nullable=False),
        sa.Column("exp_year", sa.Integer, nullable=False),
        sa.Column("funding", sa.Text, nullable=False),
        sa.Column("country", sa.Text, nullable=False),
        sa.Column("billing_details", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("token", name="pk_cards"),
    )
    op.create_index("ix_cards_kek_version", "cards", ["kek_version"])
    op.create_index(
        "ix_cards_cvc_expires_at",
        "cards",
        ["cvc_expires_at"],
        postgresql_where=sa.text("cvc_ciphertext IS NOT NULL"),
    )
    op.create_table(
        "test_card_tokens",
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("test_id", sa.Text, nullable=False),
        sa.Column("token", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "test_id", name="pk_test_card_tokens"),
    )
    op.create_table(
        "forwards",
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("token", sa.Text, nullable=False),
        sa.Column("destination", sa.Text, nullable=False),
        sa.Column("result", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "reference", name="pk_forwards"),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("requester", sa.Text, nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("token", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("destination", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("succeeded", sa.Boolean, nullable=False),
        sa.Column("key_version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_created", "audit_events", ["created_at", "id"])
    op.create_index("ix_audit_events_token", "audit_events", ["token"])
