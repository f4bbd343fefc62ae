"""Refunds keep their charge's customer and payment method.

Stripe's refund shows `customer` and `payment_method` (expandable), both those of the refunded
charge. Refunds made before this revision take them from their charge here, so every refund
answers alike.

The columns are added in the migration's transaction (nullable, so the table is not rewritten)
and filled afterwards in batches, so that refunds keep being made and read meanwhile
(`remit.storage.batched_backfill`). A refund that already has either (one made after the
columns were added) is left as it is.

Revision ID: 0028_refund_customer_and_method
Revises: 0027_payouts_due
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.batched_backfill import backfill_in_batches

revision = "0028_refund_customer_and_method"
down_revision = "0027_payouts_due"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("refunds", sa.Column("customer_id", sa.Text, nullable=True), if_not_exists=True)
    op.add_column(
        "refunds", sa.Column("payment_method_id", sa.Text, nullable=True), if_not_exists=True
    )
    backfill_in_batches(
        "refunds",
        """
        UPDATE refunds AS r
        SET customer_id = c.customer_id, payment_method_id = c.payment_method_id
        FROM charges AS c
        WHERE r.id > :after AND r.id <= :last
          AND r.customer_id IS NULL AND r.payment_method_id IS NULL
          AND (c.customer_id IS NOT NULL OR c.payment_method_id IS NOT NULL)
          AND c.id = r.charge_id AND c.account_id = r.account_id
        """,
    )


def downgrade() -> None:
    op.drop_column("refunds", "payment_method_id")
    op.drop_column("refunds", "customer_id")
