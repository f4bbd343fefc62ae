"""Disputes: a cardholder's chargeback of a captured charge, and the charge's link to it.

The network reports, with an authorization of test card 4000000000000259, that its cardholder
will dispute the payment; once the charge is captured the worker opens the dispute
(`remit.payments.disputes`), takes its amount and the dispute fee from the merchant's balance,
and names the dispute on the charge (`charges.dispute_id`). A charge is disputed at most once:
the unique index on `disputes.charge_id` holds it even to two runs of the job at once.

A new table, empty, and a nullable column no row has: nothing to fill. Earlier processes
never read either (they write every charge column they know, which leaves `dispute_id` as it
is). The downgrade drops both: disputes and their link are lost, the ledger keeps the money
they moved.

Revision ID: 0084_disputes
Revises: 0083_reconciliation_rows_pages
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0084_disputes"
down_revision = "0083_reconciliation_rows_pages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("charges", sa.Column("dispute_id", sa.Text, nullable=True))
    op.create_table(
        "disputes",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("charge_id", sa.Text, nullable=False),
        sa.Column("payment_intent_id", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("evidence", JSONB, nullable=False),
        sa.Column("evidence_due_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submission_count", sa.Integer, nullable=False),
        sa.Column("past_due", sa.Boolean, nullable=False),
        sa.Column("balance_transaction_ids", ARRAY(sa.Text), nullable=False),
        sa.Column("metadata", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_disputes"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_disputes_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(
            ["charge_id"], ["charges.id"], name="fk_disputes_charge_id_charges"
        ),
    )
    op.create_index("ix_disputes_account_created", "disputes", ["account_id", "created_at", "id"])
    op.create_index("ix_disputes_charge_id", "disputes", ["charge_id"], unique=True)


def downgrade() -> None:
    op.drop_table("disputes")
    op.drop_column("charges", "dispute_id")
