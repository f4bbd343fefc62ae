"""Payment methods and tokens are found by their vault token.

Before the core deletes a vault card that a request stored and then did not use (a retry that
only replays the first answer, a refused request), it checks that no payment method or token
holds the card; these indexes make that check a lookup instead of a scan of both tables.

The indexes are built `CONCURRENTLY`, outside the migration's transaction: a plain
`CREATE INDEX` holds a lock that blocks every insert and update of payment methods and tokens
until the build ends, which on a live platform means refused card saves for as long as the
tables take to index. A concurrent build that is interrupted (a crash, a cancelled upgrade)
leaves an invalid index behind that `IF NOT EXISTS` would take for a finished one, so an
invalid index of the same name is dropped and built again.

Revision ID: 0014_vault_token_indexes
Revises: 0013_charge_details
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_vault_token_indexes"
down_revision = "0013_charge_details"
branch_labels = None
depends_on = None

_INDEXES = (
    ("ix_payment_methods_vault_token", "payment_methods"),
    ("ix_tokens_vault_token", "tokens"),
)

_INVALID_INDEX = sa.text(
    "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE c.relname = :name AND c.relnamespace = current_schema()::regnamespace "
    "AND NOT i.indisvalid"
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table in _INDEXES:
            if op.get_bind().execute(_INVALID_INDEX, {"name": name}).first() is not None:
                op.drop_index(name, table_name=table, postgresql_concurrently=True)
            op.create_index(
                name, table, ["vault_token"], postgresql_concurrently=True, if_not_exists=True
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table in reversed(_INDEXES):
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
