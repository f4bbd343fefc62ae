"""A refund has one balance transaction of type `refund`, whatever process finishes it.

Since 0041 a refund's balance transaction is written when the refund is created and kept when
it succeeds. A core or worker of the earlier version, still running during an upgrade, finishing
such a refund would write a second one (it wrote the row only when the refund posted), and the
account's balance transactions would no longer add up to its balance. This unique index turns
that second write into an error: the earlier process's transaction rolls back, nothing is
posted twice, and the refund is finished by a process of this version when its job is tried
again. (Refund failures are rows of their own type, `refund_failure`, and are not counted.)

The index is built before 0041 writes any row, so that no row written by an earlier process
during the upgrade can make the build fail: the earlier version writes one `refund` row per
refund. Should a database hold two for one refund all the same, the build could never succeed
(a concurrent build that meets a duplicate leaves an invalid index, dropped and built again,
failing again, by every rerun): the migration looks for them first and fails naming the
refunds, for an operator to resolve before running it again.

Built and dropped without blocking writes (`remit.storage.online_index`).

Revision ID: 0040_one_refund_entry
Revises: 0039_ledger_turn_64bit
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import IntegrityError

from remit.storage.migration_stops import MigrationStoppedError
from remit.storage.online_index import create_index_online, drop_index_online

revision = "0040_one_refund_entry"
down_revision = "0039_ledger_turn_64bit"
branch_labels = None
depends_on = None

_NAME = "ux_balance_transactions_refund_source"
_TABLE = "balance_transactions"

# Enough to name in an error; an operator lists the rest with the same query.
_SHOWN_DUPLICATES = 20

_DUPLICATES = sa.text(
    "SELECT account_id, source_id, count(*) AS rows FROM balance_transactions "
    "WHERE type = 'refund' GROUP BY account_id, source_id HAVING count(*) > 1 "
    "ORDER BY account_id, source_id LIMIT :limit"
)


def _refuse_duplicates() -> None:
    """Fail, naming the refunds, if any has more than one `refund` balance transaction."""
    found = op.get_bind().execute(_DUPLICATES, {"limit": _SHOWN_DUPLICATES}).all()
    if not found:
        return
    named = ", ".join(
        f"{row.source_id} (account {row.account_id}, {row.rows} rows)" for row in found
    )
    more = " (and maybe more)" if len(found) == _SHOWN_DUPLICATES else ""
    raise MigrationStoppedError(
        f"Cannot add the unique index {_NAME}: these refunds have more than one balance "
        f"transaction of type 'refund': {named}{more}. Their account's balance transactions "
        "no longer add up to its balance; keep one row per refund (the one the refund's "
        "balance_transaction_id names), then run the migration again."
    )


def upgrade() -> None:
    with op.get_context().autocommit_block():
        _refuse_duplicates()
        try:
            create_index_online(
                _NAME,
                _TABLE,
                ["account_id", "source_id"],
                unique=True,
                postgresql_where=sa.text("type = 'refund'"),
            )
        except IntegrityError:
            # A duplicate written while the index was being built: drop the invalid index it
            # left, and say which refunds.
            drop_index_online(_NAME, _TABLE)
            _refuse_duplicates()
            raise


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_online(_NAME, _TABLE)
