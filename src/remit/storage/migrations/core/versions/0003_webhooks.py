"""Events, webhook endpoints, deliveries, delivery attempts and per-endpoint delivery slots.

Revision ID: 0003_webhooks
Revises: 0003_payment_methods
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003_webhooks"
down_revision = "0003_payment_methods"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("enabled_events", JSONB, nullable=False),
        sa.Column("api_version", sa.Text, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("metadata", JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("disabled_reason", sa.Text, nullable=True),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("previous_secret", sa.Text, nullable=True),
        sa.Column("previous_secret_expires_at", _TS, nullable=True),
        sa.Column("failing_since", _TS, nullable=True),
        sa.Column("rate_limited_until", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("deleted_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_endpoints"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_webhook_endpoints_account_id_accounts"
        ),
    )
    op.create_index(
        "ix_webhook_endpoints_account_id_created_at",
        "webhook_endpoints",
        ["account_id", "created_at", "id"],
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("livemode", sa.Boolean, nullable=False),
        sa.Column("data_object", JSONB, nullable=False),
        sa.Column("previous_attributes", JSONB, nullable=True),
        sa.Column("request_id", sa.Text, nullable=True),
        sa.Column("idempotency_key", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_events_account_id_accounts"
        ),
    )
    op.create_index("ix_events_account_id_created_at", "events", ["account_id", "created_at", "id"])
    op.create_index("ix_events_created_at", "events", ["created_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("endpoint_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("first_attempt_at", _TS, nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=True),
        sa.Column("last_attempt_at", _TS, nullable=True),
        sa.Column("finished_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name="fk_webhook_deliveries_event_id_events",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name="fk_webhook_deliveries_endpoint_id_webhook_endpoints",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "event_id", "endpoint_id", name="uq_webhook_deliveries_event_id_endpoint_id"
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint_id_status", "webhook_deliveries", ["endpoint_id", "status"]
    )
    op.create_table(
        "webhook_delivery_attempts",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("delivery_id", sa.BigInteger, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("endpoint_id", sa.Text, nullable=False),
        sa.Column("attempted_at", _TS, nullable=False),
        sa.Column("http_status", sa.Integer, nullable=True),
        sa.Column("latency_ms", sa.BigInteger, nullable=False),
        sa.Column("response_snippet", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("next_retry_at", _TS, nullable=True),
        sa.Column("attempt_number", sa.Integer, nullable=False),
        sa.Column("succeeded", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_delivery_attempts"),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name="fk_webhook_delivery_attempts_delivery_id_webhook_deliveries",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_webhook_delivery_attempts_event_id",
        "webhook_delivery_attempts",
        ["event_id", "attempted_at"],
    )
    op.create_index(
        "ix_webhook_delivery_attempts_endpoint_id",
        "webhook_delivery_attempts",
        ["endpoint_id", "attempted_at"],
    )
    op.create_index(
        "ix_webhook_delivery_attempts_delivery_id", "webhook_delivery_attempts", ["delivery_id"]
    )
    op.create_table(
        "webhook_inflight",
        sa.Column("delivery_id", sa.BigInteger, nullable=False),
        sa.Column("endpoint_id", sa.Text, nullable=False),
        sa.Column("leased_until", _TS, nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", name="pk_webhook_inflight"),
    )
    op.create_index("ix_webhook_inflight_endpoint_id", "webhook_inflight", ["endpoint_id"])


def downgrade() -> None:
    for table in (
        "webhook_inflight",
        "webhook_delivery_attempts",
        "webhook_deliveries",
        "events",
        "webhook_endpoints",
    ):
        op.drop_table(table)
