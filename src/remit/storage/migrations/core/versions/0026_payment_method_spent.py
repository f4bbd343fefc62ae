"""Payment methods remember the PaymentIntent that spent them.

Stripe lets a PaymentMethod that is attached to no customer pay one PaymentIntent only: once it
has been used to confirm one, it may not be used with any other, nor attached to a customer
afterwards. `spent_by_intent_id` is the intent that used it so, written with the attempt that
used it; that intent may still be confirmed with it again (after a decline). A payment method
attached to a customer is never spent by its payments.

Payment methods made before this revision have none: they stay usable as they were.

The downgrade drops the column, and with it which payment methods were spent: after a downgrade
and an upgrade again, every payment method that had paid an intent is usable again, with any
intent and to attach to a customer.

Revision ID: 0026_payment_method_spent
Revises: 0025_webhook_endpoint_429s
"""

import sqlalchemy as sa
from alembic import op

revision = "0026_payment_method_spent"
down_revision = "0025_webhook_endpoint_429s"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payment_methods", sa.Column("spent_by_intent_id", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("payment_methods", "spent_by_intent_id")
