"""A value list holds each value once.

Until this revision two concurrent adds of one value to one list could both insert it: the
service looked for the value, then inserted it, and nothing in the database refused the second
row. Stripe refuses an item whose value its list already holds. Since this revision the unique
index ux_radar_value_list_items_value on (value_list_id, value_key) does, and the service adds
an item with `ON CONFLICT DO NOTHING`, answering the add that loses the race as any duplicate
add is answered (400 invalid_request_error, param `value`).

Duplicates stored before are removed first. Items are duplicates when their list and their
value_key are the same: the value as rules compare it, so in a case-insensitive list
`Ann@example.com` and `ann@example.com` are one value, as they always were to every payment.
Of each such group the oldest item (created_at, then id) is kept, with its id and spelling, and
the others are deleted. Which payments a list matches does not change: the kept item has the
same value_key. No row refers to an item by id: a rule names its list, a payment's decision
names its rule, and no event is recorded for items. Only a client can still hold the id of a
removed item: an idempotency key's stored answer replays the add that made it (an id a DELETE
then finds missing, 404 resource_missing), and a list page started after it is 404 too. Each
removed item is logged with the one kept in its place.

The index replaces ix_radar_value_list_items_lookup, on the same columns, and is built and the
old one dropped without blocking writes (`remit.storage.online_index`). A process of the
previous version, still running during the upgrade, may add a duplicate while the index is
being built: the build then fails, leaving an invalid index, which is dropped; the duplicates
are removed again and the index built again, a few times at most.

Revision ID: 0056_unique_list_items
Revises: 0055_reconciliation_outcomes
"""

import logging

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import IntegrityError

from remit.storage.migration_stops import MigrationStoppedError
from remit.storage.online_index import create_index_online, drop_index_online

revision = "0056_unique_list_items"
down_revision = "0055_reconciliation_outcomes"
branch_labels = None
depends_on = None

log = logging.getLogger("remit.storage.migrations")

_TABLE = "radar_value_list_items"
_UNIQUE = "ux_radar_value_list_items_value"
_LOOKUP = "ix_radar_value_list_items_lookup"
_COLUMNS = ["value_list_id", "value_key"]
# Builds tried before giving up: each failed one met a duplicate added during the build by a
# process of the previous version, which the upgrade is replacing.
_BUILDS = 5

# Only the groups that have duplicates are ranked; the old lookup index serves the grouping.
_REMOVE_DUPLICATES = sa.text(
    "WITH ranked AS ("
    " SELECT id, first_value(id) OVER ("
    "  PARTITION BY value_list_id, value_key ORDER BY created_at, id) AS kept_id"
    " FROM radar_value_list_items"
    " WHERE (value_list_id, value_key) IN ("
    "  SELECT value_list_id, value_key FROM radar_value_list_items"
    "  GROUP BY value_list_id, value_key HAVING count(*) > 1))"
    " DELETE FROM radar_value_list_items AS item USING ranked"
    " WHERE item.id = ranked.id AND ranked.id <> ranked.kept_id"
    " RETURNING item.id, item.account_id, item.value_list_id, ranked.kept_id"
)


def _remove_duplicates() -> None:
    """Delete every item but the oldest of its value in its list (its own transaction)."""
    for removed, account, value_list, kept in op.get_bind().execute(_REMOVE_DUPLICATES):
        log.warning(
            "removed value list item %s of %s (account %s), a duplicate of %s",
            removed,
            value_list,
            account,
            kept,
        )


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for _ in range(_BUILDS):
            _remove_duplicates()
            try:
                create_index_online(_UNIQUE, _TABLE, _COLUMNS, unique=True)
                break
            except IntegrityError:
                # A duplicate added during the build: drop the invalid index it left.
                drop_index_online(_UNIQUE, _TABLE)
        else:
            raise MigrationStoppedError(
                f"Cannot build the unique index {_UNIQUE}: duplicate value list items kept "
                "being added while it was built. Stop the processes of the previous version "
                "and run the migration again."
            )
        drop_index_online(_LOOKUP, _TABLE)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_online(_LOOKUP, _TABLE, _COLUMNS)
        drop_index_online(_UNIQUE, _TABLE)
