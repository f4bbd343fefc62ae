"""Radar: rules, value lists, velocity counters, reviews, 3-D Secure challenges; charges keep
Radar's verdict and their 3-D Secure state; intents and charges name their review.

Revision ID: 0006_radar
Revises: 0005_ledger
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0006_radar"
down_revision = "0005_ledger"
branch_labels = None
depends_on = None


def _account_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["account_id"], ["accounts.id"], name=f"fk_{table}_account_id_accounts"
    )


def upgrade() -> None:
    op.add_column("payment_intents", sa.Column("review_id", sa.Text, nullable=True))
    op.add_column("charges", sa.Column("risk", JSONB, nullable=True))
    op.add_column("charges", sa.Column("authentication", JSONB, nullable=True))
    op.add_column("charges", sa.Column("review_id", sa.Text, nullable=True))
    op.create_table(
        "radar_rules",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("predicate", sa.Text, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_radar_rules"),
        _account_fk("radar_rules"),
    )
    op.create_index("ix_radar_rules_account_position", "radar_rules", ["account_id", "position"])
    op.create_table(
        "radar_value_lists",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("alias", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("item_type", sa.Text, nullable=False),
        sa.Column("metadata", JSONB, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_radar_value_lists"),
        sa.UniqueConstraint("account_id", "alias", name="uq_radar_value_lists_account_id_alias"),
        _account_fk("radar_value_lists"),
    )
    op.create_index(
        "ix_radar_value_lists_account_created",
        "radar_value_lists",
        ["account_id", "created_at", "id"],
    )
    op.create_table(
        "radar_value_list_items",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("value_list_id", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("value_key", sa.Text, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_radar_value_list_items"),
        _account_fk("radar_value_list_items"),
        sa.ForeignKeyConstraint(
            ["value_list_id"],
            ["radar_value_lists.id"],
            name="fk_radar_value_list_items_value_list_id_radar_value_lists",
        ),
    )
    op.create_index(
        "ix_radar_value_list_items_lookup",
        "radar_value_list_items",
        ["value_list_id", "value_key"],
    )
    op.create_index(
        "ix_radar_value_list_items_list_created",
        "radar_value_list_items",
        ["value_list_id", "created_at", "id"],
    )
    op.create_table(
        "radar_counters",
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("dimension", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_minute", sa.BigInteger, nullable=False),
        sa.Column("last_hour", sa.BigInteger, nullable=False),
        sa.Column("attempts_by_minute", ARRAY(sa.Integer), nullable=False),
        sa.Column("attempts_by_hour", ARRAY(sa.Integer), nullable=False),
        sa.Column("declines_by_hour", ARRAY(sa.Integer), nullable=False),
        sa.Column("declines_in_a_row", sa.Integer, nullable=False),
        sa.Column("last_cvc_check", sa.Text, nullable=True),
        sa.Column("last_postal_check", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("account_id", "dimension", "key", name="pk_radar_counters"),
    )
    op.create_table(
        "radar_reviews",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("charge_id", sa.Text, nullable=False),
        sa.Column("payment_intent_id", sa.Text, nullable=False),
        sa.Column("open", sa.Boolean, nullable=False),
        sa.Column("opened_reason", sa.Text, nullable=False),
        sa.Column("closed_reason", sa.Text, nullable=True),
        sa.Column("rule_id", sa.Text, nullable=True),
        sa.Column("ip_address", sa.Text, nullable=True),
        sa.Column("ip_country", sa.Text, nullable=True),
        sa.Column("risk", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_radar_reviews"),
        _account_fk("radar_reviews"),
    )
    op.create_index(
        "ix_radar_reviews_account_created", "radar_reviews", ["account_id", "created_at", "id"]
    )
    op.create_index("ix_radar_reviews_charge_id", "radar_reviews", ["charge_id"])
    op.create_table(
        "three_d_secure_challenges",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("payment_intent_id", sa.Text, nullable=False),
        sa.Column("charge_id", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("brand", sa.Text, nullable=False),
        sa.Column("last4", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("return_url", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_three_d_secure_challenges"),
        _account_fk("three_d_secure_challenges"),
    )
    op.create_index(
        "ix_three_d_secure_challenges_intent",
        "three_d_secure_challenges",
        ["account_id", "payment_intent_id"],
    )


def downgrade() -> None:
    for table in (
        "three_d_secure_challenges",
        "radar_reviews",
        "radar_counters",
        "radar_value_list_items",
        "radar_value_lists",
        "radar_rules",
    ):
        op.drop_table(table)
    op.drop_column("charges", "review_id")
    op.drop_column("charges", "authentication")
    op.drop_column("charges", "risk")
    op.drop_column("payment_intents", "review_id")
