"""A refund has one balance transaction of type `refund`, whatever process finishes it.

Since 0040 a refund's balance transaction is written when the refund is created and kept when
it succeeds. A core or worker of the earlier version, still running during an upgrade, finishing
such a refund would write a second one (it wrote the row only when the refund posted), and the
account's balance transactions would no longer add up to its balance. This unique index turns
that second write into an error: the earlier process's transaction rolls back, nothing is
posted twice, and the refund is finished by a process of this version when its job is tried
again. (Refund failures are rows of their own type, `refund_failure`, and are not counted.)

Built and dropped without blocking writes (`remit.storage.online_index`). Refunds recorded
before 0040 have one row each already, so the build finds no duplicates.

Revision ID: 0041_one_refund_entry
Revises: 0040_pending_refund_entries
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0041_one_refund_entry"
down_revision = "0040_pending_refund_entries"
branch_labels = None
depends_on = None

_NAME = "ux_balance_transactions_refund_source"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_online(
            _NAME,
            "balance_transactions",
            ["account_id", "source_id"],
            unique=True,
            postgresql_where=sa.text("type = 'refund'"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_online(_NAME, "balance_transactions")
