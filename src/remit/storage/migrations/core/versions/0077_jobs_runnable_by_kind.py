"""Runnable jobs are indexed by kind, then due time and id.

A worker claims for its lanes apart (`remit.worker.runner.Lane`): the payment jobs in its
general slots, webhook deliveries in slots of their own. Through the index of runnable jobs by
due time alone, a claim for the payment jobs read past every due delivery ahead of them, and a
backlog of deliveries to a slow endpoint made every such claim read it all. By kind first, each
lane's claim reads only its own kinds' due jobs, oldest first.

Built and dropped without blocking writes (`remit.storage.online_index`): jobs go on being
staged while it is built. Until it is built, the claims plan as before.

Revision ID: 0077_jobs_runnable_by_kind
Revises: 0076_webhook_attempt_numbers
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0077_jobs_runnable_by_kind"
down_revision = "0076_webhook_attempt_numbers"
branch_labels = None
depends_on = None

_NAME = "ix_jobs_runnable_kind"
_TABLE = "jobs"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_online(
            _NAME,
            _TABLE,
            ["kind", "run_at", "id"],
            postgresql_where=sa.text("status = 'pending'"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_online(_NAME, _TABLE)
