"""Value lists and items created since core migration 0057 name the key that created them.

Until this version a value list's and an item's `created_by` was always "remit"; it now holds
the `key_` id of the key the create was asked with, as Radar's history records it. The history
has recorded that id since 0057, in the `created` record of each list and item: this revision
copies it into `created_by` where that still says "remit". Lists and items created before 0057
have no such record and keep "remit", as do those a caller naming no key created.

The copy runs in batches of rows by id, each committed on its own
(`remit.storage.batched_backfill`): a long blocklist is never rewritten in one statement whose
row locks would hold up the deletes and updates of its items until the end. It touches only
rows still saying "remit", so an upgrade stopped part-way finishes the rest when run again.

The earlier version reads any `created_by`, so the downgrade leaves the values as they are.

Revision ID: 0061_radar_created_by_keys
Revises: 0060_admin_idempotency_keys
"""

from remit.storage.batched_backfill import backfill_in_batches

revision = "0061_radar_created_by_keys"
down_revision = "0060_admin_idempotency_keys"
branch_labels = None
depends_on = None

# `{object_type}` is one of this file's two constants: the batches bind only their bounds.
_FROM_HISTORY = """
UPDATE {table} AS made SET created_by = change.changed_by
FROM radar_changes AS change
WHERE made.id > :after AND made.id <= :last
  AND change.account_id = made.account_id
  AND change.object_id = made.id
  AND change.object_type = '{object_type}'
  AND change.action = 'created'
  AND made.created_by = 'remit'
"""


def upgrade() -> None:
    for table, object_type in (
        ("radar_value_lists", "radar.value_list"),
        ("radar_value_list_items", "radar.value_list_item"),
    ):
        backfill_in_batches(table, _FROM_HISTORY.format(table=table, object_type=object_type))


def downgrade() -> None:
    pass
