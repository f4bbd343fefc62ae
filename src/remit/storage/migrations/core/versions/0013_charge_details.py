"""Charges keep the details Stripe copies onto them; intents keep their shipping.

When a charge is made it takes the payment method's `billing_details` and the intent's
`receipt_email`, `statement_descriptor`, `statement_descriptor_suffix` and `shipping`, as they
are at that moment; later changes to the intent or the payment method leave the charge as it
was. Intents now store the `shipping` their create and update calls carry.

Charges made before this revision copied nothing: they keep empty billing details and null
for the rest, as they were rendered until now.

Revision ID: 0013_charge_details
Revises: 0012_event_api_version
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0013_charge_details"
down_revision = "0012_event_api_version"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payment_intents", sa.Column("shipping", JSONB, nullable=True))
    op.add_column(
        "charges",
        sa.Column("billing_details", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.add_column("charges", sa.Column("receipt_email", sa.Text(), nullable=True))
    op.add_column("charges", sa.Column("statement_descriptor", sa.Text(), nullable=True))
    op.add_column("charges", sa.Column("statement_descriptor_suffix", sa.Text(), nullable=True))
    op.add_column("charges", sa.Column("shipping", JSONB, nullable=True))


def downgrade() -> None:
    for column in (
        "shipping",
        "statement_descriptor_suffix",
        "statement_descriptor",
        "receipt_email",
        "billing_details",
    ):
        op.drop_column("charges", column)
    op.drop_column("payment_intents", "shipping")
