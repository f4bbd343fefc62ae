"""Value lists and items created since core migration 0057 name the key that created them.

Until this version a value list's and an item's `created_by` was always "remit"; it now holds
the `key_` id of the key the create was asked with, as Radar's history records it. The history
has recorded that id since 0057, in the `created` record of each list and item: this revision
copies it into `created_by` where that still says "remit". Lists and items created before 0057
have no such record and keep "remit", as do those a caller naming no key created.

The earlier version reads any `created_by`, so the downgrade leaves the values as they are.

Revision ID: 0061_radar_created_by_keys
Revises: 0060_admin_idempotency_keys
"""

import sqlalchemy as sa
from alembic import op

revision = "0061_radar_created_by_keys"
down_revision = "0060_admin_idempotency_keys"
branch_labels = None
depends_on = None

_FROM_HISTORY = """
UPDATE {table} AS made SET created_by = change.changed_by
FROM radar_changes AS change
WHERE change.account_id = made.account_id
  AND change.object_id = made.id
  AND change.object_type = :object_type
  AND change.action = 'created'
  AND made.created_by = 'remit'
"""


def upgrade() -> None:
    db = op.get_bind()
    for table, object_type in (
        ("radar_value_lists", "radar.value_list"),
        ("radar_value_list_items", "radar.value_list_item"),
    ):
        db.execute(sa.text(_FROM_HISTORY.format(table=table)), {"object_type": object_type})


def downgrade() -> None:
    pass
