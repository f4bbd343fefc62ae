"""An idempotency key records when its request finished, and its life counts from then.

A key's life (a day of replays) and its retention (three days) counted from its creation. A
request held at a recovery point through an outage, and finished by the completer or an
operator more than a day after it began, left a key already expired: the client's retry with
it, a minute later, started over as a new payment and paid a second time; one finished more
than three days after it began was deleted by the reaper's next run. `finished_at` is set by
the statement that finishes the key, and a finished key's life counts from it
(`remit.payments.idempotency.life_began`).

Keys finished before this get the latest time known of their request: when it, or its last
retry or try by the completer, began (`last_run_at`, never before `created_at`). `last_run_at`
itself is not reused: it is when the latest try began, from which the completer's backoff
counts, and a finish does not touch it.

The column is nullable with no default, so adding it rewrites no row; the backfill then runs in
batches along the primary key (account_id, key), each committed on its own, so that no request
waits long on a key's row (as `remit.storage.batched_backfill` does along an `id`). An upgrade
stopped part-way runs again from the start: the column is added only if missing, and keys
already filled are left alone. A key finished meanwhile by a copy of remit that does not set
the column has none, and its life counts from its creation, as before.

The reaper keeps using the index on `created_at`: a key's finish never comes before its
creation, so every key past retention lies in that range, and the finish is checked on the
rows it yields.

The downgrade drops the column: lives count from creation again.

Revision ID: 0079_idempotency_finished_at
Revises: 0078_delivery_jobs_by_delivery
"""

import sqlalchemy as sa
from alembic import op

from remit.storage import batched_backfill

revision = "0079_idempotency_finished_at"
down_revision = "0078_delivery_jobs_by_delivery"
branch_labels = None
depends_on = None

_TABLE = "idempotency_keys"
_COLUMN = "finished_at"

# The last key of the next batch, along the primary key (account_id, key).
_BATCH_ENDS = sa.text(
    "SELECT account_id, key FROM ("
    "  SELECT account_id, key FROM idempotency_keys"
    "  WHERE (account_id, key) > (:after_account, :after_key)"
    "  ORDER BY account_id, key LIMIT :rows"
    ") AS batch ORDER BY account_id DESC, key DESC LIMIT 1"
)
_FILL = sa.text(
    "UPDATE idempotency_keys SET finished_at = greatest(created_at, last_run_at)"
    " WHERE (account_id, key) > (:after_account, :after_key)"
    "  AND (account_id, key) <= (:last_account, :last_key)"
    "  AND recovery_point = 'finished' AND finished_at IS NULL"
)


def upgrade() -> None:
    op.execute(f"ALTER TABLE {_TABLE} ADD COLUMN IF NOT EXISTS {_COLUMN} timestamptz")
    with op.get_context().autocommit_block():
        connection = op.get_bind()
        # Every account id and key sorts after the empty string.
        after = ("", "")
        while True:
            last = connection.execute(
                _BATCH_ENDS,
                {
                    "after_account": after[0],
                    "after_key": after[1],
                    "rows": batched_backfill.BATCH_ROWS,
                },
            ).first()
            if last is None:
                return
            # Autocommit: the UPDATE is a transaction of its own, its row locks gone once it
            # returns.
            connection.execute(
                _FILL,
                {
                    "after_account": after[0],
                    "after_key": after[1],
                    "last_account": last.account_id,
                    "last_key": last.key,
                },
            )
            after = (last.account_id, last.key)


def downgrade() -> None:
    op.drop_column(_TABLE, _COLUMN)
