"""Intents keep how their payment methods are chosen.

`automatic_payment_methods` (enabled, allow_redirects) decides whether confirming needs a
`return_url`, so it has to outlive the create call that set it; `allowed_payment_method_types`
and `excluded_payment_method_types` are the merchant's restriction of the types an intent may
be paid with (Stripe's successors of writing `payment_method_types`).

Intents made before this revision have none of them: they render `automatic_payment_methods:
null`, as they always did, and allow every type remit processes.

Revision ID: 0020_payment_method_choice
Revises: 0019_webhook_retry_step
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0020_payment_method_choice"
down_revision = "0019_webhook_retry_step"
branch_labels = None
depends_on = None

_COLUMNS = (
    "automatic_payment_methods",
    "allowed_payment_method_types",
    "excluded_payment_method_types",
)


def upgrade() -> None:
    for column in _COLUMNS:
        op.add_column("payment_intents", sa.Column(column, JSONB, nullable=True))


def downgrade() -> None:
    for column in reversed(_COLUMNS):
        op.drop_column("payment_intents", column)
