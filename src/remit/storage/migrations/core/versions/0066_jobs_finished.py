"""The worker's hourly prune finds the finished jobs to delete by their end without reading the
whole table, and `remit jobs failed` lists the failed ones the same way.

Jobs that ended (done, or failed for good) stay in the jobs table until the prune deletes them:
done ones 7 days after they finished, failed ones 30 days after (`remit.worker.housekeeping`).
The only index on the table was the partial one of pending jobs, so each prune read every row,
and the more jobs a platform runs the more rows there are. This index holds only the ended jobs,
by status and then end time: a prune reads only those it deletes, and the list of failed jobs
only the failed ones, the latest first.

Built and dropped without blocking writes (`remit.storage.online_index`): jobs go on being
staged and claimed while it is built. An upgrade stopped during the build has not recorded 0066
and builds it again on the next.

Revision ID: 0066_jobs_finished
Revises: 0065_balance_release_failures
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0066_jobs_finished"
down_revision = "0065_balance_release_failures"
branch_labels = None
depends_on = None

_NAME = "ix_jobs_finished"
_TABLE = "jobs"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_online(
            _NAME,
            _TABLE,
            ["status", "finished_at"],
            postgresql_where=sa.text("status IN ('done', 'failed')"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_online(_NAME, _TABLE)
