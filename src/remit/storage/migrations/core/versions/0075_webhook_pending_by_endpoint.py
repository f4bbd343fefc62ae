"""A deleted endpoint's pending webhook deliveries are indexed by endpoint and id.

Ending them (`remit.webhooks.deleted`) takes a batch at a time, locked in id order so that two
batches never wait on each other's rows. The index by endpoint and status holds an endpoint's
pending deliveries in no particular id order, so each batch read and sorted all of those left:
an endpoint with n pending deliveries cost n²/1000 rows read over its job's batches. This index
holds only the pending ones, by endpoint and then id: a batch reads its rows in the order it
locks them and stops after about as many as it ends.

Built and dropped without blocking writes (`remit.storage.online_index`): events go on being
recorded while it is built. An upgrade stopped during the build has not recorded 0075 and builds
it again on the next. Until it is built, the batches plan as before, through the index by
endpoint and status.

Revision ID: 0075_webhook_pending_by_endpoint
Revises: 0074_job_put_backs
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0075_webhook_pending_by_endpoint"
down_revision = "0074_job_put_backs"
branch_labels = None
depends_on = None

_NAME = "ix_webhook_deliveries_pending_endpoint"
_TABLE = "webhook_deliveries"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_online(
            _NAME,
            _TABLE,
            ["endpoint_id", "id"],
            postgresql_where=sa.text("status = 'pending'"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_online(_NAME, _TABLE)
