"""Customers, payment methods and card tokens (vault tokens and public card details only).

Revision ID: 0003_payment_methods
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003_payment_methods"
down_revision = "0002"
branch_labels = None
depends_on = None


def _card_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("vault_token", sa.Text, nullable=False),
        sa.Column("brand", sa.Text, nullable=False),
        sa.Column("last4", sa.Text, nullable=False),
        sa.Column("exp_month", sa.Integer, nullable=False),
        sa.Column("exp_year", sa.Integer, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("funding", sa.Text, nullable=False),
        sa.Column("country", sa.Text, nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("email", sa.Text, nullable=True),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("phone", sa.Text, nullable=True),
        sa.Column("business_name", sa.Text, nullable=True),
        sa.Column("individual_name", sa.Text, nullable=True),
        sa.Column("address", JSONB, nullable=True),
        sa.Column("shipping", JSONB, nullable=True),
        sa.Column("metadata", JSONB, nullable=False),
        sa.Column("preferred_locales", JSONB, nullable=False),
        sa.Column("tax_exempt", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_customers_account_id_accounts"
        ),
    )
    op.create_index("ix_customers_account_created", "customers", ["account_id", "created_at", "id"])
    op.create_table(
        "payment_methods",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        *_card_columns(),
        sa.Column("billing_details", JSONB, nullable=False),
        sa.Column("metadata", JSONB, nullable=False),
        sa.Column("customer_id", sa.Text, nullable=True),
        sa.Column("allow_redisplay", sa.Text, nullable=True),
        sa.Column("test_id", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detached_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_payment_methods"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_payment_methods_account_id_accounts"
        ),
    )
    op.create_index(
        "ix_payment_methods_account_created",
        "payment_methods",
        ["account_id", "created_at", "id"],
    )
    op.create_index(
        "ix_payment_methods_account_customer", "payment_methods", ["account_id", "customer_id"]
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("card_id", sa.Text, nullable=False),
        *_card_columns(),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("address", JSONB, nullable=False),
        sa.Column("client_ip", sa.Text, nullable=True),
        sa.Column("metadata", JSONB, nullable=False),
        sa.Column("used", sa.Boolean, nullable=False),
        sa.Column("test_id", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_tokens_account_id_accounts"
        ),
    )
