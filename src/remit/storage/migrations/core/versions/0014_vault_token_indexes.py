"""Payment methods and tokens are found by their vault token.

Before the core deletes a vault card that a request stored and then did not use (a retry that
only replays the first answer, a refused request), it checks that no payment method or token
holds the card; these indexes make that check a lookup instead of a scan of both tables.

The indexes are built without blocking writes to payment methods and tokens
(`remit.storage.online_index`).

Revision ID: 0014_vault_token_indexes
Revises: 0013_charge_details
"""

from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0014_vault_token_indexes"
down_revision = "0013_charge_details"
branch_labels = None
depends_on = None

_INDEXES = (
    ("ix_payment_methods_vault_token", "payment_methods"),
    ("ix_tokens_vault_token", "tokens"),
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table in _INDEXES:
            create_index_online(name, table, ["vault_token"])


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table in reversed(_INDEXES):
            drop_index_online(name, table)
