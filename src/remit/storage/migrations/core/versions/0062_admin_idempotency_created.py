"""The worker's hourly reaper finds the admin idempotency keys to delete by their creation time
without reading the whole table.

Every run of `remit accounts create` or `remit accounts keys create|roll` claims a key in
admin_idempotency_keys (0060), and the reaper deletes those claimed more than 72 hours ago
(`remit.accounts.admin_requests.reap`), by `created_at`, which nothing indexed: each run read
every row, all the more of them the more often the commands run (a deployment that rolls keys
from a script, say). The index holds the keys in creation order, so a run reads only the old
ones.

Built and dropped without blocking writes (`remit.storage.online_index`): the calls that claim
keys go on while it is built. An upgrade stopped during the build has not recorded 0062 and
builds it again on the next.

Revision ID: 0062_admin_idempotency_created
Revises: 0061_radar_created_by_keys
"""

from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0062_admin_idempotency_created"
down_revision = "0061_radar_created_by_keys"
branch_labels = None
depends_on = None

_NAME = "ix_admin_idempotency_keys_created_at"
_TABLE = "admin_idempotency_keys"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_online(_NAME, _TABLE, ["created_at"])


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_online(_NAME, _TABLE)
