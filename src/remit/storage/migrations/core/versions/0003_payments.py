"""Charges, refunds, idempotency keys; PaymentIntents remember their return_url.

Revision ID: 0003_payments
Revises: 0003_webhooks
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003_payments"
down_revision = "0003_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payment_intents", sa.Column("return_url", sa.Text, nullable=True))
    op.create_table(
        "charges",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("payment_intent_id", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("amount_captured_minor", sa.BigInteger, nullable=False),
        sa.Column("amount_refunded_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("captured", sa.Boolean, nullable=False),
        sa.Column("capture_requested", sa.Boolean, nullable=False),
        sa.Column("payment_method_id", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text, nullable=True),
        sa.Column("card", JSONB, nullable=False),
        sa.Column("outcome", JSONB, nullable=True),
        sa.Column("failure_code", sa.Text, nullable=True),
        sa.Column("failure_message", sa.Text, nullable=True),
        sa.Column("decline_code", sa.Text, nullable=True),
        sa.Column("authorization_id", sa.Text, nullable=True),
        sa.Column("network_result", JSONB, nullable=True),
        sa.Column("requested_capture_minor", sa.BigInteger, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("metadata", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_charges"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_charges_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(
            ["payment_intent_id"],
            ["payment_intents.id"],
            name="fk_charges_payment_intent_id_payment_intents",
        ),
    )
    op.create_index("ix_charges_account_created", "charges", ["account_id", "created_at", "id"])
    op.create_index("ix_charges_payment_intent_id", "charges", ["payment_intent_id"])
    op.create_table(
        "refunds",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("charge_id", sa.Text, nullable=False),
        sa.Column("payment_intent_id", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("failure_reason", sa.Text, nullable=True),
        sa.Column("acquirer_refund_id", sa.Text, nullable=True),
        sa.Column("metadata", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_refunds"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_refunds_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(["charge_id"], ["charges.id"], name="fk_refunds_charge_id_charges"),
    )
    op.create_index("ix_refunds_account_created", "refunds", ["account_id", "created_at", "id"])
    op.create_index("ix_refunds_charge_id", "refunds", ["charge_id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("endpoint", sa.Text, nullable=False),
        sa.Column("request_digest", sa.LargeBinary, nullable=False),
        sa.Column("request_body", sa.LargeBinary, nullable=False),
        sa.Column("recovery_point", sa.Text, nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response_code", sa.Integer, nullable=True),
        sa.Column("response_body", sa.LargeBinary, nullable=True),
        sa.Column("payment_intent_id", sa.Text, nullable=True),
        sa.Column("charge_id", sa.Text, nullable=True),
        sa.Column("refund_id", sa.Text, nullable=True),
        sa.Column("request_id", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
