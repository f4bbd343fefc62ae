"""Refunds keep their charge's customer and payment method.

Stripe's refund shows `customer` and `payment_method` (expandable), both those of the refunded
charge. Refunds made before this revision take them from their charge here, so every refund
answers alike.

Revision ID: 0028_refund_customer_and_method
Revises: 0027_payouts_due
"""

import sqlalchemy as sa
from alembic import op

revision = "0028_refund_customer_and_method"
down_revision = "0027_payouts_due"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("refunds", sa.Column("customer_id", sa.Text, nullable=True))
    op.add_column("refunds", sa.Column("payment_method_id", sa.Text, nullable=True))
    op.execute(
        """
        UPDATE refunds AS r
        SET customer_id = c.customer_id, payment_method_id = c.payment_method_id
        FROM charges AS c
        WHERE c.id = r.charge_id AND c.account_id = r.account_id
        """
    )


def downgrade() -> None:
    op.drop_column("refunds", "payment_method_id")
    op.drop_column("refunds", "customer_id")
