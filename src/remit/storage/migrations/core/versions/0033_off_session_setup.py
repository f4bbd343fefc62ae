"""Payment methods remember the payment that set their card up for off-session payments.

A payment with `setup_future_usage=off_session` is the cardholder's agreement to later payments
the merchant makes while the cardholder is away. The network's id of that payment is what those
payments cite, so that an issuer can waive authentication for them (test card
4000002500003155 does, once the setup was authenticated). `off_session_setup_transaction_id`
holds it, written with the payment's outcome.

Payment methods saved before this revision have none: their off-session payments cite nothing,
as before, and such a card keeps asking for authentication until it is set up again. The
downgrade drops the column, with the same effect.

Revision ID: 0033_off_session_setup
Revises: 0032_abandoned_attempts
"""

import sqlalchemy as sa
from alembic import op

revision = "0033_off_session_setup"
down_revision = "0032_abandoned_attempts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "payment_methods",
        sa.Column("off_session_setup_transaction_id", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("payment_methods", "off_session_setup_transaction_id")
