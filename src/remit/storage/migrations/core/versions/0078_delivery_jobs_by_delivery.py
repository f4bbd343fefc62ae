"""Pending delivery jobs are indexed by the delivery they deliver.

Ending a deleted endpoint's pending deliveries removes their queued jobs, and the repair looks
for the deliveries with none, each by a page of delivery ids: with no index by delivery, each
such batch read every pending delivery job (about 1.6 s at a million, holding the batch's
delivery row locks meanwhile). Partial, as the statements that use it are: pending jobs of the
delivery kind only, written out in them. PostgreSQL keeps no statistics of a partial index's
expression, and would take each delivery for a thousand jobs (its default selectivity), and a
page of deliveries for more jobs than there are, reading them all: statistics of the expression
over the table (`CREATE STATISTICS`, read by ANALYZE) tell it a delivery has a few.

Built and dropped without blocking writes (`remit.storage.online_index`): jobs go on being
staged while it is built. Until it is built, the statements plan as before.

Revision ID: 0078_delivery_jobs_by_delivery
Revises: 0077_jobs_runnable_by_kind
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0078_delivery_jobs_by_delivery"
down_revision = "0077_jobs_runnable_by_kind"
branch_labels = None
depends_on = None

_NAME = "ix_jobs_pending_delivery"
_TABLE = "jobs"
_STATISTICS = "st_jobs_delivery_id"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_online(
            _NAME,
            _TABLE,
            [sa.text("(payload ->> 'delivery_id')")],
            postgresql_where=sa.text("status = 'pending' AND kind = 'webhooks.deliver'"),
        )
    # Statistics on an expression come with PostgreSQL 14; on 13 the index is still used
    # where the planner judges it, and the statements plan as they did before it.
    if _expression_statistics_supported():
        op.execute(
            f"CREATE STATISTICS IF NOT EXISTS {_STATISTICS}"
            f" ON (payload ->> 'delivery_id') FROM {_TABLE}"
        )
    # Statistics are gathered by ANALYZE only: without this, the planner goes on reading
    # every pending job until autovacuum next analyses the table, which a table whose rows
    # mostly change in place may not do for hours. It samples a bounded number of rows and
    # blocks no writes.
    op.execute(f"ANALYZE {_TABLE}")


def downgrade() -> None:
    op.execute(f"DROP STATISTICS IF EXISTS {_STATISTICS}")
    with op.get_context().autocommit_block():
        drop_index_online(_NAME, _TABLE)


def _expression_statistics_supported() -> bool:
    version = op.get_bind().dialect.server_version_info
    return version is not None and version >= (14,)
