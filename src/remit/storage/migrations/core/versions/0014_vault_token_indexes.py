"""Payment methods and tokens are found by their vault token.

Before the core deletes a vault card that a request stored and then did not use (a retry that
only replays the first answer, a refused request), it checks that no payment method or token
holds the card; these indexes make that check a lookup instead of a scan of both tables.

Revision ID: 0014_vault_token_indexes
Revises: 0013_charge_details
"""

from alembic import op

revision = "0014_vault_token_indexes"
down_revision = "0013_charge_details"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_payment_methods_vault_token", "payment_methods", ["vault_token"])
    op.create_index("ix_tokens_vault_token", "tokens", ["vault_token"])


def downgrade() -> None:
    op.drop_index("ix_tokens_vault_token", table_name="tokens")
    op.drop_index("ix_payment_methods_vault_token", table_name="payment_methods")
