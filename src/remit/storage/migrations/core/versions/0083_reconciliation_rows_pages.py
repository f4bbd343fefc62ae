"""A reconciliation's rows are indexed in the order their pages read them.

Reconcile, GetReconciliation and ListReconciliationRows read a run's rows a page at a time,
those that differ first, then the matched ones, each by id (`remit.ledger.reconciliation_pages`).
By the run's id alone, each page read and sorted every row of the run: a busy day's 30,000
for each of its 30 pages. This index holds them in that order, so a page reads its own rows.

Built and dropped without blocking writes (`remit.storage.online_index`): runs go on being
stored while it is built. Until it is built, pages are read as before, sorted.

Revision ID: 0083_reconciliation_rows_pages
Revises: 0082_ledger_posting_owner
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0083_reconciliation_rows_pages"
down_revision = "0082_ledger_posting_owner"
branch_labels = None
depends_on = None

_NAME = "ix_reconciliation_rows_page_order"
_TABLE = "reconciliation_rows"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_online(
            _NAME,
            _TABLE,
            ["reconciliation_id", sa.text("(status = 'matched')"), "id"],
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_online(_NAME, _TABLE)
