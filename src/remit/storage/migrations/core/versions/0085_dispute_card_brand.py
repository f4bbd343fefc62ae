"""A dispute keeps its charge's card brand, which its network reason code depends on.

Stripe's dispute shows the card's brand (`payment_method_details.card`) and the network's
code of the dispute's reason, which differs by network: Visa's fraud dispute is 10.4,
Mastercard's 4837 (`remit.payments.disputes.network_reason_code`). The worker writes the
brand when it opens the dispute.

The disputes opened before this revision are given their charge's brand here, in batches
(`remit.storage.batched_backfill`). The column stays nullable: a process of the version
before, still running during the upgrade, opens a dispute without it, which then shows an
unknown brand and no reason code.

The downgrade drops the column.

Revision ID: 0085_dispute_card_brand
Revises: 0084_disputes
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.batched_backfill import backfill_in_batches

revision = "0085_dispute_card_brand"
down_revision = "0084_disputes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("disputes", sa.Column("card_brand", sa.Text, nullable=True), if_not_exists=True)
    backfill_in_batches(
        "disputes",
        """
        UPDATE disputes AS d SET card_brand = c.card->>'brand'
        FROM charges AS c
        WHERE d.id > :after AND d.id <= :last
          AND d.card_brand IS NULL
          AND c.id = d.charge_id AND c.account_id = d.account_id
        """,
    )


def downgrade() -> None:
    op.drop_column("disputes", "card_brand")
