"""Filling a new column of a busy table in migrations without holding the table meanwhile.

An UPDATE of every row in the migration's own transaction keeps the locks the migration took
until all rows are written: after an `ADD COLUMN`, its ACCESS EXCLUSIVE lock, so every read and
write of the table (payments, captures, refunds) waits for the whole backfill. Instead the
migration adds its column in its transaction, which is a quick catalog change, and fills it
here afterwards, outside that transaction (`op.get_context().autocommit_block()`): one batch of
rows by primary key at a time, each batch an UPDATE of its own that commits on its own, so a
write waits at most for the batch holding its row.

The migration's transaction is committed before the batches run and its revision is recorded
only after the last one, so an upgrade stopped part-way runs the migration again from the
start: its `ADD COLUMN` must say `IF NOT EXISTS`, and its UPDATE must leave alone the rows a
batch already wrote (or the application has written since), so that running it again only
finishes the work.
"""

import sqlalchemy as sa
from alembic import op

# Rows per batch: short enough that a write to one of them waits only briefly for its batch,
# big enough that a table of millions is filled in a few thousand statements.
BATCH_ROWS = 1000


def backfill_in_batches(table: str, update: str) -> None:
    """Run `update` over `table` one batch at a time, each batch committed on its own.

    `update` is an UPDATE of `table` that restricts itself to the batch with
    `<table>.id > :after AND <table>.id <= :last` and to the rows still to fill. The batches
    follow the primary key `id`, so each finds its rows through the primary key index, and
    rows inserted meanwhile are written by the application, which knows the new column.
    Commits the migration's transaction first (Alembic's autocommit block)."""
    ids = sa.table(table, sa.column("id", sa.Text)).c.id
    batch = (
        sa.select(ids)
        .where(ids > sa.bindparam("after"))
        .order_by(ids)
        .limit(sa.bindparam("rows"))
        .subquery("batch")
    )
    next_batch_ends = sa.select(sa.func.max(batch.c.id))
    fill = sa.text(update)
    with op.get_context().autocommit_block():
        connection = op.get_bind()
        # Every id sorts after the empty string.
        after = ""
        while True:
            last = connection.execute(next_batch_ends, {"after": after, "rows": BATCH_ROWS})
            last_id = last.scalar_one()
            if last_id is None:
                return
            # Autocommit: the UPDATE is a transaction of its own, its row locks gone once it
            # returns.
            connection.execute(fill, {"after": after, "last": last_id})
            after = last_id
