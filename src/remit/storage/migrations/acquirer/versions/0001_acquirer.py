"""The acquirer's authorizations and operations.

Revision ID: 0001_acquirer
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001_acquirer"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "authorizations",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("authorized_minor", sa.BigInteger, nullable=False),
        sa.Column("captured_minor", sa.BigInteger, nullable=False),
        sa.Column("refunded_minor", sa.BigInteger, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("card_brand", sa.Text, nullable=False),
        sa.Column("card_funding", sa.Text, nullable=False),
        sa.Column("card_bin", sa.Text, nullable=False),
        sa.Column("card_last4", sa.Text, nullable=False),
        sa.Column("exp_month", sa.Integer, nullable=False),
        sa.Column("exp_year", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_authorizations"),
        sa.CheckConstraint(
            "0 <= refunded_minor AND refunded_minor <= captured_minor "
            "AND captured_minor <= authorized_minor",
            name="ck_authorizations_amounts_within_bounds",
        ),
        sa.CheckConstraint("card_bin ~ '^[0-9]{6}$'", name="ck_authorizations_card_bin_six_digits"),
        sa.CheckConstraint(
            "card_last4 ~ '^[0-9]{4}$'", name="ck_authorizations_card_last4_four_digits"
        ),
    )
    op.create_table(
        "operations",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("authorization_id", sa.Text, nullable=True),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("approved", sa.Boolean, nullable=False),
        sa.Column("code", sa.Text, nullable=True),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("request", JSONB, nullable=False),
        sa.Column("authorization_result", JSONB, nullable=True),
        sa.Column("fee_minor", sa.BigInteger, nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_operations"),
        sa.UniqueConstraint("reference", name="uq_operations_reference"),
        sa.ForeignKeyConstraint(
            ["authorization_id"],
            ["authorizations.id"],
            name="fk_operations_authorization_id_authorizations",
        ),
    )
    op.create_index("ix_operations_authorization_id", "operations", ["authorization_id"])
    op.create_index(
        "ix_operations_settled_at",
        "operations",
        ["settled_at"],
        postgresql_where=sa.text("settled_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("operations")
    op.drop_table("authorizations")
