"""Pending webhook deliveries are indexed by when their next attempt is due.

The worker's repair of deliveries left pending with no job (`remit.webhooks.repair`) reads the
pending deliveries whose attempt fell due a while ago, by due time and id. The table's only
other index is by endpoint and status, so without this one each run read every delivery kept
(30 days of them). This index holds only the pending ones: a run with nothing to repair reads
none of them, and one with work reads only those overdue.

Built and dropped without blocking writes (`remit.storage.online_index`): events go on being
recorded while it is built. An upgrade stopped during the build has not recorded 0068 and
builds it again on the next.

Revision ID: 0068_webhook_pending_due
Revises: 0067_charge_authorized_at
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0068_webhook_pending_due"
down_revision = "0067_charge_authorized_at"
branch_labels = None
depends_on = None

_NAME = "ix_webhook_deliveries_pending_due"
_TABLE = "webhook_deliveries"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_online(
            _NAME,
            _TABLE,
            ["next_attempt_at", "id"],
            postgresql_where=sa.text("status = 'pending'"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_online(_NAME, _TABLE)
