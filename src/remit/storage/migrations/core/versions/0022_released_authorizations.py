"""Charges remember that their authorization was released uncaptured.

A charge whose intent was canceled, or expired, while only authorized keeps `captured: false`,
exactly like one still waiting to be captured. API versions before 2025-03-31 show the release
as a refund of the whole amount, so the charge has to know it happened.

Charges released before this revision are found from their intents: an authorized charge
(succeeded, never captured) that is the latest charge of a canceled intent was released with it
(an intent is canceled from `requires_capture` only by releasing its authorization, and the
other statuses it is canceled from have no authorized charge).

The column is added in the migration's transaction (a constant default needs no rewrite of the
table) and those charges are marked afterwards in batches, so that payments, captures and
refunds keep going meanwhile (`remit.storage.batched_backfill`).

Revision ID: 0022_released_authorizations
Revises: 0021_webhook_failure_runs
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.batched_backfill import backfill_in_batches

revision = "0022_released_authorizations"
down_revision = "0021_webhook_failure_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "charges",
        sa.Column(
            "authorization_released", sa.Boolean, nullable=False, server_default=sa.text("false")
        ),
        if_not_exists=True,
    )
    backfill_in_batches(
        "charges",
        """
        UPDATE charges SET authorization_released = true
        FROM payment_intents
        WHERE charges.id > :after AND charges.id <= :last
          AND NOT charges.authorization_released
          AND payment_intents.latest_charge_id = charges.id
          AND payment_intents.account_id = charges.account_id
          AND payment_intents.status = 'canceled'
          AND charges.status = 'succeeded'
          AND NOT charges.captured
        """,
    )


def downgrade() -> None:
    op.drop_column("charges", "authorization_released")
