"""Intents keep the 3-D Secure their merchant asked for.

`payment_method_options[card][request_three_d_secure]` was read only from a confirmation, so
the standard integration (the server creates the intent with `request_three_d_secure=any` or
`challenge`, Stripe.js confirms it later) confirmed without asking the cardholder for 3-D
Secure. The intent now keeps the option, as create, update and confirm set it, and every
confirmation that names none asks for it.

Intents made before this revision have none: they render `payment_method_options: null` and
confirm as before (`automatic`). The downgrade drops the column, with the same effect.

Revision ID: 0047_request_three_d_secure
Revises: 0046_webhook_parked
"""

import sqlalchemy as sa
from alembic import op

revision = "0047_request_three_d_secure"
down_revision = "0046_webhook_parked"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payment_intents", sa.Column("request_three_d_secure", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("payment_intents", "request_three_d_secure")
