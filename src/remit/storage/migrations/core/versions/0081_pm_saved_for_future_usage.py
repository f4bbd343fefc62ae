"""Payment methods remember that the payment which spent them saved them for future usage.

A payment method used on a PaymentIntent while attached to no customer is spent: it pays that
intent only, and may not be attached to a customer afterwards. Stripe makes one exception: "If
no Customer was provided, the payment method can still be attached to a Customer after the
transaction completes" when the intent had `setup_future_usage` (a guest checkout that saves
the card, then signs up). `saved_for_future_usage` says so, written with the outcome of the
payment that went through; attaching the method, or creating a customer with it, then takes it.

Payment methods spent before this revision by such an intent (one without a customer, with
`setup_future_usage`, paid with this payment method and now succeeded or requires_capture) are
given it here, in batches (`remit.storage.batched_backfill`), so that the cards those guests
saved can be attached too. One whose intent was authorized and then canceled is left spent:
the intent no longer says that it went through.

The downgrade drops the column: those payment methods are spent again, as before.

Revision ID: 0081_pm_saved_for_future_usage
Revises: 0080_canceled_payout_failures
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.batched_backfill import backfill_in_batches

revision = "0081_pm_saved_for_future_usage"
down_revision = "0080_canceled_payout_failures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NOT NULL with a constant default: a catalog change, the table is not rewritten.
    op.add_column(
        "payment_methods",
        sa.Column("saved_for_future_usage", sa.Boolean, nullable=False, server_default=sa.false()),
        if_not_exists=True,
    )
    backfill_in_batches(
        "payment_methods",
        """
        UPDATE payment_methods AS pm SET saved_for_future_usage = true
        FROM payment_intents AS pi
        WHERE pm.id > :after AND pm.id <= :last
          AND NOT pm.saved_for_future_usage
          AND pm.customer_id IS NULL AND pm.detached_at IS NULL
          AND pi.id = pm.spent_by_intent_id AND pi.account_id = pm.account_id
          AND pi.payment_method_id = pm.id AND pi.customer_id IS NULL
          AND pi.setup_future_usage IS NOT NULL
          AND pi.status IN ('succeeded', 'requires_capture')
        """,
    )


def downgrade() -> None:
    op.drop_column("payment_methods", "saved_for_future_usage")
