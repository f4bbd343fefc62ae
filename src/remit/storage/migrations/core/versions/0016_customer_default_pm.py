"""Customers keep a default payment method (Stripe's invoice_settings.default_payment_method).

A customer's create and update may name one of its payment methods as the default; detaching
that payment method clears it. Customers made before this revision have none.

Revision ID: 0016_customer_default_pm
Revises: 0015_capture_changes
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_customer_default_pm"
down_revision = "0015_capture_changes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("default_payment_method_id", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("customers", "default_payment_method_id")
