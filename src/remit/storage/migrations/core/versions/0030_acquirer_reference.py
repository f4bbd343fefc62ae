"""Balance transactions are found by the reference the acquirer settled them under.

Reconciliation pairs each row of a day's settlement report with the balance transaction of the
same reference, whatever day the ledger recorded it: a capture settled just before midnight
whose answer reached the core after it (or only when a retry or the completer looked it up) is
recorded the next day. Without this index, finding those few transactions by their reference
would read the whole table.

Built and dropped without blocking writes (`remit.storage.online_index`).

Revision ID: 0030_acquirer_reference
Revises: 0029_idempotency_unfinished
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0030_acquirer_reference"
down_revision = "0029_idempotency_unfinished"
branch_labels = None
depends_on = None

_NAME = "ix_balance_transactions_acquirer_reference"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_online(
            _NAME,
            "balance_transactions",
            ["acquirer_reference"],
            postgresql_where=sa.text("acquirer_reference IS NOT NULL"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_online(_NAME, "balance_transactions")
