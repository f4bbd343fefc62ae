"""Events of one instant are ordered as they were recorded, not by their random ids.

Events were listed, streamed and redelivered by (created_at, id). The events of one transaction
share its instant (a dispute's `charge.dispute.created` and `charge.dispute.funds_withdrawn`),
and so may those of transactions that follow one another closely (the database clock holds
still while its estimate catches up, `remit.storage.database_clock`): among them, the random
ids decided the order, so `GET /v1/events` could show a dispute's funds withdrawn before it was
created, or a payment's `payment_intent.succeeded` before its `charge.succeeded`.

Each event now takes a number from a sequence (`seq`) as it is inserted, in the order it is
recorded, and (created_at, seq) orders events: newest first in lists, oldest first in streams
and redeliveries, and in the paging cursors of all three. The insert names no new value: the
column's default draws it, in the same single statement (`remit.webhooks.outbox`), so a payment
sends no more statements than before, and processes of the version before, still running
during the upgrade, number the events they record too.

On a large table, in steps none of which blocks writes for longer than a moment:
- the column is added without a default (no row is rewritten), then given the sequence's
  default, which only rows inserted from then on take;
- the events recorded before are numbered in batches along the primary key
  (`remit.storage.batched_backfill`), in id order, so that among events of one instant the
  order they were listed in stays as it was;
- the column is made NOT NULL through a CHECK added `NOT VALID` and then validated, which reads
  the table holding only SHARE UPDATE EXCLUSIVE, so that `SET NOT NULL` need not read it again
  under its ACCESS EXCLUSIVE lock;
- the index the lists read by is built `CONCURRENTLY` on (account_id, created_at, seq), and the
  one on (account_id, created_at, id) dropped the same way.
An upgrade interrupted after any step finds it done and carries on.

The downgrade builds the index on ids again and drops the column, and with it its sequence.

Revision ID: 0087_event_order
Revises: 0086_api_key_events
"""

import sqlalchemy as sa
from alembic import op

from remit.storage.batched_backfill import backfill_in_batches
from remit.storage.online_index import create_index_online, drop_index_online

revision = "0087_event_order"
down_revision = "0086_api_key_events"
branch_labels = None
depends_on = None

_SEQUENCE = "events_seq"
_NOT_NULL_CHECK = "ck_events_seq_not_null"
_BY_SEQ = "ix_events_account_id_created_at_seq"
_BY_ID = "ix_events_account_id_created_at"

_NULLABLE = sa.text(
    "SELECT is_nullable = 'YES' FROM information_schema.columns"
    " WHERE table_schema = current_schema() AND table_name = 'events' AND column_name = 'seq'"
)
_CHECK_EXISTS = sa.text(
    "SELECT 1 FROM pg_constraint WHERE conname = :name AND conrelid = CAST('events' AS regclass)"
)


def upgrade() -> None:
    op.execute(f"CREATE SEQUENCE IF NOT EXISTS {_SEQUENCE} AS bigint")
    op.add_column("events", sa.Column("seq", sa.BigInteger, nullable=True), if_not_exists=True)
    op.execute(f"ALTER TABLE events ALTER COLUMN seq SET DEFAULT nextval('{_SEQUENCE}')")
    op.execute(f"ALTER SEQUENCE {_SEQUENCE} OWNED BY events.seq")
    # The batch's ids in order, numbered as they come: nextval is taken in the outer query,
    # over rows the inner one has sorted.
    backfill_in_batches(
        "events",
        """
        UPDATE events AS e SET seq = numbered.seq
        FROM (
            SELECT id, nextval('events_seq') AS seq
            FROM (
                SELECT id FROM events
                WHERE id > :after AND id <= :last AND seq IS NULL
                ORDER BY id
            ) AS batch
        ) AS numbered
        WHERE e.id = numbered.id
        """,
    )
    if op.get_bind().execute(_NULLABLE).scalar_one():
        if op.get_bind().execute(_CHECK_EXISTS, {"name": _NOT_NULL_CHECK}).first() is None:
            op.execute(
                f"ALTER TABLE events ADD CONSTRAINT {_NOT_NULL_CHECK}"
                " CHECK (seq IS NOT NULL) NOT VALID"
            )
        with op.get_context().autocommit_block():
            op.execute(f"ALTER TABLE events VALIDATE CONSTRAINT {_NOT_NULL_CHECK}")
        op.execute("ALTER TABLE events ALTER COLUMN seq SET NOT NULL")
    op.execute(f"ALTER TABLE events DROP CONSTRAINT IF EXISTS {_NOT_NULL_CHECK}")
    with op.get_context().autocommit_block():
        create_index_online(_BY_SEQ, "events", ["account_id", "created_at", "seq"])
        drop_index_online(_BY_ID, "events")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_online(_BY_ID, "events", ["account_id", "created_at", "id"])
        drop_index_online(_BY_SEQ, "events")
    op.drop_column("events", "seq")
