"""Accounts, API keys and PaymentIntents.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("default_currency", sa.Text, nullable=False),
        sa.Column("raw_card_access", sa.Boolean, nullable=False),
        sa.Column("api_version", sa.Text, nullable=True),
        sa.Column("fee_percent_bps", sa.Integer, nullable=False),
        sa.Column("fee_fixed_minor", sa.BigInteger, nullable=False),
        sa.Column("available_delay_days", sa.Integer, nullable=False),
        sa.Column("automatic_payouts", sa.Boolean, nullable=False),
        sa.Column("radar_enabled", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("key_digest", sa.LargeBinary, nullable=False),
        sa.Column("last4", sa.Text, nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_api_keys_account_id_accounts"
        ),
        sa.UniqueConstraint("key_digest", name="uq_api_keys_key_digest"),
    )
    op.create_index("ix_api_keys_account_id", "api_keys", ["account_id"])
    op.create_table(
        "payment_intents",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("capture_method", sa.Text, nullable=False),
        sa.Column("confirmation_method", sa.Text, nullable=False),
        sa.Column("client_secret", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text, nullable=True),
        sa.Column("payment_method_id", sa.Text, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("receipt_email", sa.Text, nullable=True),
        sa.Column("statement_descriptor", sa.Text, nullable=True),
        sa.Column("statement_descriptor_suffix", sa.Text, nullable=True),
        sa.Column("setup_future_usage", sa.Text, nullable=True),
        sa.Column("metadata", JSONB, nullable=False),
        sa.Column("amount_capturable_minor", sa.BigInteger, nullable=False),
        sa.Column("amount_received_minor", sa.BigInteger, nullable=False),
        sa.Column("latest_charge_id", sa.Text, nullable=True),
        sa.Column("cancellation_reason", sa.Text, nullable=True),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_payment_error", JSONB, nullable=True),
        sa.Column("next_action", JSONB, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_payment_intents"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_payment_intents_account_id_accounts"
        ),
    )
    op.create_index(
        "ix_payment_intents_account_created",
        "payment_intents",
        ["account_id", "created_at", "id"],
    )
